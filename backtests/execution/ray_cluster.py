"""Run the executor's tasks on Ray: a private instance on this machine, or a Ray cluster.

One task is one call ``fn(task)`` in a Ray worker process, with torch pinned to ``threads``
threads, exactly as in the local pool, so both give the same numbers. Results travel back to the
driver, which alone records. Large inputs (DataFrames, arrays) go into Ray's object store once
each, however many tasks share them: a walk-forward's ``(task, candles)`` tuples put each
source's candles once, and only the driver reads the data files.

A local instance (no ``address``) listens on 127.0.0.1 alone: ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER``
is set to 0 (unless the caller set it) before Ray is imported, which makes Ray 2.x keep the node
address 127.0.0.1 and bind its GCS, raylet, runtime-env agent and workers to it;
``_node_ip_address="127.0.0.1"`` alone does not (Ray swaps loopback for the interface address
and binds every interface). The executor checks the node address after start and refuses any
other. With an ``address`` (``"auto"`` or ``"ray://host:10001"``) the driver joins that cluster
and ships the project's code to it as the job's ``working_dir``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from backtests.execution.base import Executor, TaskFailure, call

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_HINT = "Ray is not installed: pip install -e '.[ray]' in the checkout (the ray extra)"
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
GPU_FRACTION = 0.25       # a task's share of a GPU when a walk-forward trains on a Ray cluster's GPUs
MAX_RETRIES = 2           # a task whose worker died is run again (up to twice)
PACKAGES = ("data", "models", "strategy", "backtests")
WORKING_DIR_EXCLUDES = [".git", ".venv", "runs", ".pytest_cache", "**/__pycache__", "*.pt",
                        "*.safetensors", ".ruff_cache"]


def import_ray(local: bool = True):
    """``import ray``, or the one clear error when it is not installed. ``local``: this process
    may start a private instance, so Ray is told to bind loopback only (before it is imported)."""
    from backtests.config import ConfigError

    if local:
        os.environ.setdefault(LOOPBACK_ENV, "0")
    try:
        import ray
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return ray


class RayExecutor(Executor):
    """The executor on Ray. ``address``: None starts a private local instance with ``workers``
    CPUs (shut down again by :meth:`shutdown`); ``"auto"`` or ``"ray://host:port"`` joins a
    running cluster (left running). If this process already holds a Ray connection it is used
    as it is and left alone. ``gpus_per_task``: each task's share of a GPU (0: CPU only)."""

    def __init__(self, workers: int = 1, threads: int = 1, address: str | None = None,
                 gpus_per_task: float = 0.0) -> None:
        from backtests.config import ConfigError

        if gpus_per_task < 0:
            raise ConfigError(f"gpus_per_task must be 0 or more, not {gpus_per_task}")
        self.workers, self.threads = max(1, int(workers)), int(threads)
        self.address, self.gpus_per_task = address, float(gpus_per_task)
        self._owned = False
        ray = self._ray = import_ray(local=address is None)
        if ray.is_initialized():
            pass                          # the caller's connection: use it, never shut it down
        elif address is None:
            with _loopback_only(ray):
                ray.init(address="local", num_cpus=self.workers, include_dashboard=False,
                         _node_ip_address="127.0.0.1", logging_level=logging.WARNING,
                         runtime_env={"env_vars": {"PYTHONPATH": _pythonpath()}})
            self._owned = True
            node_ip = ray.util.get_node_ip_address()
            if node_ip != "127.0.0.1":
                self.shutdown()
                raise ConfigError(f"the local Ray instance came up on {node_ip}, not loopback; "
                                  f"set {LOOPBACK_ENV}=0 before Ray is imported")
        else:
            try:
                ray.init(address=address, logging_level=logging.WARNING,
                         runtime_env=_code_env())
            except (ConnectionError, TimeoutError, ValueError, ImportError) as exc:
                raise ConfigError(f"`address` {address}: could not join the Ray cluster "
                                  f"({exc})") from None
            self._owned = True            # our connection: shutdown() disconnects, the cluster stays
        self._remote = ray.remote(max_retries=MAX_RETRIES, num_cpus=1)(_run_task)

    def cluster_gpus(self) -> float:
        """GPUs the Ray cluster reports (0 when it has none)."""
        return float(self._ray.cluster_resources().get("GPU", 0))

    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any], *,
            on_done: Callable[[int, Any], None] | None = None,
            catch: tuple[type[BaseException], ...] = ()) -> list[Any]:
        ray = self._ray
        if not tasks:
            return []
        remote = self._remote
        if self.gpus_per_task:
            if self.cluster_gpus() <= 0:
                from backtests.config import ConfigError

                raise ConfigError(f"the tasks ask for {self.gpus_per_task} GPU each but the Ray "
                                  "cluster reports no GPU; train on the CPU (train.device cpu)")
            remote = remote.options(num_gpus=self.gpus_per_task)
        stored: dict[int, Any] = {}

        def shared(x: Any) -> Any:       # one copy in the object store per distinct object
            if not _is_large(x):
                return x
            if id(x) not in stored:
                stored[id(x)] = ray.put(x)
            return stored[id(x)]

        index = {}
        for i, task in enumerate(tasks):
            if isinstance(task, tuple):
                ref = remote.remote(fn, self.threads, True, *[shared(x) for x in task])
            else:
                ref = remote.remote(fn, self.threads, False, shared(task))
            index[ref] = i
        results: list[Any] = [None] * len(tasks)
        pending = list(index)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    i = index[ref]
                    try:
                        results[i] = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:
                        cause = _cause(exc)
                        if not isinstance(cause, catch):
                            raise cause from exc
                        results[i] = TaskFailure(i, cause)
                    if on_done:
                        on_done(i, results[i])
        except BaseException:
            for ref in pending:           # stop what is left: the driver gives up on it
                try:
                    ray.cancel(ref)
                except Exception:  # noqa: BLE001 - best effort while an error propagates
                    pass
            raise
        return results

    def shutdown(self) -> None:
        """Stop the instance this executor started (or drop its connection to a cluster)."""
        if self._owned:
            self._ray.shutdown()
            self._owned = False

    def __repr__(self) -> str:
        where = self.address or "local"
        return (f"RayExecutor({where}, workers={self.workers}, threads={self.threads}, "
                f"gpus_per_task={self.gpus_per_task})")


