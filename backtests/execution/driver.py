"""The one resumable study driver: plan → resume by config id → compute → per-task files → record.

A study (walk-forward, sweep) is fed to :func:`run_study` as a :class:`Study`: it plans its tasks
(each with an ``id``, the config id of its inputs) and says how one task is computed, what the
driver does with a result as it arrives (trials, a progress line) and how everything is recorded
at the end. The driver does the rest, the same way for every study:

- **resume**: :func:`find_runs` looks up the registry by the study's config id. A finished run
  (its result file written) is read back, not recomputed, and adds no trial; an unfinished one is
  picked up and only the tasks without a file under ``tasks/`` are computed.
- **compute**: :func:`build_executor` picks, at one moment (before the run exists, so a Ray
  cluster that cannot serve refuses without leaving a run behind), where the tasks run: a local
  process pool, Ray (a share of a GPU per task where asked or available), or this machine's GPU,
  where the study trains its tasks as stacked ensembles in the driver while ``runtime.workers``
  CPU processes evaluate, choose thresholds and backtest the members already trained.
- **record**: only the driver writes: ``tasks/<task id>.json`` as each task arrives, then what
  the study's ``record`` writes, the registry row and the trials. Workers compute and return.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd

from backtests.execution.base import Deferred, Executor, TaskFailure
from backtests.store import Registry, Run
from data.errors import AttnbtError

SCHEMA = 1                                  # of a study's result file (walkforward.json, sweep.json)
TASK_DIR = "tasks"                          # tasks/<task id>.json: one file per finished task
STITCHED_KIND = "walkforward-stitched"      # trials of stitched series: walk-forwards and sweeps
#                                             share it (one search budget on the same bars)
REFERENCE_KIND = "walkforward-reference"    # a walk-forward's reference series: recorded, never
#                                             charged (not a candidate: it cannot win)


@dataclass(frozen=True)
class Placement:
    """Where a study's tasks compute (``runtime.executor``, ``runtime.workers``,
    ``runtime.address``, ``train.device``)."""

    executor: str = "local"     # local (process pool) | ray
    workers: int = 1
    address: str | None = None  # ray: None (a private local instance), "auto", "ray://host:port"
    device: str = "auto"        # auto | cpu | cuda: cuda trains stacked ensembles


class GpuEnsembles(Executor):
    """This machine's GPU: the study trains its tasks together as stacked ensembles
    (``Study.ensembles``) in the driver's process, while ``workers`` CPU processes evaluate the
    tasks already trained (what ``Study.ensembles`` yields as :class:`Deferred`; inline when 1)."""

    def __init__(self, workers: int = 1, threads: int = 1) -> None:
        self.workers, self.threads = int(workers), int(threads)

    def __repr__(self) -> str:
        return f"GpuEnsembles(workers={self.workers})"


@dataclass
class Outcome:
    """What a study run did: its run, registry summary and failures; tasks reused from an
    earlier attempt and computed now; ``reused``: it had finished before (nothing computed)."""

    run: Run
    summary: dict
    failures: list[dict]
    resumed: int
    computed: int
    seconds: float
    reused: bool = False
    table: pd.DataFrame | None = None       # a sweep's table of every combination


class Task(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def label(self) -> str: ...

    @property
    def cost(self) -> int: ...               # a rank: tasks with a higher one are started first


class StudyPlan(Protocol):
    tasks: Sequence[Task]
    resume: Run | None                      # an unfinished run of the same config id
    done: set[str]                          # ids of the tasks whose file it holds
    finished: Run | None                    # a finished run of the same config id


class Study(Protocol):
    """What the driver needs of a study (see ``backtests.walkforward.driver`` and
    ``backtests.sweep.study``)."""

    kind: str                   # registry kind of its runs
    noun: str                   # how progress lines name a run: "walk-forward run", "sweep"
    runs_dir: Any
    placement: Placement
    compute: Callable[[Any], dict]          # picklable: a worker runs it on ``payload(task)``
    compute_cuda: Callable[[Any], dict]     # the same, training on the worker's GPU share

    def plan(self) -> StudyPlan: ...

    def create(self, reg: Registry, p: StudyPlan, command: str | None) -> Run: ...

    def payload(self, p: StudyPlan, task: Task) -> Any: ...

    def ensembles(self, p: StudyPlan, todo: list[Task], say: Callable[[str], None],
                  ) -> Iterator[tuple[int, dict | Deferred | AttnbtError]]: ...

    def failure(self, task: Task, error: BaseException) -> dict: ...

    def accepted(self, run_: Run, reg: Registry, task: Task, result: dict) -> str: ...

    def record(self, run_: Run, p: StudyPlan, results: dict[str, dict], failures: list[dict],
               reg: Registry, say: Callable[[str], None],
               ) -> tuple[dict, list[dict], pd.DataFrame | None]: ...

    def recorded(self, run_: Run, p: StudyPlan) -> tuple[dict, list[dict], pd.DataFrame | None]: ...


def check_executor(name: str) -> None:
    """Refuse an executor that is neither local nor ray (before anything is planned)."""
    from backtests.config import ConfigError
    from backtests.execution import EXECUTORS

    if name not in EXECUTORS:
        raise ConfigError(f"runtime.executor: unknown executor {name!r}; choose "
                          f"{' or '.join(EXECUTORS)}")


def find_runs(runs_dir, kind: str, config_id: str, result_file: str, task_ids: set[str],
              ) -> tuple[Run | None, Run | None, set[str]]:
    """(finished run, unfinished run to resume, ids of its tasks already done) of a study with
    this config id. A run counts as finished once its ``result_file`` is written."""
    reg = Registry(runs_dir)
    finished = reg.finished(kind, config_id)
    if finished is not None and (finished.path / result_file).is_file():
        return finished, None, set(task_ids)
    resume = reg.unfinished(kind, config_id)
    done = set() if resume is None else {f.stem for f in (resume.path / TASK_DIR).glob("*.json")}
    return None, resume, done & task_ids


def build_executor(placement: Placement, n_todo: int) -> Executor | None:
    """Where ``n_todo`` tasks compute: None when there are none; Ray (GPU shares where asked,
    refused where the cluster has none); this GPU's ensembles; or a local process pool."""
    from backtests.execution import local_device, make_executor, ray_task_executor

    if not n_todo:
        return None
    if placement.executor == "ray":
        return ray_task_executor(workers=placement.workers, address=placement.address,
                                 device=placement.device)
    if local_device(placement.device) == "cuda":
        return GpuEnsembles(placement.workers)
    return make_executor(placement.executor, workers=placement.workers, threads=1)


