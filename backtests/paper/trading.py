"""Paper trading: the backtest's engine stepped bar by bar on fresh data, with a journal.

An account (``init``) is pinned to a trained model (by its hash), strategy parameters, costs and a
source: a CSV file another program appends to, or ``yahoo:SYMBOL:INTERVAL`` (the cache, topped up
through yfinance at each step). Everything lives in ``<runs>/paper/<NAME>/journal.sqlite``
(:mod:`.journal`) plus one registry row of kind ``paper``; the settings are
:class:`.account.AccountSettings`; the bars come from :mod:`.feed`.

``step`` runs in ONE transaction (``BEGIN IMMEDIATE``: a second step on the account waits, then
refuses; it never interleaves):

1. check the model's files against the pinned hash;
2. read only the new tail of the source (CSV: from the byte offset after the last consumed line,
   complete lines only, after checking that the file was not rewritten; Yahoo: rows after the
   last bar seen, plus the recent traded bars to detect revisions);
3. drop bars that have not closed yet (bar time + timeframe > now: Yahoo's forming bar); stop
   before a gap longer than the market's normal closures (the account waits, an event says why);
   a traded bar the source now shows revised is an event, never re-traded;
4. features and probabilities of the new bars from the carried indicator state
   (``models.predict.IncrementalPredictor``), recorded with each bar;
5. ``strategy.engine.simulate`` resumed from the saved ``EngineState`` over the bars since the last
   flat close (the same engine as ``attnbt backtest``, not a second implementation); orders, trades
   and equity after that close are replaced by the resumed run's (what ``engine.merge`` does);
6. cursor (offset, last bar, engine and feature states), events and a step row; COMMIT.

A process killed anywhere before COMMIT leaves the journal as it was (SQLite rolls the open
transaction back); the next step redoes the work (``journal.CRASH_POINTS``).
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from backtests.analysis.catalog import jsonable
from backtests.paper.account import Account, AccountSettings, PaperError
from backtests.paper.feed import (
    Fetcher,
    Tail,
    file_guard,
    gap_allowance,
    parse_max_gap,
    read_csv_tail,
    read_yahoo,
    snapshot,
    weekday_gap,
)
from backtests.paper.journal import (
    CRASH_ENV,
    CRASH_POINTS,
    JOURNAL,
    account_dir,
    candles_from,
    crash,
    create_account,
    load_account,
    load_cursor,
    now_iso,
    ns,
    open_journal,
    record_event,
    replace_since_flat,
    transaction,
    ts,
)
from backtests.paper.model import pinned_model
from backtests.store import Registry
from data.errors import DataError
from strategy.engine import EngineState, OrderRecord, TradeRecord, simulate
from strategy.fractal import Costs, FractalParams, signals_from_frame
from strategy.rules import label_exits, needs_atr

REVISION_LOOKBACK = 50          # Yahoo: recent traded bars compared with the source each step


def _record_json(r: TradeRecord | OrderRecord | None) -> dict | None:
    return None if r is None else jsonable(asdict(r))


# --- init ----------------------------------------------------------------------------------------
def init(name: str, run: str, source: str, *, runs_dir: str | Path | None = None,
         start: str = "after", tz: str = "UTC", point: float | None = None,
         dayfirst: bool | None = None, params: FractalParams = FractalParams(),
         costs: Costs = Costs(), cash: float = 100_000.0, max_gap: str | None = None,
         command: str | None = None, instrument: str | None = None,
         account_currency: str = "USD", trust_unhashed: bool = False) -> Account:
    """Create an account trading ``source`` with run ``run``'s model.

    ``start``: "after" (default: the bars after the last one in the source now), "first" (the
    source's existing history too) or a bar time (from that bar on).
    """
    from backtests.analysis.performance import infer_bars_per_year
    from backtests.currency import conversion, price_digits
    from backtests.meta import refuse_meta
    from data.summary import timeframe
    from data.validate import to_utc
    from models.checkpoint import check_compatible, load_model

    refuse_meta(params, "a paper account")
    conversion(source, instrument, account_currency)   # a cross is refused before any loading
    gap = parse_max_gap(max_gap)
    folder = account_dir(name, runs_dir)
    if folder.exists():
        raise PaperError(f"a paper account {name!r} exists already ({folder}); choose another "
                         "name")
    reg = Registry(runs_dir)
    train = reg.resolve(run, kind="train")
    loaded = load_model(train.path, trust_unhashed=trust_unhashed,
                        instrument=source)      # a pooled model: that instrument's normaliser
    params = label_exits(params, loaded.spec.labels)   # a triple-barrier model: its exits
    instrument, instrument_from = paper_instrument(source, instrument, loaded.meta_info.raw)
    conv = conversion(source, instrument, account_currency)
    snap = snapshot(source, tz, point, dayfirst)
    source, candles = snap.source, snap.candles
    tf = timeframe(candles.index)
    if tf is None:
        raise DataError("the source needs at least 2 bars to tell its timeframe", source=source,
                        rule="too few bars")
    check_compatible(loaded, timeframe=str(tf))
    if gap is not None and gap < tf:
        raise PaperError(f"paper.max_gap {max_gap!r} is shorter than one bar of this source ({tf}): "
                         "the account would stop at every missing bar; give at least one bar")
    if start == "after":
        first = len(candles)
    elif start == "first":
        first = 0
    else:
        at = to_utc(start, "paper.start")
        first = int(candles.index.searchsorted(at))
        if first == len(candles):
            raise DataError(f"no bar at or after {at} in the source (it ends at "
                            f"{candles.index[-1]}); omit paper.start to trade the bars to come",
                            source=source, rule="unknown bar")
    history = candles.iloc[:first]
    bars_per_year = infer_bars_per_year(candles.index)     # the source's whole history now
    bars_per_year = float(bars_per_year) if np.isfinite(bars_per_year) else None
    allowance = gap if gap is not None else gap_allowance(candles.index, tf)
    from models.predict import IncrementalPredictor, Predictor

    inc = IncrementalPredictor.from_history(Predictor(loaded), history)
    offset, guard = snap.cursor_at(first)
    last_time = ns(history.index[-1]) if len(history) else None
    folder.mkdir(parents=True)
    try:
        row = reg.create("paper", model=loaded.name, data=source, parent=train.id,
                         config_id=None, command=command,
                         meta={"name": name, "journal": str(folder / JOURNAL),
                               "model_hash": loaded.model_hash})
        settings = AccountSettings(
            source=source, **snap.reading, train_run=train.id, train_path=str(train.path),
            model=loaded.name, model_hash=loaded.model_hash, params=params, costs=costs,
            cash=float(cash), start=start, timeframe_s=tf.total_seconds(),
            gap_allowance_s=allowance.total_seconds(), spread="spread" in candles.columns,
            instrument=conv.instrument, account_currency=conv.account,
            history_bars=len(history),
            created_at_bar=None if first == len(candles) else str(candles.index[first]),
            registry_run=row.id, instrument_from=instrument_from,
            bars_per_year=bars_per_year, price_digits=price_digits(candles, conv.instrument))
        account = Account(name, now_iso(), settings)
        with open_journal(folder / JOURNAL, create=True) as db, transaction(db, folder / JOURNAL):
            create_account(db, account, last_time=last_time, offset=offset, guard=guard,
                           feature_state=json.dumps(inc.state.to_dict()))
    except BaseException:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        raise
    return account


def paper_instrument(source: str, given: str | None, model_meta: dict) -> tuple[str | None, str]:
    """The instrument an account trades and where it came from: ``given`` (``--instrument``, a
    config, or the model's own ``data.instrument``), else the currency pair the source's name
    holds (``yahoo:EURUSD=X:1h``), else the model's: the pair or symbol its training data names
    (a ``live.csv`` fed with EURUSD bars trades EURUSD, not "live"), else the source's name."""
    from backtests.currency import instrument_of, pair_named
    from backtests.scoring import experiment_of

    data = experiment_of(model_meta).data
    if given:
        said = ("the model's settings (data.instrument)" if given == data.instrument
                else "the instrument given")
        return instrument_of(source, given), said
    pair = pair_named(source)
    if pair:
        return pair, f"the source's name ({source})"
    ours = instrument_of(data.source, data.instrument)
    if ours:
        return ours, f"the model's training data ({data.source})"
    return instrument_of(source), f"the source's name ({source})"


# --- step ----------------------------------------------------------------------------------------
@dataclass
class StepResult:
    """What one step did (also what the CLI prints)."""

    name: str
    status: str                      # traded | nothing new | waiting | events
    message: str
    new_bars: int = 0
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None
    signals: list[tuple[str, int]] = field(default_factory=list)
    orders: list[dict] = field(default_factory=list)     # created this step
    fills: list[dict] = field(default_factory=list)      # executed on this step's bars
    trades: list[dict] = field(default_factory=list)     # closed on this step's bars
    events: list[dict] = field(default_factory=list)
    equity: float | None = None
    position: dict | None = None
    price_digits: int = 5                # decimals to print prices at (the account's)


def _same_bar(row: sqlite3.Row, bar: pd.Series, spread: bool) -> bool:
    cols = ["open", "high", "low", "close", "volume"] + (["spread"] if spread else [])
    return all(float(row[c]) == float(bar[c]) for c in cols if c in bar.index)


def step(name: str, runs_dir: str | Path | None = None, *, now: pd.Timestamp | None = None,
         fetcher: Fetcher | None = None, accept_gap: bool = False,
         wait: float = 10.0) -> StepResult:
    """Process the bars that closed since the last step (see the module docstring).

    Nothing new to record ('nothing new', or still 'waiting' on a gap) leaves the journal
    untouched; a failing source, one that went back in time or was rewritten raises DataError,
    a changed model PaperError, a step already running PaperBusy (after ``wait`` seconds):
    the journal is untouched then too.
    """
    try:
        return _step(name, runs_dir, now=now, fetcher=fetcher, accept_gap=accept_gap, wait=wait)
    except _NoChange as nc:
        return nc.result


def _step(name: str, runs_dir: str | Path | None, *, now: pd.Timestamp | None,
          fetcher: Fetcher | None, accept_gap: bool, wait: float) -> StepResult:
    path = account_dir(name, runs_dir) / JOURNAL
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    started = now_iso()
    with open_journal(path, wait=wait) as db, transaction(db, path):
        crash("begin")
        account = load_account(db)
        cfg = account.settings
        cur = load_cursor(db)
        step_id = int(cur["step"]) + 1
        loaded = pinned_model(cfg)
        # --- read the new tail -----------------------------------------------------------------
        if cfg.kind == "csv":
            tail = read_csv_tail(cfg, int(cur["offset"]), cur["guard"])
        else:
            frame = read_yahoo(cfg, fetcher)
            last_ns = cur["last_time"]
            if last_ns is not None and frame.index[-1] < ts(last_ns):
                raise DataError(f"the source went back in time: it now ends at "
                                f"{frame.index[-1]}, the account has seen bars up to "
                                f"{ts(last_ns)}", source=cfg.source, rule="backwards")
            lookback = db.execute("SELECT min(time) FROM (SELECT time FROM bars ORDER BY bar "
                                  "DESC LIMIT ?)", (REVISION_LOOKBACK,)).fetchone()[0]
            lo = lookback if lookback is not None else last_ns
            tail = Tail(frame[frame.index.asi8 >= lo] if lo is not None else frame)
        crash("read")
        candles = tail.candles
        last = ts(cur["last_time"])
        tf = account.timeframe
        events: list[dict] = []
        consumed = -1           # position in ``candles`` of the last row consumed
        new_pos: list[int] = []
        waiting = None
        for i, t in enumerate(candles.index):
            if last is not None and t <= last:
                row = db.execute("SELECT * FROM bars WHERE time = ?", (ns(t),)).fetchone()
                if row is None:
                    if cfg.kind == "yahoo":
                        consumed = i
                        continue
                    raise DataError(f"the source went back in time: a new line holds bar {t}, "
                                    f"but bars up to {last} were read already",
                                    source=cfg.source, rule="backwards")
                if not _same_bar(row, candles.iloc[i], cfg.spread):
                    events.append(_revision(db, row, candles.iloc[i], t))
                consumed = i
                continue
            if t + tf > now:
                break   # still forming
            prev = candles.index[new_pos[-1]] if new_pos else last
            if prev is not None and not accept_gap:
                pause = weekday_gap(prev, t, tf)
                if pause > cfg.gap_allowance:
                    waiting = (prev, t, pause)
                    break
            new_pos.append(i)
            consumed = i
        events = [e for e in events if e is not None]
        if waiting is not None:
            prev, t, pause = waiting
            seen = db.execute("SELECT 1 FROM events WHERE kind='gap' AND time=?",
                              (ns(t),)).fetchone()
            if seen is None:
                events.append({"kind": "gap", "time": t, "detail": {
                    "after": str(prev), "pause": str(pause),
                    "allowed": str(cfg.gap_allowance)}})
        if accept_gap:
            events.append({"kind": "gap accepted", "time": None, "detail": {}})
        if not new_pos and not [e for e in events if e["kind"] != "gap accepted"]:
            if waiting is not None:
                msg = _waiting_message(waiting)
                raise _NoChange(StepResult(name, "waiting", msg))
            raise _NoChange(StepResult(name, "nothing new", _nothing_message(cfg, last, candles,
                                                                             now)))
        new = candles.iloc[new_pos]
        result = StepResult(name, "waiting" if waiting else ("traded" if len(new) else "events"),
                            "", price_digits=cfg.price_digits or 5)
        n_bars = int(cur["n_bars"])
        feature_state = cur["feature_state"]
        engine_state = cur["engine_state"]
        open_trade, pending = cur["open_trade"], cur["pending"]
        if len(new):
            feature_state, engine_state, open_trade, pending = _trade(
                db, account, cur, loaded, new, step_id, result)
            n_bars += len(new)
        for e in events:
            record_event(db, step_id, e)
        result.events = events
        crash("events")
        if cfg.kind == "csv":
            if consumed >= 0:
                offset = tail.ends[consumed]
                guard = file_guard(Path(cfg.source), offset)
            else:
                offset, guard = cur["offset"], cur["guard"]
        else:
            offset, guard = None, None
        last_time = ns(new.index[-1]) if len(new) else cur["last_time"]
        db.execute("UPDATE cursor SET step=?, last_time=?, n_bars=?, offset=?, guard=?, "
                   "engine_state=?, feature_state=?, open_trade=?, pending=?, updated=?",
                   (step_id, last_time, n_bars, offset, guard, engine_state, feature_state,
                    open_trade, pending, now_iso()))
        crash("cursor")
        result.message = _summary_message(result, waiting)
        db.execute("INSERT INTO steps VALUES (?,?,?,?,?,?,?)",
                   (step_id, started, now_iso(), len(new),
                    ns(new.index[0]) if len(new) else None,
                    ns(new.index[-1]) if len(new) else None, result.message))
    return result


def step_crashing_at(point: str, name: str, runs_dir: str | Path | None = None,
                     **kwargs) -> StepResult:
    """Test hook: ``step`` with ``ATTNBT_PAPER_CRASH_AT=point`` set (for a forked child)."""
    if point not in CRASH_POINTS:
        raise ValueError(f"unknown crash point {point!r}; choose {', '.join(CRASH_POINTS)}")
    os.environ[CRASH_ENV] = point
    return step(name, runs_dir, **kwargs)


class _NoChange(Exception):
    """Raised inside the step's transaction to roll it back and report ``result``."""

    def __init__(self, result: StepResult) -> None:
        super().__init__(result.message)
        self.result = result


def _revision(db: sqlite3.Connection, row: sqlite3.Row, bar: pd.Series,
              t: pd.Timestamp) -> dict | None:
    detail = {"bar": int(row["bar"]), "was": {c: row[c] for c in ("open", "high", "low", "close",
                                                                   "volume")},
              "now": {c: float(bar[c]) for c in ("open", "high", "low", "close", "volume")}}
    text = json.dumps(detail)
    seen = db.execute("SELECT 1 FROM events WHERE kind='revised' AND time=? AND detail=?",
                      (ns(t), text)).fetchone()
    return None if seen else {"kind": "revised", "time": t, "detail": detail}


def _trade(db: sqlite3.Connection, account: Account, cur: dict, loaded, new: pd.DataFrame,
           step_id: int, result: StepResult) -> tuple[str, str | None, str | None, str]:
    """Score and record the new bars, resume the engine, record what it did."""
    from data.incremental import FeatureState
    from models.predict import IncrementalPredictor, Predictor

    cfg = account.settings
    params, costs = account.params, account.costs
    inc = IncrementalPredictor(Predictor(loaded), FeatureState.from_dict(
        json.loads(cur["feature_state"])))
    probs = inc.advance(new)
    signals = signals_from_frame(probs, params.threshold)
    n0 = int(cur["n_bars"])
    spread = cfg.spread
    rows = []
    for k, (t, bar) in enumerate(new.iterrows()):
        p = probs.iloc[k].to_numpy()
        rows.append((n0 + k, ns(t), *(float(bar[c]) for c in ("open", "high", "low", "close",
                                                                 "volume")),
                     float(bar["spread"]) if spread and "spread" in bar.index else None,
                     *(None if np.isnan(x) else float(x) for x in p), int(signals[k]), step_id))
        if signals[k]:
            result.signals.append((str(t), int(signals[k])))
    db.executemany("INSERT INTO bars VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    crash("bars")
    result.new_bars, result.first, result.last = len(new), new.index[0], new.index[-1]

    state = EngineState.from_dict(json.loads(cur["engine_state"])) if cur["engine_state"] \
        else None
    anchor = None if state is None else (state.flat_time or state.start_time)
    since = None if anchor is None else ns(anchor)
    if since is not None and needs_atr(params):
        # the ATR rules read the ATR of the bars given: start atr_period + 1 bars earlier, so
        # each bar's ATR is the one an uninterrupted run computes (strategy.engine.rule_arrays)
        row = db.execute("SELECT time FROM bars WHERE time <= ? ORDER BY bar DESC LIMIT 1 "
                         "OFFSET ?", (since, params.atr_period + 1)).fetchone()
        since = None if row is None else row[0]
    candles, bar_probs = candles_from(db, cfg, since)
    if state is None and len(candles) < 2:
        return (json.dumps(inc.state.to_dict()), None, None, "[]")
    from backtests.currency import conversion, rates

    conv = conversion(cfg.source, cfg.instrument, cfg.account_currency)
    r = simulate(candles, bar_probs, params, costs, cfg.cash, finalize=False, state=state,
                 rates=rates(candles, conv))
    max_ref = db.execute("SELECT coalesce(max(ref), 0) FROM orders").fetchone()[0]
    orders = [vars(o) for o in r.order_records]     # the records as dicts: no frame is built
    trades = [vars(t) for t in r.trade_records]
    replace_since_flat(db, step_id, flat_bar=-1 if state is None else state.flat_bar,
                       n_trades=0 if state is None else state.n_trades, orders=orders,
                       trades=trades, equity=r.equity, first_bar=r.meta["first_bar"])
    first_new = n0
    result.orders = [jsonable(o) for o in orders if o["ref"] > max_ref]
    result.fills = [jsonable(o) for o in orders
                    if o["executed_bar"] is not None and not pd.isna(o["executed_bar"])
                    and int(o["executed_bar"]) >= first_new]
    result.trades = [jsonable(t) for t in trades if int(t["exit_bar"]) >= first_new]
    result.equity = float(r.equity.iloc[-1])
    result.position = _record_json(r.open_trade)
    open_trade = None if r.open_trade is None else json.dumps(_record_json(r.open_trade))
    pending = json.dumps([_record_json(o) for o in r.pending])
    return (json.dumps(inc.state.to_dict()), json.dumps(r.state.to_dict()), open_trade, pending)


def _nothing_message(cfg: AccountSettings, last: pd.Timestamp | None, candles: pd.DataFrame,
                     now: pd.Timestamp) -> str:
    seen = f"the last bar seen is {last}" if last is not None else "no bar seen yet"
    forming = ""
    if len(candles) and (last is None or candles.index[-1] > last):
        forming = f"; bar {candles.index[-1]} is still forming (closes at " \
                  f"{candles.index[-1] + cfg.timeframe})"
    return f"no bar closed since the last step ({seen}{forming})"


def _waiting_message(waiting: tuple) -> str:
    prev, t, pause = waiting
    return (f"waiting: a gap of {pause} (weekends not counted) between {prev} and {t} is longer "
            "than this market's normal closures; check the source, then step accepting the gap")


def _summary_message(r: StepResult, waiting) -> str:
    parts = []
    if r.new_bars:
        parts.append(f"{r.new_bars} new bar{'s' if r.new_bars > 1 else ''} {r.first} → {r.last}")
        parts.append(f"{len(r.signals)} signals, {len(r.orders)} orders, {len(r.fills)} fills, "
                     f"{len(r.trades)} trades closed")
        if r.equity is not None:
            parts.append(f"equity {r.equity:,.2f}")
    for e in r.events:
        if e["kind"] == "revised":
            parts.append(f"bar {e['time']} revised by the source (recorded, not re-traded)")
    if waiting is not None:
        parts.append(_waiting_message(waiting))
    return "; ".join(parts) or "events recorded"




__all__ = ["REVISION_LOOKBACK", "StepResult", "init", "paper_instrument", "step",
           "step_crashing_at"]
