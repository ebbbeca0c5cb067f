"""`attnbt backtest`: a trained run trades a period; the report compares it with everything else.

On the same bars and costs it also runs: the earlier networks given with ``vs`` (their own runs),
the rule baselines (``models.rules.BASELINE_RULES`` and any ``rule/...`` given with ``vs``: each
picks its threshold on the model's validation bars when the model does), buy-and-hold, random entries shaped like our trades (a p-value), and a perfect-foresight fractal
oracle (the upper bound of these rules). Beside the trading figures stand the article's reported
(in-sample) figures and ours (out-of-sample) for the same metrics.

The model backtested trades on backtrader (``run_backtest``, the engine of record); the references
beside it (the ``vs`` runs, the rule baselines and the oracle) on the compiled simulator
(``run_reference``: the same trades, equity and statistics, tests/backtests/test_reference_engine.py)
for speed: backtrader's order handling of the references was most of a report's time.

``compute_backtest`` computes all of it and writes nothing; ``backtest`` computes and records the
run (folder, registry row and one trial in the trials table) in the driver.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from backtests.analysis import catalog as stat_table
from backtests.analysis.baselines import buy_and_hold_equity, oracle_probs, p_value, random_entries
from backtests.analysis.performance import compute_stats, costs_charged
from backtests.analysis.significance import moments
from backtests.config import ConfigError, Experiment, config_id
from backtests.currency import Conversion, conversion_of, rates
from backtests.reports.backtest import leverage_of, render_report
from backtests.scoring import (
    Scored,
    check_one_source,
    experiment_of,
    make_fold,
    period_positions,
    score,
    validation_bars,
)
from backtests.simulation import (
    BacktestResult,
    check_costs,
    choose_threshold,
    run_backtest,
    run_reference,
)
from backtests.store import Registry, Run
from data import fingerprint
from data.errors import DataError
from data.summary import timeframe, timeframe_label
from models.evaluate import ARTICLE_FIGURES, versus_rules
from models.rules import BASELINE_RULES, RuleConfig, is_rule, parse_rule, rule_probs
from strategy.fractal import Costs, FractalParams
from strategy.rules import label_exits

HEADLINE = ("n_trades", "win_rate_pct", "total_return_pct", "profit_factor", "max_drawdown_pct",
            "sharpe", "exposure_pct")


@dataclass
class BacktestOutcome:
    """Everything a backtest computed; ``run`` and ``report`` once it is recorded."""

    result: BacktestResult
    comparison: list[dict]
    baselines: dict
    in_sample: bool | None             # None: not known (your own signals)
    threshold_tables: dict
    model: str
    model_hash: str
    train_run: str
    config_id: str
    fingerprint: str = ""              # of the candles traded (the trials' "same data")
    files: dict = field(default_factory=dict)
    facts: dict = field(default_factory=dict)           # instrument, source, timeframe, model
    costs_charged: dict = field(default_factory=dict)   # spread source, mean/range, totals
    summary: dict = field(default_factory=dict)
    versus_rules: dict | None = None    # hit rate vs the best rule baseline's (words + numbers)
    bars: pd.DataFrame | None = None    # the candles traded (for figures drawn later)
    probs: pd.DataFrame | None = None   # the probabilities traded on those bars
    curves: dict = field(default_factory=dict)          # the other equity curves drawn
    run: Run | None = None
    report: Path | None = None


def overlaps_training(scored: Scored) -> bool:
    """True when the period starts on or before the model's last validation bar: those bars (or
    the same timestamps of the same market in another copy of the data) were fitted or used for
    early stopping. A run saved without a split counts as in-sample everywhere."""
    fold = scored.predictor.loaded.fold
    return fold is None or bool(scored.candles.index[scored.first] <= fold.val_end)


def comparison_rows(ours: list[tuple[str, str | None, dict, dict]], in_sample: bool,
                    trivial: dict | None = None) -> list[dict]:
    """'Against the earlier article': the article's figures and ours, one row each. ``ours``:
    (name, train run or None for a rule baseline, its metrics, its trading statistics);
    ``trivial``: the trivial predictors' metrics on the same bars."""
    rows = []
    for a in ARTICLE_FIGURES:
        rows.append({"source": f"article, Part {a['part']}", "network": a["network"],
                     "bars": "in-sample", "error": a["error"],
                     "hit %": a["hit_pct"], "missed %": a["missed_pct"], "trades": "none reported",
                     "win rate %": None, "return %": None, "profit factor": None})
    sample = "in-sample (overlaps training)" if in_sample else "out-of-sample"
    for name, run_id, m, stats in ours:
        rows.append({"source": "ours" if run_id else "rule baseline", "network": name,
                     "run": run_id, "bars": sample,
                     "error": m.get("error"), "hit %": m.get("hit_pct"),
                     "missed %": m.get("missed_pct"), "trades": stats["n_trades"],
                     "win rate %": stats["win_rate_pct"], "return %": stats["total_return_pct"],
                     "profit factor": stats["profit_factor"]})
    for name in ("always none", "class-prior random"):
        m = (trivial or {}).get(name)
        if m:
            rows.append({"source": "ours", "network": f"trivial: {name}",
                         "bars": sample, "error": m["error"], "hit %": m["hit_pct"],
                         "missed %": m["missed_pct"], "trades": None, "win rate %": None,
                         "return %": None, "profit factor": None})
    return rows