def run_study(study: Study, *, command: str | None = None,
              progress: Callable[[str], None] | None = None) -> Outcome:
    """Plan, resume or create the run, compute the missing tasks, record everything."""
    t0 = time.perf_counter()
    say = progress or (lambda _: None)
    p = study.plan()
    if p.finished is not None:
        say(f"{study.noun} {p.finished.id} with these settings has finished: its recorded "
            "result follows (nothing recomputed, no trial added)")
        summary, failures, table = study.recorded(p.finished, p)
        return Outcome(p.finished, summary, failures, len(p.tasks), 0,
                       time.perf_counter() - t0, reused=True, table=table)
    ex = build_executor(study.placement, sum(t.id not in p.done for t in p.tasks))
    try:
        return _run(study, p, ex, t0, say, command)
    finally:
        if ex is not None:
            ex.shutdown()


def _run(study: Study, p: StudyPlan, ex: Executor | None, t0: float, say,
         command: str | None) -> Outcome:
    reg = Registry(study.runs_dir)
    if p.resume is not None:
        run_ = p.resume
        reg.mark(run_, "running")
        say(f"resuming {study.noun} {run_.id}: {len(p.done)} of {len(p.tasks)} tasks done")
    else:
        run_ = study.create(reg, p, command)
    try:
        with reg.recording(run_):
            results, failures = compute(study, p, run_, reg, ex, say)
            summary, failures, table = study.record(run_, p, results, failures, reg, say)
    except KeyboardInterrupt as exc:
        exc.hint = (f"{study.noun} {run_.id} keeps its finished tasks; the same command "
                    "resumes it")
        raise
    reg.finish(run_, summary)
    computed = sum(1 for t in p.tasks if t.id not in p.done)
    return Outcome(run_, summary, failures, len(p.done), computed, time.perf_counter() - t0,
                   table=table)


def compute(study: Study, p: StudyPlan, run_: Run, reg: Registry, ex: Executor | None,
            say) -> tuple[dict[str, dict], list[dict]]:
    """The results of every task (read back from the files of those done before), and the
    failures; each new result is written to its file as it arrives."""
    results = {t.id: run_.read_json(f"{TASK_DIR}/{t.id}.json") for t in p.tasks if t.id in p.done}
    todo = [t for t in p.tasks if t.id not in p.done]
    failures: list[dict] = []
    n_total, counter = len(p.tasks), [len(p.done)]

    def done(i: int, result) -> None:
        task = todo[i]
        counter[0] += 1
        if isinstance(result, TaskFailure):
            failures.append(study.failure(task, result.error))
            say(f"[{counter[0]}/{n_total}] {task.label}: FAILED ({result.error})")
            return
        results[task.id] = result
        run_.write_json(f"{TASK_DIR}/{task.id}.json", result, indent=None)   # large, read back
        say(f"[{counter[0]}/{n_total}] {task.label}: {study.accepted(run_, reg, task, result)}")

    if not todo:
        return results, failures
    if isinstance(ex, GpuEnsembles):     # CPU workers evaluate while the GPU trains on
        from backtests.execution.local import run_alongside

        trained = ((i, TaskFailure(i, r) if isinstance(r, BaseException) else r)
                   for i, r in study.ensembles(p, todo, say))
        run_alongside(trained, workers=min(ex.workers, len(todo)), threads=ex.threads,
                      on_done=done, catch=(AttnbtError,))
        return results, failures
    # the longest tasks first (stable: plan order among equals); results keep the plan's order
    order = sorted(range(len(todo)), key=lambda i: -todo[i].cost)
    payloads = [study.payload(p, todo[i]) for i in order]
    fn = study.compute
    if study.placement.executor == "ray":
        gpus = ex.gpus_per_task
        fn = study.compute_cuda if gpus > 0 else study.compute
        say(f"computing {len(todo)} tasks on Ray ({study.placement.address or 'local instance'}"
            f"{f', {gpus} GPU a task' if gpus > 0 else ''})")
    ex.map(fn, payloads, on_done=lambda j, result: done(order[j], result), catch=(AttnbtError,))
    return results, failures


__all__ = ["SCHEMA", "STITCHED_KIND", "TASK_DIR", "GpuEnsembles", "Outcome", "Placement", "Study",
           "StudyPlan", "build_executor", "check_executor", "compute", "find_runs", "run_study"]
