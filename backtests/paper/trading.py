"""Paper trading: the backtest's engine stepped bar by bar on fresh data, with a journal.

An account (``init``) is pinned to a trained model (by its hash), strategy parameters, costs and a
source: a CSV file another program appends to, or ``yahoo:SYMBOL:INTERVAL`` (the cache, topped up
through yfinance at each step). Everything lives in ``<runs>/paper/<NAME>/journal.sqlite`` (WAL,
schema version in ``PRAGMA user_version``) plus one registry row of kind ``paper``.

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
transaction back); the next step redoes the work. ``ATTNBT_PAPER_CRASH_AT=<point>`` makes a step
``os._exit(137)`` at one of ``CRASH_POINTS`` (the crash tests use it).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from backtests.analysis.catalog import jsonable
from backtests.store import Registry, runs_root
from backtests.store import sqlitedb as sqldb
from data.errors import AttnbtError, DataError
from strategy.engine import (
    ORDER_COLUMNS,
    TRADE_COLUMNS,
    EngineState,
    OrderRecord,
    TradeRecord,
    simulate,
)
from strategy.fractal import PROB_COLUMNS, Costs, FractalParams, signals_from_frame
from strategy.rules import needs_atr

SCHEMA_VERSION = 1
JOURNAL = "journal.sqlite"
CRASH_ENV = "ATTNBT_PAPER_CRASH_AT"
CRASH_POINTS = ("begin", "read", "bars", "orders", "trades", "equity", "events", "cursor",
                "commit", "after_commit")
REVISION_LOOKBACK = 50          # Yahoo: recent traded bars compared with the source each step
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_NEWLINES = re.compile(rb"\r\n|\r|\n")
_BLANK = b" \t\r\n\x0b\x0c,;"


class PaperError(AttnbtError):
    """A paper account that is unknown, misconfigured, busy or whose model changed."""


class PaperBusy(PaperError):
    """Another step holds the account."""


def _crash(point: str) -> None:
    if os.environ.get(CRASH_ENV) == point:
        os._exit(137)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _ns(t: pd.Timestamp) -> int:
    return int(pd.Timestamp(t).as_unit("ns").value)


def _ts(ns: int | None) -> pd.Timestamp | None:
    return None if ns is None else pd.Timestamp(int(ns), tz="UTC")


def _record_json(r: TradeRecord | OrderRecord | None) -> dict | None:
    return None if r is None else jsonable(asdict(r))


# --- where things live ---------------------------------------------------------------------------
def paper_root(runs_dir: str | Path | None = None) -> Path:
    return runs_root(runs_dir) / "paper"


def account_dir(name: str, runs_dir: str | Path | None = None) -> Path:
    if not _NAME.match(name):
        raise PaperError(f"{name!r} is not a usable account name (letters, digits, _ . -; up to "
                         "64 characters, starting with a letter or digit)")
    return paper_root(runs_dir) / name


# --- the journal ---------------------------------------------------------------------------------
def _m0_v1(db: sqlite3.Connection) -> None:
    """v1: account, cursor, bars, orders, trades, equity, events, steps."""
    db.execute("CREATE TABLE account (id INTEGER PRIMARY KEY CHECK (id = 1), name TEXT NOT NULL,"
               " created TEXT NOT NULL, config TEXT NOT NULL)")
    db.execute("CREATE TABLE cursor (id INTEGER PRIMARY KEY CHECK (id = 1), step INTEGER NOT NULL,"
               " last_time INTEGER, n_bars INTEGER NOT NULL, offset INTEGER, guard TEXT,"
               " engine_state TEXT, feature_state TEXT NOT NULL, open_trade TEXT,"
               " pending TEXT NOT NULL, updated TEXT NOT NULL)")
    db.execute("CREATE TABLE bars (bar INTEGER PRIMARY KEY, time INTEGER NOT NULL UNIQUE,"
               " open REAL NOT NULL, high REAL NOT NULL, low REAL NOT NULL, close REAL NOT NULL,"
               " volume REAL NOT NULL, spread REAL, p_none REAL, p_buy REAL, p_sell REAL,"
               " signal INTEGER NOT NULL, step INTEGER NOT NULL)")
    order_cols = ", ".join(f"{c} {_sql_type(OrderRecord, c)}" for c in ORDER_COLUMNS if c != "ref")
    db.execute(f"CREATE TABLE orders (ref INTEGER PRIMARY KEY, {order_cols}, step INTEGER)")
    trade_cols = ", ".join(f"{c} {_sql_type(TradeRecord, c)}" for c in TRADE_COLUMNS)
    db.execute(f"CREATE TABLE trades (n INTEGER PRIMARY KEY, {trade_cols}, step INTEGER)")
    db.execute("CREATE TABLE equity (bar INTEGER PRIMARY KEY, time INTEGER NOT NULL,"
               " equity REAL NOT NULL, step INTEGER)")
    db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, step INTEGER,"
               " created TEXT NOT NULL, kind TEXT NOT NULL, time INTEGER, detail TEXT)")
    db.execute("CREATE TABLE steps (id INTEGER PRIMARY KEY, started TEXT NOT NULL,"
               " finished TEXT NOT NULL, new_bars INTEGER NOT NULL, first_time INTEGER,"
               " last_time INTEGER, message TEXT)")


MIGRATIONS = [_m0_v1]
assert len(MIGRATIONS) == SCHEMA_VERSION
_TIME_FIELDS = {"created_time", "executed_time", "signal_time", "entry_time", "exit_time"}


def _sql_type(kind: type, name: str) -> str:
    if name in _TIME_FIELDS:
        return "INTEGER"
    hint = {f: t for f, t in kind.__annotations__.items()}[name]
    return "TEXT" if "str" in str(hint) else ("INTEGER" if "int" in str(hint) else "REAL")


@contextmanager
def _open(path: Path, *, create: bool = False, wait: float = 10.0) -> Iterator[sqlite3.Connection]:
    if not create and not path.exists():
        raise PaperError(f"no paper account at {path.parent} (see `attnbt paper list`)")
    try:
        db = sqldb.connect(path, timeout=wait)
    except sqlite3.Error as exc:
        raise PaperError(f"cannot open the journal {path} ({exc})") from exc
    with closing(db):
        try:
            sqldb.prepare(db, timeout=wait, steps=MIGRATIONS, synchronous_full=True,
                          newer=lambda version: PaperError(
                              f"journal {path} was made by a newer attnbt (schema v{version}, "
                              f"this one knows v{SCHEMA_VERSION}): upgrade attnbt"))
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise PaperBusy(f"the journal {path} is held by another attnbt process; wait "
                                "for its step to end") from exc
            raise PaperError(f"{path} is not a usable paper journal ({exc})") from exc
        except sqlite3.DatabaseError as exc:
            raise PaperError(f"{path} is not a usable paper journal ({exc})") from exc
        db.row_factory = sqlite3.Row
        yield db


@contextmanager
def _transaction(db: sqlite3.Connection, path: Path) -> Iterator[sqlite3.Connection]:
    """One step's write transaction (``sqlitedb.transaction``) with the crash-test points."""
    def busy(exc: sqlite3.OperationalError) -> PaperBusy:
        return PaperBusy(f"another step is running on this account ({path.parent.name}); it was "
                         "not started (nothing changed)")

    with sqldb.transaction(db, busy=busy, before_commit=lambda: _crash("commit")):
        yield db
    _crash("after_commit")


