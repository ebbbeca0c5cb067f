"""`attnbt backtest`: a trained run trades a period; the report compares it with everything else.

On the same bars and costs it also runs: the earlier networks given with ``vs`` (their own runs),
buy-and-hold, random entries shaped like our trades (a p-value), and a perfect-foresight fractal
oracle (the upper bound of these rules). Beside the trading figures stand the article's reported
(in-sample) figures and ours (out-of-sample) for the same metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from backtests.baselines import buy_and_hold, oracle_probs, p_value, random_entries
from backtests.engine import BacktestResult, run_backtest
from backtests.pipeline import Scored, score
from backtests.report import write_report
from backtests.runs import Run, new_run
from data.errors import DataError
from models.evaluate import ARTICLE_FIGURES
from strategy.fractal import Costs, FractalParams

HEADLINE = ("n_trades", "win_rate_pct", "total_return_pct", "profit_factor", "max_drawdown_pct",
            "sharpe")


@dataclass
class BacktestOutcome:
    run: Run
    result: BacktestResult
    report: Path
    comparison: list[dict]
    baselines: dict
    in_sample: bool
    threshold_tables: dict


def _model_name(scored: Scored) -> str:
    meta = scored.predictor.loaded.meta
    return f"{meta['kind']}/{meta['config']['preset']}"


def overlaps_training(scored: Scored) -> bool:
    """True when the period starts on or before the model's last validation bar: those bars (or
    the same timestamps of the same market in another copy of the data) were fitted or used for
    early stopping. A run saved without a split counts as in-sample everywhere."""
    split = scored.predictor.loaded.split
    return split is None or bool(scored.candles.index[scored.first] <= split.val_end)


def comparison_rows(ours: list[tuple[str, Scored, dict, dict]], in_sample: bool) -> list[dict]:
    """'Against the earlier article': the article's figures and ours, one row each."""
    rows = []
    for a in ARTICLE_FIGURES:
        rows.append({"source": f"article, Part {a['part']}", "network": a["network"],
                     "bars": "in-sample", "error": a["error"],
                     "hit %": a["hit_pct"], "missed %": a["missed_pct"], "trades": "none reported",
                     "win rate %": None, "return %": None, "profit factor": None})
    sample = "in-sample (overlaps training)" if in_sample else "out-of-sample"
    for name, scored, metrics, stats in ours:
        m = metrics.get("model", {})
        rows.append({"source": "ours", "network": name, "run": scored.run.id, "bars": sample,
                     "error": m.get("error"), "hit %": m.get("hit_pct"),
                     "missed %": m.get("missed_pct"), "trades": stats["n_trades"],
                     "win rate %": stats["win_rate_pct"], "return %": stats["total_return_pct"],
                     "profit factor": stats["profit_factor"]})
    if ours:
        for trivial in ("always none", "class-prior random"):
            m = ours[0][2].get(trivial)
            if m:
                rows.append({"source": "ours", "network": f"trivial: {trivial}",
                             "bars": sample, "error": m["error"], "hit %": m["hit_pct"],
                             "missed %": m["missed_pct"], "trades": None, "win rate %": None,
                             "return %": None, "profit factor": None})
    return rows


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


THRESHOLD_GRID = (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)


def choose_threshold(scored: Scored, params: FractalParams, costs: Costs,
                     cash: float) -> tuple[FractalParams, list[dict]]:
    """Pick the signal threshold on the model's validation bars (never the test bars).

    Each threshold of ``THRESHOLD_GRID`` is backtested on the validation period with the same
    rules and costs; the highest total return wins (ties: the higher threshold, fewer trades).
    """
    split = scored.predictor.loaded.split
    if split is None:
        raise DataError("--threshold auto needs a run with a validation period", rule="no split")
    first, last = split.period_bounds(scored.candles.index, "val")
    if last - first < 2 or scored.candles.index[first] > split.val_end:
        raise DataError("--threshold auto needs the model's validation bars in the data; give "
                        "the data it was trained on or a number", rule="no validation bars")
    bars, probs = scored.candles.iloc[first:last + 1], scored.probs.iloc[first:last + 1]
    rows = []
    for threshold in THRESHOLD_GRID:
        stats = run_backtest(bars, probs, replace(params, threshold=threshold), costs, cash).stats
        rows.append({"threshold": threshold, "validation trades": stats["n_trades"],
                     "validation return %": stats["total_return_pct"],
                     "validation win rate %": stats["win_rate_pct"]})
    return replace(params, threshold=best_threshold(rows)["threshold"]), rows


def best_threshold(rows: list[dict]) -> dict:
    """The row ``choose_threshold`` picks: highest validation return, ties to the higher one."""
    return max(rows, key=lambda r: (r["validation return %"], r["threshold"]))


