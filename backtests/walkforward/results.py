"""From task results to what a reader needs: stitched equity, per-model figures, verdicts.

Pure functions over the task dicts of ``tasks.evaluate_task``. Per (source, model, seed) the test
parts of all folds are stitched into one out-of-sample return series; a model's series is the
average over its seeds (an equal-weight book of its seeds, on the same bars). Statistics come
from ``backtests.analysis.significance`` only.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from backtests.analysis import significance as sig
from backtests.analysis.catalog import jsonable
from backtests.analysis.performance import (
    COST_TOTALS,
    compute_stats,
    costs_charged,
    infer_bars_per_year,
)
from backtests.currency import Conversion
from models.evaluate import pool_reliability
from strategy.fractal import Costs

SEED_METRICS = ("hit_pct", "missed_pct", "macro_f1", "base_hit_pct", "brier", "total_return_pct",
                "sharpe", "max_drawdown_pct", "n_trades", "win_rate_pct", "psr")
# Where each per-seed figure lives: its interval across seeds is clipped to it.
SUPPORT = {"hit_pct": (0, 100), "missed_pct": (0, 100), "base_hit_pct": (0, 100),
           "win_rate_pct": (0, 100), "macro_f1": (0, 1), "psr": (0, 1), "n_trades": (0, None), "brier": (0, 2),
           "total_return_pct": (-100, None), "max_drawdown_pct": (-100, 0)}
TABLE_COLUMNS = ("source", "model", "seed", "fold", "test_start", "test_end", "threshold",
                 "hit_pct", "base_hit_pct", "missed_pct", "macro_f1", "accuracy", "brier",
                 "n_trades",
                 "win_rate_pct", "total_return_pct", "sharpe", "max_drawdown_pct", "epochs_run",
                 "task_id")


def task_row(r: dict) -> dict:
    """One row of the results table."""
    t, m, s = r["task"], r["metrics"], r["stats"]
    return {"source": t["source"], "model": t["model"], "seed": t["seed"], "fold": t["fold"],
            "test_start": r["times"][0], "test_end": r["times"][-1],
            "threshold": r["threshold"], "hit_pct": m["hit_pct"],
            "base_hit_pct": m["base_hit_pct"], "missed_pct": m["missed_pct"],
            "macro_f1": m["macro_f1"], "accuracy": m["accuracy"], "brier": m.get("brier"),
            "n_trades": s["n_trades"],
            "win_rate_pct": s["win_rate_pct"], "total_return_pct": s["total_return_pct"],
            "sharpe": s["sharpe"], "max_drawdown_pct": s["max_drawdown_pct"],
            "epochs_run": r["train"]["epochs_run"], "task_id": t["id"]}


def sharpe_per_bar(moments: dict) -> float | None:
    """The per-bar Sharpe ratio of a task's ``moments``; task files written before the key
    ``sharpe_per_bar`` (registry schema v4) call it ``sharpe``."""
    return moments["sharpe_per_bar"] if "sharpe_per_bar" in moments else moments.get("sharpe")


def model_name(source: str, model: str, n_sources: int) -> str:
    return model if n_sources == 1 else f"{model} on {source}"


PREDICTION_COLUMNS = ("time", "model", "seed", "fold", "p_none", "p_buy", "p_sell", "label")


def predictions(results: list[dict], n_sources: int) -> pd.DataFrame:
    """predictions.csv: every task's out-of-sample probabilities, one row per test bar (model,
    seed, fold, in time order), with the bar's label (0 none, 1 buy, 2 sell) where the metrics
    score a window ending there, else empty. Tasks recorded before attnbt kept them are left
    out (the file then says which are missing by their absence)."""
    frames = []
    for r in results:
        if "probs" not in r:
            continue
        t = r["task"]
        probs = np.asarray(r["probs"], dtype=float).reshape(-1, 3)
        frames.append(pd.DataFrame({
            "time": r["times"], "model": model_name(t["source"], t["model"], n_sources),
            "seed": t["seed"], "fold": t["fold"], "p_none": probs[:, 0], "p_buy": probs[:, 1],
            "p_sell": probs[:, 2], "label": pd.array(r["labels"], dtype="Int64")}))
    if not frames:
        return pd.DataFrame(columns=list(PREDICTION_COLUMNS))
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["model", "seed", "time"], kind="stable").reset_index(drop=True)


def stitch(results: list[dict], cash: float) -> tuple[pd.Series, pd.Series]:
    """(per-bar returns, equity from ``cash``) of these tasks' test parts in time order."""
    parts = sorted(results, key=lambda r: r["times"][0])
    times = pd.DatetimeIndex([t for r in parts for t in r["times"]])
    returns = pd.Series([x for r in parts for x in r["returns"]], index=times, name="return")
    equity = (cash * (1 + returns).cumprod()).rename("equity")
    return returns, equity


