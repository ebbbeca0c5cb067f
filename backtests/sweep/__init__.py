"""Sweeps: strategy rules (and model settings) searched walk-forward, the search paid for.

A sweep crosses ``key=v1,v2,...`` grid axes (the config's override keys). Each task trains one
(source, model, model setting, seed, fold) and runs every rule combination on its predictions;
per combination and seed the test parts of all folds are stitched, the seeds averaged, and the
table holds every combination with the deflated Sharpe ratio, whose trials count this sweep's
and every earlier search on the same bars and folds. See ``backtests.sweep.study``.

- ``grid``: the axes (model-side and rule-side), their combinations and labels;
- ``tasks``: what a sweep is asked to do, its tasks, and one task's computation (workers);
- ``aggregate``: the table, benchmarks, backtrader re-run and costs (after the tasks);
- ``study``: plan, record and the verdict, run by ``backtests.execution.driver``.
"""

from __future__ import annotations

from backtests.execution.driver import STITCHED_KIND, Outcome
from backtests.sweep.aggregate import aggregate, backtrader_check, benchmarks, costs_of
from backtests.sweep.grid import MAX_COMBINATIONS, Grid, combo_label, parse_grid
from backtests.sweep.study import plan, record, run, trials_added, verdict_text
from backtests.sweep.tasks import (
    Sweep,
    SweepPlan,
    SweepTask,
    compute_sweep_task,
    rule_sets,
    run_rules,
)

__all__ = ["MAX_COMBINATIONS", "STITCHED_KIND", "Grid", "Outcome", "Sweep", "SweepPlan",
           "SweepTask", "aggregate", "backtrader_check", "benchmarks", "combo_label",
           "compute_sweep_task", "costs_of", "parse_grid", "plan", "record", "rule_sets", "run",
           "run_rules", "trials_added", "verdict_text"]
