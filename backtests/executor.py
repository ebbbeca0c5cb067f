"""Run independent tasks inline, side by side in a process pool, or on Ray; results come back
in order.

Workers compute and return results; they never write runs (the driver records them). Each
worker runs torch with a fixed number of threads (one by default): with several workers on few
cores, more threads per process only fight for the same cores, and the thread count is part of
what determines the numbers. A task whose worker died is retried once; since only the driver
records, a retried task still gives one run.

The seam: an :class:`Executor` has ``map(fn, tasks, *, on_done, catch)`` with the semantics of
:func:`run_tasks`. :class:`LocalExecutor` is the process pool; ``backtests.ray_executor.RayExecutor``
runs the same tasks on a local Ray instance or a Ray cluster. :func:`make_executor` picks one by
name (``--executor local|ray``).
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any


@dataclass
class TaskFailure:
    """A task that raised: its index and the error, returned in place of its result."""

    index: int
    error: BaseException


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


def check_workers(workers: int, *, here: bool = True) -> int:
    """``workers`` if it is a sane number of worker processes for this machine (1 to
    ``WORKERS_PER_CORE`` × its cores), else a ConfigError that says why. ``here=False`` (a Ray
    cluster joined by address, which brings its own CPUs): only the lower bound."""
    from backtests.config import ConfigError

    cores = default_workers()
    most = WORKERS_PER_CORE * cores
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"--workers {workers!r}: give 1 or more worker processes (default: "
                          f"one per core, {cores} here)")
    if here and workers > most:
        raise ConfigError(f"--workers {workers}: at most {most} ({WORKERS_PER_CORE} per core, "
                          f"{cores} cores here); more processes than that only share the same "
                          "cores, each holding its own copy of torch and the data")
    return workers


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass


def _call(fn: Callable, task: Any, threads: int) -> Any:
    from models.step import torch_threads

    with torch_threads(threads):
        return fn(task)


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
                results[i] = _call(fn, task, threads)
            except catch as exc:
                results[i] = TaskFailure(i, exc)
            if on_done:
                on_done(i, results[i])
        return results
    pending = set(range(len(tasks)))
    for attempt in range(2):
        ctx = mp.get_context("spawn")
        try:
            with ProcessPoolExecutor(max_workers=min(workers, len(pending)), mp_context=ctx,
                                     initializer=_init_worker, initargs=(threads,)) as pool:
                futures = {pool.submit(_call, fn, tasks[i], threads): i for i in sorted(pending)}
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


class Executor:
    """Computes independent tasks somewhere and hands the results back to the driver.

    ``map(fn, tasks, *, on_done=None, catch=())`` returns ``[fn(t) for t in tasks]`` in task
    order; an error of a type in ``catch`` comes back as :class:`TaskFailure` (the task's index
    and the original error) while the other tasks finish; any other error is raised.
    ``on_done(i, result)`` is called in the driver as each task finishes. An executor is a
    context manager: leaving it releases what it started (and nothing it did not start).
    """

    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any], *,
            on_done: Callable[[int, Any], None] | None = None,
            catch: tuple[type[BaseException], ...] = ()) -> list[Any]:
        raise NotImplementedError

    def shutdown(self) -> None:
        """Release the workers this executor started (nothing by default)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()


class LocalExecutor(Executor):
    """``workers`` spawned processes on this machine (inline when 1): :func:`run_tasks`."""

    def __init__(self, workers: int = 1, threads: int = 1) -> None:
        self.workers, self.threads = int(workers), int(threads)

    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any], *,
            on_done: Callable[[int, Any], None] | None = None,
            catch: tuple[type[BaseException], ...] = ()) -> list[Any]:
        return run_tasks(fn, tasks, workers=self.workers, threads=self.threads,
                         on_done=on_done, catch=catch)

    def __repr__(self) -> str:
        return f"LocalExecutor(workers={self.workers}, threads={self.threads})"


EXECUTORS = ("local", "ray")


def make_executor(kind: str = "local", *, workers: int = 1, threads: int = 1,
                  address: str | None = None, gpus_per_task: float = 0.0) -> Executor:
    """The executor called ``kind``: ``local`` (process pool) or ``ray``.

    For ``ray``, ``address`` is ``"auto"`` or ``"ray://host:port"`` to join a running cluster,
    or None to start a private Ray instance on this machine (``workers`` CPUs, loopback only);
    ``gpus_per_task`` is the share of a GPU each task asks for (0: CPU only).
    """
    from backtests.config import ConfigError

    name = (kind or "").strip().lower()
    if name == "local":
        if address is not None:
            raise ConfigError("--address is for --executor ray (the local executor runs here)")
        if gpus_per_task:
            raise ConfigError("gpus_per_task is for --executor ray")
        return LocalExecutor(workers, threads)
    if name == "ray":
        from backtests.ray_executor import RayExecutor

        return RayExecutor(workers=workers, threads=threads, address=address,
                           gpus_per_task=gpus_per_task)
    raise ConfigError(f"--executor: unknown executor {kind!r}; choose {' or '.join(EXECUTORS)}")


def local_device(name: str) -> str:
    """``auto`` | ``cpu`` | ``cuda`` → the device this process trains on (``cuda`` where none
    is present is an error)."""
    if name == "cpu":
        return "cpu"
    import torch

    from data.errors import AttnbtError

    if name == "cuda" and not torch.cuda.is_available():
        raise AttnbtError("--device cuda: this machine has no CUDA GPU")
    return "cuda" if torch.cuda.is_available() else "cpu"


def ray_task_executor(*, workers: int, address: str | None, device: str) -> Executor:
    """The Ray executor of a driver's training tasks: a private local instance or the cluster at
    ``address``. ``device="cuda"`` (or ``auto`` where the cluster reports GPUs) gives each task a
    share of a GPU, and is refused where the cluster has none."""
    from backtests.config import ConfigError
    from backtests.ray_executor import GPU_FRACTION

    ex = make_executor("ray", workers=workers, threads=1, address=address)
    gpus = ex.cluster_gpus()
    if device == "cuda" and gpus <= 0:
        ex.shutdown()
        raise ConfigError(f"--device cuda: the Ray cluster ({address or 'local instance'}) "
                          "reports no GPU; use --device cpu or auto")
    if device == "cuda" or (device == "auto" and gpus > 0):
        ex.gpus_per_task = GPU_FRACTION
    return ex


__all__ = ["EXECUTORS", "WORKERS_PER_CORE", "Executor", "LocalExecutor", "TaskFailure",
           "check_workers", "default_workers",
           "local_device", "make_executor", "ray_task_executor", "run_tasks"]
