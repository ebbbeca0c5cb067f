"""Walk-forward with several instruments pooled into one model (``data.pool = true``).

One calendar plan (``data.pool.calendar``: the union of the instruments' bar times) cuts the
folds, so every instrument's fold is the same periods of time. A pooled task is one (model,
seed, fold): it trains ONE model on the windows of every instrument (``models.train.fit`` on
``{source: candles}``; each instrument normalised by its own training part), then evaluates it
on each instrument's validation (threshold) and test parts as a single-source task would, with
that instrument's normaliser, costs and P&L conversion. Its result holds one single-source
result per instrument (``instruments``); :func:`expand` turns pooled tasks and results into the
per-instrument tasks and results the record, the tables and the trials use, so each instrument
is a row, a trial per task and a stitched series of its own (the DSR charges every instrument).

A rule baseline learns nothing: its pooled task scores each instrument alone.
``strategy.meta`` is not pooled (its inner primaries train on one instrument): refused.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from backtests.config import ConfigError, Experiment, config_id
from backtests.currency import conversion_of
from data.errors import AttnbtError, DataError
from data.pool import calendar
from data.summary import timeframe
from models.gbm import KIND as GBM_KIND
from models.rules import KIND as RULE_KIND
from models.train import fit
from strategy.fractal import FractalParams

POOLED_SOURCE = "pooled"


def check_pool(base: Experiment, sources: list[str]) -> None:
    if base.strategy.meta:
        raise ConfigError("strategy.meta with data.pool: the meta model's inner primaries "
                          "train on one instrument; run the meta arm per source (data.pool = "
                          "false)")
    if len(set(sources)) != len(sources):
        raise ConfigError(f"data.pool: a source is listed twice ({', '.join(sources)})")


def plan_pooled_tasks(base: Experiment, candles: dict[str, pd.DataFrame], fps: dict[str, str],
                      models: list[tuple[str, str]], seeds: list[int], plan,
                      auto_threshold: bool = True) -> list:
    """The pooled tasks, ordered model × seed × fold, on the instruments' one calendar."""
    from backtests.walkforward.tasks import META_KEYS, Task

    sources = list(candles)
    check_pool(base, sources)
    for s in sources:
        conversion_of(base.data, s)
    frames = {str(timeframe(c.index)) for c in candles.values()}
    if len(frames) > 1:
        raise DataError(f"data.pool: the instruments have different timeframes "
                        f"({', '.join(sorted(frames))}); pool bars of one timeframe",
                        rule="mixed timeframes")
    try:
        folds = plan.folds(calendar({s: c.index for s, c in candles.items()}))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    pool = tuple((s, fps[s]) for s in sources)
    fp = config_id({"pool": [list(p) for p in pool]})[:16]
    tasks = []
    for kind, preset in models:
        for seed in seeds[:1] if kind in (RULE_KIND, GBM_KIND) else seeds:
            exp = base.override({"data.source": ",".join(sources), "model.kind": kind,
                                 "model.preset": preset, "train.seed": seed,
                                 "split.embargo": plan.embargo, "strategy.meta": False,
                                 **{f"strategy.{k}": getattr(FractalParams(), k)
                                    for k in META_KEYS}})
            for i, fold in enumerate(folds, 1):
                tasks.append(Task(POOLED_SOURCE, kind, preset, seed, i, fold, exp, fp,
                                  auto_threshold, pool))
    return tasks


def view(task, source: str):
    """The pooled task as seen on one instrument: that source, its data fingerprint, the same
    model (its id names the pool, so it is no single-source task's id). A rule baseline pools
    nothing: its view IS the single-source task on that fold (the same id, so the registry
    does not count the same trial twice)."""
    fp = dict(task.pool)[source]
    if task.kind == RULE_KIND:
        return replace(task, source=source, data_fingerprint=fp, pool=(),
                       exp=task.exp.override({"data.source": source, "data.pool": False}))
    return replace(task, source=source, data_fingerprint=fp,
                   exp=task.exp.override({"data.source": source}))


