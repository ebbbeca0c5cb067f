"""What a sweep is asked to do, its tasks and plan, and one task's computation (a worker runs it).

Each task is one (source, model, model setting, seed, fold): it trains once on the fold's
training part, predicts the test part, and runs every rule combination on those predictions with
the compiled simulator (``strategy.fast``). P&L is booked in the account currency as a backtest
books it (``backtests.currency.conversion_of``). Workers compute and return; the driver records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from backtests.analysis.catalog import jsonable
from backtests.config import Experiment, config_id
from backtests.currency import conversion_of, rates
from backtests.execution import check_workers
from backtests.store import Run
from backtests.sweep.grid import Grid, check_size, combo_label
from backtests.walkforward.tasks import FoldPlan, Task, check_seeds, predict_bars, train_fold
from strategy.fractal import Costs, FractalParams
from strategy.rules import label_exits


@dataclass
class Sweep:
    base: Experiment
    source: str
    models: list[tuple[str, str]]
    seeds: list[int]
    grid: Grid
    plan: FoldPlan = field(default_factory=FoldPlan)
    executor: str = "local"
    address: str | None = None
    workers: int = 1
    top: int = 3
    heatmap: tuple[str, str] | None = None
    device: str = "auto"        # auto | cpu | cuda: cuda trains stacked ensembles

    def __post_init__(self) -> None:
        check_size(len(self.models) * self.grid.size, " × ".join(
            [f"{len(self.models)} models"]
            + [f"{len(v)} {k.split('.', 1)[1]}" for k, v in self.grid.axes.items()]))
        check_seeds(self.seeds)
        check_workers(self.workers, here=self.address is None)

    def settings(self) -> dict:
        return {"source": self.source, "models": [f"{k}/{p}" for k, p in self.models],
                "seeds": self.seeds, "folds": self.plan.to_dict(),
                "grid": {k: v for k, v in self.grid.axes.items()}}


@dataclass(frozen=True)
class RuleSet:
    """The simulation side of one rule combination (built once in the driver)."""

    params: FractalParams
    costs: Costs
    cash: float


def rule_sets(base: Experiment, combos: list[dict]) -> tuple[RuleSet, ...]:
    """Each combination applied to ``base`` (validated, so a bad one fails before any task)."""
    out = []
    for combo in combos:
        e = base.override(combo)
        out.append(RuleSet(e.strategy, e.costs, e.backtest.cash))
    return tuple(out)


@dataclass(frozen=True)
class SweepTask:
    """One (model, model setting, seed, fold) and the rule combinations run on its predictions."""

    task: Task
    model_combo: dict
    rule_combos: tuple[dict, ...]
    rules: tuple[RuleSet, ...] = ()     # what each combination sets (same order), prebuilt

    @property
    def id(self) -> str:
        return config_id({"task": self.task.id, "rules": [jsonable(c) for c in
                                                           self.rule_combos]})

    @property
    def model_key(self) -> tuple[str, str]:
        """(model, model setting as canonical JSON): the series this task belongs to."""
        return self.task.model, json.dumps(jsonable(self.model_combo), sort_keys=True)

    @property
    def cost(self) -> int:
        return self.task.cost

    @property
    def label(self) -> str:
        extra = f" {combo_label(self.model_combo)}" if self.model_combo else ""
        return f"{self.task.model}{extra} seed {self.task.seed} fold {self.task.fold_no}"


@dataclass
class SweepPlan:
    tasks: list[SweepTask]
    candles: pd.DataFrame
    rule_combos: list[dict]
    model_combos: list[dict]
    config_id: str
    stitched_fingerprint: str
    resume: Run | None
    done: set[str]
    finished: Run | None = None     # a finished sweep of the same config: reprinted, not redone

    @property
    def n_combinations(self) -> int:
        return len(self.models_x_combos)

    @property
    def models_x_combos(self) -> list[tuple[str, dict, dict]]:
        names = sorted({t.model_key for t in self.tasks})
        return [(m, json.loads(mc), rc) for m, mc in names for rc in self.rule_combos]



def run_rules(bars: pd.DataFrame, probs: pd.DataFrame, rules: tuple[RuleSet, ...],
              bar_rates: np.ndarray | None = None) -> list[dict]:
    """Every rule combination on the same bars and predictions (compiled simulator): per-bar
    returns, final equity, trades and winning trades (net of costs, as the trades frame has it).
    ``bar_rates``: account currency per unit of quote currency at each bar (None: the same)."""
    from backtests.simulation import check_costs
    from strategy.engine import Booking
    from strategy.fast import (
        F_CM_IN,
        F_CM_OUT,
        F_PIN,
        F_POUT,
        F_SIZE,
        I_DIR,
        I_ENTRY,
        I_EXIT,
        prepare,
        run_prepared,
    )
    from strategy.rules import atr_array, hour_mask, needs_atr, parse_hours

    prep = prepare(bars, probs, bar_rates)
    book = Booking(bars, bar_rates)
    spreads: dict[str, np.ndarray] = {}   # what several combinations share, computed once
    atrs: dict[int, np.ndarray] = {}
    hours: dict[str, np.ndarray] = {}
    out = []
    for rule in rules:
        key = repr(rule.costs)
        if key not in spreads:
            check_costs(bars, rule.costs)
            spreads[key] = rule.costs.spread_array(bars)
        p = rule.params
        if needs_atr(p) and p.atr_period not in atrs:
            atrs[p.atr_period] = atr_array(bars, p.atr_period)
        if p.hours not in hours:
            hours[p.hours] = hour_mask(prep.index, parse_hours(p.hours))
        res = run_prepared(prep, p, rule.costs, rule.cash, candles=bars, spreads=spreads[key],
                           atr=atrs.get(p.atr_period) if needs_atr(p) else None,
                           hour_ok=hours[p.hours])
        tf, ti = res.trades_float, res.trades_int
        move = book.move(ti[:, I_ENTRY], tf[:, F_PIN], ti[:, I_EXIT], tf[:, F_POUT])
        pnl = move * ti[:, I_DIR] * tf[:, F_SIZE] - (tf[:, F_CM_IN] + tf[:, F_CM_OUT])
        values = res.equity
        prev = np.concatenate([[rule.cash], values[:-1]])
        out.append({"returns": ((values - prev) / prev).tolist(), "final": float(values[-1]),
                    "n_trades": int(len(tf)), "wins": int((pnl > 0).sum())})
    return out


def compute_sweep_task(payload: tuple[SweepTask, pd.DataFrame]) -> dict:
    """Train the task's model, predict its test part, run every rule combination."""
    st, candles = payload
    return evaluate_sweep_task(st, candles, train_fold(st.task, candles))


