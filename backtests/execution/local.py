"""Run independent tasks inline, side by side in a process pool, or on Ray; results come back
in order.

Workers compute and return results; they never write runs (the driver records them). Each
worker runs torch with a fixed number of threads (one by default): with several workers on few
cores, more threads per process only fight for the same cores, and the thread count is part of
what determines the numbers. A task whose worker died is retried once; since only the driver
records, a retried task still gives one run.

The seam: an :class:`Executor` has ``map(fn, tasks, *, on_done, catch)`` with the semantics of
:func:`run_tasks`. :class:`LocalExecutor` is the process pool; ``backtests.execution.ray_cluster.RayExecutor``
runs the same tasks on a local Ray instance or a Ray cluster. :func:`make_executor` picks one by
name (``--executor local|ray``). :func:`run_alongside` is the GPU path's pool: the driver trains
ensembles on the GPU while the workers evaluate the tasks already trained.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from backtests.execution.base import Deferred, Executor, TaskFailure, call, init_worker


def default_workers() -> int:
    """Worker processes to use by default: the cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# More worker processes than cores only share the cores (each worker trains on one torch thread)
# while every process holds its own torch and data (hundreds of MB): past a few per core that is
# memory spent for nothing, and a typo such as 1e9 would exhaust the machine.
WORKERS_PER_CORE = 4


# Third-party modules every worker needs, none of which reads attnbt's settings: imported once by
# the forkserver, from which each worker forks (a spawned worker imports them anew: about 5 s of
# CPU a worker on a 2-core machine, docs/benchmarks.md "Worker start-up"). ``torch._dynamo`` is
# what a worker's first optimiser step imports (about 2.4 CPU-s): every training worker needs it.
PRELOAD = ("numpy", "pandas", "scipy.stats", "torch", "torch._dynamo", "backtrader", "numba",
           "sklearn")


def pool_context() -> mp.context.BaseContext:
    """Where worker processes come from: forked from a forkserver that has imported ``PRELOAD``
    (fresh interpreters otherwise: the workers never inherit the driver's threads or state), or
    spawned where there is no forkserver (Windows). Either way a worker starts with the driver's
    environment of the moment (:func:`pool_args`)."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(list(PRELOAD))
        return ctx
    return mp.get_context("spawn")


def pool_args(threads: int) -> dict:
    """The keyword arguments of a ProcessPoolExecutor of attnbt's workers."""
    return {"mp_context": pool_context(), "initializer": init_worker,
            "initargs": (threads, dict(os.environ))}


def check_workers(workers: int, *, here: bool = True) -> int:
    """``workers`` if it is a sane number of worker processes for this machine (1 to
    ``WORKERS_PER_CORE`` × its cores), else a ConfigError that says why. ``here=False`` (a Ray
    cluster joined by address, which brings its own CPUs): only the lower bound."""
    from backtests.config import ConfigError

    cores = default_workers()
    most = WORKERS_PER_CORE * cores
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"runtime.workers {workers!r}: give 1 or more worker processes (default: "
                          f"one per core, {cores} here)")
    if here and workers > most:
        raise ConfigError(f"runtime.workers {workers}: at most {most} ({WORKERS_PER_CORE} per core, "
                          f"{cores} cores here); more processes than that only share the same "
                          "cores, each holding its own copy of torch and the data")
    return workers


def run_tasks(fn: Callable[[Any], Any], tasks: Sequence[Any], *, workers: int = 1,
              threads: int = 1, on_done: Callable[[int, Any], None] | None = None,
              catch: tuple[type[BaseException], ...] = ()) -> list[Any]:
    """``[fn(t) for t in tasks]``, computed by ``workers`` processes (inline when 1).

    ``fn`` must be importable (a module-level function) for a pool. ``on_done(i, result)`` is
    called in the driver as each task finishes (for progress). Errors of a type in ``catch`` are
    returned as :class:`TaskFailure` so the other tasks finish; any other error is raised.
    """
    results: list[Any] = [None] * len(tasks)
    if workers <= 1 or len(tasks) <= 1:
        for i, task in enumerate(tasks):
            try:
                results[i] = call(fn, task, threads)
            except catch as exc:
                results[i] = TaskFailure(i, exc)
            if on_done:
                on_done(i, results[i])
        return results
    pending = set(range(len(tasks)))
    for attempt in range(2):
        try:
            with ProcessPoolExecutor(max_workers=min(workers, len(pending)),
                                     **pool_args(threads)) as pool:
                futures = {pool.submit(call, fn, tasks[i], threads): i for i in sorted(pending)}
                while futures:
                    done, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for fut in done:
                        i = futures.pop(fut)
                        try:
                            results[i] = fut.result()
                        except BrokenProcessPool:
                            raise
                        except catch as exc:
                            results[i] = TaskFailure(i, exc)
                        pending.discard(i)
                        if on_done:
                            on_done(i, results[i])
            break
        except BrokenProcessPool:
            if attempt == 1:
                raise
    return results


def run_alongside(items: Iterable[tuple[int, Any]], *, workers: int = 1, threads: int = 1,
                  on_done: Callable[[int, Any], None],
                  catch: tuple[type[BaseException], ...] = ()) -> None:
    """Hand on the ``(i, result)`` pairs that ``items`` produces in this process (a GPU training
    loop): a :class:`Deferred` result is computed by one of ``workers`` pool processes (inline
    when 1) while ``items`` goes on producing; any other result is handed on as it is.
    ``on_done(i, result)`` is called in this process for every pair once its result is ready (in
    the order they finish); errors of a type in ``catch`` come back as :class:`TaskFailure`. A
    task whose worker died is computed again here."""

    def inline(i: int, item: Deferred) -> Any:
        try:
            return call(item.fn, item.payload, threads)
        except catch as exc:
            return TaskFailure(i, exc)

    if workers <= 1:
        for i, item in items:
            on_done(i, inline(i, item) if isinstance(item, Deferred) else item)
        return
    futures: dict[Future, tuple[int, Deferred]] = {}

    def collect(block: bool) -> None:
        done, _ = wait(futures, timeout=None if block else 0, return_when=FIRST_COMPLETED)
        for fut in done:
            i, item = futures.pop(fut)
            try:
                result = fut.result()
            except BrokenProcessPool:
                result = inline(i, item)
            except catch as exc:
                result = TaskFailure(i, exc)
            on_done(i, result)

    with ProcessPoolExecutor(max_workers=workers, **pool_args(threads)) as pool:
        for i, item in items:
            if not isinstance(item, Deferred):
                on_done(i, item)
            else:
                try:
                    futures[pool.submit(call, item.fn, item.payload, threads)] = (i, item)
                except BrokenProcessPool:
                    on_done(i, inline(i, item))
            if futures:
                collect(block=False)
        while futures:
            collect(block=True)


class LocalExecutor(Executor):
    """``workers`` processes on this machine (:func:`pool_context`; inline when 1):
    :func:`run_tasks`."""

    def __init__(self, workers: int = 1, threads: int = 1) -> None:
        self.workers, self.threads = int(workers), int(threads)

    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any], *,
            on_done: Callable[[int, Any], None] | None = None,
            catch: tuple[type[BaseException], ...] = ()) -> list[Any]:
        return run_tasks(fn, tasks, workers=self.workers, threads=self.threads,
                         on_done=on_done, catch=catch)

    def __repr__(self) -> str:
        return f"LocalExecutor(workers={self.workers}, threads={self.threads})"


__all__ = ["PRELOAD", "WORKERS_PER_CORE", "LocalExecutor", "check_workers", "default_workers",
           "pool_args", "pool_context", "run_alongside", "run_tasks"]
