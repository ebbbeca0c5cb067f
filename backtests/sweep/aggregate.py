"""A sweep's aggregation: the table of every combination (walk-forward statistics, PSR, DSR),
the benchmarks of the best one (buy-and-hold, random entries), its backtrader re-run and the
costs it charged. Pure computation on the task results, except the stitched trials it adds."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from backtests.analysis.catalog import jsonable
from backtests.config import config_id
from backtests.currency import conversion_of, rates
from backtests.execution.driver import STITCHED_KIND
from backtests.store import Registry
from backtests.sweep.grid import combo_label
from backtests.sweep.tasks import Sweep, SweepPlan
from strategy.rules import label_exits

RANDOM_DRAWS = 20
AGREE_TOLERANCE = 1e-6          # equity, relative to cash: compiled vs backtrader


TABLE_COLUMNS = ("rank", "model", "model_setting", "rules", "sharpe", "total_return_pct",
                 "max_drawdown_pct", "n_trades", "win_rate_pct", "psr", "dsr", "dsr_trials",
                 "seeds", "folds", "n_obs")


def _stitched(results: list[dict]) -> tuple[list[dict], pd.DatetimeIndex]:
    """One seed's task results in time order, and the times of their stitched test parts."""
    parts = sorted(results, key=lambda r: r["times"][0])
    return parts, pd.DatetimeIndex([t for r in parts for t in r["times"]])


def _series(stitched: tuple[list[dict], pd.DatetimeIndex], k: int) -> pd.Series:
    parts, times = stitched
    return pd.Series([x for r in parts for x in r["combos"][k]["returns"]], index=times)


def trial_sharpes(p: SweepPlan, reg: Registry) -> list[float]:
    """The per-bar Sharpe ratios of every stitched trial on the sweep's bars: what its DSR
    charges (every combination and seed, earlier runs on these bars too)."""
    return [t["sharpe_per_bar"] for t in reg.trials(fingerprint=p.stitched_fingerprint,
                                                    kind=STITCHED_KIND)]


def dsr_hurdle(trial_srs: list[float], index: pd.DatetimeIndex) -> float | None:
    """The DSR's hurdle SR₀ of these trials, annualised as the table's Sharpe ratios are
    (``compute_stats`` on ``index``, the best combination's bars); None with fewer than 2."""
    from backtests.analysis import significance as sig
    from backtests.analysis.performance import infer_bars_per_year

    h = sig.trials_hurdle(trial_srs)
    if h["dsr_trials"] < 2:
        return None
    return h["dsr_sr0"] * float(np.sqrt(infer_bars_per_year(index)))


