"""attnbt from Python (notebooks, scripts): the code the command line runs, with results as
pandas objects and Bokeh figures.

Every function here calls the same study functions as the ``attnbt`` commands (``workflows``,
``backtest``, ``compare``, ``walkforward``, ``sweep``): the same numbers, the same run folders,
registry rows and trials (a backtest recorded here counts in the deflated Sharpe ratio of later
searches, as one run from the terminal does). Errors are ``AttnbtError`` subclasses whose
message names the argument or config key to fix.

Example (a notebook)::

    from backtests import api

    candles = api.load("sample:EURUSD_H1")
    rule = api.backtest("rule/newhl", candles)             # a rule model, no training
    rule.stats["Return [%]"], rule.trades.head(), rule.equity.tail()
    rule.plot()                                             # the report's charts, inline

    model = api.train("attention/article", candles, settings={"train.epochs": 1})
    mine = api.backtest(model, candles)                     # its test period
    # your own idea: +1 long, -1 short, 0 nothing, at the close of each bar
    momentum = np.sign(candles["close"].diff(24)).fillna(0)
    own = api.backtest(signals=momentum, data=candles, name="momentum 24")
    api.compare(mine, own, rule).table

Signals are traded exactly as a model's probabilities are: the signal of bar t is read at the
close of bar t and fills at the open of bar t+1 or later (the engine's rule), so a signal must
use only bars <= t. Give your signals the timestamp of the bar whose close they are known at.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from backtests.analysis.catalog import rows as stat_rows
from backtests.config import ConfigError, Experiment
from backtests.store import Registry, Run, RunError
from data.errors import DataError
from strategy.fractal import PROB_COLUMNS

__all__ = ["Backtest", "Comparison", "Model", "StudyResult", "backtest", "compare", "load",
           "run", "signals_to_probs", "sweep", "train", "walkforward"]

COMMAND = "python: backtests.api.{}"     # the registry's command column for runs made here


def _experiment(settings: dict | None, runs_dir: str | Path | None,
                base: Experiment | None = None) -> Experiment:
    extra = {"runtime.runs_dir": str(runs_dir)} if runs_dir is not None else {}
    return (base or Experiment()).override({**(settings or {}), **extra})


def load(source: str | Path, *, tz: str = "UTC", sort: bool = False, point: float | None = None,
         dayfirst: bool | None = None) -> pd.DataFrame:
    """Candles as attnbt reads them: a UTC-indexed frame (open, high, low, close, volume,
    spread in price units), validated (``DataError`` names file, line and rule).

    ``source``: ``sample:EURUSD_H1`` / ``sample:GOOG_D1``, a CSV path (MT5 exports, generic
    CSVs, yfinance CSVs), ``yahoo:SYMBOL:INTERVAL`` (from the local cache, see docs/data.md) or
    a planted world ``sample:planted-KIND[:SEED[:BARS[:PLANTED]]]`` (docs/research.md).

    >>> candles = api.load("sample:EURUSD_H1")
    >>> candles.attrs["source"]
    'sample:EURUSD_H1'
    """
    from data import load as load_source

    return load_source(source, tz=tz, sort=sort, point=point, dayfirst=dayfirst)


# --- models ------------------------------------------------------------------------------------
class Model:
    """A trained run of the registry (``train`` makes one, ``run`` finds one)."""

    def __init__(self, run_: Run, runs_dir: str | Path | None = None) -> None:
        self.run, self.runs_dir = run_, runs_dir

    @property
    def id(self) -> str:
        return self.run.id

    @property
    def path(self) -> Path:
        return self.run.path

    @property
    def name(self) -> str:
        """kind/preset, e.g. ``attention/article``."""
        return str(Registry(self.runs_dir).get(self.id).get("model") or "?")

    @property
    def experiment(self) -> Experiment:
        """The settings it was trained with (data, split, dataset, model, train ...)."""
        from backtests.scoring import experiment_of
        from models.checkpoint import read_meta

        return experiment_of(read_meta(self.path).raw)

    def probabilities(self, data: pd.DataFrame | str | None = None, *,
                      trust_unhashed: bool = False) -> pd.DataFrame:
        """``p_none, p_buy, p_sell`` for every bar of ``data`` (default: its own data), from the
        window ending at that bar (NaN before the first complete window): what a backtest trades.

        >>> probs = model.probabilities(candles)
        >>> api.backtest(signals=probs, data=candles)   # the same trades as backtest(model)
        """
        from backtests.scoring import score

        candles, source = _candles(data)
        return score(self.id, source, period="all", runs_dir=self.runs_dir, candles=candles,
                     trust_unhashed=trust_unhashed).probs

    def __repr__(self) -> str:
        return f"Model({self.id!r}, {self.name})"


def train(model: str = "attention/article", data: pd.DataFrame | str | None = None, *,
          settings: dict | None = None, runs_dir: str | Path | None = None) -> Model:
    """Train ``model`` (``kind`` or ``kind/preset``) on ``data`` (a frame from ``load`` or a
    source; default ``data.source``) and record the run, checkpointed each epoch, as training
    from the terminal does. ``settings``: config keys (``{"train.epochs": 1, "train.seed": 3}``).

    >>> model = api.train("attention/article", candles, settings={"train.epochs": 1})
    >>> model.id                       # a run id; api.run(model.id) finds it later
    """
    from backtests.workflows import train_run

    kind, _, preset = model.partition("/")
    exp = _experiment({"model.kind": kind, **({"model.preset": preset} if preset else {}),
                       **(settings or {})}, runs_dir)
    candles, source = _candles(data)
    if source is not None:
        exp = exp.override({"data.source": source})
    run_, _ = train_run(exp, candles=candles, command=COMMAND.format("train"))
    return Model(run_, runs_dir)


def run(ref: str = "latest", runs_dir: str | Path | None = None) -> Model:
    """A trained run by id, unique prefix (4+ characters) or ``latest``.

    >>> model = api.run("3f9a")
    """
    return Model(Registry(runs_dir).resolve(ref, kind="train"), runs_dir)


def _candles(data) -> tuple[pd.DataFrame | None, str | None]:
    """(frame or None, source name or None) of a ``data`` argument."""
    if data is None:
        return None, None
    if isinstance(data, pd.DataFrame):
        return data, data.attrs.get("source")
    if isinstance(data, str | Path):
        return None, str(data)
    raise DataError(f"`data` must be candles (a frame from load) or a source name, not "
                    f"{type(data).__name__}", rule="bad argument")


# --- your own signals --------------------------------------------------------------------------
def signals_to_probs(signals: pd.Series | pd.DataFrame, candles: pd.DataFrame) -> pd.DataFrame:
    """Your signals as the ``p_none, p_buy, p_sell`` the engine trades, on the candles' bars.

    Accepted: a Series of +1 (long), -1 (short), 0 (nothing) or NaN (nothing); a frame with
    boolean ``long`` and ``short`` columns; or a frame of probabilities ``p_none, p_buy,
    p_sell`` (each in [0, 1], rows summing to 1, or all NaN). A signal becomes probability 1 of
    its class, so it trades at any threshold. The index: timestamps of the candles (any
    timezone, converted to UTC); bars without a signal get none. Anything else is refused with
    a ``DataError`` naming the first offending timestamp.

    >>> api.signals_to_probs(pd.Series(1, index=candles.index[[10]]), candles).iloc[10]
    p_none    0.0
    p_buy     1.0
    p_sell    0.0
    """
    def fail(message: str, rule: str) -> DataError:
        return DataError(message, source="signals", rule=rule)

    if isinstance(signals, pd.DataFrame) and set(PROB_COLUMNS) <= set(signals.columns):
        probs = signals[list(PROB_COLUMNS)].astype(float)
        values = probs.to_numpy()
        part = np.isnan(values).any(axis=1) & ~np.isnan(values).all(axis=1)
        bad = part | (~np.isnan(values).any(axis=1) & (
            (values < 0).any(axis=1) | (values > 1).any(axis=1)
            | (np.abs(values.sum(axis=1) - 1) > 1e-6)))
        if bad.any():
            raise fail(f"at {probs.index[bad.argmax()]}: probabilities must each be in [0, 1] "
                       "and sum to 1 (or be all NaN for no signal)", "bad probabilities")
    else:
        if isinstance(signals, pd.DataFrame):
            if not {"long", "short"} <= set(signals.columns):
                raise fail("a frame of signals needs boolean columns long and short, or the "
                           f"probability columns {', '.join(PROB_COLUMNS)}; got "
                           f"{', '.join(map(str, signals.columns))}", "bad columns")
            long, short = (signals[c].fillna(False).astype(bool) for c in ("long", "short"))
            both = long & short
            if both.any():
                raise fail(f"at {signals.index[both.to_numpy().argmax()]}: long and short at "
                           "the same bar", "bad signals")
            side = long.astype(float) - short.astype(float)
        elif isinstance(signals, pd.Series):
            if signals.dtype == bool or not pd.api.types.is_numeric_dtype(signals):
                raise fail(f"a Series of signals holds +1 (long), -1 (short) or 0, not "
                           f"{signals.dtype} values", "bad signals")
            side = signals.astype(float)
            wrong = side.notna() & ~side.isin([-1.0, 0.0, 1.0])
            if wrong.any():
                raise fail(f"at {side.index[wrong.to_numpy().argmax()]}: "
                           f"{side[wrong].iloc[0]:g} is not +1 (long), -1 (short) or 0",
                           "bad signals")
        else:
            raise fail("signals must be a pandas Series or DataFrame, not "
                       f"{type(signals).__name__}", "bad signals")
        one_hot = {"p_none": side == 0, "p_buy": side == 1, "p_sell": side == -1}
        probs = pd.DataFrame({k: v.astype(float) for k, v in one_hot.items()},
                             index=side.index)
        probs[side.isna()] = np.nan
    index = probs.index
    if not isinstance(index, pd.DatetimeIndex):
        raise fail(f"the index must be the candles' timestamps, not {type(index).__name__}",
                   "bad index")
    if index.tz is None:
        raise fail("the index has no timezone; the candles are in UTC: say which zone the "
                   "timestamps are in (signals.tz_localize('UTC'))", "bad index")
    probs.index = index.tz_convert("UTC")
    if probs.index.has_duplicates:
        raise fail(f"{probs.index[probs.index.duplicated()][0]} appears twice", "bad index")
    extra = probs.index.difference(candles.index)
    if len(extra):
        raise fail(f"{len(extra)} timestamps are not bars of the candles, the first {extra[0]} "
                   f"(the candles run {candles.index[0]} … {candles.index[-1]}); give signals "
                   "for the candles' own timestamps", "index does not match the candles")
    return probs.reindex(candles.index)


# --- backtests ---------------------------------------------------------------------------------
class Backtest:
    """A backtest's result: ``stats`` (a Series labelled as in the report), ``trades``,
    ``equity``, ``orders``, ``baselines``, ``verdict``; ``plot()``; shown as a table in Jupyter."""

    def __init__(self, outcome, runs_dir: str | Path | None = None) -> None:
        self.outcome, self.runs_dir = outcome, runs_dir

    @property
    def name(self) -> str:
        return self.outcome.model

    @property
    def run_id(self) -> str | None:
        """The backtest run's id (None when computed with ``record=False``)."""
        return self.outcome.run.id if self.outcome.run is not None else None

    @property
    def report(self) -> Path | None:
        """report.html of the recorded run (None when not recorded)."""
        return self.outcome.report

    @property
    def stats(self) -> pd.Series:
        """The statistics, labelled with the STATS headings (``"Return [%]"``, ``"Sharpe
        ratio"`` ...) in the report's order."""
        pairs = stat_rows(self.outcome.result.stats)
        return pd.Series([v for _, v in pairs], index=[s.heading for s, _ in pairs],
                         name=self.name, dtype=object)

    @property
    def trades(self) -> pd.DataFrame:
        return self.outcome.result.trades

    @property
    def equity(self) -> pd.Series:
        return self.outcome.result.equity

    @property
    def orders(self) -> pd.DataFrame:
        return self.outcome.result.orders

    @property
    def baselines(self) -> pd.DataFrame:
        """Rule baselines, buy-and-hold, the oracle and random entries on the same bars."""
        rows = {b["label"]: {k: v for k, v in b.items() if k not in ("label", "kind")}
                for b in self.outcome.baselines.values()}
        return pd.DataFrame.from_dict(rows, orient="index")

    @property
    def verdict(self) -> str:
        from backtests.analysis.significance import backtest_verdict

        o = self.outcome
        return backtest_verdict(o.result.stats, o.baselines, bool(o.in_sample),
                                o.versus_rules)["text"]

    def figures(self) -> dict:
        """The report's Bokeh figures by name (price, probs, equity, drawdown, pnl)."""
        from backtests.reports.backtest import report_figures

        o = self.outcome
        curves = {"model": {"label": o.facts.get("model_label", self.name),
                            "equity": o.result.equity}, **o.curves}
        return report_figures(o.result, o.bars, o.probs, curves)

    def plot(self, show: bool | None = None):
        """The report's interactive charts (price with trades, probabilities, equity beside the
        baselines, drawdown, per-trade P&L) as one Bokeh layout.

        ``show=None``: shown inline when running in Jupyter (and None returned), else returned;
        ``show=False``: always returned (``bokeh.io.save(layout, "x.html")``, or customise it).
        """
        from bokeh.layouts import column

        figs = self.figures()
        layout = column(list(figs.values()), sizing_mode="stretch_width")
        if show is False or (show is None and not _in_jupyter()):
            return layout
        from bokeh.io import output_notebook
        from bokeh.io import show as bokeh_show

        output_notebook(hide_banner=True)
        bokeh_show(layout)
        return None

    def _repr_html_(self) -> str:
        from backtests.reports.backtest import format_stats_table

        esc = html.escape
        o = self.outcome
        rows = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>"
                       for k, v in format_stats_table(o.result.stats))
        where = (f"run {esc(self.run_id)}: {esc(str(self.report))}" if self.run_id
                 else "not recorded")
        base = self.baselines
        return (f"<div><b>{esc(self.name)}</b> ({esc(where)})<p>{esc(self.verdict)}</p>"
                f"<table class='attnbt-stats'>{rows}</table>"
                + ("<p>Same bars, same costs:</p>" + base.to_html(na_rep="—", float_format=lambda
                                                                   v: f"{v:,.2f}")
                   if len(base) else "") + "</div>")

    def __repr__(self) -> str:
        s = self.outcome.result.stats
        return (f"Backtest({self.name!r}, run={self.run_id}, trades={s.get('n_trades')}, "
                f"return={s.get('total_return_pct', float('nan')):.2f} %)")


