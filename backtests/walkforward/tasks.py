"""Walk-forward tasks: one (source, model, seed, fold) each, with the config id of its inputs.

A task trains on its fold's training part (purged, embargoed), picks the signal threshold on the
validation part with the run's costs (``backtests.simulation.choose_threshold``, the rule
``strategy.threshold: auto`` uses) and backtests the unseen test part, booking P&L in the account
currency as ``attnbt backtest`` does (``backtests.currency.conversion_of``). ``compute_task`` is pure compute
(a pool worker runs it); it returns a plain dict that the driver writes as the task's file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from itertools import product

import numpy as np
import pandas as pd

from backtests.analysis.catalog import jsonable
from backtests.analysis.significance import moments
from backtests.config import ID_SINCE, RANGES, ConfigError, Experiment, FoldsConfig, config_id
from backtests.currency import conversion_of, rates
from backtests.simulation import check_costs, choose_threshold, run_backtest
from data.dataset import CandleDataset
from data.errors import AttnbtError, DataError
from data.folds import Fold, walk_forward
from models.calibration import calibrator_of
from models.checkpoint import LoadedModel, ModelMeta
from models.evaluate import (
    article_metrics,
    brier_scores,
    classification_metrics,
    confusion,
    reliability,
)
from models.gbm import KIND as GBM_KIND
from models.predict import Predictor
from models.rules import KIND as RULE_KIND
from models.rules import rule_probs
from models.train import TrainResult, fit
from strategy.rules import label_exits

META_KEYS = ("meta_threshold", "meta_folds", "meta_epochs")

# 2,000 + 500 + 500 bars stepped by 500: 5 folds on the 5,000-bar sample.
DEFAULT_BARS = {k: getattr(FoldsConfig, k) for k in ("train_bars", "val_bars", "test_bars")}
# The fewest bars a test part may have. Each test part is a trial of its own (per-bar Sharpe,
# skewness and kurtosis of its returns go into the registry and the deflated Sharpe ratio): the
# standard error of a per-bar Sharpe ratio is about 1/sqrt(n) and that of the kurtosis
# sqrt(24/n), so below ~100 bars they are noise about as large as any effect, and the variance of
# the trials' Sharpe ratios (which deflates every later result) would be mostly that noise. 100
# bars also hold four trades of the default 24-bar holding limit end to end.
MIN_TEST_BARS = 100
# Seeds per (model, fold): each is a network trained per fold; seeds 0 … N-1 must be valid seeds.
MAX_SEEDS = 1000
DEFAULT_PRESET = {"attention": "article", "dense": "matched", "conv": "article",
                  "lstm": "article", "gbm": "hgb", "rule": "newhl"}
# The order in which tasks are handed to the workers: the longest first, so that two workers do
# not end with one long task running while the other waits (it changes no result). Seconds per
# task of `attnbt walkforward --models attention,dense,conv,lstm --seeds 3 --workers 2` on the
# sample (2-core CPU, docs/benchmarks.md): lstm 24, attention 10, conv 2.5, dense 2.4, rules 0.
COST_RANK = {"lstm": 4, "attention": 3, "conv": 2, "dense": 1, "gbm": 1, "rule": 0}
# Kinds whose result does not depend on train.seed: planned for the first seed only.
SEEDLESS = (RULE_KIND, GBM_KIND)


@dataclass(frozen=True)
class FoldPlan:
    """How the bars of each source are cut into folds (the keys ``folds.*``: ``embargo`` is
    ``folds.embargo_bars``)."""

    train_bars: int = DEFAULT_BARS["train_bars"]
    val_bars: int = DEFAULT_BARS["val_bars"]
    test_bars: int = DEFAULT_BARS["test_bars"]
    step_bars: int | None = None       # default: test_bars
    expanding: bool = False
    embargo: int = 0

    def __post_init__(self) -> None:
        if self.train_bars < 2 or self.val_bars < 1:
            raise ConfigError("folds.train_bars must be at least 2, folds.val_bars at least 1")
        if self.test_bars < MIN_TEST_BARS:
            raise ConfigError(f"folds.test_bars {self.test_bars}: a test part needs at least "
                              f"{MIN_TEST_BARS} bars for its Sharpe ratio, skewness and kurtosis "
                              "(each test part is a trial) to be more than noise")
        if self.embargo < 0:
            raise ConfigError("folds.embargo_bars must be 0 or more")
        if self.val_bars <= self.embargo or self.test_bars <= self.embargo:
            raise ConfigError(f"folds.val_bars ({self.val_bars}) and folds.test_bars "
                              f"({self.test_bars}) must exceed folds.embargo_bars "
                              f"({self.embargo}): the validation and test parts would be empty")
        if self.step_bars is not None and self.step_bars < self.test_bars:
            raise ConfigError(f"folds.step_bars ({self.step_bars}) must be at least "
                              f"folds.test_bars ({self.test_bars}): test parts must not overlap")

    @classmethod
    def from_config(cls, cfg: FoldsConfig) -> FoldPlan:
        """The plan of the ``folds.*`` settings."""
        return cls(cfg.train_bars, cfg.val_bars, cfg.test_bars, cfg.step_bars, cfg.expanding,
                   cfg.embargo_bars)

    def folds(self, index: pd.DatetimeIndex) -> list[Fold]:
        return walk_forward(index, train_bars=self.train_bars, val_bars=self.val_bars,
                            test_bars=self.test_bars, step_bars=self.step_bars,
                            expanding=self.expanding, embargo=self.embargo)

    def to_dict(self) -> dict:
        return {"train_bars": self.train_bars, "val_bars": self.val_bars,
                "test_bars": self.test_bars, "step_bars": self.step_bars or self.test_bars,
                "expanding": self.expanding, "embargo": self.embargo}


def seed_list(n: int) -> list[int]:
    """Seeds 0 … n-1 (``--seeds n``), n from 1 to ``MAX_SEEDS``."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SEEDS:
        raise ConfigError(f"`seeds` {n}: give 1 to {MAX_SEEDS} seeds (each trains every model "
                          "on every fold once more)")
    return list(range(n))