def aggregate(p: SweepPlan, sw: Sweep, results: dict[str, dict], reg: Registry,
              run_id: str) -> tuple[pd.DataFrame, dict[tuple, pd.Series]]:
    """The table of every combination (walk-forward statistics, PSR, DSR) and each one's
    seed-average stitched returns; adds one trial per stitched (combination, seed) series."""
    from backtests.analysis import significance as sig
    from backtests.analysis.performance import compute_stats

    cash = sw.base.backtest.cash
    groups: dict[tuple[str, str], dict[int, list[dict]]] = {}
    for t in p.tasks:
        if t.id in results:
            groups.setdefault(t.model_key, {}).setdefault(t.task.seed, []).append(
                results[t.id])
    rows, series = [], {}
    have = {t["config_id"] for t in reg.trials(fingerprint=p.stitched_fingerprint,
                                               kind=STITCHED_KIND) if t["run_id"] == run_id}
    per_combo: list[tuple] = []
    for (model, mc), by_seed in groups.items():
        stitched = {s: _stitched(rs) for s, rs in by_seed.items()}   # times parsed once
        for k, rc in enumerate(p.rule_combos):
            seed_series = {s: _series(st, k) for s, st in stitched.items()}
            for s, ser in seed_series.items():
                cid = config_id({"sweep": p.config_id, "model": model, "model_combo": mc,
                                 "rules": jsonable(rc), "seed": s})
                if cid in have:
                    continue
                reg.add_trial(run_id=run_id, kind=STITCHED_KIND, config_id=cid,
                              fingerprint=p.stitched_fingerprint,
                              note=f"sweep {model} {combo_label(json.loads(mc))} "
                                   f"{combo_label(rc)} seed {s}",
                              **sig.moments(ser.to_numpy()))   # NaN stored as NULL
            per_combo.append((model, mc, k, rc, by_seed, seed_series))
    trial_srs = trial_sharpes(p, reg)
    for model, mc, k, rc, by_seed, seed_series in per_combo:
        avg = pd.concat(list(seed_series.values()), axis=1).mean(axis=1)
        equity = cash * (1 + avg).cumprod()
        stats = compute_stats(equity, pd.DataFrame({"entry_time": [], "exit_time": [],
                                                    "pnl_net": [], "bars_held": []}),
                              initial_equity=cash)
        ds = sig.dsr_from_trials(avg.to_numpy(), trial_srs)
        n_trades = sum(r["combos"][k]["n_trades"] for rs in by_seed.values() for r in rs)
        wins = sum(r["combos"][k]["wins"] for rs in by_seed.values() for r in rs)
        folds = {r["task"]["fold"] for rs in by_seed.values() for r in rs}
        axes = {k.split(".", 1)[1]: v for k, v in {**json.loads(mc), **rc}.items()}
        rows.append({"model": model, "model_setting": combo_label(json.loads(mc)),
                     "rules": combo_label(rc), **axes, "sharpe": stats["sharpe"],
                     "total_return_pct": stats["total_return_pct"],
                     "max_drawdown_pct": stats["max_drawdown_pct"],
                     "n_trades": n_trades / len(by_seed),
                     "win_rate_pct": 100 * wins / n_trades if n_trades else float("nan"),
                     "psr": ds["psr"], "dsr": ds["dsr"], "dsr_trials": ds["dsr_trials"],
                     "seeds": len(by_seed), "folds": len(folds), "n_obs": ds["n_obs"],
                     "_key": (model, mc, k)})
        series[(model, mc, k)] = avg
    table = pd.DataFrame(rows)
    if len(table):
        table = table.sort_values(["sharpe", "total_return_pct"], ascending=False,
                                  na_position="last", kind="stable").reset_index(drop=True)
        table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table, series


def benchmarks(p: SweepPlan, sw: Sweep, results: dict[str, dict], key: tuple,
               index: pd.DatetimeIndex) -> dict[str, pd.Series]:
    """Per-bar returns on the same stitched test bars: buy-and-hold, and random entries traded
    with the rules of ``key``'s combination (the mean of ``RANDOM_DRAWS`` draws per fold and
    seed, each with as many signals as the model gave there, at random bars and sides)."""
    from backtests.analysis.baselines import buy_and_hold_equity
    from strategy.fast import prepare, run_prepared, signal_arrays

    model, mc, k = key
    exp = sw.base.override(json.loads(mc)).override(p.rule_combos[k])
    params = label_exits(exp.strategy, exp.dataset.labels)
    cash = exp.backtest.cash
    bh_parts, rnd_parts = [], []
    mine = [results[t.id] for t in p.tasks if t.id in results and t.model_key == (model, mc)]
    by_fold: dict[int, list[dict]] = {}
    for r in mine:
        by_fold.setdefault(r["task"]["fold"], []).append(r)
    rng = np.random.default_rng(0)
    for fold in sorted(by_fold):
        rs = by_fold[fold]
        bars = p.candles.iloc[rs[0]["first"]:rs[0]["last"] + 1]
        bar_rates = rates(bars, conversion_of(exp.data, sw.source))
        eq, _ = buy_and_hold_equity(bars, exp.costs, cash, rates=bar_rates)
        prev = np.concatenate([[cash], eq.to_numpy()[:-1]])
        bh_parts.append(pd.Series(eq.to_numpy() / prev - 1, index=bars.index))
        draws = []
        for r in rs:
            probs = np.asarray(r["probs"], dtype=float)
            sig_count = int(np.count_nonzero(signal_arrays(probs, params.threshold)[0]))
            for _ in range(RANDOM_DRAWS):
                fake = np.tile([1.0, 0.0, 0.0], (len(bars), 1))
                at = rng.choice(len(bars), size=min(sig_count, len(bars)), replace=False)
                side = rng.integers(1, 3, size=len(at))
                fake[at] = 0.0
                fake[at, side] = 1.0
                prep = prepare(bars, pd.DataFrame(fake, index=bars.index,
                                                  columns=["p_none", "p_buy", "p_sell"]),
                               bar_rates)
                res = run_prepared(prep, params, exp.costs, cash, trades=False,
                                   candles=bars)
                prev = np.concatenate([[cash], res.equity[:-1]])
                draws.append(res.equity / prev - 1)
        rnd_parts.append(pd.Series(np.mean(draws, axis=0), index=bars.index))
    bh = pd.concat(bh_parts).reindex(index)
    rnd = pd.concat(rnd_parts).reindex(index)
    return {"buy_and_hold": bh, "random_entries": rnd}