def _in_jupyter() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def backtest(model: Model | str | None = None, data: pd.DataFrame | str | None = None, *,
             signals: pd.Series | pd.DataFrame | None = None, name: str | None = None,
             period: str | None = None, start: str | None = None, end: str | None = None,
             vs: Iterable[str] | None = None, settings: dict | None = None,
             runs_dir: str | Path | None = None, record: bool = True,
             trust_unhashed: bool = False) -> Backtest:
    """Backtest a model, a rule baseline or your own signals; returns a ``Backtest``.

    ``model``: a ``Model``, a run id / prefix / ``latest``, or a rule baseline ``rule/newhl``,
    ``rule/newhl-range:K``. ``signals`` instead of a model: see ``signals_to_probs`` (``name``
    labels them). ``data``: candles from ``load`` or a source (default: a model's own data,
    else ``data.source``). ``period`` (``train``, ``val``, ``test``, ``all``) or ``start`` /
    ``end``: the bars traded; ``test`` by default, of the model's split (for signals and rules:
    of the ``split`` settings on these candles, the same bars when the data and split are the
    model's). ``vs``: more rule baselines (and, for a model, other trained runs) on the same
    bars. ``settings``: config keys (``{"strategy.threshold": 0.6, "costs.spread": 0.0001}``).
    ``record``: keep the run (folder, report.html, registry row and one trial) as the
    terminal's backtest does; ``compare`` needs recorded runs. ``record=False`` computes the
    same numbers and skips the report's files (quicker; ``plot()`` still draws).

    >>> res = api.backtest(model, candles, settings={"strategy.threshold": 0.6})
    >>> res.stats["Sharpe ratio"], len(res.trades)
    >>> own = api.backtest(signals=my_series, data=candles, name="my idea")
    """
    from backtests import backtest as study
    from models.rules import is_rule, parse_rule, rule_probs

    if (model is None) == (signals is None):
        raise ConfigError("give `model` (a trained run or rule/...) or `signals`, one of them")
    vs = list(vs or [])
    given = {"backtest.period": period, "backtest.start": start, "backtest.end": end}
    overrides = {**(settings or {}), **{k: v for k, v in given.items() if v is not None}}
    candles, source = _candles(data)
    command = COMMAND.format("backtest")
    if isinstance(model, Model | str) and not (isinstance(model, str) and is_rule(model)):
        ref = model.id if isinstance(model, Model) else model
        runs_dir = runs_dir if runs_dir is not None or not isinstance(model, Model) \
            else model.runs_dir
        exp = study.backtest_experiment(ref, runs_dir, overrides)
        if record:
            outcome = study.backtest(exp, ref, vs=vs, source=source, candles=candles,
                                     command=command, trust_unhashed=trust_unhashed)
        else:
            outcome = study.compute_backtest(exp, ref, vs=vs, source=source, candles=candles,
                                             with_report=False, trust_unhashed=trust_unhashed)
        return Backtest(outcome, runs_dir)
    if model is not None and not isinstance(model, str):
        raise ConfigError(f"`model` must be a Model, a run id or rule/..., not "
                          f"{type(model).__name__}")
    exp = _experiment(overrides, runs_dir)
    if candles is None:
        from backtests.scoring import load_candles

        exp = exp.override({"data.source": source}) if source else exp
        candles, source = load_candles(exp), source or exp.data.source
    if model is not None:
        try:
            rule = parse_rule(model)
        except ValueError as exc:
            raise ConfigError(f"`model` {model}: {exc}") from None
        probs, label = rule_probs(candles, rule, exp.dataset.labels), name or rule.name
    else:
        probs, label = signals_to_probs(signals, candles), name or "signals"
    outcome = study.compute_signals_backtest(exp, candles, probs, name=label, vs=vs,
                                             source=source, with_report=record)
    if record:
        study.record_backtest(exp, outcome, vs=vs, source=source, command=command)
    return Backtest(outcome, runs_dir)