def backtest(ref: str, source: str | None = None, *, period: str = "test",
             start: str | None = None, end: str | None = None,
             params: FractalParams | None = None, costs: Costs | None = None,
             cash: float = 100_000.0, vs: list[str] | None = None, n_random: int = 1000,
             seed: int = 0, runs_dir: str | Path | None = None,
             candles: pd.DataFrame | None = None,
             auto_threshold: bool = False) -> BacktestOutcome:
    """Backtest run ``ref`` on ``period`` (or ``start``/``end``) and write the report folder.

    With ``auto_threshold`` every model (ours and each ``vs``) picks its signal threshold on its
    own validation bars first (``choose_threshold``).
    """
    params, costs = params or FractalParams(), costs or Costs()
    scored = score(ref, source, period=period, start=start, end=end, runs_dir=runs_dir,
                   candles=candles)
    base_params, threshold_tables = params, {}
    if auto_threshold:
        params, threshold_tables[_model_name(scored)] = choose_threshold(scored, base_params,
                                                                         costs, cash)
    bars = scored.period_candles
    if len(bars) < 2:
        raise DataError("the period holds fewer than 2 bars; widen --from/--to",
                        rule="empty period")
    if scored.period_probs.isna().all(axis=None):
        raise DataError("no bar of the period has a complete window for this model",
                        rule="empty period")
    result = run_backtest(bars, scored.period_probs, params, costs, cash)
    in_sample = overlaps_training(scored)

    ours = [(_model_name(scored), scored, scored.metrics(), result.stats)]
    baselines: dict = {}
    for other_ref in vs or []:
        other = score(other_ref, source, period=period, start=start, end=end, runs_dir=runs_dir,
                      candles=scored.candles)
        other_params = params
        if auto_threshold:
            other_params, threshold_tables[_model_name(other)] = choose_threshold(
                other, base_params, costs, cash)
        other_result = run_backtest(bars, other.period_probs, other_params, costs, cash)
        ours.append((_model_name(other), other, other.metrics(), other_result.stats))
        baselines[f"{_model_name(other)} ({other.run.id})"] = _headline(other_result.stats)
    baselines["buy and hold (all cash, unlevered)"] = _headline(buy_and_hold(bars, costs, cash))
    oracle = run_backtest(bars, oracle_probs(bars, scored.predictor.spec.labels), params, costs,
                          cash)
    baselines["fractal oracle (perfect foresight)"] = _headline(oracle.stats)
    draws = random_entries(bars, result.trades, costs, n_draws=n_random, seed=seed, cash=cash)
    ours_ret = result.stats["total_return_pct"]
    baselines["random entries"] = {
        "n_trades": len(result.trades), "draws": n_random,
        "median_return_pct": float(np.median(draws)),
        "p5_return_pct": float(np.percentile(draws, 5)),
        "p95_return_pct": float(np.percentile(draws, 95)),
        "p_value_ours": p_value(ours_ret, draws) if len(result.trades) else None}
    comparison = comparison_rows(ours, in_sample)

    run = new_run("backtest", root=runs_dir, model=_model_name(scored),
                  data=source or scored.predictor.loaded.meta.get("data"), parent=scored.run.id,
                  meta={"period": period, "start": str(bars.index[0]), "end": str(bars.index[-1]),
                        "in_sample": in_sample, "vs": [o[1].run.id for o in ours[1:]],
                        "params": params.to_dict(), "costs": costs.to_dict(), "cash": cash})
    metrics = ours[0][2].get("model", {})
    title = (f"{_model_name(scored)} ({scored.run.id}) on {bars.index[0]:%Y-%m-%d} → "
             f"{bars.index[-1]:%Y-%m-%d}, {'IN-SAMPLE' if in_sample else 'out-of-sample'}")
    report = write_report(
        run.path, result, bars, title=title, comparison=comparison, baselines=baselines,
        confusion=np.asarray(metrics["confusion"]) if metrics else None,
        attention_pngs=attention_examples(scored, result.trades),
        extra={"train_run": scored.run.id, "period": period, "in_sample": in_sample,
               "random_draws": n_random, "seed": seed,
               "threshold": "chosen on validation" if auto_threshold else "given",
               **{f"threshold choice, {name}": rows for name, rows in threshold_tables.items()}})
    run.finish({**{k: result.stats.get(k) for k in HEADLINE},
                "p_value": baselines["random entries"]["p_value_ours"],
                "in_sample": in_sample, "train_run": scored.run.id})
    return BacktestOutcome(run, result, report, comparison, baselines, in_sample, threshold_tables)


def _headline(stats: dict) -> dict:
    return {k: stats.get(k) for k in (*HEADLINE, "exposure_pct")}