def _pooled(results: list[dict]) -> dict:
    """Classification figures over all folds' test bars together."""
    m = [r["metrics"] for r in results]
    signals, hits = sum(x["signals"] for x in m), sum(x["hits"] for x in m)
    fractals, missed = sum(x["fractals"] for x in m), sum(x["missed"] for x in m)
    cm = np.sum([np.asarray(x["confusion"]) for x in m], axis=0)
    f1 = []
    for c in range(3):
        tp, pred, act = cm[c, c], cm[:, c].sum(), cm[c, :].sum()
        prec, rec = (tp / pred if pred else 0.0), (tp / act if act else 0.0)
        f1.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    n = sum(x["samples"] for x in m)
    base = sum(x["base_hit_pct"] * x["samples"] for x in m if x["base_hit_pct"] is not None)
    # Brier over every test window (tasks recorded before attnbt scored it have none)
    brier = (sum(x["brier"] * x["samples"] for x in m) / n
             if n and all(x.get("brier") is not None for x in m) else float("nan"))
    return {"hit_pct": 100 * hits / signals if signals else float("nan"),
            "missed_pct": 100 * missed / fractals if fractals else float("nan"),
            "macro_f1": float(np.mean(f1)), "base_hit_pct": base / n if n else float("nan"),
            "brier": brier, "signals": signals, "fractals": fractals}


def seed_summary(results: list[dict], cash: float) -> dict:
    """One (source, model, seed): pooled classification, stitched trading statistics, PSR."""
    returns, equity = stitch(results, cash)
    stats = compute_stats(equity, _trades_stub(results), initial_equity=cash)
    mom = sig.moments(returns.to_numpy())
    return {**_pooled(results),
            "total_return_pct": stats["total_return_pct"], "sharpe": stats["sharpe"],
            "max_drawdown_pct": stats["max_drawdown_pct"],
            "n_trades": int(sum(r["stats"]["n_trades"] or 0 for r in results)),
            "win_rate_pct": _win_rate(results),
            "psr": sig.psr(mom["sharpe_per_bar"], mom["n_obs"], mom["skew"], mom["kurtosis"]),
            "sharpe_per_bar": mom["sharpe_per_bar"]}


def _trades_stub(results: list[dict]) -> pd.DataFrame:
    return pd.DataFrame({"entry_time": [], "exit_time": [], "pnl_net": [], "bars_held": []})


def _win_rate(results: list[dict]) -> float:
    n = sum(r["stats"]["n_trades"] or 0 for r in results)
    wins = sum((r["stats"]["win_rate_pct"] or 0) / 100 * (r["stats"]["n_trades"] or 0)
               for r in results)
    return 100 * wins / n if n else float("nan")


