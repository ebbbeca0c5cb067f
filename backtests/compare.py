"""`attnbt compare`: finished runs side by side, from their folders (nothing is re-run).

Each run kind has a loader (``LOADERS``) that turns a run into a ``Comparable``: its statistics
(``backtests.analysis.catalog`` keys), equity curve, per-trade P&L, strategy parameters, costs, data and
period. Backtest runs load from report.json / equity.csv / trades.csv; walk-forward and paper
runs plug in with ``register_loader(kind, fn)`` (``paper:NAME`` refs go to the "paper" loader).

``compare`` builds the table: one column per run, the best value of each statistic marked (each
``Stat`` says whether higher or lower is better), and every way the runs differ in data, period,
costs or parameters flagged, so that unlike things are not compared by accident. When two runs
traded the same bars, their per-bar returns get a paired block-bootstrap test of the difference
in Sharpe ratios and a verdict by the one rule (``backtests.analysis.significance``), charged
for the search: the k-th comparison of the same two models on the same bars (any other
pair of equity curves, from `attnbt compare` or the API; the same two curves compared again are
the same comparison) is judged at α / k, and each is recorded in the registry's comparisons table.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from backtests.analysis import catalog as stat_table
from backtests.config import config_id
from backtests.reports.compare import render_compare
from backtests.store import Registry
from backtests.store.outputs import out_folder
from data.atomic import atomic_write
from data.errors import AttnbtError


class CompareError(AttnbtError):
    """A run that cannot be compared (wrong kind, missing files)."""


class OutputExists(CompareError):
    """The file compare.html was asked to go to exists, and ``force`` was not given."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} exists; nothing is overwritten without force: allow it, or "
                         "choose another output file")
        self.path = path


@dataclass
class Comparable:
    """One run as compare sees it, whatever its kind."""

    id: str
    kind: str
    name: str                         # column heading, e.g. "attention 1a2b3c4d"
    stats: dict
    equity: pd.Series
    params: dict = field(default_factory=dict)
    costs: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)     # source, instrument, timeframe, fingerprint
    period: dict = field(default_factory=dict)   # start, end, bars
    pnl: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cash: float | None = None
    in_sample: bool | None = None
    model: dict = field(default_factory=dict)    # name, train_run, model_hash, calibration
    rules: dict = field(default_factory=dict)    # rule baselines on the same bars (backtests)


Loader = Callable[[Registry, str], Comparable]
LOADERS: dict[str, Loader] = {}


def register_loader(kind: str, loader: Loader) -> None:
    """Let runs of ``kind`` be compared: ``loader(registry, run_id) -> Comparable``."""
    LOADERS[kind] = loader


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CompareError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise CompareError(f"{path} is not valid JSON ({exc})") from exc


def load_backtest(reg: Registry, run_id: str) -> Comparable:
    """A backtest run from its folder: report.json, equity.csv, trades.csv, run.json."""
    row = reg.get(run_id)
    folder = reg.root / row["id"]
    meta = row["meta"]
    report = _read_json(folder / "report.json")
    try:
        eq = pd.read_csv(folder / "equity.csv", index_col="time")
    except (OSError, ValueError, KeyError) as exc:
        raise CompareError(f"cannot read {folder / 'equity.csv'}: {exc}") from exc
    eq.index = pd.to_datetime(eq.index, utc=True)
    try:
        pnl = pd.read_csv(folder / "trades.csv")["pnl_net"].to_numpy(float)
    except (OSError, ValueError, KeyError):
        pnl = np.zeros(0)
    stats = {k: stat_table.json_number(v) for k, v in (report.get("stats") or {}).items()}
    for k in ("start", "end"):
        if isinstance(stats.get(k), str):
            stats[k] = pd.Timestamp(stats[k])
    for k in ("hit_pct", "missed_pct", "p_value"):   # from the run's summary
        if row["summary"].get(k) is not None:
            stats.setdefault(k, row["summary"][k])
    extra = report.get("extra") or {}
    source = report.get("source") or meta.get("source") or row.get("data")
    model = report.get("model") or {}
    name = model.get("model") or row.get("model") or "backtest"
    return Comparable(
        id=row["id"], kind="backtest", name=f"{name} {row['id'][:8]}", stats=stats,
        equity=eq["equity"], params=report.get("params") or meta.get("params") or {},
        costs=report.get("costs") or meta.get("costs") or {},
        data={"source": source, "instrument": report.get("instrument") or meta.get("instrument"),
              "timeframe": report.get("timeframe") or meta.get("timeframe"),
              "fingerprint": row.get("fingerprint")},
        period={"start": str(eq.index[0]) if len(eq) else None,
                "end": str(eq.index[-1]) if len(eq) else None, "bars": len(eq)},
        pnl=pnl, cash=report.get("cash") or meta.get("cash"),
        in_sample=report.get("verdict", {}).get("in_sample", meta.get("in_sample")),
        rules={b["name"]: {k: stat_table.json_number(v) for k, v in b.items()}
               for b in (report.get("baselines") or {}).values()
               if isinstance(b, dict) and b.get("kind") == "rule" and b.get("name")},
        model={"name": name, "train_run": model.get("train_run") or extra.get("train_run")
               or row.get("parent"),
               "model_hash": model.get("model_hash") or extra.get("model_hash"),
               # train.calibration: the map the model's probabilities went through (None where
               # the report has no calibration block: no labelled windows, or an older report)
               "calibration": (report.get("calibration") or {}).get("method")})


