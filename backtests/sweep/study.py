"""The sweep study: plan, record and verdict, run by ``backtests.execution.driver``.

A sweep crosses ``key=v1,v2,...`` grid axes (the config's override keys). Model-side
keys (sections data, split, dataset, model, train: window, features, labels, preset ...) need a
model trained per value; rule-side keys (strategy, costs, backtest) only re-simulate. Each task is
one (source, model, model setting, seed, fold): it trains once on the fold's training part,
predicts the test part, and runs every rule combination on those predictions with the compiled
simulator (``strategy.fast``). P&L is booked in the account currency as a backtest
books it (``backtests.currency.conversion_of``). Workers compute and return; the driver alone
records.

Per (model, model setting, rule combination) and seed the test parts of all folds are stitched
into one out-of-sample return series, and the seeds are averaged (as a walk-forward
does). The table holds every combination with walk-forward statistics and the deflated Sharpe
ratio, whose number of trials includes this sweep's combinations × seeds and every earlier trial
on the same bars and folds (walk-forward runs and sweeps alike). For the best combination Hansen's
SPA test asks whether any combination tried beats buy-and-hold, and then random entries traded
with the best combination's rules; the top combinations are re-run on backtrader (the engine of
record) and must agree with the compiled simulator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pandas as pd

from backtests.analysis.catalog import jsonable
from backtests.config import config_id
from backtests.execution import Deferred
from backtests.execution.driver import (
    SCHEMA,
    Outcome,
    Placement,
    check_executor,
    find_runs,
    run_study,
)
from backtests.store import Registry, Run
from backtests.sweep.aggregate import (
    RANDOM_DRAWS,
    aggregate,
    backtrader_check,
    benchmarks,
    costs_of,
    dsr_hurdle,
    trial_sharpes,
)
from backtests.sweep.grid import default_axes
from backtests.sweep.tasks import (
    Sweep,
    SweepPlan,
    SweepTask,
    compute_sweep_task,
    compute_sweep_task_cuda,
    evaluate_trained_sweep_task,
    rule_sets,
)
from backtests.walkforward.tasks import plan_tasks, train_in_ensembles
from data import AttnbtError, fingerprint
from models.gbm import is_gbm
from models.rules import is_rule


def plan(sw: Sweep) -> SweepPlan:
    """Load the data, cut the folds, list the tasks; find an unfinished sweep to resume."""
    from backtests.scoring import load_candles

    check_executor(sw.executor)
    candles = load_candles(sw.base.override({"data.source": sw.source}))
    fp = fingerprint(candles)
    rule_combos = sw.grid.rule_combos()
    rules = rule_sets(sw.base, rule_combos)   # rule keys are never model keys: same for all
    tasks = []
    for mc in sw.grid.model_combos():
        base = sw.base.override(mc)
        for t in plan_tasks(base, sw.source, candles, sw.models, sw.seeds, sw.plan, fp,
                            auto_threshold=False):
            tasks.append(SweepTask(t, mc, tuple(rule_combos), rules))
    cid = config_id({"sweep": jsonable(sw.settings()), "tasks": sorted(t.id for t in tasks)})
    stitched_fp = config_id({"data": fp, "folds": sw.plan.to_dict()})[:16]
    finished, resume, done = find_runs(sw.base.runtime.runs_dir, "sweep", cid, "sweep.json",
                                       {t.id for t in tasks})
    return SweepPlan(tasks, candles, rule_combos, sw.grid.model_combos(), cid, stitched_fp,
                     resume, done, finished)


def trials_added(p: SweepPlan, sw: Sweep) -> int:
    """Trials a sweep appends: one per (model, model setting, rule combination, seed) series;
    none when the same sweep has finished (it is reprinted, not recomputed)."""
    return 0 if p.finished is not None else p.n_combinations * len(sw.seeds)


def run(sw: Sweep, *, command: str | None = None,
        progress: Callable[[str], None] | None = None) -> Outcome:
    """Compute the missing tasks, then aggregate and record everything."""
    return run_study(SweepStudy(sw), command=command, progress=progress)


class SweepStudy:
    """A sweep as the study driver runs it (``backtests.execution.driver``)."""

    kind = "sweep"
    noun = "sweep"
    compute = staticmethod(compute_sweep_task)
    compute_cuda = staticmethod(compute_sweep_task_cuda)

    def __init__(self, sw: Sweep) -> None:
        self.sw = sw
        self.runs_dir = sw.base.runtime.runs_dir
        self.placement = Placement(sw.executor, sw.workers, sw.address, sw.device)

    def plan(self) -> SweepPlan:
        return plan(self.sw)

    def create(self, reg: Registry, p: SweepPlan, command: str | None) -> Run:
        sw = self.sw
        return reg.create("sweep", model=",".join(f"{k}/{pr}" for k, pr in sw.models),
                          data=sw.source, config_id=p.config_id, command=command,
                          fingerprint=p.stitched_fingerprint,
                          meta={"schema": SCHEMA, "settings": jsonable(sw.settings()),
                                "config": sw.base.to_dict()})

    def payload(self, p: SweepPlan, task: SweepTask) -> tuple[SweepTask, pd.DataFrame]:
        return task, p.candles

    def ensembles(self, p: SweepPlan, todo: list[SweepTask], say,
                  ) -> Iterator[tuple[int, dict | Deferred | AttnbtError]]:
        """GPU: the (seed × fold) models of one (model, model setting) train together as a
        stacked ensemble; predictions and rule combinations follow on a CPU worker
        (``Deferred``) while the next group trains."""
        tasks = [st.task for st in todo]
        keys = {id(st.task): st.model_key[1] for st in todo}
        for i, result in train_in_ensembles(tasks, lambda t: p.candles,
                                            lambda t: (t.kind, t.preset, keys[id(t)]), say):
            yield i, (result if isinstance(result, BaseException) else
                      Deferred(evaluate_trained_sweep_task, (todo[i], p.candles, result)))

    def failure(self, st: SweepTask, error: BaseException) -> dict:
        return {"task": {**st.task.describe(), "model_combo": jsonable(st.model_combo)},
                "error": str(error)}

    def accepted(self, run_: Run, reg: Registry, st: SweepTask, result: dict) -> str:
        best = max(c["final"] for c in result["combos"])
        secs = result["train"]["seconds"] or 0
        return (f"trained in {secs:.1f} s, {len(result['combos'])} rule combinations, "
                f"best final equity {best:,.0f}")

    def record(self, run_: Run, p: SweepPlan, results: dict[str, dict], failures: list[dict],
               reg: Registry, say) -> tuple[dict, list[dict], pd.DataFrame]:
        say(f"{len(p.rule_combos)} rule combinations × {len(results)} tasks simulated; "
            "aggregating")
        table, summary = record(run_, self.sw, p, results, failures, reg, say)
        return summary, failures, table

    def recorded(self, run_: Run, p: SweepPlan) -> tuple[dict, list[dict], pd.DataFrame]:
        """A finished sweep read back from its run folder (no recompute)."""
        payload = run_.read_json("sweep.json")
        table = pd.read_csv(run_.path / "table.csv", keep_default_na=False, na_values=[""])
        summary = Registry(run_.root).get(run_.id)["summary"]
        return summary, payload.get("failures", []), table


SPA_POOL_FROM = 200   # combinations from which the SPA tests run side by side on the workers


def _spa(pair: tuple) -> dict:
    from backtests.analysis import significance as sig

    return sig.spa_test(*pair)


def _spa_tests(pairs: list[tuple], sw: Sweep) -> list[dict]:
    """``spa_test`` of each (benchmark, models) pair: on a large grid each takes tens of
    seconds, so with several local workers they run in parallel (each seeded alike: the same
    p-values)."""
    from backtests.execution.local import run_tasks

    wide = bool(pairs) and pairs[0][1].ndim == 2 and pairs[0][1].shape[1] >= SPA_POOL_FROM
    workers = min(sw.workers, len(pairs)) if wide and sw.address is None else 1
    return run_tasks(_spa, pairs, workers=workers)


def record(run_: Run, sw: Sweep, p: SweepPlan, results: dict[str, dict], failures: list[dict],
           reg: Registry, say) -> tuple[pd.DataFrame, dict]:
    """Write table.csv, sweep.json, heatmap and report; returns (table, registry summary)."""
    from backtests.reports.sweep import heatmap_frame, render_heatmap_png, render_html

    table, series = aggregate(p, sw, results, reg, run_.id)
    if table.empty:
        raise AttnbtError("no task of the sweep finished: " + "; ".join(
            f["error"] for f in failures[:3]))
    top = []
    for _, row in table.head(sw.top).iterrows():
        check = backtrader_check(p, sw, results, row["_key"])
        top.append({"rank": int(row["rank"]), "model": row["model"],
                    "model_setting": row["model_setting"], "rules": row["rules"], **check})
        say(f"backtrader re-run of #{int(row['rank'])} ({row['rules']}): "
            f"{'agrees' if check['agree'] else 'DIFFERS'} (max equity difference "
            f"{check['max_equity_diff']:.1e} of cash over {check['tasks']} tasks)")
    best_key = table.iloc[0]["_key"]
    best = series[best_key]
    bench = benchmarks(p, sw, results, best_key, best.index)
    all_series = pd.concat([series[k] for k in table["_key"]], axis=1).reindex(best.index)
    pairs = {}
    for name, b in bench.items():
        ok = b.notna() & all_series.notna().all(axis=1)
        pairs[name] = (b[ok].to_numpy(), all_series[ok].to_numpy())
    spa = dict(zip(pairs, _spa_tests(list(pairs.values()), sw), strict=True))
    public = table.drop(columns=["_key"])
    run_.write_text("table.csv", public.to_csv(index=False))
    hx, hy = sw.heatmap or default_axes(sw.grid)
    heat = None
    if hx and hy:
        values = {k.split(".", 1)[1]: v for k, v in sw.grid.axes.items()}
        hx, hy = hx.split(".")[-1], hy.split(".")[-1]
        heat = heatmap_frame(public, hx, hy, x_values=values[hx], y_values=values[hy])
    heat_png = render_heatmap_png(heat, hx, hy) if heat is not None else None
    if heat_png is not None:
        run_.write_bytes("heatmap.png", heat_png)
    equity = pd.DataFrame({"best": sw.base.backtest.cash * (1 + best).cumprod(),
                           **{k: sw.base.backtest.cash * (1 + v.fillna(0)).cumprod()
                              for k, v in bench.items()}})
    equity.index.name = "time"
    run_.write_text("equity.csv", equity.to_csv())
    best_row = public.iloc[0].to_dict()
    best_check = top[0] if top else backtrader_check(p, sw, results, best_key)
    best_net, best_rule = best_network_and_rule(public)
    payload = jsonable({
        "schema": SCHEMA, "run": run_.id, "settings": sw.settings(),
        "combinations": p.n_combinations, "rule_combinations": len(p.rule_combos),
        "model_combinations": len(p.model_combos), "tasks": len(p.tasks),
        "tasks_done": len(results), "trials_added": trials_added(p, sw),
        "best": best_row, "best_network": best_net, "best_rule": best_rule,
        "dsr_hurdle": dsr_hurdle(trial_sharpes(p, reg), best.index),
        "spa": spa, "backtrader": top, "failures": failures,
        "heatmap": {"x": hx, "y": hy} if heat is not None else None,
        "strategy": sw.base.strategy.to_dict(), "costs": sw.base.costs.to_dict(),
        "costs_charged": costs_of(p, sw, results, best_key, best_check),
        "random_draws": RANDOM_DRAWS,
    })
    payload["verdict"] = verdict_text(payload)
    run_.write_json("sweep.json", payload)
    run_.write_text("report.html", render_html(payload, public, heat_png, equity, heat))
    summary = {"combinations": p.n_combinations, "tasks": len(results),
               "failed": len(failures), "best": f"{best_row['model']} {best_row['rules']}",
               "best_sharpe": best_row["sharpe"], "best_dsr": best_row["dsr"],
               "spa_p_buy_and_hold": spa["buy_and_hold"]["p_value"],
               "spa_p_random": spa["random_entries"]["p_value"],
               "backtrader_agrees": all(t["agree"] for t in top)}
    return public, jsonable(summary)



def best_network_and_rule(table: pd.DataFrame) -> tuple[dict | None, dict | None]:
    """The first row of a network and the first row of a rule baseline in ``table`` (ranked
    best first), None where there is none. A network is neither a rule nor ``gbm``: gradient
    boosting is a learner, but the verdict's question is whether the *networks* beat a rule."""
    rule = table["model"].map(is_rule)
    net = ~rule & ~table["model"].map(is_gbm)
    return (table[net].iloc[0].to_dict() if net.any() else None,
            table[rule].iloc[0].to_dict() if rule.any() else None)