# --- the account ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Account:
    """An account's pinned settings (the ``account`` row)."""

    name: str
    created: str
    config: dict

    @property
    def params(self) -> FractalParams:
        return FractalParams(**self.config["params"])

    @property
    def costs(self) -> Costs:
        return Costs(**self.config["costs"])

    @property
    def timeframe(self) -> pd.Timedelta:
        return pd.Timedelta(seconds=self.config["timeframe_s"])


def _account(db: sqlite3.Connection) -> Account:
    row = db.execute("SELECT * FROM account").fetchone()
    if row is None:
        raise PaperError("the journal holds no account (an init was interrupted?); remove the "
                         "account folder and init again")
    return Account(row["name"], row["created"], json.loads(row["config"]))


def _cursor(db: sqlite3.Connection) -> dict:
    return dict(db.execute("SELECT * FROM cursor").fetchone())


# --- reading sources -----------------------------------------------------------------------------
def _line_spans(raw: bytes) -> list[tuple[int, int]]:
    """(start, end) byte offsets of each complete line of ``raw`` (end after its newline)."""
    spans, start = [], 0
    for m in _NEWLINES.finditer(raw):
        spans.append((start, m.end()))
        start = m.end()
    return spans


def _data_spans(raw: bytes, n_rows: int, where: str) -> list[tuple[int, int]]:
    """The spans of the last ``n_rows`` non-blank lines: the data rows."""
    filled = [s for s in _line_spans(raw) if raw[s[0]:s[1]].strip(_BLANK)]
    if len(filled) < n_rows:
        raise DataError(f"cannot match {n_rows} rows to the lines of the file", source=where,
                        rule="unreadable tail")
    return filled[len(filled) - n_rows:]


GUARD = 1 << 16   # bytes before the offset whose hash each step checks (a rewrite shows there)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _guard(before: bytes) -> str:
    """'n:sha256' of the last GUARD bytes of ``before`` (everything read so far)."""
    window = before[-GUARD:]
    return f"{len(window)}:{_digest(window)}"


def _file_guard(path: Path, offset: int) -> str:
    n = min(offset, GUARD)
    with path.open("rb") as fh:
        fh.seek(offset - n)
        return _guard(fh.read(n))


def _complete(raw: bytes) -> bytes:
    """``raw`` up to its last newline (a line still being written is not read)."""
    last = raw.rfind(b"\n")
    if last < 0 and b"\r" in raw:   # old Mac line ends
        last = raw.rfind(b"\r")
    return raw[:last + 1]


def _parse_csv(text: str, source: str, cfg: dict) -> pd.DataFrame:
    from data.sources import _read_text

    return _read_text(text, source, tz=cfg["tz"], sort=False, point=cfg["point"],
                      dayfirst=cfg["dayfirst"])