def check_seeds(seeds: list[int]) -> None:
    """Refuse an empty, too long or repeating seed list, or a seed ``train.seed`` refuses."""
    if not 1 <= len(seeds) <= MAX_SEEDS:
        raise ConfigError(f"{len(seeds)} seeds: give 1 to {MAX_SEEDS}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds {seeds}: a seed is listed twice")
    lo, hi = RANGES["train.seed"][:2]
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or not lo <= s <= hi]
    if bad:
        raise ConfigError(f"seed {bad[0]!r}: a seed is a whole number from {lo} to {hi:.0f}")


@dataclass(frozen=True)
class Task:
    """One (source, model, seed, fold): its experiment, fold, and the id of those inputs."""

    source: str
    kind: str
    preset: str
    seed: int
    fold_no: int
    fold: Fold
    exp: Experiment
    data_fingerprint: str
    auto_threshold: bool = True
    # data.pool: the (source, data fingerprint) of every instrument the model is trained on
    pool: tuple[tuple[str, str], ...] = ()

    @property
    def model(self) -> str:
        """``kind/preset``; ``kind/preset+meta`` for the primary + meta-model arm."""
        return f"{self.kind}/{self.preset}" + ("+meta" if self.exp.strategy.meta else "")

    @property
    def id(self) -> str:
        """Hash of everything the task's result depends on (data, fold, config, threshold rule,
        and the P&L conversion where there is one: a USD/XXX task booked in USD is not the
        unconverted task that attnbt computed before it converted)."""
        payload = {"experiment": self.exp.to_dict(for_id=True), "fold": self.fold.to_dict(),
                   "data": self.data_fingerprint, "auto_threshold": self.auto_threshold}
        if self.pool:       # a pooled task's model depends on every instrument's data
            payload["pool"] = [list(p) for p in self.pool]
            payload["pnl_conversion"] = {s: conversion_of(self.exp.data, s).rule
                                         for s, _ in self.pool}
        else:
            rule = conversion_of(self.exp.data).rule
            if rule != "none":
                payload["pnl_conversion"] = rule
        return config_id(payload)

    @property
    def label(self) -> str:
        return f"{self.source} {self.model} seed {self.seed} fold {self.fold_no}"

    @property
    def cost(self) -> int:
        """Rank of how long the task takes (``COST_RANK``): the driver starts long ones first."""
        return COST_RANK.get(self.kind, 0)

    def describe(self) -> dict:
        """The task's inputs as plain JSON (what a failure report shows)."""
        f = self.fold
        return {"id": self.id, "source": self.source, "model": self.model, "kind": self.kind,
                "preset": self.preset, "seed": self.seed, "fold": self.fold_no,
                "train": [str(f.train.start), str(f.train.end)],
                "val": [str(f.validation.start), str(f.validation.end)],
                "test": [str(f.test.start), str(f.test.end)], "embargo": f.embargo,
                "data_fingerprint": self.data_fingerprint, "train_id": self.exp.train_id,
                "threshold": "auto (validation)" if self.auto_threshold
                else self.exp.strategy.threshold}