# --- comparison ---------------------------------------------------------------------------------
class Comparison:
    """``compare``'s result: ``table`` (statistics × runs), ``best`` (the best run per
    statistic), ``differences`` (how the runs differ in data, period, costs, parameters),
    ``significance`` (paired Sharpe-difference tests, in words)."""

    def __init__(self, outcome) -> None:
        self.outcome = outcome
        result = outcome.result
        names = result["columns"]
        self.table = pd.DataFrame(
            {names[rid]: [r["values"].get(rid) for r in result["rows"]] for rid in names},
            index=[r["heading"] for r in result["rows"]])
        self.best = pd.Series({r["heading"]: ", ".join(names[b] for b in r["best"])
                               for r in result["rows"]}, dtype=object)
        self.differences = pd.DataFrame(
            {names[rid]: [d["values"].get(rid) for d in result["flagged"]] for rid in names
             if rid in {k for d in result["flagged"] for k in d["values"]}},
            index=[d["key"] for d in result["flagged"]])
        self.significance = [s["text"] for s in result["significance"]]

    def _repr_html_(self) -> str:
        parts = [self.table.to_html(na_rep="—", float_format=lambda v: f"{v:,.3g}")]
        if len(self.differences):
            parts.append("<p>They differ in:</p>" + self.differences.to_html(na_rep="—"))
        parts += [f"<p>{html.escape(t)}</p>" for t in self.significance]
        return "<div>" + "".join(parts) + "</div>"