def evaluate_sweep_task(st: SweepTask, candles: pd.DataFrame, trained) -> dict:
    """Predict a trained task's test part and run every rule combination on it."""
    task = st.task
    t_first, t_last = task.fold.bounds(candles.index, "test")
    probs = predict_bars(trained, candles, t_first, t_last).iloc[t_first:t_last + 1]
    bars = candles.iloc[t_first:t_last + 1]
    labels = task.exp.dataset.labels      # a triple-barrier model trades its own exits
    rules = tuple(replace(r, params=label_exits(r.params, labels)) for r in st.rules)
    combos = run_rules(bars, probs, rules, rates(bars, conversion_of(task.exp.data)))
    return {"task": {**task.describe(), "sweep_task": st.id,
                     "model_combo": jsonable(st.model_combo)},
            "first": int(t_first), "last": int(t_last),
            "times": [t.isoformat() for t in bars.index],
            "probs": probs.to_numpy().tolist(), "combos": combos,
            "train": {k: trained.metrics.get(k) for k in ("best_epoch", "epochs_run",
                                                          "seconds")}}



def evaluate_trained_sweep_task(payload: tuple[SweepTask, pd.DataFrame, object]) -> dict:
    """A CPU worker's part of a sweep task trained on the GPU: ``evaluate_sweep_task``."""
    return evaluate_sweep_task(*payload)


def compute_sweep_task_cuda(payload: tuple[SweepTask, pd.DataFrame]) -> dict:
    """``compute_sweep_task`` training on the worker's GPU (a Ray task given a share of one)."""
    st, candles = payload
    task = replace(st.task, exp=st.task.exp.override({"train.device": "cuda"}))
    return compute_sweep_task((replace(st, task=task), candles))



__all__ = ["RuleSet", "Sweep", "SweepPlan", "SweepTask", "compute_sweep_task",
           "compute_sweep_task_cuda", "evaluate_sweep_task", "evaluate_trained_sweep_task",
           "rule_sets", "run_rules"]