def parse_models(models: str, presets: str | None = None) -> list[tuple[str, str]]:
    """``attention,dense`` (+ ``--presets article,matched`` or ``dense=article``) → (kind,
    preset) pairs; ``kind/preset`` works in ``--models`` too."""
    from backtests.config import MODEL_PRESETS, check_preset

    names = [m.strip() for m in models.split(",") if m.strip()]
    if not names:
        raise ConfigError("`models`: give at least one model, e.g. attention,dense")
    given = [p.strip() for p in (presets or "").split(",") if p.strip()]
    by_kind = dict(p.split("=", 1) for p in given if "=" in p)
    aligned = [p for p in given if "=" not in p]
    if aligned and len(aligned) != len(names):
        raise ConfigError(f"`presets`: give one preset per model ({len(names)}), or kind=preset")
    out = []
    for i, name in enumerate(names):
        kind, _, preset = name.partition("/")
        if kind not in MODEL_PRESETS:
            raise ConfigError(f"`models`: unknown model {kind!r}; choose "
                              f"{', '.join(MODEL_PRESETS)}")
        preset = preset or (aligned[i] if aligned else by_kind.get(kind, DEFAULT_PRESET[kind]))
        check_preset(kind, preset, "`presets`")
        if (kind, preset) not in out:
            out.append((kind, preset))
    return out


def plan_tasks(base: Experiment, source: str, candles: pd.DataFrame, models: list[tuple[str, str]],
               seeds: list[int], plan: FoldPlan, data_fingerprint: str,
               auto_threshold: bool = True) -> list[Task]:
    """The tasks of one source, ordered model × seed × fold (a DataError for an instrument
    whose P&L cannot be converted to the account currency). A rule baseline has no seed (nor
    has the gradient-boosting one: ``models.gbm`` is deterministic): it
    is planned for the first seed only, so its identical results are one trial, not one per
    seed (the deflated Sharpe ratio charges each trial). With ``strategy.meta`` each model also
    gets a primary + meta arm (``kind/preset+meta``, its own tasks and trials) beside the
    primary alone, whose tasks keep the ids they have without meta."""
    conversion_of(base.data, source)
    arms = (False, True) if base.strategy.meta else (False,)
    try:
        folds = plan.folds(candles.index)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    tasks = []
    for kind, preset in models:
        for arm, seed in product(arms, seeds[:1] if kind in SEEDLESS else seeds):
            over = {"data.source": source, "model.kind": kind, "model.preset": preset,
                    "train.seed": seed, "split.embargo": plan.embargo, "strategy.meta": arm}
            if not arm:     # the primary alone: the meta settings do not change its result,
                # so they stay at the values that leave them out of its config id
                over.update({f"strategy.{k}": ID_SINCE[f"strategy.{k}"] for k in META_KEYS})
            exp = base.override(over)
            for i, fold in enumerate(folds, 1):
                tasks.append(Task(source, kind, preset, seed, i, fold, exp, data_fingerprint,
                                  auto_threshold))
    return tasks


# --- computing one task ---------------------------------------------------------------------------
def train_fold(task: Task, candles: pd.DataFrame) -> TrainResult:
    """Train the task's model on its fold (pure compute)."""
    cfg = task.exp.train
    if cfg.device == "auto":     # the CPU pool: never grab a GPU from a worker
        cfg = replace(cfg, device="cpu")
    return fit(candles, task.exp.dataset, task.fold, kind=task.kind, preset=task.preset, cfg=cfg)


def predict_bars(result: TrainResult, candles: pd.DataFrame, first: int, last: int,
                 chunk: int = 1024, dataset: CandleDataset | None = None) -> pd.DataFrame:
    """Probabilities for bars first … last (features of the whole frame, as in training, scored
    by ``models.predict.Predictor``; a rule baseline reads the candles up to each bar)."""
    if result.kind == RULE_KIND:
        probs = rule_probs(candles, result.config, result.spec.labels)
        probs.iloc[:first] = np.nan
        probs.iloc[last + 1:] = np.nan
        return probs
    return predictor_of(result).predict_frame(candles, chunk, first=first, last=last,
                                              dataset=dataset)


def predictor_of(result: TrainResult) -> Predictor:
    """The batched predictor of a model just trained (on the CPU; nothing on disk)."""
    meta = ModelMeta(result.kind, result.config, result.spec, result.normaliser, result.fold,
                     raw={}, calibration=calibrator_of(result.meta))
    return Predictor(LoadedModel(result.model, meta, model_hash=""), "cpu")