def _snapshot_csv(path: Path, tz: str, point: float | None, dayfirst: bool | None,
                  ) -> tuple[pd.DataFrame, bytes, list[tuple[int, int]], dict]:
    """The complete lines of a CSV at init: (candles, raw, row spans, pinned reading options)."""
    from data.sources import _read_text, decode

    try:
        raw = _complete(path.read_bytes())
    except OSError as exc:
        raise DataError(f"cannot read the file ({exc.strerror or exc})", source=str(path),
                        rule="missing file") from None
    text, encoding = decode(raw, str(path))
    if encoding == "utf-16":
        raise DataError("paper trading reads UTF-8 or Windows-1252 files; save it as UTF-8",
                        source=str(path), rule="encoding")
    candles = _read_text(text, str(path), tz=tz, sort=False, point=point, dayfirst=dayfirst)
    first_line = text[len(text) - len(text.lstrip()):].splitlines()[1:2]
    year_first = bool(first_line) and re.match(r'^\s*"?\d{4}[-./]', first_line[0]) is not None
    if dayfirst is None and not year_first:   # pin the order the whole file showed
        for choice in (True, False):
            try:
                other = _read_text(text, str(path), tz=tz, sort=False, point=point,
                                   dayfirst=choice)
            except DataError:
                continue
            if other.index.equals(candles.index):
                dayfirst = choice
                break
    spans = _data_spans(raw, len(candles), str(path))
    pinned = {"tz": tz, "point": candles.attrs.get("point", point), "dayfirst": dayfirst,
              "encoding": encoding, "format": candles.attrs.get("format")}
    return candles, raw, spans, pinned


@dataclass
class _Tail:
    candles: pd.DataFrame
    ends: list[int] | None = None      # CSV: byte offset after each row's line
    lines: list[bytes] | None = None   # CSV: each row's line


def _read_csv_tail(account: Account, cur: dict) -> _Tail:
    cfg = account.config
    path = Path(cfg["source"])
    where = str(path)
    offset, head = int(cur["offset"]), bytes.fromhex(cfg["head"])
    size_guard, _, digest = (cur["guard"] or "0:").partition(":")
    try:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < offset:
                raise DataError(f"the file is shorter ({size} bytes) than what was already read "
                                f"({offset} bytes): it was rewritten; init a new account",
                                source=where, rule="source rewritten")
            start = fh.read(len(head))
            fh.seek(offset - int(size_guard))
            before = fh.read(int(size_guard))
            tail = fh.read()
    except OSError as exc:
        raise DataError(f"cannot read the file ({exc.strerror or exc})", source=where,
                        rule="missing file") from None
    if start != head or _digest(before) != digest:
        raise DataError("the file changed before the part already read (its header or the last "
                        "line read differ): it was rewritten; init a new account", source=where,
                        rule="source rewritten")
    complete = _complete(tail)
    empty = pd.DataFrame(columns=["open", "high", "low", "close", "volume"],
                         index=pd.DatetimeIndex([], tz="UTC", name="time"), dtype=float)
    if not complete.strip(_BLANK):
        return _Tail(empty, [], [])
    try:
        text = (head + complete).decode(cfg["encoding"]).lstrip("\ufeff")
    except UnicodeDecodeError:
        raise DataError(f"the new lines are not {cfg['encoding']} text like the rest",
                        source=where, rule="encoding") from None
    candles = _parse_csv(text, where, cfg)
    spans = _data_spans(complete, len(candles), where)
    return _Tail(candles, [offset + e for _, e in spans], [complete[a:b] for a, b in spans])


def default_fetcher(symbol: str, interval: str) -> pd.DataFrame:
    """Top the yfinance cache up (only the bars it lacks) and return it."""
    from data import yahoo

    path = yahoo.cache_path(symbol, interval)
    start = None
    if path.exists():
        start = yahoo.load_cached(symbol, interval).index[0]
    return yahoo.fetch(symbol, interval, start=start)


Fetcher = Callable[[str, str], pd.DataFrame]


def _read_yahoo(account: Account, fetcher: Fetcher | None) -> pd.DataFrame:
    symbol, interval = account.config["source"].removeprefix("yahoo:").rsplit(":", 1)
    try:
        frame = (fetcher or default_fetcher)(symbol, interval)
    except AttnbtError:
        raise
    except Exception as exc:   # a replaceable fetcher may raise anything
        raise DataError(f"the fetch failed ({type(exc).__name__}: {exc})",
                        source=account.config["source"], rule="network") from None
    if frame is None or len(frame) == 0:
        raise DataError("the source returned no bars", source=account.config["source"],
                        rule="empty answer")
    return frame


# --- gaps ----------------------------------------------------------------------------------------
def weekday_gap(prev: pd.Timestamp, nxt: pd.Timestamp, tf: pd.Timedelta) -> pd.Timedelta:
    """How long the market was silent between two bars, Saturdays and Sundays (UTC) not counted:
    the time from the end of ``prev`` to the start of ``nxt`` that falls on a weekday."""
    start, end = prev + tf, nxt
    if end <= start:
        return pd.Timedelta(0)
    if end - start > pd.Timedelta(days=60):
        return end - start
    total, day = pd.Timedelta(0), start.normalize()
    while day < end:
        nxt_day = day + pd.Timedelta(days=1)
        if day.day_of_week < 5:
            total += min(end, nxt_day) - max(start, day)
        day = nxt_day
    return total