def compute_pooled_task(payload: tuple) -> dict:
    """Train the pooled model once, evaluate it on every instrument (pure compute). An
    instrument that cannot be evaluated (no bars in its test part …) gets its error."""
    from backtests.walkforward.tasks import evaluate_task, train_fold

    task, candles = payload
    out: dict[str, dict] = {}
    result = None
    if task.kind != RULE_KIND:
        cfg = task.exp.train
        if cfg.device == "auto":
            cfg = replace(cfg, device="cpu")
        result = fit(candles, task.exp.dataset, task.fold, kind=task.kind, preset=task.preset,
                     cfg=cfg)
    for source, c in candles.items():
        v = view(task, source)
        try:
            if result is None:
                r = train_fold(v, c)
            elif source not in result.normaliser.by_source:
                raise AttnbtError(f"{v.label}: {source} has no bars in the training part, so "
                                  "the pooled model has no normaliser for it")
            else:
                r = replace(result, normaliser=result.normaliser.of(source))
            out[source] = evaluate_task(v, c, r)
        except AttnbtError as exc:
            out[source] = {"error": str(exc), "task": v.describe()}
    return {"pooled": True, "instruments": out}


def compute_pooled_task_cuda(payload: tuple) -> dict:
    task, candles = payload
    return compute_pooled_task((replace(task, exp=task.exp.override({"train.device": "cuda"})),
                                candles))


def expand(tasks: list, results: dict[str, dict]) -> tuple[list, dict[str, dict], list[dict]]:
    """Per-instrument (tasks, results by task id, failures) of pooled tasks and results."""
    views, out, failures = [], {}, []
    for t in tasks:
        r = results.get(t.id)
        for source, _ in t.pool:
            v = view(t, source)
            views.append(v)
            if r is None:
                continue
            one = r["instruments"].get(source)
            if one is None or "error" in one:
                failures.append({"task": v.describe(),
                                 "error": (one or {}).get("error", "not evaluated")})
            else:
                out[v.id] = one
    return views, out, failures


def instrument_results(task, result: dict) -> list[tuple[object, dict]]:
    """(view task, its result) of each instrument a pooled task evaluated."""
    return [(view(task, s), r) for s, r in result["instruments"].items() if "error" not in r]


def pooled_summary(models: dict) -> dict:
    """Per model, its figures over the instruments (each instrument's stitched row is in
    ``models``): the mean and range of return and Sharpe, the instruments whose DSR passes."""
    by_model: dict[str, list[dict]] = {}
    for m in models.values():
        by_model.setdefault(m["model"], []).append(m)
    out = {}
    for model, rows in by_model.items():
        def col(key, rows=rows):
            return [r.get(key) for r in rows if r.get(key) is not None]
        rets, shs = col("total_return_pct"), col("sharpe")
        reference = any(r.get("reference") for r in rows)   # not a candidate: nothing passes
        out[model] = {
            "instruments": [r["source"] for r in rows], "reference": reference,
            "mean_total_return_pct": sum(rets) / len(rets) if rets else None,
            "min_total_return_pct": min(rets) if rets else None,
            "max_total_return_pct": max(rets) if rets else None,
            "mean_sharpe": sum(shs) / len(shs) if shs else None,
            "dsr_passes": [] if reference else [r["source"] for r in rows
                                                 if (r.get("dsr") or 0) > 0.95],
            "dsr_trials": col("dsr_trials"),
        }
    return out


def is_pooled_task(task) -> bool:
    """A pooled task (one model for every instrument), not its view on one instrument."""
    return bool(task.pool) and task.source == POOLED_SOURCE


def is_pooled(tasks: list) -> bool:
    return bool(tasks) and is_pooled_task(tasks[0])


__all__ = ["POOLED_SOURCE", "check_pool", "compute_pooled_task", "compute_pooled_task_cuda",
           "expand", "instrument_results", "is_pooled", "is_pooled_task", "plan_pooled_tasks", "pooled_summary",
           "view"]