def evaluate_task(task: Task, candles: pd.DataFrame, result: TrainResult) -> dict:
    """Threshold on validation, metrics and backtest on the test part: the task's result."""
    exp = task.exp
    fold = task.fold
    v_first, v_last = fold.bounds(candles.index, "val")
    t_first, t_last = fold.bounds(candles.index, "test")
    ds = CandleDataset(candles, result.spec)        # features once: scoring and the labels
    probs = predict_bars(result, candles, v_first, t_last, dataset=ds)
    bars = candles.iloc[t_first:t_last + 1]
    check_costs(bars, exp.costs)
    conv = conversion_of(exp.data)
    params, table = label_exits(exp.strategy, exp.dataset.labels), []   # triple: its exits
    if task.auto_threshold:
        if v_last - v_first < 2:
            raise DataError(f"{task.label}: the validation part holds {v_last - v_first + 1} "
                            "bars, too few to choose the threshold on; raise folds.val_bars "
                            "or give strategy.threshold", rule="no validation bars")
        params, table = choose_threshold(candles.iloc[v_first:v_last + 1],
                                         probs.iloc[v_first:v_last + 1], params,
                                         exp.costs, exp.backtest.cash, conv,
                                         exp.backtest.threshold_grid)
    trade_probs, meta, threshold = probs, None, params.threshold
    if exp.strategy.meta:
        trade_probs, params, meta = meta_arm(task, candles, probs, params, t_first, t_last)
    bt = run_backtest(bars, trade_probs.iloc[t_first:t_last + 1], params, exp.costs,
                      exp.backtest.cash, rates=rates(bars, conv))

    ends = ds.ends("test", fold)
    if len(ends) == 0:
        raise DataError(f"{task.label}: the test part holds no labelled windows",
                        rule="empty period")
    y, p = ds.labels[ends], probs.to_numpy()[ends]
    cls, art = classification_metrics(y, p), article_metrics(y, p)
    freq = np.bincount(y, minlength=3) / len(y)
    signal_share = freq[1] + freq[2]
    base_hit = 100 * (freq[1] ** 2 + freq[2] ** 2) / signal_share if signal_share else np.nan
    pred = p.argmax(1)
    test_labels = np.full(t_last - t_first + 1, -1)
    test_labels[ends - t_first] = ds.labels[ends]     # the labelled windows the metrics score
    equity = bt.equity
    values = equity.to_numpy(float)
    returns = np.diff(np.concatenate([[bt.cash], values])) / np.concatenate([[bt.cash],
                                                                               values[:-1]])
    from backtests.analysis.performance import costs_charged
    from data import fingerprint

    return {
        "task": task.describe(),
        "threshold": threshold,
        "threshold_table": table,
        "metrics": {"hit_pct": art["hit_pct"], "missed_pct": art["missed_pct"],
                    "error": art["error"], "macro_f1": cls["macro_f1"],
                    "accuracy": cls["accuracy"], "base_hit_pct": float(base_hit),
                    "signals": art["signals"], "fractals": art["fractals"],
                    "hits": int(((pred == y) & (pred != 0)).sum()),
                    "missed": int(((pred == 0) & (y != 0)).sum()),
                    "samples": int(len(y)), "confusion": confusion(y, pred).tolist(),
                    **brier_scores(y, p), "reliability": reliability(y, p),
                    "calibration": result.meta.get("calibration", {}).get("method", "none")},
        "stats": jsonable(dict(bt.stats)),
        "train": {k: result.metrics.get(k) for k in ("best_epoch", "epochs_run", "seconds")},
        "times": [t.isoformat() for t in equity.index],
        "equity": values.tolist(),
        "returns": returns.tolist(),
        "cash": bt.cash,
        "fingerprint": fingerprint(bars),
        # the model's probabilities on each test bar (p_none, p_buy, p_sell; a +meta arm: its
        # primary's) and the bar's label where the metrics score it: predictions.csv
        "probs": jsonable(probs.iloc[t_first:t_last + 1].to_numpy().tolist()),
        "labels": [int(v) if v >= 0 else None for v in test_labels],
        "moments": jsonable(moments(returns)),
        "costs_charged": costs_charged(bars, exp.costs, bt.trades),
        **({"meta": meta} if meta is not None else {}),
    }