def gap_allowance(index: pd.DatetimeIndex, tf: pd.Timedelta) -> pd.Timedelta:
    """Normal closures learned from the history: its longest weekday pause (nights, holidays),
    at least one day, at most four."""
    longest = pd.Timedelta(0)
    if len(index) > 1:
        deltas = np.diff(index.asi8)
        big = np.flatnonzero(deltas > tf.value)
        for i in big:
            longest = max(longest, weekday_gap(index[i], index[i + 1], tf))
    return min(max(longest, pd.Timedelta(days=1)), pd.Timedelta(days=4))


def parse_max_gap(text: str | None) -> pd.Timedelta | None:
    """``--max-gap`` as a positive duration (None: learn it from the source's history)."""
    if text is None:
        return None
    try:   # "2d" as users write it: pandas 3 deprecates the lower-case day unit, so say "2D"
        gap = pd.Timedelta(re.sub(r"(?<=\d)d(?![a-z])", "D", text))
    except (ValueError, OverflowError):
        raise PaperError(f"--max-gap {text!r} is not a duration (e.g. 2d, 6h)") from None
    if gap is pd.NaT or gap <= pd.Timedelta(0):
        raise PaperError(f"--max-gap {text!r}: give a positive duration, e.g. 2d or 6h")
    return gap


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
    from backtests.currency import conversion
    from data.summary import timeframe
    from data.validate import to_utc
    from models.checkpoint import check_compatible, load_model

    conv = conversion(source, instrument, account_currency)   # a cross is refused here
    gap = parse_max_gap(max_gap)
    folder = account_dir(name, runs_dir)
    if folder.exists():
        raise PaperError(f"a paper account {name!r} exists already ({folder}); choose another "
                         "name")
    reg = Registry(runs_dir)
    train = reg.resolve(run, kind="train")
    loaded = load_model(train.path, trust_unhashed=trust_unhashed)
    if source.startswith("yahoo:"):
        body = source.removeprefix("yahoo:")
        if body.count(":") != 1:
            raise DataError("a Yahoo source is yahoo:SYMBOL:INTERVAL, e.g. yahoo:EURUSD=X:1h",
                            source=source, rule="unknown source")
        from data.yahoo import load_cached

        symbol, interval = body.rsplit(":", 1)
        candles = load_cached(symbol, interval)
        extra = {"kind": "yahoo", "tz": "UTC", "point": None, "dayfirst": None,
                 "encoding": None, "head": ""}
        spans, raw = None, b""
    elif source.startswith("sample:"):
        raise DataError("a sample never grows; paper trading needs a CSV file or "
                        "yahoo:SYMBOL:INTERVAL", source=source, rule="unknown source")
    else:
        path = Path(source).resolve()
        candles, raw, spans, pinned = _snapshot_csv(path, tz, point, dayfirst)
        source = str(path)
        extra = {"kind": "csv", **pinned, "head": raw[:spans[0][0]].hex()}
    tf = timeframe(candles.index)
    if tf is None:
        raise DataError("the source needs at least 2 bars to tell its timeframe", source=source,
                        rule="too few bars")
    check_compatible(loaded, timeframe=str(tf))
    if gap is not None and gap < tf:
        raise PaperError(f"--max-gap {max_gap!r} is shorter than one bar of this source ({tf}): "
                         "the account would stop at every missing bar; give at least one bar")
    if start == "after":
        first = len(candles)
    elif start == "first":
        first = 0
    else:
        at = to_utc(start, "--from")
        first = int(candles.index.searchsorted(at))
        if first == len(candles):
            raise DataError(f"no bar at or after {at} in the source (it ends at "
                            f"{candles.index[-1]}); omit --from to trade the bars to come",
                            source=source, rule="unknown bar")
    history = candles.iloc[:first]
    allowance = gap if gap is not None else gap_allowance(candles.index, tf)
    from models.predict import IncrementalPredictor, Predictor

    inc = IncrementalPredictor.from_history(Predictor(loaded), history)
    config = {
        "source": source, **extra, "train_run": train.id, "train_path": str(train.path),
        "model": loaded.name, "model_hash": loaded.model_hash, "params": params.to_dict(),
        "costs": costs.to_dict(), "cash": float(cash), "start": start,
        "timeframe_s": tf.total_seconds(), "gap_allowance_s": allowance.total_seconds(),
        "spread": "spread" in candles.columns, "instrument": conv.instrument,
        "account_currency": conv.account,
        "history_bars": len(history), "created_at_bar": None if first == len(candles)
        else str(candles.index[first])}
    if extra["kind"] == "csv":
        offset = spans[first][0] if first < len(candles) else len(raw)
        guard = _guard(raw[:offset])
    else:
        offset, guard = None, None
    last_time = _ns(history.index[-1]) if len(history) else None
    folder.mkdir(parents=True)
    try:
        row = reg.create("paper", model=loaded.name, data=source, parent=train.id,
                         config_id=None, command=command,
                         meta={"name": name, "journal": str(folder / JOURNAL),
                               "model_hash": loaded.model_hash})
        config["registry_run"] = row.id
        created = _now()
        with _open(folder / JOURNAL, create=True) as db, _transaction(db, folder / JOURNAL):
            db.execute("INSERT INTO account VALUES (1, ?, ?, ?)",
                       (name, created, json.dumps(config)))
            db.execute("INSERT INTO cursor VALUES (1, 0, ?, 0, ?, ?, NULL, ?, NULL, '[]', ?)",
                       (last_time, offset, guard, json.dumps(inc.state.to_dict()), created))
    except BaseException:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        raise
    return Account(name, created, config)


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


