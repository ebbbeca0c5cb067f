"""The walk-forward study: its plan, what each finished task adds, and its record, run by the
one study driver (``backtests.execution.driver``: resume, compute on a pool, Ray or GPU
ensembles, per-task files).

Only the driver writes: the run folder (``tasks/<task id>.json`` as each task arrives, then the
table, the stitched equity, ``walkforward.json`` and the report), the registry row (kind
``walkforward``) and the trials (one per task backtest, one per stitched (model, seed) series).
A killed walk-forward resumes with the same command: the unfinished run with the same config id
is picked up and only the tasks without a file are computed. A finished one is not recomputed: the
same command returns its recorded result and adds no trial (the registry also never counts the
same task or stitched series twice).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from backtests.analysis.significance import comparison_numbers, moments
from backtests.config import ConfigError, Experiment, config_id
from backtests.currency import conversion_of
from backtests.execution import Deferred, check_workers
from backtests.execution.driver import (
    REFERENCE_KIND,
    SCHEMA,
    STITCHED_KIND,
    Outcome,
    Placement,
    check_executor,
    find_runs,
    run_study,
)
from backtests.store import Registry, Run
from backtests.walkforward import pooled as P
from backtests.walkforward import results as R
from backtests.walkforward.tasks import (
    FoldPlan,
    Task,
    check_seeds,
    compute_task,
    compute_task_cuda,
    evaluate_trained,
    plan_tasks,
    train_in_ensembles,
)
from data import AttnbtError, fingerprint
from strategy.rules import label_exits


@dataclass
class WalkForward:
    """What a walk-forward run is asked to do."""

    base: Experiment
    sources: list[str]
    models: list[tuple[str, str]]
    seeds: list[int]
    plan: FoldPlan = field(default_factory=FoldPlan)
    auto_threshold: bool = True
    device: str = "auto"        # auto | cpu | cuda: cuda trains stacked ensembles
    workers: int = 1
    executor: str = "local"     # local (process pool) | ray
    address: str | None = None  # ray: None (a private local instance), "auto", "ray://host:port"
    # references: run on the same folds, reported and compared like the models, but not
    # candidates: never the winner, and their series are not charged in any DSR
    references: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_seeds(self.seeds)
        check_workers(self.workers, here=self.address is None)
        both = [f"{k}/{p}" for k, p in self.references if (k, p) in self.models]
        if both:
            raise ConfigError(f"{', '.join(both)} is both a model and a reference: a reference "
                              "is not a candidate, so list it in `references` only (or in "
                              "`models` only, to charge it and let it win)")

    @property
    def all_models(self) -> list[tuple[str, str]]:
        """The candidates, then the references: what is trained and traded."""
        return self.models + self.references

    def is_reference(self, model: str) -> bool:
        """``model`` as the tasks name it (``kind/preset``, ``kind/preset+meta`` for its primary
        + meta arm, which is a reference's too)."""
        return model.removesuffix("+meta") in {f"{k}/{p}" for k, p in self.references}

    @property
    def pooled(self) -> bool:
        """``data.pool`` with several sources: one model per (model, seed, fold) for all."""
        return self.base.data.pool and len(self.sources) > 1

    def settings(self) -> dict:
        return {"sources": self.sources, **({"pool": True} if self.pooled else {}),
                "models": [f"{k}/{p}" for k, p in self.models],
                # only when given: a walk-forward without references keeps its config id
                **({"references": [f"{k}/{p}" for k, p in self.references]}
                   if self.references else {}),
                "seeds": self.seeds, "folds": self.plan.to_dict(),
                "threshold": "auto" if self.auto_threshold else self.base.strategy.threshold}


@dataclass
class Planned:
    tasks: list[Task]
    candles: dict[str, pd.DataFrame]
    failed_sources: list[dict]
    config_id: str
    resume: Run | None
    done: set[str]
    finished: Run | None = None     # a finished run of the same config: reprinted, not redone


def plan(wf: WalkForward) -> Planned:
    """Load each source, cut its folds and list the tasks; find an unfinished run to resume."""
    from backtests.scoring import load_candles

    check_executor(wf.executor)
    if wf.base.data.instrument and len(wf.sources) > 1:
        raise ConfigError(f"data.instrument {wf.base.data.instrument} names the pair of one "
                          f"source; with {len(wf.sources)} sources let each file's name say its "
                          "pair (e.g. USDCHF_H1.csv) or run one walk-forward per source")
    if wf.pooled:
        return _plan_pooled(wf)
    tasks, candles, failed = [], {}, []
    for source in wf.sources:
        exp = wf.base.override({"data.source": source})
        try:
            c = load_candles(exp)
            tasks += plan_tasks(wf.base, source, c, wf.all_models, wf.seeds, wf.plan,
                                fingerprint(c), wf.auto_threshold)
            candles[source] = c
        except AttnbtError as exc:
            if len(wf.sources) == 1:
                raise
            failed.append({"task": {"source": source}, "error": str(exc)})
    if not tasks:
        raise AttnbtError("no source could be used: " + "; ".join(f["error"] for f in failed))
    cid = config_id({"walkforward": wf.settings(), "tasks": sorted(t.id for t in tasks)})
    finished, resume, done = find_runs(wf.base.runtime.runs_dir, "walkforward", cid,
                                       "walkforward.json", {t.id for t in tasks})
    return Planned(tasks, candles, failed, cid, resume, done, finished)


def _plan_pooled(wf: WalkForward) -> Planned:
    """``data.pool``: every source loads (or the run is refused), one calendar, pooled tasks."""
    from backtests.scoring import load_candles

    P.check_pool(wf.base, wf.sources)
    candles = {s: load_candles(wf.base.override({"data.source": s})) for s in wf.sources}
    fps = {s: fingerprint(c) for s, c in candles.items()}
    tasks = P.plan_pooled_tasks(wf.base, candles, fps, wf.all_models, wf.seeds, wf.plan,
                                wf.auto_threshold)
    cid = config_id({"walkforward": wf.settings(), "tasks": sorted(t.id for t in tasks)})
    finished, resume, done = find_runs(wf.base.runtime.runs_dir, "walkforward", cid,
                                       "walkforward.json", {t.id for t in tasks})
    return Planned(tasks, candles, [], cid, resume, done, finished)


def trials_added(p: Planned, wf: WalkForward) -> int:
    """Trials the run will append: one per task still to compute, one per stitched series;
    none when the same walk-forward has finished (it is reprinted, not recomputed)."""
    if p.finished is not None:
        return 0
    if P.is_pooled(p.tasks):    # one trial per instrument of each pooled task
        series = {(s, t.model, t.seed) for t in p.tasks for s, _ in t.pool}
        return sum(len(t.pool) for t in p.tasks if t.id not in p.done) + len(series)
    series = {(t.source, t.model, t.seed) for t in p.tasks}
    return sum(t.id not in p.done for t in p.tasks) + len(series)


def run(wf: WalkForward, *, command: str | None = None,
        progress: Callable[[str], None] | None = None,
        doc: Path | None = None) -> Outcome:
    """Compute the missing tasks, record everything, return the outcome."""
    return run_study(WalkForwardStudy(wf, doc), command=command, progress=progress)


class WalkForwardStudy:
    """A walk-forward as the study driver runs it (``backtests.execution.driver``)."""

    kind = "walkforward"
    noun = "walk-forward run"
    compute = staticmethod(compute_task)
    compute_cuda = staticmethod(compute_task_cuda)

    def __init__(self, wf: WalkForward, doc: Path | None = None) -> None:
        self.wf, self.doc = wf, doc
        self.runs_dir = wf.base.runtime.runs_dir
        self.placement = Placement(wf.executor, wf.workers, wf.address, wf.device)
        if wf.pooled:
            self.compute = P.compute_pooled_task
            self.compute_cuda = P.compute_pooled_task_cuda

    def plan(self) -> Planned:
        return plan(self.wf)

    def create(self, reg: Registry, p: Planned, command: str | None) -> Run:
        wf = self.wf
        return reg.create("walkforward", model=",".join(f"{k}/{pr}" for k, pr in wf.all_models),
                          data=",".join(wf.sources), config_id=p.config_id, command=command,
                          fingerprint=config_id({s: fingerprint(c) for s, c in
                                                 p.candles.items()})[:16],
                          meta={"schema": SCHEMA, "settings": wf.settings(),
                                "config": wf.base.to_dict()})

    def payload(self, p: Planned, task: Task) -> tuple[Task, pd.DataFrame]:
        if P.is_pooled_task(task):
            return task, p.candles
        return task, p.candles[task.source]

    def ensembles(self, p: Planned, todo: list[Task], say,
                  ) -> Iterator[tuple[int, dict | Deferred | AttnbtError]]:
        """GPU: the (seed × fold) models of one (source, kind, preset) train together as a
        stacked ensemble; each is then evaluated as its task by a CPU worker (``Deferred``)
        while the next group trains. A pooled task trains its one model on the GPU alone."""
        if P.is_pooled(todo):
            for i, t in enumerate(todo):
                say(f"training {t.model} seed {t.seed} fold {t.fold_no} pooled on the GPU")
                try:
                    yield i, P.compute_pooled_task_cuda((t, p.candles))
                except AttnbtError as exc:
                    yield i, exc
            return
        for i, result in train_in_ensembles(todo, lambda t: p.candles[t.source],
                                            lambda t: (t.source, t.kind, t.preset), say):
            t = todo[i]
            yield i, (result if isinstance(result, BaseException) else
                      Deferred(evaluate_trained, (t, p.candles[t.source], result)))

    def failure(self, task: Task, error: BaseException) -> dict:
        return {"task": task.describe(), "error": str(error)}

    def accepted(self, run_: Run, reg: Registry, task: Task, result: dict) -> str:
        """A task's trial (its test-part backtest), and its progress line; a pooled task's
        trials are one per instrument."""
        if P.is_pooled_task(task):
            lines = [f"{v.source}: " + self.accepted(run_, reg, v, r)
                     for v, r in P.instrument_results(task, result)]
            bad = len(task.pool) - len(lines)
            return "; ".join(lines) + (f"; {bad} instrument(s) failed" if bad else "")
        m = result["moments"]
        reg.add_trial(run_id=run_.id, kind="walkforward", config_id=task.id,
                      fingerprint=result["fingerprint"], n_obs=m["n_obs"],
                      sharpe_per_bar=R.sharpe_per_bar(m), skew=m["skew"],
                      kurtosis=m["kurtosis"], note=task.label)
        hit, ret = result["metrics"]["hit_pct"], result["stats"]["total_return_pct"]
        return (f"hit {_f(hit)} %, return {_f(ret, 2)} %, threshold {result['threshold']}, "
                f"{result['train']['epochs_run']} "
                f"{'boosting iterations' if task.kind == 'gbm' else 'epochs'}, "
                f"{result['train']['seconds'] or 0:.1f} s training")

    def record(self, run_: Run, p: Planned, results: dict[str, dict], failures: list[dict],
               reg: Registry, say) -> tuple[dict, list[dict], None]:
        failures = p.failed_sources + failures
        if P.is_pooled(p.tasks):     # instruments a pooled task could not evaluate
            failures += P.expand(p.tasks, results)[2]
        return record(run_, self.wf, p, results, failures, reg, doc=self.doc), failures, None

    def recorded(self, run_: Run, p: Planned) -> tuple[dict, list[dict], None]:
        """A finished walk-forward read back from its run folder (no recompute); ``doc``
        re-renders the study page from the recorded files."""
        payload = run_.read_json("walkforward.json")
        row = Registry(run_.root).get(run_.id)
        if self.doc is not None:
            from backtests.reports.walkforward import render_markdown

            table = pd.read_csv(run_.path / "results.csv")
            equity = pd.read_csv(run_.path / "equity.csv", index_col="time",
                                 parse_dates=["time"])
            render_markdown(payload, table, equity, self.doc, command=row.get("command") or "")
        return row["summary"], payload.get("failures", []), None


def _f(x, digits: int = 1) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


# --- recording ----------------------------------------------------------------------------------
def record(run_: Run, wf: WalkForward, p: Planned, results: dict[str, dict],
           failures: list[dict], reg: Registry, doc: Path | None = None) -> dict:
    """Write the table, stitched equity, walkforward.json and the report; add stitched trials."""
    from backtests.reports.walkforward import render_html, render_markdown

    pooled = P.is_pooled(p.tasks)
    if pooled:      # one row, trial and stitched series per instrument of each pooled task
        views, results, _ = P.expand(p.tasks, results)
        p = replace(p, tasks=views)
    done = [results[t.id] for t in p.tasks if t.id in results]
    rows = [R.task_row(r) for r in done]
    table = pd.DataFrame(rows, columns=list(R.TABLE_COLUMNS))
    run_.write_text("results.csv", table.to_csv(index=False))
    run_.write_json("results.json", R.jsonable(rows))
    cash = wf.base.backtest.cash
    n_sources = len(p.candles)
    run_.write_text("predictions.csv", R.predictions(done, n_sources).to_csv(index=False))

    groups: dict[tuple[str, str], dict[int, list[dict]]] = {}
    for t in p.tasks:
        if t.id in results:
            groups.setdefault((t.source, t.model), {}).setdefault(t.seed, []).append(
                results[t.id])
    # a failed task leaves a gap in its series: comparisons use the bars both sides have
    n_folds = {s: len({t.fold_no for t in p.tasks if t.source == s}) for s in p.candles}

    stitched_fp = {s: config_id({"data": fingerprint(c), "folds": wf.plan.to_dict()})[:16]
                   for s, c in p.candles.items()}
    _add_stitched_trials(reg, run_, groups, cash, stitched_fp, wf.is_reference)

    charged = {s: [t["sharpe_per_bar"] for t in reg.trials(fingerprint=fp, kind=STITCHED_KIND)]
               for s, fp in stitched_fp.items()}
    models, returns, equities = {}, {}, {}
    for (source, model), by_seed in groups.items():
        name = R.model_name(source, model, n_sources)
        reference = wf.is_reference(model)
        # a reference's DSR: as if it had been one more candidate beside the charged ones
        summary, ret, eq = R.model_summary(by_seed, cash, charged[source], charge_own=reference)
        missing = sum(n_folds[source] - len(rs) for rs in by_seed.values())
        models[name] = {"source": source, "model": model, "reference": reference,
                        "missing_tasks": missing, **summary}
        returns[name], equities[name] = ret, eq
    comparisons = []
    for source in p.candles:
        names = [n for n in models if models[n]["source"] == source]
        attention = [n for n in names if models[n]["model"].startswith("attention/")]
        pairs = [(a, b) for a in attention for b in names
                 if b != a and not models[b]["model"].startswith("attention/")]
        # primary + meta against the primary alone (strategy.meta), every model
        pairs += [(a, b) for a in names for b in names
                  if models[a]["model"] == models[b]["model"] + "+meta"
                  and (a, b) not in pairs]
        for a, b in pairs:
            a_tasks = [r for rs in groups[(source, models[a]["model"])].values() for r in rs]
            b_tasks = [r for rs in groups[(source, models[b]["model"])].values() for r in rs]
            comparisons.append(_compare_charged(reg, run_, stitched_fp[source], models, a, b,
                                                a_tasks, b_tasks, returns))
    best = R.winner(models, returns, comparisons)

    equity = pd.DataFrame(equities)
    equity.index.name = "time"
    run_.write_text("equity.csv", equity.to_csv())
    payload = {"schema": SCHEMA, "run": run_.id, "settings": wf.settings(),
               "costs": wf.base.costs.to_dict(),
               "costs_charged": _costs_charged(wf, p, groups, n_sources),
               "strategy": label_exits(wf.base.strategy, wf.base.dataset.labels).to_dict(),
               "cash": cash,
               "significance": {"alpha": 0.05, "bootstrap": "stationary",
                                "block": "max(1, round(n ** (1/3)))", "n_boot": 2000,
                                "spa_reps": 1000, "seed": 0},
               "tasks": [{**results[t.id]["task"], "status": "done"} if t.id in results else
                         {**t.describe(), "status": "failed"} for t in p.tasks],
               "models": models, "comparisons": comparisons, "winner": best,
               "versus_rules": R.rule_verdicts(models),
               **({"pooled": P.pooled_summary(models)} if pooled else {}),
               "failures": failures}
    payload = R.jsonable(payload)
    run_.write_json("walkforward.json", payload)
    run_.write_text("report.html", render_html(payload, table, equity, results, p.tasks))
    if doc is not None:
        render_markdown(payload, table, equity, doc, command=reg.get(run_.id).get("command") or "")
    return {"tasks": len(rows), "failed": len(failures),
            "winner": best["model"] if best else None,
            "winner_sharpe": best["sharpe"] if best else None,
            "winner_psr": best["psr"] if best else None,
            "winner_dsr": best["dsr"] if best else None}


def _compare_charged(reg: Registry, run_: Run, fp: str, models: dict, a: str, b: str,
                     a_tasks: list[dict], b_tasks: list[dict], returns: dict) -> dict:
    """``results.compare`` of a against b, charged for the earlier comparisons of the pair on
    these bars (the registry's comparisons table: any other configuration of the two models,
    e.g. another label rule, is another comparison; the same tasks compared again are the same
    one), then recorded there."""
    pair = f"{models[a]['model']} vs {models[b]['model']}"
    cid = config_id({"pair": pair, "tasks": sorted(r["task"]["id"] for r in a_tasks + b_tasks)})
    earlier = reg.comparison_family(fingerprint=fp, pair=pair, config_id=cid)
    c = R.compare(a, b, a_tasks, b_tasks, returns[a], returns[b], models[a]["bars_per_year"],
                  earlier)
    reg.add_comparison(run_id=run_.id, fingerprint=fp, pair=pair, config_id=cid,
                       **comparison_numbers(c["sharpe_diff"], c["spa"], c["spa_worse"],
                                            c["family"]["alpha"], c["decision"]))
    return c


def _costs_charged(wf: WalkForward, p: Planned, groups, n_sources: int) -> dict:
    """Per source: the costs charged on its test bars (as the backtest report states them) and
    the money each model's trades paid, per seed over all folds."""
    out = {}
    for source, candles in p.candles.items():
        folds = {t.fold_no: t.fold for t in p.tasks if t.source == source}
        bounds = [folds[k].bounds(candles.index, "test") for k in sorted(folds)]
        bars = pd.concat([candles.iloc[a:b + 1] for a, b in bounds])
        block = R.costs_block(bars, wf.base.costs, conversion_of(wf.base.data, source))
        block["charged_per_seed"] = {
            R.model_name(source, model, n_sources): R.charged_per_seed(
                [r.get("costs_charged") for rs in by_seed.values() for r in rs], len(by_seed))
            for (s, model), by_seed in groups.items() if s == source}
        out[source] = block
    return out


def _add_stitched_trials(reg: Registry, run_: Run, groups, cash, fps,
                         is_reference: Callable[[str], bool]) -> None:
    """One trial per stitched (source, model, seed) series, once per run (resume-safe); a
    reference's under its own kind, which no DSR charges."""
    for (source, model), by_seed in groups.items():
        kind = REFERENCE_KIND if is_reference(model) else STITCHED_KIND
        have = {t["config_id"] for t in reg.trials(fingerprint=fps[source], kind=kind)
                if t["run_id"] == run_.id}
        for seed, rs in by_seed.items():
            cid = config_id({"series": sorted(r["task"]["id"] for r in rs)})
            if cid in have:
                continue
            ret, _ = R.stitch(rs, cash)
            reg.add_trial(run_id=run_.id, kind=kind, config_id=cid,
                          fingerprint=fps[source], note=f"{source} {model} seed {seed}",
                          **moments(ret.to_numpy()))   # add_trial stores NaN as NULL


__all__ = ["SCHEMA", "Outcome", "Planned", "WalkForward", "WalkForwardStudy", "plan", "record",
           "run", "trials_added"]
