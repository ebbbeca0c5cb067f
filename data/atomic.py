"""The one atomic file writer: every file attnbt writes (run folders, models, caches, outputs).

It lives in ``data/``, the lowest package, because ``models/`` and ``data/`` write files too and
must not import ``backtests/`` (the packages' direction is data ← strategy/models ← backtests).

A crash, a kill or a full disk never leaves a cut-off file under the final name: the content
goes to a temp file in the same folder, is flushed and fsync'd, renamed over the target with
``os.replace`` and the folder is fsync'd, so after a power loss the name holds either the old
content or the new one.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (not possible on every platform: then skipped)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with suppress(OSError):          # e.g. a file system that cannot sync directories
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(target: str | Path, data: bytes | Callable[[Path], object]) -> Path:
    """Write ``data`` (bytes, or a function that writes a file at the path it is given, e.g.
    ``frame.to_parquet``) to ``target`` atomically and durably; returns ``target``.

    On any failure the temp file is removed, ``target`` keeps its old content (or stays absent)
    and the error (an ``OSError`` for disk problems) propagates.
    """
    target = Path(target)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes | bytearray | memoryview):
            with open(tmp, "xb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        else:
            data(tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    return target


__all__ = ["atomic_write"]