def compare(*items, article: bool = False, runs_dir: str | Path | None = None) -> Comparison:
    """Compare recorded results side by side (nothing is re-run): ``Backtest`` results,
    walk-forward results (``StudyResult``, one column per model) and run refs (a backtest or
    walk-forward run id or prefix, ``RUN:model``, ``paper:NAME``). ``article``: add the
    article's reported figures.

    >>> api.compare(mine, own, "3f9a").table
    """
    from backtests.compare import run_compare

    refs = []
    for item in items:
        if isinstance(item, Backtest | StudyResult):
            if item.run_id is None:
                raise RunError(f"{item.name}: computed with `record` False, so there is no run "
                               "to compare; backtest it again with `record` True")
            refs.append(item.run_id)
            runs_dir = item.runs_dir if runs_dir is None else runs_dir
        elif isinstance(item, Model):
            raise RunError(f"{item.id} is a trained model, not a result: backtest it first "
                           "(api.backtest(model)) and compare that")
        else:
            refs.append(str(item))
    return Comparison(run_compare(refs, runs_dir, article=article, record=False))


# --- walk-forward and sweep ---------------------------------------------------------------------
class StudyResult:
    """A walk-forward's or a sweep's result: ``table`` (one row per task, or per combination),
    ``models`` (walk-forward: one row per model, stitched out-of-sample figures), ``equity``
    (stitched curves), ``verdict`` (in words) and ``run_id`` / ``report``."""

    def __init__(self, kind: str, outcome, runs_dir: str | Path | None) -> None:
        import json

        self.kind, self.outcome, self.runs_dir = kind, outcome, runs_dir
        path = outcome.run.path
        self.run_id, self.name, self.report = outcome.run.id, kind, path / "report.html"
        self.equity = pd.read_csv(path / "equity.csv", index_col="time", parse_dates=["time"])
        if kind == "walkforward":
            from backtests.walkforward import walkforward_record

            payload = json.loads((path / "walkforward.json").read_text(encoding="utf-8"))
            self.table = pd.read_csv(path / "results.csv")
            self.models = pd.DataFrame.from_dict(
                {m: {s.heading: v for s, v in stat_rows(rec["stats"])}
                 for m, rec in walkforward_record(path).items()}, orient="index")
            lines = [(payload.get("winner") or {}).get("text")]
            lines += [v["text"] for v in payload.get("versus_rules") or []]
            lines += [c["verdict"] for c in payload.get("comparisons") or []]
        else:
            from backtests.sweep import verdict_text

            payload = json.loads((path / "sweep.json").read_text(encoding="utf-8"))
            self.table = outcome.table if outcome.table is not None \
                else pd.read_csv(path / "table.csv")
            self.models = None
            lines = [verdict_text(payload)]
        self.verdict = "\n".join(t for t in lines if t)

    def _repr_html_(self) -> str:
        shown = self.models if self.models is not None else self.table.head(10)
        return (f"<div><b>{self.kind} {html.escape(self.run_id)}</b> "
                f"({html.escape(str(self.report))})<pre>{html.escape(self.verdict)}</pre>"
                + shown.to_html(na_rep="—", float_format=lambda v: f"{v:,.4g}") + "</div>")