def rule_refs(vs: list[str] | None) -> tuple[list[str], list[RuleConfig]]:
    """``--vs`` split into trained-run refs and rule baselines (``rule/newhl`` ...); the
    ``BASELINE_RULES`` come first, each rule once."""
    runs, rules = [], {}
    for p in BASELINE_RULES:
        cfg = RuleConfig.preset_config(p)
        rules[cfg.name] = cfg
    for ref in vs or []:
        if is_rule(ref):
            try:
                cfg = parse_rule(ref)
            except ValueError as exc:
                raise ConfigError(f"`vs` {ref}: {exc}") from None
            rules.setdefault(cfg.name, cfg)
        else:
            runs.append(ref)
    return runs, list(rules.values())


def attention_examples(scored: Scored, trades: pd.DataFrame, n: int = 3) -> list[tuple[str, bytes]]:
    """Attention maps at the signal bars of the first ``n`` trades (attention models only)."""
    if scored.predictor.loaded.kind != "attention" or trades.empty:
        return []
    from models.plots import attention_png

    out = []
    w = scored.predictor.spec.window
    for t in trades["signal_time"].head(n):
        pos = int(scored.candles.index.get_loc(t))
        probs, maps = scored.predictor.attention_at(scored.candles, pos)
        side = "buy" if probs[1] >= probs[2] else "sell"
        png = attention_png(scored.candles.iloc[pos - w + 1:pos + 1], maps,
                            f"{side} signal at {t:%Y-%m-%d %H:%M}", probs)
        out.append((f"{side} signal at {t:%Y-%m-%d %H:%M} (window of {w} bars)", png))
    return out


