"""The executor seam: what every executor returns and how a task runs in a worker (fixed torch threads)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class TaskFailure:
    """A task that raised: its index and the error, returned in place of its result."""

    index: int
    error: BaseException


@dataclass(frozen=True)
class Deferred:
    """A result still to compute on the CPU: ``fn(payload)``, ``fn`` importable (a module-level
    function). A study's GPU training yields one per trained task (its evaluation, threshold
    choice and backtest); CPU workers compute it while the GPU trains the next group."""

    fn: Callable[[Any], Any]
    payload: Any


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


def init_worker(threads: int, env: dict[str, str] | None = None) -> None:
    """A worker's set-up: the driver's environment ``env`` (a worker forked from a forkserver
    would otherwise keep the environment of the moment that server started) and ``threads``
    torch threads."""
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass


def call(fn: Callable, task: Any, threads: int) -> Any:
    from models.step import torch_threads

    with torch_threads(threads):
        return fn(task)


__all__ = ["Deferred", "Executor", "TaskFailure", "call", "init_worker"]