def _study_settings(data, models: str, presets: str | None, seeds: int, folds: dict,
                    settings: dict | None, runs_dir) -> tuple[Experiment, list[str], list, list,
                                                              object]:
    from backtests.walkforward import FoldPlan, parse_models
    from backtests.walkforward.tasks import seed_list

    if isinstance(data, pd.DataFrame):
        raise DataError("walk-forward and sweeps read their sources by name: give `data` as a "
                        "CSV path, sample:NAME or yahoo:SYMBOL:INTERVAL (save a frame with "
                        "frame.to_csv first)", rule="bad argument")
    exp = _experiment(settings, runs_dir)
    sources = [str(data)] if isinstance(data, str | Path) else list(data or [exp.data.source])
    return (exp, sources, parse_models(models, presets), seed_list(seeds), FoldPlan(**folds))


def walkforward(models: str = "attention,rule/newhl", data=None, *, presets: str | None = None,
                references: str | None = None, seeds: int = 1, train_bars: int = 2000,
                val_bars: int = 500, test_bars: int = 500, step_bars: int | None = None,
                expanding: bool = False, embargo_bars: int = 0, threshold: float | str = "auto",
                settings: dict | None = None, runs_dir: str | Path | None = None,
                workers: int = 1, executor: str = "local", device: str = "auto",
                progress: Callable[[str], None] | None = None) -> StudyResult:
    """Walk-forward: every (source, model, seed, fold) trained, thresholded on its validation
    part (``threshold="auto"``, or a number) and traded on its unseen test part; stitched and
    tested as the terminal's walk-forward does (a finished one with the same settings is read
    back, not recomputed). ``models``: kinds, kind/preset or rule baselines, comma-separated;
    ``references`` the same, run beside them: never the winner, never charged in a DSR.

    >>> wf = api.walkforward("rule/newhl,rule/newhl-range", "sample:EURUSD_H1",
    ...                      train_bars=500, val_bars=200, test_bars=200)
    >>> wf.models[["Return [%]", "Sharpe ratio"]]
    """
    from backtests import walkforward as wfm

    auto = isinstance(threshold, str) and threshold.strip().lower() == "auto"
    settings = settings if auto else {**(settings or {}), "strategy.threshold": threshold}
    folds = dict(train_bars=train_bars, val_bars=val_bars, test_bars=test_bars,
                 step_bars=step_bars, expanding=expanding, embargo=embargo_bars)
    exp, sources, parsed, seed_list, plan = _study_settings(data, models, presets, seeds, folds,
                                                            settings, runs_dir)
    wf = wfm.WalkForward(base=exp, sources=sources, models=parsed, seeds=seed_list, plan=plan,
                         auto_threshold=auto, device=device, workers=workers, executor=executor,
                         references=wfm.parse_models(references) if references else [])
    outcome = wfm.run(wf, command=COMMAND.format("walkforward"), progress=progress)
    return StudyResult("walkforward", outcome, runs_dir)