register_loader("backtest", load_backtest)


def load_paper(reg: Registry, ref: str) -> Comparable:
    """A paper account (``paper:NAME``) from its journal."""
    from backtests.paper import paper_record, read_account
    from data.summary import timeframe_label

    name = ref.removeprefix("paper:")
    rec = paper_record(name, reg.root)
    cfg = read_account(name, reg.root).account.settings
    eq = rec["equity"]
    return Comparable(
        id=ref, kind="paper", name=ref, stats=dict(rec["stats"]), equity=eq,
        params=rec["params"], costs=rec["costs"],
        data={"source": rec["data"], "instrument": cfg.instrument,
              "timeframe": timeframe_label(cfg.timeframe), "fingerprint": None},
        period={"start": rec["period"][0], "end": rec["period"][1], "bars": len(eq)},
        pnl=rec["trades"]["pnl_net"].to_numpy(float) if len(rec["trades"]) else np.zeros(0),
        cash=cfg.cash, in_sample=None,
        model={"name": cfg.model, "train_run": cfg.train_run,
               "model_hash": cfg.model_hash})


register_loader("paper", load_paper)


def load_walkforward(reg: Registry, ref: str) -> list[Comparable]:
    """A walk-forward run: one column per model (its stitched, seed-averaged out-of-sample
    equity); ``ID:model`` (e.g. ``3f9a:attention/article``) picks one."""
    from backtests.walkforward import walkforward_record

    run_ref, _, only = ref.partition(":")
    run = reg.resolve(run_ref, kind="walkforward")
    try:
        models = walkforward_record(run)
    except (OSError, ValueError, KeyError) as exc:
        raise CompareError(f"cannot read walk-forward run {run.id}: {exc}") from None
    if only:
        if only not in models:
            raise CompareError(f"walk-forward run {run.id} has no model {only!r}; it has "
                               f"{', '.join(models)}")
        models = {only: models[only]}
    data_print = reg.get(run.id).get("fingerprint")   # of the run's sources' candles
    out = []
    for name, rec in models.items():
        eq = rec["equity"]
        out.append(Comparable(
            id=f"{run.id}:{name}", kind="walkforward", name=f"{name} (walk-forward)",
            stats=dict(rec["stats"]), equity=eq, params=rec["params"], costs=rec["costs"],
            data={"source": rec["data"], "instrument": None, "timeframe": None,
                  "fingerprint": f"{data_print}:{rec['data']}" if data_print else None},
            period={"start": str(eq.index[0]) if len(eq) else None,
                    "end": str(eq.index[-1]) if len(eq) else None, "bars": len(eq)},
            cash=float(eq.iloc[0]) if len(eq) else None, in_sample=False,
            model={"name": name, "train_run": None, "model_hash": None}))
    return out


register_loader("walkforward", load_walkforward)


def load(ref: str, reg: Registry) -> Comparable:
    """The run ``ref`` names (id, unique prefix, 'latest', ``paper:NAME``) as a Comparable."""
    if ref.startswith("paper:"):
        if "paper" not in LOADERS:
            raise CompareError(f"{ref}: paper runs cannot be compared yet (no loader for them)")
        return LOADERS["paper"](reg, ref)
    if ":" in ref:   # RUN:model, one model of a walk-forward run
        return LOADERS["walkforward"](reg, ref)
    run = reg.resolve(ref)
    loader = LOADERS.get(run.kind)
    if loader is None:
        kinds = ", ".join(sorted(LOADERS))
        raise CompareError(f"run {run.id} is a {run.kind} run; compare takes {kinds} runs; "
                           "backtest a trained run first", see=f"backtest --run {run.id}")
    return loader(reg, run.id)


# --- the table --------------------------------------------------------------------------------