def model_summary(by_seed: dict[int, list[dict]], cash: float, trial_sharpes: list[float],
                  charge_own: bool = False) -> tuple[dict, pd.Series, pd.Series]:
    """A model's figures: per-seed mean, sd and 95 % CI; PSR and DSR of the seed-average
    stitched returns; returns (summary, seed-average returns, its equity). ``charge_own``: its
    own stitched series are not among ``trial_sharpes`` (a reference's), so add them."""
    seeds = sorted(by_seed)
    per_seed = {s: seed_summary(by_seed[s], cash) for s in seeds}
    stitched = [stitch(by_seed[s], cash)[0] for s in seeds]
    if charge_own:
        trial_sharpes = [*trial_sharpes,
                         *(sig.moments(r.to_numpy())["sharpe_per_bar"] for r in stitched)]
    returns = pd.concat(stitched, axis=1).mean(axis=1).rename("return")
    equity = (cash * (1 + returns).cumprod()).rename("equity")
    across = {k: sig.mean_ci([per_seed[s][k] for s in seeds],
                                 SUPPORT.get(k, (None, None))) for k in SEED_METRICS}
    ds = sig.dsr_from_trials(returns.to_numpy(), trial_sharpes)
    stats = compute_stats(equity, _trades_stub([]), initial_equity=cash)
    folds = sorted({r["task"]["fold"] for rs in by_seed.values() for r in rs})
    out = {"seeds": seeds, "folds": len(folds), "n_obs": ds["n_obs"],
           "psr": ds["psr"], "dsr": ds["dsr"], "dsr_trials": ds["dsr_trials"],
           "dsr_sr_var": ds["dsr_sr_var"], "dsr_sr0": ds["dsr_sr0"], "skew": ds["skew"],
           "kurtosis": ds["kurtosis"], "sharpe_per_bar": ds["sharpe_per_bar"],
           "sharpe": stats["sharpe"], "total_return_pct": stats["total_return_pct"],
           "max_drawdown_pct": stats["max_drawdown_pct"],
           "bars_per_year": stats["bars_per_year"],
           "start": str(equity.index[0]), "end": str(equity.index[-1]),
           "across_seeds": across, "per_seed": {str(s): v for s, v in per_seed.items()},
           "reliability": pool_reliability([r["metrics"].get("reliability")
                                            for rs in by_seed.values() for r in rs]),
           "calibration": sorted({r["metrics"].get("calibration", "none")
                                  for rs in by_seed.values() for r in rs})}
    return out, returns, equity


def _pp(x: float) -> str:
    return f"{x:+.1f}" if math.isfinite(x) else "n/a"


def compare(a_name: str, b_name: str, a_tasks: list[dict], b_tasks: list[dict],
            ret_a: pd.Series, ret_b: pd.Series, bars_per_year: float,
            earlier: list[dict] | None = None) -> dict:
    """Model a vs b on the same folds and seeds: paired hit test (folds as clusters), Sharpe
    difference bootstrap and SPA both ways on the seed-average per-bar returns, and a verdict
    by ``significance.VERDICT_RULE`` at the level ``significance.comparison_family`` charges for the
    ``earlier`` comparisons of the pair on these bars (``Registry.comparison_family``)."""
    family = sig.comparison_family(earlier or [])
    key = {(r["task"]["seed"], r["task"]["fold"]): r for r in b_tasks}
    pairs = [(r, key[(r["task"]["seed"], r["task"]["fold"])]) for r in a_tasks
             if (r["task"]["seed"], r["task"]["fold"]) in key]
    folds = np.asarray([a["task"]["fold"] for a, _ in pairs])

    def diffs(get):
        return np.asarray([_num(get(a)) - _num(get(b)) for a, b in pairs], float)

    hit = sig.paired_test(diffs(lambda r: r["metrics"]["hit_pct"]), folds)
    f1 = sig.paired_test(diffs(lambda r: r["metrics"]["macro_f1"]), folds)
    ret = sig.paired_test(diffs(lambda r: r["stats"]["total_return_pct"]), folds)
    both = pd.concat([ret_a.rename("a"), ret_b.rename("b")], axis=1, join="inner").dropna()
    tested = sig.difference_verdict(both["a"].to_numpy(), both["b"].to_numpy(),
                                    alpha=family["alpha"])
    sd = tested["sharpe_diff"]
    ann = math.sqrt(bars_per_year) if math.isfinite(bars_per_year) else float("nan")
    out = {"a": a_name, "b": b_name, "pairs": len(pairs), "folds": int(len(set(folds.tolist()))),
           "hit_pp": hit, "macro_f1": f1, "return_pp": ret,
           "sharpe_diff": {**sd, "diff_annualised": sd["diff"] * ann,
                           "ci_annualised": [c * ann for c in sd["ci"]]},
           "spa": tested["spa_better"], "spa_worse": tested["spa_worse"],
           "decision": tested["decision"], "rule": tested["rule"], "family": family}
    out["verdict"] = comparison_text(out)
    return out


_num = sig.nan_if_none


