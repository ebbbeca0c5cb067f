"""Where tasks run: inline or in a process pool (:mod:`.local`), or on Ray (:mod:`.ray_cluster`); pick one by name."""

from __future__ import annotations

from backtests.execution.base import Deferred, Executor, TaskFailure
from backtests.execution.local import (
    WORKERS_PER_CORE,
    LocalExecutor,
    check_workers,
    default_workers,
    run_alongside,
    run_tasks,
)

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
            raise ConfigError("`address` is for the `executor` ray (the local executor runs here)")
        if gpus_per_task:
            raise ConfigError("gpus_per_task is for the `executor` ray")
        return LocalExecutor(workers, threads)
    if name == "ray":
        from backtests.execution.ray_cluster import RayExecutor

        return RayExecutor(workers=workers, threads=threads, address=address,
                           gpus_per_task=gpus_per_task)
    raise ConfigError(f"`executor`: unknown executor {kind!r}; choose {' or '.join(EXECUTORS)}")


def local_device(name: str) -> str:
    """``auto`` | ``cpu`` | ``cuda`` → the device this process trains on (``cuda`` where none
    is present is an error)."""
    if name == "cpu":
        return "cpu"
    import torch

    from data.errors import AttnbtError

    if name == "cuda" and not torch.cuda.is_available():
        raise AttnbtError("train.device cuda: this machine has no CUDA GPU")
    return "cuda" if torch.cuda.is_available() else "cpu"


def ray_task_executor(*, workers: int, address: str | None, device: str) -> Executor:
    """The Ray executor of a driver's training tasks: a private local instance or the cluster at
    ``address``. ``device="cuda"`` (or ``auto`` where the cluster reports GPUs) gives each task a
    share of a GPU, and is refused where the cluster has none."""
    from backtests.config import ConfigError
    from backtests.execution.ray_cluster import GPU_FRACTION

    ex = make_executor("ray", workers=workers, threads=1, address=address)
    gpus = ex.cluster_gpus()
    if device == "cuda" and gpus <= 0:
        ex.shutdown()
        raise ConfigError(f"train.device cuda: the Ray cluster ({address or 'local instance'}) "
                          "reports no GPU; set train.device to cpu or auto")
    if device == "cuda" or (device == "auto" and gpus > 0):
        ex.gpus_per_task = GPU_FRACTION
    return ex


__all__ = ["EXECUTORS", "WORKERS_PER_CORE", "Deferred", "Executor", "LocalExecutor", "TaskFailure",
           "check_workers", "default_workers",
           "local_device", "make_executor", "ray_task_executor", "run_alongside", "run_tasks"]