def sweep(grid: dict | list[str], models: str = "attention,rule/newhl", data=None, *,
          presets: str | None = None, seeds: int = 1, train_bars: int = 2000,
          val_bars: int = 500, test_bars: int = 500, step_bars: int | None = None,
          expanding: bool = False, embargo_bars: int = 0, top: int = 3,
          settings: dict | None = None, runs_dir: str | Path | None = None, workers: int = 1,
          executor: str = "local", device: str = "auto",
          progress: Callable[[str], None] | None = None) -> StudyResult:
    """A sweep: every combination of ``grid`` (``{"threshold": [0.5, 0.6], "stop": ["bar",
    "atr:1.5"]}`` or ``["threshold=0.5,0.6"]``) traded walk-forward, ranked with the deflated
    Sharpe ratio; ``table`` has one row per combination.

    >>> sw = api.sweep({"threshold": [0.5, 0.7]}, "rule/newhl", "sample:EURUSD_H1",
    ...                train_bars=500, val_bars=200, test_bars=200)
    >>> sw.table.head()
    """
    from backtests import sweep as swm

    if isinstance(grid, dict):
        grid = [f"{k}={','.join(map(str, v if isinstance(v, list | tuple) else [v]))}"
                for k, v in grid.items()]
    folds = dict(train_bars=train_bars, val_bars=val_bars, test_bars=test_bars,
                 step_bars=step_bars, expanding=expanding, embargo=embargo_bars)
    exp, sources, parsed, seed_list, plan = _study_settings(data, models, presets, seeds, folds,
                                                            settings, runs_dir)
    if len(sources) != 1:
        raise ConfigError(f"`data`: a sweep runs on one source, not {len(sources)}")
    exp = exp.override({"data.source": sources[0]})
    sw = swm.Sweep(base=exp, source=sources[0], models=parsed, seeds=seed_list,
                   grid=swm.parse_grid(list(grid), exp), plan=plan, executor=executor,
                   workers=workers, top=top, device=device)
    outcome = swm.run(sw, command=COMMAND.format("sweep"), progress=progress)
    return StudyResult("sweep", outcome, runs_dir)