def comparison_text(c: dict) -> str:
    """The comparison in words: effect sizes with intervals, p-values, what they allow by
    ``significance.VERDICT_RULE`` (the same evidence for better and worse), and the rule."""
    h, sd, better, worse = c["hit_pp"], c["sharpe_diff"], c["spa"], c["spa_worse"]
    lo, hi = h["ci"]
    text = (f"{c['a']} vs {c['b']}: {_pp(h['mean'])} pp hit (95 % CI {_pp(lo)}…{_pp(hi)}, "
            f"{c['folds']} folds × seeds), Sharpe difference {sd['diff_annualised']:+.2f} annualised "
            f"(bootstrap p = {_p(sd['p_value'])}; SPA p = {_p(better['p_value'])} for {c['a']} "
            f"beating {c['b']}, {_p(worse['p_value'])} for the reverse)")
    a = c["a"].split(" on ")[0]
    family = c.get("family") or sig.comparison_family([])
    decision = sig.decide(sd["diff"], sd["p_value"], better["p_value"], worse["p_value"],
                          family["alpha"])
    claim = sig.verdict_claim(decision, a, sd["diff"], better["p_value"], worse["p_value"])
    if math.isfinite(lo) and lo > 0:
        claim += f"; its signals hit more often than {c['b']}'s"
    elif math.isfinite(hi) and hi < 0:
        claim += f"; its signals hit less often than {c['b']}'s"
    else:
        claim += "; no evidence of a hit-rate difference"
    return f"{text} — {claim}{sig.family_text(family)} ({sig.VERDICT_RULE})"


def _p(p: float | None) -> str:
    return "n/a" if p is None or not math.isfinite(p) else f"{p:.2f}"


def winner(models: dict, returns: dict[str, pd.Series],
           comparisons: list[dict] | tuple = ()) -> dict | None:
    """The model with the highest seed-average out-of-sample Sharpe, the margin over the
    runner-up and how sure (bootstrap p, PSR, DSR). When the two are a pair this walk-forward
    compared (``comparisons``), the margin is judged at that comparison's charged α, so the
    winner line and the comparison cannot disagree."""
    ranked = sorted((k for k, v in models.items()
                     if math.isfinite(_num(v.get("sharpe"))) and not v.get("reference")),
                    key=lambda k: models[k]["sharpe"], reverse=True)    # references never win
    if not ranked:
        return None
    best = ranked[0]
    m = models[best]
    ann = math.sqrt(m["bars_per_year"]) if math.isfinite(m["bars_per_year"]) else math.nan
    out = {"model": best, "sharpe": m["sharpe"], "psr": m["psr"], "dsr": m["dsr"],
           "total_return_pct": m["total_return_pct"], "runner_up": None,
           # the DSR's hurdle: the expected best Sharpe of this many unskilled trials as spread
           # as these (significance.expected_max_sharpe), annualised like "sharpe"
           "dsr_hurdle": _num(m.get("dsr_sr0")) * ann, "dsr_trials": m.get("dsr_trials")}
    hit_best = max(models, key=lambda k: _num(models[k]["across_seeds"]["hit_pct"]["mean"])
                   if math.isfinite(_num(models[k]["across_seeds"]["hit_pct"]["mean"]))
                   else -1e9)
    out["best_hit"] = {"model": hit_best,
                       "hit_pct": models[hit_best]["across_seeds"]["hit_pct"]["mean"]}
    if len(ranked) > 1:
        second = ranked[1]
        both = pd.concat([returns[best].rename("a"), returns[second].rename("b")], axis=1,
                         join="inner").dropna()
        # the margin is judged by the one verdict rule (the bootstrap alone is liberal on
        # sparse series: docs/research.md, network null calibration)
        alpha = next((c["family"]["alpha"] for c in comparisons
                      if {c["a"], c["b"]} == {best, second} and c.get("family")), sig.ALPHA)
        v = sig.difference_verdict(both["a"].to_numpy(), both["b"].to_numpy(), both=False,
                                   alpha=alpha)
        t = v["sharpe_diff"]
        out["runner_up"] = {"model": second, "sharpe": models[second]["sharpe"],
                            "diff_annualised": t["diff"] * ann, "p_value": t["p_value"],
                            "spa_p_value": v["spa_better"]["p_value"],
                            "decision": v["decision"], "alpha": alpha}
    out["text"] = winner_text(out)
    return out