def _frame_rows(db: sqlite3.Connection, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
    return db.execute(sql, args).fetchall()


def _candles_from(db: sqlite3.Connection, account: Account, since_ns: int | None,
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    where, args = ("WHERE time >= ?", (since_ns,)) if since_ns is not None else ("", ())
    rows = db.execute(f"SELECT time, open, high, low, close, volume, spread, p_none, p_buy, "
                      f"p_sell FROM bars {where} ORDER BY bar", args).fetchall()
    arr = np.array([tuple(r) for r in rows], dtype=float).reshape(-1, 10)
    index = pd.DatetimeIndex(pd.to_datetime(arr[:, 0].astype("int64"), utc=True), name="time")
    candles = pd.DataFrame(arr[:, 1:6], index=index,
                           columns=["open", "high", "low", "close", "volume"])
    if account.config["spread"]:
        candles["spread"] = arr[:, 6]
    probs = pd.DataFrame(arr[:, 7:10], index=index, columns=list(PROB_COLUMNS))
    return candles, probs


def _row_values(record: dict, columns: list[str]) -> list:
    out = []
    for c in columns:
        v = record[c]
        if c in _TIME_FIELDS:
            out.append(None if v is None or v is pd.NaT else _ns(v))
        elif isinstance(v, float) and math.isnan(v):
            out.append(None)
        elif v is None or v is pd.NA:
            out.append(None)
        elif isinstance(v, np.integer | int) and not isinstance(v, bool):
            out.append(int(v))
        elif isinstance(v, np.floating | float):
            out.append(float(v))
        else:
            out.append(v)
    return out


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
    started = _now()
    with _open(path, wait=wait) as db, _transaction(db, path):
        _crash("begin")
        account = _account(db)
        cfg = account.config
        cur = _cursor(db)
        step_id = int(cur["step"]) + 1
        loaded = _check_model(cfg)
        # --- read the new tail -----------------------------------------------------------------
        if cfg["kind"] == "csv":
            tail = _read_csv_tail(account, cur)
        else:
            frame = _read_yahoo(account, fetcher)
            last_ns = cur["last_time"]
            if last_ns is not None and frame.index[-1] < _ts(last_ns):
                raise DataError(f"the source went back in time: it now ends at "
                                f"{frame.index[-1]}, the account has seen bars up to "
                                f"{_ts(last_ns)}", source=cfg["source"], rule="backwards")
            lookback = db.execute("SELECT min(time) FROM (SELECT time FROM bars ORDER BY bar "
                                  "DESC LIMIT ?)", (REVISION_LOOKBACK,)).fetchone()[0]
            lo = lookback if lookback is not None else last_ns
            tail = _Tail(frame[frame.index.asi8 >= lo] if lo is not None else frame)
        _crash("read")
        candles = tail.candles
        last = _ts(cur["last_time"])
        tf = account.timeframe
        events: list[dict] = []
        consumed = -1           # position in ``candles`` of the last row consumed
        new_pos: list[int] = []
        waiting = None
        for i, t in enumerate(candles.index):
            if last is not None and t <= last:
                row = db.execute("SELECT * FROM bars WHERE time = ?", (_ns(t),)).fetchone()
                if row is None:
                    if cfg["kind"] == "yahoo":
                        consumed = i
                        continue
                    raise DataError(f"the source went back in time: a new line holds bar {t}, "
                                    f"but bars up to {last} were read already",
                                    source=cfg["source"], rule="backwards")
                if not _same_bar(row, candles.iloc[i], cfg["spread"]):
                    events.append(_revision(db, row, candles.iloc[i], t))
                consumed = i
                continue
            if t + tf > now:
                break   # still forming
            prev = candles.index[new_pos[-1]] if new_pos else last
            if prev is not None and not accept_gap:
                pause = weekday_gap(prev, t, tf)
                if pause > pd.Timedelta(seconds=cfg["gap_allowance_s"]):
                    waiting = (prev, t, pause)
                    break
            new_pos.append(i)
            consumed = i
        events = [e for e in events if e is not None]
        if waiting is not None:
            prev, t, pause = waiting
            seen = db.execute("SELECT 1 FROM events WHERE kind='gap' AND time=?",
                              (_ns(t),)).fetchone()
            if seen is None:
                events.append({"kind": "gap", "time": t, "detail": {
                    "after": str(prev), "pause": str(pause),
                    "allowed": str(pd.Timedelta(seconds=cfg["gap_allowance_s"]))}})
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
                            "")
        n_bars = int(cur["n_bars"])
        feature_state = cur["feature_state"]
        engine_state = cur["engine_state"]
        open_trade, pending = cur["open_trade"], cur["pending"]
        if len(new):
            feature_state, engine_state, open_trade, pending = _trade(
                db, account, cur, loaded, new, step_id, result)
            n_bars += len(new)
        for e in events:
            db.execute("INSERT INTO events (step, created, kind, time, detail) VALUES "
                       "(?,?,?,?,?)", (step_id, _now(), e["kind"],
                                       None if e["time"] is None else _ns(e["time"]),
                                       json.dumps(e["detail"], default=str)))
        result.events = events
        _crash("events")
        if cfg["kind"] == "csv":
            if consumed >= 0:
                offset = tail.ends[consumed]
                guard = _file_guard(Path(cfg["source"]), offset)
            else:
                offset, guard = cur["offset"], cur["guard"]
        else:
            offset, guard = None, None
        last_time = _ns(new.index[-1]) if len(new) else cur["last_time"]
        db.execute("UPDATE cursor SET step=?, last_time=?, n_bars=?, offset=?, guard=?, "
                   "engine_state=?, feature_state=?, open_trade=?, pending=?, updated=?",
                   (step_id, last_time, n_bars, offset, guard, engine_state, feature_state,
                    open_trade, pending, _now()))
        _crash("cursor")
        result.message = _summary_message(result, waiting)
        db.execute("INSERT INTO steps VALUES (?,?,?,?,?,?,?)",
                   (step_id, started, _now(), len(new),
                    _ns(new.index[0]) if len(new) else None,
                    _ns(new.index[-1]) if len(new) else None, result.message))
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
                      (_ns(t), text)).fetchone()
    return None if seen else {"kind": "revised", "time": t, "detail": detail}