def validation_frame(scored: Scored) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(candles, probabilities) of the model's own validation bars: those its train run kept,
    else the validation period of the data being backtested (the training data)."""
    kept = validation_bars(scored.run)
    if kept is not None:
        probs = kept[["p_none", "p_buy", "p_sell"]]
        return kept.drop(columns=list(probs.columns)), probs
    fold = scored.predictor.loaded.fold
    if fold is None:
        raise DataError("the threshold can only be chosen for a run with a validation period",
                        rule="no split")
    try:
        first, last = fold.bounds(scored.candles.index, "val")
    except DataError:
        first, last = 0, -1
    if last - first < 2:
        raise DataError("this run kept no validation bars and the data does not hold them; "
                        "backtest on the data it was trained on, or give a threshold",
                        rule="no validation bars")
    return scored.candles.iloc[first:last + 1], scored.probs.iloc[first:last + 1]


def scored_threshold(scored: Scored, params: FractalParams, costs: Costs, cash: float,
                     conv: Conversion | None = None,
                     probs_of=None, grid: str = "absolute") -> tuple[FractalParams, list[dict]]:
    """``choose_threshold`` on the model's own validation bars (``validation_frame``);
    ``probs_of(bars)``, when given, scores those bars instead of the run (a rule baseline's
    threshold is chosen on the same bars as the model's); ``grid``: ``backtest.threshold_grid``."""
    bars, probs = validation_frame(scored)
    if probs_of is not None:
        probs = probs_of(bars)
    return choose_threshold(bars, probs, params, costs, cash, conv, grid)


def backtest_experiment(ref: str, runs_dir: str | Path | None = None,
                        overrides: dict | list | None = None,
                        base: Experiment | None = None) -> Experiment:
    """The experiment of a backtest of run ``ref``: the model's own data, spec and training
    settings, with ``base``'s strategy, costs and backtest sections and ``overrides`` on top.
    The runs folder is the one ``ref`` was found in (``runs_dir``, else ``ATTNBT_RUNS``), not
    the one recorded when the model was trained: a moved or copied runs folder records its
    backtests in itself."""
    from models.checkpoint import read_meta

    run = Registry(runs_dir).resolve(ref, kind="train")
    exp = experiment_of(read_meta(run.path).raw)
    exp = replace(exp, runtime=replace(exp.runtime, runs_dir=str(run.root)))
    if base is not None:
        exp = replace(exp, strategy=base.strategy, costs=base.costs, backtest=base.backtest,
                      runtime=base.runtime)
    return exp.override(overrides or {})


def compute_backtest(exp: Experiment, ref: str, *, vs: list[str] | None = None,
                     source: str | None = None, candles: pd.DataFrame | None = None,
                     with_report: bool = True, trust_unhashed: bool = False) -> BacktestOutcome:
    """Backtest run ``ref`` on the experiment's period; compute baselines and the report.

    ``source`` (default: the model's own data) is read the way ``exp.data`` says. With
    ``exp.backtest.auto_threshold`` every model (ours and each ``vs``) picks its signal threshold
    on its own validation bars first (``scored_threshold``).
    """
    from backtests.meta import refuse_meta

    refuse_meta(exp.strategy, "a backtest")
    b = exp.backtest
    runs_dir = exp.runtime.runs_dir
    params, costs, cash = exp.strategy, exp.costs, b.cash
    if candles is None:   # read as the experiment says (the model's own way unless overridden)
        from data import load

        d = exp.data
        if source is None:
            check_one_source(d)
        candles = load(source or d.source, tz=d.tz, sort=d.sort, point=d.point,
                       dayfirst=d.dayfirst)
    scored = score(ref, source, period=b.period, start=b.start, end=b.end, runs_dir=runs_dir,
                   candles=candles, trust_unhashed=trust_unhashed)
    params = label_exits(params, scored.predictor.spec.labels)   # triple barriers: its exits
    bars = scored.period_candles
    if len(bars) < 2:
        raise DataError("the period holds fewer than 2 bars; widen it", rule="empty period")
    if scored.period_probs.isna().all(axis=None):
        raise DataError("no bar of the period has a complete window for this model",
                        rule="empty period")
    check_costs(bars, costs)
    conv = conversion_of(exp.data, source)
    bar_rates = rates(bars, conv)
    base_params, threshold_tables = params, {}
    if b.auto_threshold:
        params, threshold_tables[scored.name] = scored_threshold(scored, base_params, costs, cash,
                                                                 conv, grid=b.threshold_grid)
    result = run_backtest(bars, scored.period_probs, params, costs, cash, rates=bar_rates)
    in_sample = overlaps_training(scored)
    run_refs, rules = rule_refs(vs)
    metrics = scored.metrics(rules=[r.preset for r in rules])

    ours = [(scored.name, scored.run.id, metrics.get("model", {}), result.stats)]
    baselines: dict = {}
    curves: dict = {}
    for other_ref in run_refs:
        other = score(other_ref, source, period=b.period, start=b.start, end=b.end,
                      runs_dir=runs_dir, candles=scored.candles, trust_unhashed=trust_unhashed)
        other_params = label_exits(exp.strategy, other.predictor.spec.labels)
        if b.auto_threshold:
            other_params, threshold_tables[other.name] = scored_threshold(
                other, other_params, costs, cash, conv, grid=b.threshold_grid)
        other_result = run_reference(bars, other.period_probs, other_params, costs, cash,
                                     rates=bar_rates)
        ours.append((other.name, other.run.id, other.metrics().get("model", {}),
                     other_result.stats))
        baselines[f"model:{other.run.id}"] = {
            "label": f"{other.name} ({other.run.id})", "kind": "model", "run": other.run.id,
            **_headline(other_result.stats)}
        curves[f"model:{other.run.id}"] = {"label": f"{other.name} ({other.run.id})",
                                           "equity": other_result.equity}
    labels = scored.predictor.spec.labels
    for rule in rules:     # the same period, threshold rule, strategy, costs and statistics
        rule_params = params
        if b.auto_threshold:
            rule_params, threshold_tables[rule.name] = scored_threshold(
                scored, base_params, costs, cash, conv,
                probs_of=lambda frame, r=rule: rule_probs(frame, r, labels), grid=b.threshold_grid)
        rule_result = trade_rule(rule, scored.candles, scored.first, scored.last, labels,
                                 rule_params, costs, cash, bar_rates)
        ours.append((rule.name, None, metrics.get(rule.name, {}), rule_result.stats))
        baselines[f"rule:{rule.preset}"] = rule_row(rule, rule_params, rule_result,
                                                    metrics.get(rule.name, {}).get("hit_pct"))
        curves[f"rule:{rule.preset}"] = {"label": rule.name, "equity": rule_result.equity}
    versus = versus_rules(scored.name, metrics.get("model", {}),
                          {r.name: metrics[r.name] for r in rules if r.name in metrics})
    p = reference_baselines(bars, result, labels, params, costs, b, bar_rates, baselines, curves)
    comparison = comparison_rows(ours, in_sample, metrics)

    loaded = scored.predictor.loaded
    cid = config_id({"model_hash": loaded.model_hash, "source": source or exp.data.source,
                     "experiment": exp.to_dict(for_id=True), "vs": list(vs or [])})
    model_metrics = metrics.get("model", {})
    summary = stat_table.summary("backtest", {**result.stats, "p_value": p,
                                              **{k: model_metrics.get(k)
                                                 for k in ("hit_pct", "missed_pct")}})
    outcome = BacktestOutcome(result, comparison, baselines, in_sample, threshold_tables,
                              scored.name, loaded.model_hash, scored.run.id, cid,
                              fingerprint=fingerprint(bars), summary=summary,
                              versus_rules=versus, bars=bars, probs=scored.period_probs,
                              curves=curves)
    source_name = source or exp.data.source
    facts = traded_facts(result, bars, conv, source_name, b.period, cid, model=scored.name,
                         model_label=f"{scored.name} ({scored.run.id})",
                         train_run=scored.run.id, model_hash=loaded.model_hash)
    outcome.facts = facts
    outcome.costs_charged = costs_charged(bars, costs, result.trades)
    if with_report:
        title = (f"{scored.name} ({scored.run.id}) on {bars.index[0]:%Y-%m-%d} → "
                 f"{bars.index[-1]:%Y-%m-%d}, {'IN-SAMPLE' if in_sample else 'out-of-sample'}")
        outcome.files = render_report(
            result, bars, title=title, comparison=comparison, baselines=baselines,
            confusion=np.asarray(model_metrics["confusion"]) if model_metrics else None,
            attention_pngs=attention_examples(scored, result.trades),
            probs=scored.period_probs, curves=curves, facts=facts, in_sample=in_sample,
            versus_rules=versus, calibration=calibration_facts(scored, model_metrics),
            extra={"train_run": scored.run.id, "model_hash": loaded.model_hash,
                   "config_id": cid, "period": b.period, "in_sample": in_sample,
                   "random_draws": b.random_draws, "random_seed": b.random_seed,
                   "threshold": "chosen on validation" if b.auto_threshold else "given",
                   **{f"threshold choice, {name}": rows
                      for name, rows in threshold_tables.items()}})
    return outcome


def compute_signals_backtest(exp: Experiment, candles: pd.DataFrame, probs: pd.DataFrame, *,
                             name: str = "signals", vs: list[str] | None = None,
                             source: str | None = None,
                             with_report: bool = True) -> BacktestOutcome:
    """Your own ``[p_none, p_buy, p_sell]`` for the bars of ``candles`` (a signal at bar t is
    known at its close, as a model's probability for t is) traded as a model's are: the period
    of ``exp.split`` and ``exp.backtest`` on these candles (``test``: the bars a model trained on
    them with that split is tested on), the same engine, strategy, costs, rule baselines (the
    ``BASELINE_RULES`` and the ``rule/...`` in ``vs``), buy-and-hold, oracle, random entries and
    report. With ``backtest.auto_threshold`` the threshold is chosen on the split's validation
    bars of these probabilities (and of each rule's). Whether the signals were fitted on the
    traded bars only you know: the report says so (``in_sample`` is None)."""
    from backtests.meta import refuse_meta

    refuse_meta(exp.strategy, "a backtest")
    b = exp.backtest
    base_params, costs, cash = exp.strategy, exp.costs, b.cash
    runs, rules = rule_refs(vs)
    if runs:
        raise ConfigError(f"`vs` {runs[0]}: beside your signals name rule baselines only "
                          "(rule/newhl, rule/newhl-range:K); backtest a trained run on its own "
                          "and compare the two")
    fold = make_fold(exp, candles.index)
    first, last = period_positions(candles.index, fold, b.period, b.start, b.end)
    bars = candles.iloc[first:last + 1]
    period_probs = probs.iloc[first:last + 1]
    if len(bars) < 2:
        raise DataError("the period holds fewer than 2 bars; widen it", rule="empty period")
    if period_probs.isna().all(axis=None):
        raise DataError("your signals give no bar of the period a value", source="signals",
                        rule="empty period")
    check_costs(bars, costs)
    conv = conversion_of(exp.data, source)
    bar_rates = rates(bars, conv)
    labels = exp.dataset.labels
    threshold_tables: dict = {}

    def threshold_of(frame_probs: pd.DataFrame, who: str) -> FractalParams:
        if not b.auto_threshold:
            return base_params
        lo, hi = fold.bounds(candles.index, "val")
        chosen, threshold_tables[who] = choose_threshold(
            candles.iloc[lo:hi + 1], frame_probs.iloc[lo:hi + 1], base_params, costs, cash, conv,
            b.threshold_grid)
        return chosen

    params = threshold_of(probs, name)
    result = run_backtest(bars, period_probs, params, costs, cash, rates=bar_rates)
    ours = [(name, None, {}, result.stats)]
    baselines: dict = {}
    curves: dict = {}
    for rule in rules:
        rule_params = threshold_of(rule_probs(candles, rule, labels), rule.name)
        rule_result = trade_rule(rule, candles, first, last, labels, rule_params, costs, cash,
                                 bar_rates)
        ours.append((rule.name, None, {}, rule_result.stats))
        baselines[f"rule:{rule.preset}"] = rule_row(rule, rule_params, rule_result, None)
        curves[f"rule:{rule.preset}"] = {"label": rule.name, "equity": rule_result.equity}
    p = reference_baselines(bars, result, labels, params, costs, b, bar_rates, baselines, curves)
    digest = hashlib.sha256(np.ascontiguousarray(probs.to_numpy(float)).tobytes()).hexdigest()
    source_name = source or exp.data.source
    cid = config_id({"signals": digest[:16], "name": name, "source": source_name,
                     "experiment": exp.to_dict(for_id=True), "vs": list(vs or [])})
    summary = stat_table.summary("backtest", {**result.stats, "p_value": p})
    outcome = BacktestOutcome(result, [], baselines, None, threshold_tables, name, "", "", cid,
                              fingerprint=fingerprint(bars), summary=summary, bars=bars,
                              probs=period_probs, curves=curves)
    outcome.facts = traded_facts(result, bars, conv, source_name, b.period, cid, model=name,
                                 model_label=f"{name} (your signals)")
    outcome.costs_charged = costs_charged(bars, costs, result.trades)
    if with_report:
        title = f"{name} (your signals) on {bars.index[0]:%Y-%m-%d} → {bars.index[-1]:%Y-%m-%d}"
        outcome.files = render_report(
            result, bars, title=title, baselines=baselines, probs=period_probs, curves=curves,
            facts=outcome.facts, in_sample=None,
            extra={"signals": name, "config_id": cid, "period": b.period,
                   "random_draws": b.random_draws, "random_seed": b.random_seed,
                   "threshold": "chosen on validation" if b.auto_threshold else "given",
                   **{f"threshold choice, {who}": rows
                      for who, rows in threshold_tables.items()}})
    return outcome


def backtest(exp: Experiment, ref: str, *, vs: list[str] | None = None,
             source: str | None = None, candles: pd.DataFrame | None = None,
             command: str | None = None, trust_unhashed: bool = False) -> BacktestOutcome:
    """Compute a backtest and record it: run folder, registry row, and a trial
    (``trust_unhashed``: accept models saved before hashes were recorded)."""
    outcome = compute_backtest(exp, ref, vs=vs, source=source, candles=candles,
                               trust_unhashed=trust_unhashed)
    return record_backtest(exp, outcome, vs=vs, source=source, command=command)


def record_backtest(exp: Experiment, outcome: BacktestOutcome, *, vs: list[str] | None = None,
                    source: str | None = None, command: str | None = None) -> BacktestOutcome:
    """Record a computed backtest (a model's or your signals'): its run folder with the report's
    files, its registry row (kind "backtest", parent: the train run if any) and one trial."""
    reg = Registry(exp.runtime.runs_dir)
    bars = outcome.result.equity.index
    run = reg.create("backtest", model=outcome.model, data=source or exp.data.source,
                     fingerprint=outcome.fingerprint, parent=outcome.train_run or None,
                     config_id=outcome.config_id, command=command,
                     meta={"config": exp.to_dict(), "model_hash": outcome.model_hash,
                           "start": str(bars[0]), "end": str(bars[-1]),
                           "in_sample": outcome.in_sample, "vs": list(vs or []),
                           "params": outcome.result.params.to_dict(),
                           "costs": outcome.result.costs.to_dict(), "cash": outcome.result.cash,
                           **{k: outcome.facts.get(k)
                              for k in ("instrument", "source", "timeframe")},
                           "costs_charged": outcome.costs_charged})
    with reg.recording(run):
        for name, content in outcome.files.items():
            if isinstance(content, bytes):
                run.write_bytes(name, content)
            else:
                run.write_text(name, content)
        returns = outcome.result.equity.pct_change().dropna().to_numpy()
        reg.add_trial(run_id=run.id, kind="backtest", config_id=outcome.config_id,
                      fingerprint=outcome.fingerprint, **moments(returns))
    reg.finish(run, {**outcome.summary, "in_sample": outcome.in_sample,
                     "train_run": outcome.train_run})
    outcome.run, outcome.report = run, run.path / "report.html"
    return outcome


def traded_facts(result: BacktestResult, bars: pd.DataFrame, conv: Conversion, source: str,
                 period: str, cid: str, **model) -> dict:
    """The report's "What was traded": instrument, currencies, source, timeframe, period, the
    model (``model``, ``model_label`` and, for a trained run, ``train_run`` and ``model_hash``),
    the config id, the P&L conversion and the leverage the trades used."""
    return {"instrument": conv.instrument, "account_currency": conv.account,
            "pnl_conversion": conv.describe(), "source": source,
            "timeframe": timeframe_label(timeframe(bars.index)), "period": period, **model,
            "config_id": cid, "conversion": conv, "leverage": leverage_of(result, bars, conv)}


def trade_rule(rule: RuleConfig, candles: pd.DataFrame, first: int, last: int, labels: str,
               params: FractalParams, costs: Costs, cash: float,
               bar_rates: np.ndarray | None) -> BacktestResult:
    """A rule baseline traded on ``candles[first … last]`` (its probabilities read the whole
    ``candles``, bars <= t each) by the compiled simulator (``run_reference``)."""
    probs = rule_probs(candles, rule, labels).iloc[first:last + 1]
    return run_reference(candles.iloc[first:last + 1], probs, params, costs, cash,
                         rates=bar_rates)


def rule_row(rule: RuleConfig, params: FractalParams, result: BacktestResult,
             hit_pct: float | None) -> dict:
    """The baselines entry of a rule traded on the same bars."""
    return {"label": f"{rule.name}: {rule.description}", "kind": "rule", "name": rule.name,
            "threshold": params.threshold, "hit_pct": hit_pct, **_headline(result.stats)}


def reference_baselines(bars: pd.DataFrame, result: BacktestResult, labels: str,
                        params: FractalParams, costs: Costs, b, bar_rates: np.ndarray | None,
                        baselines: dict, curves: dict) -> float | None:
    """Add buy-and-hold, the fractal oracle and random entries shaped like ``result``'s trades
    (``b``: the backtest settings: cash, draws, seed) to ``baselines`` and ``curves``; return the
    p-value of ``result``'s return against the random entries (None without trades)."""
    cash = b.cash
    bh_equity, bh_trades = buy_and_hold_equity(bars, costs, cash, rates=bar_rates)
    baselines["buy_and_hold"] = {"label": "buy and hold (all cash, unlevered)",
                                 "kind": "buy_and_hold",
                                 **_headline(compute_stats(bh_equity, bh_trades,
                                                           initial_equity=cash))}
    curves["buy_and_hold"] = {"label": "buy and hold", "equity": bh_equity}
    oracle = run_reference(bars, oracle_probs(bars, labels), params, costs, cash,
                           rates=bar_rates)
    baselines["oracle"] = {"label": "fractal oracle (perfect foresight)", "kind": "oracle",
                           **_headline(oracle.stats)}
    draws = random_entries(bars, result.trades, costs, n_draws=b.random_draws,
                           seed=b.random_seed, cash=cash, rates=bar_rates)
    p = p_value(result.stats["total_return_pct"], draws) if len(result.trades) else None
    baselines["random_entries"] = {
        "label": "random entries", "kind": "random_entries", "n_trades": len(result.trades),
        "draws": b.random_draws, "median_return_pct": float(np.median(draws)),
        "p5_return_pct": float(np.percentile(draws, 5)),
        "p95_return_pct": float(np.percentile(draws, 95)), "p_value": p}
    return p


def calibration_facts(scored: Scored, metrics: dict) -> dict | None:
    """The report's calibration block: the model's ``train.calibration`` method, its Brier
    scores and reliability numbers on the period (None without labelled windows)."""
    if not metrics.get("reliability"):
        return None
    cal = scored.predictor.loaded.meta.get("calibration") or {}
    return {"method": cal.get("method", "none"), "reliability": metrics["reliability"],
            **{k: v for k, v in metrics.items() if k.startswith("brier")}}


def _headline(stats: dict) -> dict:
    return {k: stats.get(k) for k in HEADLINE}


__all__ = ["BacktestOutcome", "backtest", "calibration_facts", "backtest_experiment", "compute_backtest",
           "compute_signals_backtest", "record_backtest", "reference_baselines", "rule_row",
           "scored_threshold", "trade_rule", "traded_facts", "validation_frame"]