def winner_text(w: dict) -> str:
    text = (f"Best out-of-sample Sharpe: {w['model']} ({w['sharpe']:.2f} annualised, return "
            f"{w['total_return_pct']:+.2f} %, PSR {w['psr']:.2f}, DSR {w['dsr']:.2f})")
    r = w["runner_up"]
    if r:
        sure = ("a significant margin" if r.get("decision") == "better"
                else "not a significant margin")
        if r.get("alpha", sig.ALPHA) < sig.ALPHA:
            sure += f" at α = {r['alpha']:.3g}, the pair's comparison's charge"
        text += (f", {r['diff_annualised']:+.2f} ahead of {r['model']} (p = "
                 f"{r['p_value']:.2f}: {sure} by the verdict rule)")
    pos = w["psr"] > 1 - sig.ALPHA
    text += (". Its Sharpe ratio is " + ("significantly above zero (PSR > 0.95)" if pos else
                                          "not significantly above zero (PSR ≤ 0.95)"))
    why = sig.hurdle_text(w.get("dsr_trials"), w.get("dsr_hurdle"))
    why = f": {why}" if why else ""
    text += (f" and survives the deflation for every trial on these bars (DSR > 0.95{why})."
             if w["dsr"] > 1 - sig.ALPHA else
             f"; after deflating for every trial on these bars (DSR{why}) it is not "
             "significant.")
    b = w["best_hit"]
    text += f" Highest hit rate: {b['model']} ({b['hit_pct']:.1f} %)."
    return text


def costs_block(bars: pd.DataFrame, costs: Costs, conv: Conversion) -> dict:
    """The costs a study charges on its test bars, stated as the backtest report states them
    (``analysis.performance.costs_charged``: where the spread came from, its mean and range,
    commission, slippage), with the account currency and the P&L conversion. The money charged
    is not here: see ``charged_per_seed``."""
    c = costs_charged(bars, costs, pd.DataFrame())
    return {**{k: v for k, v in c.items() if k not in COST_TOTALS},
            "account_currency": conv.account, "pnl_conversion": conv.describe()}


def charged_per_seed(charged: list[dict | None], n_seeds: int) -> dict:
    """Money charged (account currency), summed over tasks (``costs_charged`` of each) and
    divided by the number of seeds: what one seed's trades paid over all its folds. None for
    a task recorded without it (before attnbt stated costs)."""
    if not charged or any(c is None for c in charged):
        return {k: None for k in COST_TOTALS}
    return {k: sum(c[k] for c in charged) / n_seeds for k in COST_TOTALS}


def rule_verdicts(models: dict) -> list[dict]:
    """Each network against the strongest rule baseline (``rule/...`` models) on its source:
    seed-mean hit rates (pooled over folds), and the stitched Sharpe ratios beside them."""
    from models.evaluate import versus_rules
    from models.rules import is_rule

    out = []
    for name, m in models.items():
        if is_rule(m["model"]):
            continue
        rules = {n: r for n, r in models.items()
                 if is_rule(r["model"]) and r["source"] == m["source"]}
        v = versus_rules(name, _seed_means(m), {n: _seed_means(r) for n, r in rules.items()})
        if v is None:
            continue
        rule = rules[v["rule"]]
        v["sharpe"], v["rule_sharpe"] = m.get("sharpe"), rule.get("sharpe")
        if math.isfinite(_num(v["sharpe"])) and math.isfinite(_num(v["rule_sharpe"])):
            v["text"] += (f"; Sharpe {v['sharpe']:.2f} vs {v['rule_sharpe']:.2f} annualised "
                          "(stitched out of sample)")
        out.append(v)
    return out


def _seed_means(m: dict) -> dict:
    a = m["across_seeds"]
    return {k: _num(a[k]["mean"]) for k in ("hit_pct", "missed_pct")}


__all__ = ["PREDICTION_COLUMNS", "SUPPORT", "TABLE_COLUMNS", "charged_per_seed", "compare",
           "costs_block",
           "infer_bars_per_year", "jsonable", "model_name", "model_summary", "predictions",
           "rule_verdicts",
           "seed_summary", "sharpe_per_bar", "stitch", "task_row", "comparison_text", "winner"]