_MODELS: dict[str, tuple[tuple, object]] = {}


def _model_stamp(folder: Path) -> tuple:
    from models.checkpoint import META, WEIGHTS

    out = []
    for name in (META, WEIGHTS):
        try:
            st = (folder / name).stat()
        except OSError:
            return ()
        out.append((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(out)


def _check_model(cfg: dict):
    """The account's model, refused when its files no longer hash to the pinned hash.

    A process that steps repeatedly (``paper run``) keeps the model loaded and re-hashes it
    whenever its files' inode, size or times change. The hash pinned at init is the check here,
    so a model trusted without a model_hash at init (``--trust-unhashed``) keeps loading."""
    from models.checkpoint import ModelError, load_model

    folder = Path(cfg["train_path"])
    stamp = _model_stamp(folder)
    cached = _MODELS.get(str(folder))
    if cached is not None and stamp and cached[0] == stamp:
        loaded = cached[1]
    else:
        try:
            loaded = load_model(folder, trust_unhashed=True)   # checked against the pin below
        except ModelError as exc:
            raise PaperError(f"the account's model cannot be used: {exc}") from None
        _MODELS[str(folder)] = (stamp, loaded)
    if loaded.model_hash != cfg["model_hash"]:
        raise PaperError(f"the model at {folder} is not the one this account was "
                         f"created with (hash {loaded.model_hash} != {cfg['model_hash']}); "
                         "restore it or init a new account")
    return loaded


def _trade(db: sqlite3.Connection, account: Account, cur: dict, loaded, new: pd.DataFrame,
           step_id: int, result: StepResult) -> tuple[str, str | None, str | None, str]:
    """Score and record the new bars, resume the engine, record what it did."""
    from data.incremental import FeatureState
    from models.predict import IncrementalPredictor, Predictor

    cfg = account.config
    params, costs = account.params, account.costs
    inc = IncrementalPredictor(Predictor(loaded), FeatureState.from_dict(
        json.loads(cur["feature_state"])))
    probs = inc.advance(new)
    signals = signals_from_frame(probs, params.threshold)
    n0 = int(cur["n_bars"])
    spread = cfg["spread"]
    rows = []
    for k, (t, bar) in enumerate(new.iterrows()):
        p = probs.iloc[k].to_numpy()
        rows.append((n0 + k, _ns(t), *(float(bar[c]) for c in ("open", "high", "low", "close",
                                                                 "volume")),
                     float(bar["spread"]) if spread and "spread" in bar.index else None,
                     *(None if np.isnan(x) else float(x) for x in p), int(signals[k]), step_id))
        if signals[k]:
            result.signals.append((str(t), int(signals[k])))
    db.executemany("INSERT INTO bars VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    _crash("bars")
    result.new_bars, result.first, result.last = len(new), new.index[0], new.index[-1]

    state = EngineState.from_dict(json.loads(cur["engine_state"])) if cur["engine_state"] \
        else None
    anchor = None if state is None else (state.flat_time or state.start_time)
    since = None if anchor is None else _ns(anchor)
    if since is not None and needs_atr(params):
        # the ATR rules read the ATR of the bars given: start atr_period + 1 bars earlier, so
        # each bar's ATR is the one an uninterrupted run computes (strategy.engine.rule_arrays)
        row = db.execute("SELECT time FROM bars WHERE time <= ? ORDER BY bar DESC LIMIT 1 "
                         "OFFSET ?", (since, params.atr_period + 1)).fetchone()
        since = None if row is None else row[0]
    candles, bar_probs = _candles_from(db, account, since)
    if state is None and len(candles) < 2:
        return (json.dumps(inc.state.to_dict()), None, None, "[]")
    from backtests.currency import conversion, rates

    conv = conversion(cfg["source"], cfg.get("instrument"), cfg.get("account_currency", "USD"))
    r = simulate(candles, bar_probs, params, costs, cfg["cash"], finalize=False, state=state,
                 rates=rates(candles, conv))
    flat_bar = -1 if state is None else state.flat_bar
    max_ref = db.execute("SELECT coalesce(max(ref), 0) FROM orders").fetchone()[0]
    db.execute("DELETE FROM orders WHERE created_bar > ?", (flat_bar,))
    order_cols = list(ORDER_COLUMNS)
    orders = r.orders.to_dict("records")
    db.executemany(f"INSERT INTO orders ({', '.join(order_cols)}, step) VALUES "
                   f"({', '.join('?' * (len(order_cols) + 1))})",
                   [(*_row_values(o, order_cols), step_id) for o in orders])
    _crash("orders")
    db.execute("DELETE FROM trades WHERE exit_bar > ?", (flat_bar,))
    base_n = 0 if state is None else state.n_trades
    trade_cols = list(TRADE_COLUMNS)
    trades = r.trades.to_dict("records")
    db.executemany(f"INSERT INTO trades (n, {', '.join(trade_cols)}, step) VALUES "
                   f"({', '.join('?' * (len(trade_cols) + 2))})",
                   [(base_n + k, *_row_values(t, trade_cols), step_id)
                    for k, t in enumerate(trades)])
    _crash("trades")
    db.execute("DELETE FROM equity WHERE bar > ?", (flat_bar,))
    first_bar = r.meta["first_bar"]
    db.executemany("INSERT INTO equity VALUES (?,?,?,?)",
                   [(first_bar + k, _ns(t), float(v), step_id)
                    for k, (t, v) in enumerate(r.equity.items())])
    _crash("equity")
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


def _nothing_message(cfg: dict, last: pd.Timestamp | None, candles: pd.DataFrame,
                     now: pd.Timestamp) -> str:
    seen = f"the last bar seen is {last}" if last is not None else "no bar seen yet"
    forming = ""
    if len(candles) and (last is None or candles.index[-1] > last):
        forming = f"; bar {candles.index[-1]} is still forming (closes at " \
                  f"{candles.index[-1] + pd.Timedelta(seconds=cfg['timeframe_s'])})"
    return f"no bar closed since the last step ({seen}{forming})"


def _waiting_message(waiting: tuple) -> str:
    prev, t, pause = waiting
    return (f"waiting: a gap of {pause} (weekends not counted) between {prev} and {t} is longer "
            "than this market's normal closures; check the source, then step with --accept-gap")


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


# --- reading an account --------------------------------------------------------------------------
def _records(db: sqlite3.Connection, table: str, kind: type, columns: list[str]) -> pd.DataFrame:
    from strategy.engine import to_frame

    order = "ref" if table == "orders" else "n"
    rows = db.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}").fetchall()
    recs = []
    for r in rows:
        values = {}
        for c in columns:
            v = r[c]
            if c in _TIME_FIELDS:
                values[c] = _ts(v)
            elif v is None and kind.__annotations__[c] in ("float",):
                values[c] = float("nan")
            else:
                values[c] = v
        for c, hint in kind.__annotations__.items():
            if hint == "float" and values[c] is None:
                values[c] = float("nan")
        recs.append(kind(**values))
    return to_frame(recs, kind)


@dataclass
class PaperView:
    """An account as read from its journal."""

    account: Account
    cursor: dict
    candles: pd.DataFrame
    probs: pd.DataFrame
    trades: pd.DataFrame
    orders: pd.DataFrame
    equity: pd.Series
    events: list[dict]
    steps: int


def read_account(name: str, runs_dir: str | Path | None = None) -> PaperView:
    """Everything the journal holds for ``name`` (a consistent snapshot: one read transaction)."""
    path = account_dir(name, runs_dir) / JOURNAL
    with _open(path) as db:
        db.execute("BEGIN")
        try:
            account = _account(db)
            cur = _cursor(db)
            candles, probs = _candles_from(db, account, None)
            trades = _records(db, "trades", TradeRecord, list(TRADE_COLUMNS))
            orders = _records(db, "orders", OrderRecord, list(ORDER_COLUMNS))
            eq = db.execute("SELECT time, equity FROM equity ORDER BY bar").fetchall()
            equity = pd.Series([r[1] for r in eq], name="equity", dtype=float,
                               index=pd.DatetimeIndex([_ts(r[0]) for r in eq], name="time"))
            events = [dict(r) for r in db.execute("SELECT * FROM events ORDER BY id")]
            steps = db.execute("SELECT count(*) FROM steps").fetchone()[0]
        finally:
            db.execute("COMMIT")
    return PaperView(account, cur, candles, probs, trades, orders, equity, events, steps)


def status(name: str, runs_dir: str | Path | None = None) -> dict:
    """Position, open orders, equity and the last bar seen."""
    path = account_dir(name, runs_dir) / JOURNAL
    with _open(path) as db:
        account = _account(db)
        cur = _cursor(db)
        eq = db.execute("SELECT time, equity FROM equity ORDER BY bar DESC LIMIT 1").fetchone()
        n_trades = db.execute("SELECT count(*) FROM trades").fetchone()[0]
        pnl = db.execute("SELECT coalesce(sum(pnl_net), 0) FROM trades").fetchone()[0]
        waiting = db.execute("SELECT time, detail FROM events WHERE kind='gap' ORDER BY id DESC "
                             "LIMIT 1").fetchone()
        revised = db.execute("SELECT count(*) FROM events WHERE kind='revised'").fetchone()[0]
    cfg = account.config
    last = _ts(cur["last_time"])
    gap = None
    if waiting is not None and last is not None and _ts(waiting["time"]) > last:
        gap = {"before": str(_ts(waiting["time"])), **json.loads(waiting["detail"])}
    return {"name": account.name, "source": cfg["source"], "model": cfg["model"],
            "model_hash": cfg["model_hash"], "train_run": cfg["train_run"],
            "created": account.created, "steps": cur["step"], "bars": cur["n_bars"],
            "last_bar": None if last is None else str(last),
            "position": json.loads(cur["open_trade"]) if cur["open_trade"] else None,
            "open_orders": _pending_orders(json.loads(cur["pending"])),
            "equity": cfg["cash"] if eq is None else eq["equity"],
            "equity_time": None if eq is None else str(_ts(eq["time"])),
            "cash": cfg["cash"], "closed_trades": n_trades, "realised_pnl": pnl,
            "waiting_on_gap": gap, "revised_bars": revised}


def _pending_orders(pending: list[dict]) -> list[dict]:
    """The orders still alive, with the prices they really have: a market order has none (NaN,
    stored as null) and neither has a take-profit whose entry has not filled yet (the engine
    holds a placeholder there until the fill sets the target)."""
    unfilled = {o["created_bar"] for o in pending if o["role"] == "entry"}
    return [{**o, "order_price": None} if o["role"] == "target" and o["created_bar"] in unfilled
            else o for o in pending]


def list_accounts(runs_dir: str | Path | None = None) -> list[dict]:
    root = paper_root(runs_dir)
    out = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if (folder / JOURNAL).is_file():
            try:
                out.append(status(folder.name, runs_dir))
            except PaperError as exc:
                out.append({"name": folder.name, "error": str(exc)})
    return out


def paper_result(view: PaperView):
    """The paper period as a ``BacktestResult`` (closed trades; equity marked to market)."""
    from backtests.analysis.performance import compute_stats
    from backtests.simulation import BacktestResult

    a = view.account
    return BacktestResult(trades=view.trades, equity=view.equity, orders=view.orders,
                          stats=compute_stats(view.equity, view.trades), params=a.params,
                          costs=a.costs, cash=a.config["cash"],
                          meta={"paper": a.name, "bars": len(view.candles),
                                "open_trade": json.loads(view.cursor["open_trade"])
                                if view.cursor["open_trade"] else None})


def paper_record(name: str, runs_dir: str | Path | None = None) -> dict:
    """What ``attnbt compare`` reads for ``paper:NAME``: stats, equity, trades, params, costs,
    data and period."""
    view = read_account(name, runs_dir)
    if len(view.equity) == 0:
        raise PaperError(f"paper account {name!r} has not traded a bar yet; run "
                         f"`attnbt paper step {name}` first")
    result = paper_result(view)
    return {"stats": result.stats, "equity": view.equity, "trades": view.trades,
            "params": result.params.to_dict(), "costs": result.costs.to_dict(),
            "data": view.account.config["source"],
            "period": (str(view.equity.index[0]), str(view.equity.index[-1]))}


def report(name: str, runs_dir: str | Path | None = None) -> Path:
    """Write the backtest report over the paper period (report.html, trades.csv, ...) into the
    account's ``report/`` folder; returns report.html's path."""
    from backtests.analysis import catalog as stat_table
    from backtests.reports.backtest import write_report

    view = read_account(name, runs_dir)
    if len(view.equity) < 2:
        raise PaperError(f"paper account {name!r} has fewer than 2 bars traded; nothing to "
                         "report yet")
    result = paper_result(view)
    cfg = view.account.config
    title = (f"paper {name}: {cfg['model']} ({cfg['train_run']}) on "
             f"{view.equity.index[0]:%Y-%m-%d %H:%M} → {view.equity.index[-1]:%Y-%m-%d %H:%M}")
    html = write_report(account_dir(name, runs_dir) / "report", result, view.candles,
                        title=title, extra={
                            "paper_account": name, "source": cfg["source"],
                            "model_hash": cfg["model_hash"], "train_run": cfg["train_run"],
                            "steps": view.steps, "open_trade": result.meta["open_trade"],
                            "events": len(view.events)})
    reg = Registry(runs_dir)
    try:
        run = reg.resolve(cfg["registry_run"], kind="paper")
        reg.finish(run, stat_table.summary("backtest", result.stats), status="done")
    except AttnbtError:
        pass   # the registry row is a listing aid; the journal is the record
    return html


__all__ = ["CRASH_ENV", "CRASH_POINTS", "JOURNAL", "SCHEMA_VERSION", "Account", "PaperBusy",
           "PaperError", "PaperView", "StepResult", "account_dir", "default_fetcher",
           "gap_allowance", "init", "list_accounts", "paper_record", "paper_result",
           "parse_max_gap", "read_account", "report", "status", "step", "step_crashing_at", "weekday_gap"]