def versus_best_rule(payload: dict) -> str:
    """The best network combination against the best rule-baseline combination (the null a
    trivial rule sets), or a note that the sweep ran no rule baseline."""
    net, rule = payload.get("best_network"), payload.get("best_rule")
    if rule is None:
        return ("No rule baseline was swept (add rule/newhl to the models swept): nothing here shows "
                "the networks beat a trivial rule.")
    if net is None:
        return "No network was swept (only rule baselines or gbm)."

    def num(row, key: str, fmt: str) -> str:
        v = row.get(key)
        return "n/a" if v is None or v != v else format(v, fmt)

    a, b = net.get("sharpe"), rule.get("sharpe")
    diff = f" (Sharpe {a - b:+.2f})" if a is not None and b is not None and a == a \
        and b == b else ""
    return (f"Best network {net['model']} {net['rules']}: Sharpe {num(net, 'sharpe', '.2f')}, "
            f"return {num(net, 'total_return_pct', '+.2f')} % vs best rule baseline "
            f"{rule['model']} {rule['rules']}: Sharpe {num(rule, 'sharpe', '.2f')}, return "
            f"{num(rule, 'total_return_pct', '+.2f')} %{diff}.")


def verdict_text(payload: dict) -> str:
    """One paragraph: the best combination, how sure, what the search cost."""
    from backtests.analysis import significance as sig

    b = payload["best"]
    spa = payload["spa"]
    alpha = 0.05

    def num(x, fmt):
        return "n/a" if x is None else format(x, fmt)

    text = (f"Best of {payload['combinations']} combinations: {b['model']} "
            f"{b['model_setting'] + ' ' if b['model_setting'] != '(base)' else ''}{b['rules']}"
            f" — Sharpe {num(b['sharpe'], '.2f')} annualised, return "
            f"{num(b['total_return_pct'], '+.2f')} % out of sample, DSR {num(b['dsr'], '.2f')} "
            f"over {b['dsr_trials']} trials. ")
    dsr = b["dsr"]
    why = sig.hurdle_text(b["dsr_trials"], payload.get("dsr_hurdle"))
    why = f"; {why}" if why else ""
    text += (f"It survives the deflation for every trial on these bars (DSR > 0.95{why}). "
             if dsr is not None and dsr > 1 - alpha else
             f"After paying for the search (DSR ≤ 0.95{why}) it is not significant. ")
    for name, label in (("buy_and_hold", "buy-and-hold"), ("random_entries", "random entries")):
        pv = spa[name]["p_value"]
        text += (f"SPA vs {label}: p = {num(pv, '.2f')} ("
                 + ("some combination beats it" if pv is not None and pv < alpha else
                    "no combination shown to beat it") + "). ")
    text += versus_best_rule(payload) + " "
    agree = all(t["agree"] for t in payload["backtrader"])
    text += ("The top combinations re-run on backtrader agree with the compiled simulator."
             if agree else "WARNING: a top combination re-run on backtrader differs from the "
             "compiled simulator.")
    return text


__all__ = ["Outcome", "SweepStudy", "best_network_and_rule", "plan", "record", "run",
           "trials_added", "verdict_text", "versus_best_rule"]