@contextmanager
def _loopback_only(ray):
    """While a private instance starts: not a cluster, so Ray binds every server to the node
    address 127.0.0.1. ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` is read when Ray is imported; this
    covers an earlier ``import ray`` too. (``address="local"`` in ``ray.init`` makes it start a
    new instance, never join one named by ``RAY_ADDRESS`` or left by ``ray start``.)"""
    constants = getattr(getattr(ray, "_private", None), "ray_constants", None)
    before = getattr(constants, "ENABLE_RAY_CLUSTER", None)
    if before is not None:
        constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if before is not None:
            constants.ENABLE_RAY_CLUSTER = before


def _run_task(fn: Callable[[Any], Any], threads: int, as_tuple: bool, *parts: Any) -> Any:
    """In a Ray worker: rebuild the task (its large parts arrive resolved from the object store)
    and run it with torch pinned to ``threads`` threads."""
    _one_interop_thread()
    return call(fn, tuple(parts) if as_tuple else parts[0], threads)


_INTEROP_SET = False


def _one_interop_thread() -> None:
    """As the local pool's workers: one inter-op thread (settable once per process)."""
    global _INTEROP_SET
    if not _INTEROP_SET:
        import torch

        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:          # torch already ran parallel work in this worker
            pass
        _INTEROP_SET = True


def _is_large(x: Any) -> bool:
    import numpy as np
    import pandas as pd

    return isinstance(x, pd.DataFrame | pd.Series | np.ndarray)


def _cause(exc: BaseException) -> BaseException:
    """The exception the task raised, out of Ray's wrapper."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return cause
    try:
        return exc.as_instanceof_cause()
    except Exception:  # noqa: BLE001 - the wrapper itself is the best we have
        return exc


def _code_env() -> dict:
    """The job's runtime environment on a cluster: this checkout as the working directory (an
    installed copy: its four packages), so the workers run the driver's code."""
    if (REPO_ROOT / "pyproject.toml").is_file():
        return {"working_dir": str(REPO_ROOT), "excludes": WORKING_DIR_EXCLUDES}
    return {"py_modules": [str(REPO_ROOT / p) for p in PACKAGES],
            "excludes": WORKING_DIR_EXCLUDES}


def _pythonpath() -> str:
    """Workers of a local instance import what the driver imports: this checkout first, then the
    driver's own import path (as the local pool's workers do), less the
    interpreter's folders, which every worker has anyway."""
    own = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    paths = [str(REPO_ROOT)]
    for p in [*sys.path, *os.environ.get("PYTHONPATH", "").split(os.pathsep)]:
        if not p or not os.path.isdir(p):
            continue
        real = os.path.realpath(p)
        if any(real == o or real.startswith(o + os.sep) for o in own):
            continue
        if real not in {os.path.realpath(q) for q in paths}:
            paths.append(p if os.path.isabs(p) else os.path.abspath(p))
    return os.pathsep.join(paths)


__all__ = ["GPU_FRACTION", "INSTALL_HINT", "RayExecutor", "import_ray"]