def backtrader_check(p: SweepPlan, sw: Sweep, results: dict[str, dict], key: tuple) -> dict:
    """Re-run a combination on backtrader for every task behind it; the largest equity
    difference from the compiled simulator (relative to cash), whether they agree, and the
    money its trades paid in costs (backtrader's trades; per seed over all folds)."""
    from backtests.analysis.performance import costs_charged
    from backtests.simulation import run_backtest
    from backtests.walkforward.results import charged_per_seed

    model, mc, k = key
    exp = sw.base.override(json.loads(mc)).override(p.rule_combos[k])
    cash = exp.backtest.cash
    conv = conversion_of(exp.data, sw.source)
    worst, n, other_trades, charged, seeds = 0.0, 0, 0, [], set()
    for t in p.tasks:
        r = results.get(t.id)
        if r is None or t.model_key != (model, mc):
            continue
        bars = p.candles.iloc[r["first"]:r["last"] + 1]
        probs = pd.DataFrame(np.asarray(r["probs"], dtype=float), index=bars.index,
                             columns=["p_none", "p_buy", "p_sell"])
        bt = run_backtest(bars, probs, label_exits(exp.strategy, exp.dataset.labels), exp.costs,
                          cash, rates=rates(bars, conv))
        fast = cash * np.cumprod(1 + np.asarray(r["combos"][k]["returns"]))
        worst = max(worst, float(np.max(np.abs(bt.equity.to_numpy() - fast))) / cash)
        other_trades += len(bt.trades) != r["combos"][k]["n_trades"]
        charged.append(costs_charged(bars, exp.costs, bt.trades))
        seeds.add(t.task.seed)
        n += 1
    return {"tasks": n, "max_equity_diff": worst, "tasks_with_other_trades": other_trades,
            "agree": worst <= AGREE_TOLERANCE and other_trades == 0,
            "charged_per_seed": charged_per_seed(charged, max(len(seeds), 1))}



def costs_of(p: SweepPlan, sw: Sweep, results: dict[str, dict], key: tuple,
             check: dict) -> dict:
    """The costs the combination ``key`` charged on the test bars, as the backtest report
    states them, with the account currency, the P&L conversion, the grid's cost axes, and the
    money its trades paid (``check``: its backtrader re-run)."""
    from backtests.walkforward.results import costs_block

    model, mc, k = key
    exp = sw.base.override(json.loads(mc)).override(p.rule_combos[k])
    spans = sorted({(r["first"], r["last"]) for r in results.values()})
    bars = pd.concat([p.candles.iloc[a:b + 1] for a, b in spans])
    label = " ".join(x for x in (model, combo_label(json.loads(mc)) if json.loads(mc) else "",
                                 combo_label(p.rule_combos[k])) if x)
    return {**costs_block(bars, exp.costs, conversion_of(exp.data, sw.source)),
            "combination": label,
            "varied_by_grid": [a for a in sw.grid.axes if a.startswith("costs.")],
            **check["charged_per_seed"]}



__all__ = ["AGREE_TOLERANCE", "RANDOM_DRAWS", "TABLE_COLUMNS", "aggregate", "backtrader_check",
           "dsr_hurdle", "trial_sharpes",
           "benchmarks", "costs_of"]