ARTICLE_COLUMN = "article Part 8 (in-sample)"
FLAGGED_GROUPS = ("data", "period", "costs", "params")   # differing models are the point


def article_values() -> dict:
    """The article's reported figures for its attention network (Part 8; in-sample)."""
    from models.evaluate import ARTICLE_FIGURES

    a = next(f for f in ARTICLE_FIGURES if f["part"] == 8)
    return {"error": a["error"], "hit_pct": a["hit_pct"], "missed_pct": a["missed_pct"]}


def _finite(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and not math.isnan(v)


def _differs(values: list) -> bool:
    clean = [json.dumps(v, sort_keys=True, default=str) for v in values]
    return len(set(clean)) > 1


def differences(records: list[Comparable]) -> list[dict]:
    """Every fact of data, period, costs and parameters, with ``differs`` when runs disagree."""
    rows = []

    def add(group: str, key: str, getter: Callable[[Comparable], object]) -> None:
        values = {r.id: getter(r) for r in records}
        rows.append({"group": group, "key": f"{group}.{key}", "values": values,
                     "differs": _differs(list(values.values()))})

    for key in ("instrument", "source", "timeframe", "fingerprint"):
        add("data", key, lambda r, k=key: r.data.get(k))
    for key in ("start", "end", "bars"):
        add("period", key, lambda r, k=key: r.period.get(k))
    add("period", "in_sample", lambda r: r.in_sample)
    for key in dict.fromkeys(k for r in records for k in r.costs):
        add("costs", key, lambda r, k=key: r.costs.get(k))
    add("costs", "cash", lambda r: r.cash)
    for key in dict.fromkeys(k for r in records for k in r.params):
        add("params", key, lambda r, k=key: r.params.get(k))
    for key in ("name", "train_run", "model_hash", "calibration"):
        add("model", key, lambda r, k=key: r.model.get(k))
    return rows


def same_bars(a: Comparable, b: Comparable) -> bool:
    return (a.data.get("fingerprint") is not None
            and a.data.get("fingerprint") == b.data.get("fingerprint")
            and len(a.equity) == len(b.equity) and a.equity.index.equals(b.equity.index))


Family = Callable[[str, str, str], list[dict]]


def charge_key(a: Comparable, b: Comparable) -> dict:
    """Where a comparison of ``a`` and ``b`` (on the same bars) is counted: the bars (data
    fingerprint and the equity's span), the pair of models (in either order: a verdict is about
    both directions) and what was compared: the two equity curves themselves, in either order
    (the same curves compared again, from re-runs or other runs of the same configuration, are
    the same comparison; any other curve is another one)."""
    index = a.equity.index
    pair = " vs ".join(sorted(str(r.model.get("name") or r.name) for r in (a, b)))
    curves = sorted(hashlib.sha256(np.ascontiguousarray(r.equity.to_numpy(float)).tobytes())
                    .hexdigest() for r in (a, b))
    return {"fingerprint": f"compare:{a.data['fingerprint']}:{index[0]}:{index[-1]}:{len(index)}",
            "pair": pair, "config_id": config_id({"pair": pair, "curves": curves})}


def significance(records: list[Comparable], n_boot: int = 2000, seed: int = 0,
                 family: Family | None = None) -> list[dict]:
    """The first run against each other run: a paired Sharpe-difference test and the verdict by
    ``significance.VERDICT_RULE`` (the test and SPA, as a walk-forward's comparisons) where they
    traded the same bars, judged at the level ``significance.comparison_family`` charges for the
    earlier comparisons of the pair on those bars (``family(fingerprint, pair, config_id)``, e.g.
    ``Registry.comparison_family``, and the ones made before it in this call); otherwise a line
    saying why it was not tested. A tested row's ``charge`` says where it is to be recorded."""
    from backtests.analysis.significance import (
        VERDICT_RULE,
        comparison_family,
        comparison_numbers,
        describe_p,
        difference_verdict,
        family_text,
        verdict_claim,
    )

    out = []
    first = records[0]
    for other in records[1:]:
        row = {"a": first.id, "b": other.id, "a_name": first.name, "b_name": other.name}
        if not same_bars(first, other):
            row["text"] = (f"{first.name} vs {other.name}: not tested — they traded different "
                           "bars (data or period differ)")
            out.append(row)
            continue
        ra = first.equity.pct_change().iloc[1:].to_numpy(float)
        rb = other.equity.pct_change().iloc[1:].to_numpy(float)
        if len(ra) < 3 or np.std(ra) == 0 and np.std(rb) == 0:
            row["text"] = f"{first.name} vs {other.name}: not tested — no varying returns"
            out.append(row)
            continue
        key = charge_key(first, other)
        earlier = list(family(key["fingerprint"], key["pair"], key["config_id"])) if family \
            else []
        seen = {e.get("config_id") for e in earlier}
        earlier += [r["charge"] | r["numbers"] for r in out if "charge" in r
                    and (r["charge"]["fingerprint"], r["charge"]["pair"]) ==
                    (key["fingerprint"], key["pair"])
                    and r["charge"]["config_id"] not in seen | {key["config_id"]}]
        charged = comparison_family(earlier)
        # the one verdict rule (the bootstrap's p alone is liberal on sparse series)
        verdict = difference_verdict(ra, rb, n_boot=n_boot, seed=seed, alpha=charged["alpha"])
        test = verdict["sharpe_diff"]
        row.update(test)
        row.update({"decision": verdict["decision"],
                    "spa_better_p": verdict["spa_better"]["p_value"],
                    "spa_worse_p": verdict["spa_worse"]["p_value"], "rule": VERDICT_RULE,
                    "family": charged, "charge": key,
                    "numbers": comparison_numbers(test, verdict["spa_better"],
                                                  verdict["spa_worse"], charged["alpha"],
                                                  verdict["decision"])})
        lo, hi = test["ci"]
        words = verdict_claim(verdict["decision"], first.name, test["diff"],
                              verdict["spa_better"]["p_value"], verdict["spa_worse"]["p_value"])
        row["text"] = (f"{first.name} vs {other.name}, same {test['n_obs']:,} bars: per-bar Sharpe "
                       f"ratio difference {test['diff']:+.4f} (95 % CI {lo:+.4f} … {hi:+.4f}, "
                       f"block bootstrap, mean block {test['block']} bars, {test['n_boot']:,} "
                       f"resamples); {describe_p(test['p_value'])}; verdict: {words}"
                       f"{family_text(charged)}")
        out.append(row)
    return out


def record_comparisons(reg: Registry, result: dict, run_id: str | None) -> None:
    """Each tested comparison of ``result`` into the registry's comparisons table (one already
    there is kept as it was), so that the next comparison of the pair on those bars pays."""
    for row in result["significance"]:
        if "charge" in row:
            reg.add_comparison(run_id=run_id, **row["charge"], **row["numbers"])


def compare(records: list[Comparable], *, article: bool = False, n_boot: int = 2000,
            seed: int = 0, family: Family | None = None) -> dict:
    """The comparison: ``columns`` (run id → name), ``rows`` (one per statistic any run has:
    key, label, unit, better, values by run id, best run ids, differs), ``differences`` (the
    facts, ``differs`` marked), ``flagged`` (only the differing ones) and ``significance``."""
    if len(records) < 2:
        raise CompareError("compare needs at least two runs")
    ids = [r.id for r in records]
    if len(set(ids)) < len(ids):
        raise CompareError("the same run is given twice: " + ", ".join(ids))
    columns = {r.id: r.name for r in records}
    extra = article_values() if article else {}
    if article:
        columns[ARTICLE_COLUMN] = ARTICLE_COLUMN
    keys = list(dict.fromkeys([k for r in records for k in r.stats] + list(extra)))
    rows = []
    for s, _ in stat_table.rows(dict.fromkeys(keys, None), tuple(keys)):
        values = {r.id: r.stats.get(s.key) for r in records}
        if all(v is None for v in values.values()) and s.key not in extra:
            continue
        if article:
            values[ARTICLE_COLUMN] = extra.get(s.key)
        ours = [(rid, v) for rid, v in values.items() if rid != ARTICLE_COLUMN and _finite(v)]
        best: list[str] = []
        if s.better and len(ours) > 1:
            pick = max if s.better == "higher" else min
            target = pick(v for _, v in ours)
            if not all(v == target for _, v in ours):
                best = [rid for rid, v in ours if v == target]
        rows.append({"key": s.key, "label": s.label, "unit": s.unit, "heading": s.heading,
                     "better": s.better, "values": values, "best": best,
                     "differs": _differs([v for rid, v in values.items()
                                          if rid != ARTICLE_COLUMN])})
    diffs = differences(records)
    return {"columns": columns, "rows": rows, "differences": diffs,
            "flagged": [d for d in diffs if d["differs"] and d["group"] in FLAGGED_GROUPS],
            "significance": significance(records, n_boot=n_boot, seed=seed, family=family),
            "rule_baselines": rule_baselines(records),
            "article": bool(article)}


RULE_STATS = ("hit_pct", "n_trades", "win_rate_pct", "total_return_pct", "sharpe")


def rule_baselines(records: list[Comparable]) -> dict:
    """The rule baselines each backtest traded on its own bars (from its report), and each run
    against the strongest of them: the null a one-line rule sets, not chance. ``rows``: one per
    (run, rule); ``versus``: one line per run that has rule baselines."""
    from models.evaluate import versus_rules

    rows, versus = [], []
    for r in records:
        if not r.rules:
            continue
        for name, b in r.rules.items():
            rows.append({"run": r.name, "rule": name, **{k: b.get(k) for k in RULE_STATS}})
        v = versus_rules(r.name, r.stats, r.rules)
        if v is not None:
            best = r.rules[v["rule"]]
            ret, base_ret = r.stats.get("total_return_pct"), best.get("total_return_pct")
            if _finite(ret) and _finite(base_ret):
                v["text"] += f"; return {ret:.2f} % vs {base_ret:.2f} %"
            versus.append(v)
    return {"rows": rows, "versus": versus}


def to_json(result: dict) -> dict:
    """``attnbt compare --json``: statistics rows and the flagged differences, strict JSON."""
    from backtests.analysis.catalog import jsonable

    rows = [{"key": r["key"], "label": r["label"], "unit": r["unit"], "better": r["better"],
             "values": r["values"], "best": r["best"], "differs": r["differs"]}
            for r in result["rows"]]
    sig = [{k: v for k, v in s.items() if k in ("a", "b", "diff", "p_value", "ci", "block",
                                                  "n_boot", "n", "method", "decision",
                                                  "spa_better_p", "spa_worse_p", "rule",
                                                  "family", "text")}
           for s in result["significance"]]
    return jsonable({"columns": result["columns"], "rows": rows,
                     "differences": result["flagged"], "significance": sig,
                     "rule_baselines": result.get("rule_baselines")})


def write_html(path: Path, text: str, force: bool = False, mkdir: bool = False) -> Path:
    """Write ``text`` to ``path``, refusing to overwrite an existing file without ``force`` or
    to create a missing folder without ``mkdir``."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputExists(path)
    out_folder(path, mkdir)
    return atomic_write(path, text.encode("utf-8"))


@dataclass
class CompareOutcome:
    records: list[Comparable]
    result: dict
    html: Path | None              # None: nothing written (``record=False`` without ``out``)
    run_id: str | None = None


def run_compare(refs: list[str], runs_dir: str | Path | None = None, *, article: bool = False,
                out: str | Path | None = None, force: bool = False, command: str | None = None,
                n_boot: int = 2000, mkdir: bool = False, record: bool = True) -> CompareOutcome:
    """Load the runs, compare them and write compare.html: to ``out`` (its folder created only
    with ``mkdir``), or into a new run of kind "compare" (with compare.json) in the registry;
    ``record=False`` without ``out`` writes no file and no run (a result for scripts). Every
    tested comparison is charged for and recorded in the registry's comparisons table, whatever
    is written: a search by scripts pays as one by hand."""
    if out is not None and not mkdir:
        out_folder(Path(out))           # refused before any run is loaded
    reg = Registry(runs_dir)
    records = []
    for ref in refs:   # a walk-forward run gives one record per model
        loaded = load(ref, reg)
        records.extend(loaded if isinstance(loaded, list) else [loaded])
    result = compare(records, article=article, n_boot=n_boot,
                     family=lambda fp, pair, cid: reg.comparison_family(
                         fingerprint=fp, pair=pair, config_id=cid))
    text = render_compare(records, result)
    if out is not None:
        html = write_html(Path(out), text, force, mkdir)
        record_comparisons(reg, result, None)
        return CompareOutcome(records, result, html)
    if not record:
        record_comparisons(reg, result, None)
        return CompareOutcome(records, result, None)
    run = reg.create("compare", model=", ".join(dict.fromkeys(r.model.get("name") or "?"
                                                              for r in records)),
                     data=", ".join(dict.fromkeys(str(r.data.get("source")) for r in records)),
                     command=command, meta={"runs": [r.id for r in records],
                                            "article": article})
    with reg.recording(run):
        run.write_text("compare.html", text)
        run.write_text("compare.json", json.dumps(to_json(result), indent=2, allow_nan=False))
    record_comparisons(reg, result, run.id)
    reg.finish(run, {"runs": len(records), "flagged": len(result["flagged"])})
    return CompareOutcome(records, result, run.path / "compare.html", run.id)


__all__ = ["LOADERS", "Comparable", "CompareError", "CompareOutcome", "OutputExists", "charge_key",
           "compare", "differences", "load", "load_backtest", "record_comparisons",
           "register_loader", "render_compare", "rule_baselines", "run_compare", "same_bars",
           "significance", "to_json", "write_html"]