def meta_arm(task: Task, candles: pd.DataFrame, probs: pd.DataFrame, params, t_first: int,
             t_last: int) -> tuple[pd.DataFrame, object, dict]:
    """The primary + meta arm (``backtests.meta``): inner primaries on the fold's training part
    (the task's kind, preset, seed and settings, ``strategy.meta_epochs`` epochs, on the task's
    device: the CPU unless it trains on a GPU), the meta model on their out-of-fold signals,
    then the test signals filtered and sized."""
    from backtests.meta import apply_meta, choose_meta_threshold, train_meta
    from backtests.simulation import THRESHOLD_GRID

    exp = task.exp
    cfg = replace(exp.train, device="cpu" if exp.train.device == "auto" else exp.train.device,
                  epochs=exp.strategy.meta_epochs or exp.train.epochs)

    def train_and_predict(fold: Fold, first: int, last: int) -> pd.DataFrame:
        inner = fit(candles, exp.dataset, fold, kind=task.kind, preset=task.preset, cfg=cfg)
        return predict_bars(inner, candles, first, last)

    conv_rates = rates(candles, conversion_of(exp.data))
    floor = min(THRESHOLD_GRID) if task.auto_threshold else exp.strategy.threshold
    trained = train_meta(candles, exp.dataset, task.fold, exp.strategy, exp.costs,
                         exp.backtest.cash, conv_rates, train_and_predict,
                         signal_threshold=floor, seed=exp.train.seed)
    table = []
    if params.meta_threshold is None:       # chosen on the validation part, as the primary's
        v_first, v_last = task.fold.bounds(candles.index, "val")
        chosen, table = choose_meta_threshold(trained, candles, exp.dataset, probs, v_first,
                                              v_last, params, exp.costs, exp.backtest.cash,
                                              conv_rates)
        params = replace(params, meta_threshold=chosen)
    trade_probs, trade_params, info = apply_meta(trained, candles, exp.dataset, probs, t_first,
                                                 t_last, params, exp.costs, conv_rates)
    return trade_probs, trade_params, {**trained.describe(), **info,
                                       "threshold": params.meta_threshold,
                                       "threshold_table": table,
                                       "folds": exp.strategy.meta_folds}


def compute_task(payload: tuple[Task, pd.DataFrame]) -> dict:
    """A pool task: train, choose the threshold, backtest; returns the task's result."""
    task, candles = payload
    return evaluate_task(task, candles, train_fold(task, candles))


def evaluate_trained(payload: tuple[Task, pd.DataFrame, TrainResult]) -> dict:
    """A CPU worker's part of a task trained on the GPU: ``evaluate_task`` (picklable)."""
    return evaluate_task(*payload)


def compute_task_cuda(payload: tuple[Task, pd.DataFrame]) -> dict:
    """``compute_task`` training on the worker's GPU (a Ray task given a share of one). The
    device is not part of the task's id: the task is the same, only where it trains differs."""
    task, candles = payload
    task = replace(task, exp=task.exp.override({"train.device": "cuda"}))
    return compute_task((task, candles))


def train_in_ensembles(tasks: list[Task], candles_of: Callable[[Task], pd.DataFrame],
                       group_of: Callable[[Task], tuple], say: Callable[[str], None],
                       ) -> Iterator[tuple[int, TrainResult | AttnbtError]]:
    """GPU: the tasks of one group (same data, model and settings; seeds and folds differ)
    train together as one stacked ensemble (``models.ensemble``; dropout models one at a time).
    Yields (position in ``tasks``, its TrainResult or the error that stopped it)."""
    from models.ensemble import train_ensemble

    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(tasks):
        groups.setdefault(group_of(t), []).append(i)
    for members in groups.values():
        first = tasks[members[0]]
        if first.kind in (RULE_KIND, GBM_KIND):   # a no-op / scikit-learn on the CPU: one by one
            for i in members:
                try:
                    yield i, train_fold(tasks[i], candles_of(tasks[i]))
                except AttnbtError as exc:
                    yield i, exc
            continue
        say(f"training {len(members)} {first.model} models on {first.source} together on the "
            "GPU")
        try:
            trained = train_ensemble(candles_of(first), first.exp.dataset,
                                     [tasks[i].fold for i in members], kind=first.kind,
                                     preset=first.preset,
                                     cfgs=[replace(tasks[i].exp.train, device="cuda")
                                           for i in members])
        except AttnbtError as exc:
            trained = [exc] * len(members)
        yield from zip(members, trained, strict=True)


__all__ = ["DEFAULT_BARS", "DEFAULT_PRESET", "FoldPlan", "Task", "compute_task",
           "compute_task_cuda", "evaluate_task", "evaluate_trained", "parse_models", "plan_tasks", "predict_bars",
           "train_fold", "train_in_ensembles"]
