"""Run owners: an ``flock`` on ``<run>/.owner.lock`` held for the owning process's lifetime and released by
the operating system however it ends, so a ``running`` run whose owner died is shown ``dead``."""

from __future__ import annotations

import json
import os
import socket
from contextlib import suppress
from pathlib import Path

from backtests.store.runs import now

OWNER_LOCK = ".owner.lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: owners are recorded but never verified
    fcntl = None  # type: ignore[assignment]

_HELD: dict[str, int] = {}      # run folder -> descriptor holding its owner lock (this process)


def host() -> str:
    return socket.gethostname()


def take_ownership(folder: Path) -> bool:
    """Hold the owner lock of ``folder`` for this process; False if a live process holds it."""
    key = str(folder.resolve())
    if key in _HELD or fcntl is None:
        return True
    fd = os.open(folder / OWNER_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    except OSError:
        os.close(fd)
        raise
    text = json.dumps({"pid": os.getpid(), "host": host(), "since": now()}).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, text, 0)
    _HELD[key] = fd
    return True


def release(folder: Path) -> None:
    """Give up this process's owner lock of ``folder`` (if it holds one)."""
    with suppress(OSError):
        fd = _HELD.pop(str(folder.resolve()), None)
        if fd is not None:
            os.close(fd)


def liveness(folder: Path, owner_pid: int | None, owner_host: str | None) -> str:
    """Whether the owner of a 'running' run is alive: "alive", "dead" or "unverifiable".

    On the owner's host the lock file decides (a pid can be reused; a lock cannot outlive its
    process). Another host, a run from before owners were recorded (registry v2), or a system
    without ``flock`` is "unverifiable".
    """
    if owner_host is None or owner_host != host() or fcntl is None:
        return "unverifiable"
    if str(folder.resolve()) in _HELD:
        return "alive"
    try:
        fd = os.open(folder / OWNER_LOCK, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:       # lock file gone: fall back to the pid
        if not folder.is_dir() or owner_pid is None:
            return "unverifiable"
        try:
            os.kill(owner_pid, 0)
        except ProcessLookupError:
            return "dead"
        except OSError:
            pass
        return "unverifiable"       # a live pid may be another process: cannot tell
    except OSError:
        return "unverifiable"
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return "alive"
    except OSError:
        return "unverifiable"
    finally:
        os.close(fd)                # closing drops the probe's shared lock, if it got one
    return "dead"


__all__ = ["OWNER_LOCK", "host", "liveness", "release", "take_ownership"]
