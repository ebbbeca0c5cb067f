"""Run folders: ids, ``run.json``, atomic and durable files, the runs directory."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backtests.analysis.catalog import jsonable
from data.atomic import atomic_write
from data.errors import AttnbtError

REGISTRY_NAME = "registry.sqlite"
MIN_PREFIX = 4


class RunError(AttnbtError):
    """A run reference that is unknown, ambiguous, too short or of the wrong kind."""


class StoreError(AttnbtError):
    """The runs folder or its registry cannot be used (corrupt, wrong type, not writable, full)."""


def runs_root(root: str | Path | None = None) -> Path:
    """The runs directory: the argument, else ``$ATTNBT_RUNS``, else ``./runs``."""
    return Path(root if root is not None else os.environ.get("ATTNBT_RUNS", "runs"))


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def new_id() -> str:
    """A fresh run id: 16 lowercase hex characters (64 random bits). Tests may patch this."""
    return secrets.token_hex(8)


def dumps_summary(summary: dict) -> str:
    return json.dumps(jsonable(summary), allow_nan=False)


def write_file(target: Path, data: bytes) -> Path:
    """``data.atomic.atomic_write`` (temp file, fsync, ``os.replace``, fsync of the folder), a
    disk problem reported as a StoreError that says what to do."""
    try:
        return atomic_write(target, data)
    except OSError as exc:
        raise StoreError(f"could not write {target}: {exc.strerror or exc}; free disk space or "
                         f"fix permissions and re-run (the run is left unfinished)") from exc


@dataclass
class Run:
    """One run: its id, kind and folder (``root / id``)."""

    id: str
    kind: str
    path: Path
    root: Path

    def read_json(self, name: str) -> Any:
        """The JSON file ``name`` of the run folder (what ``write_json`` wrote)."""
        return json.loads((self.path / name).read_text(encoding="utf-8"))

    def write_json(self, name: str, payload: Any, *, indent: int | None = 2) -> Path:
        """Write ``payload`` as strict JSON to ``name`` in the run folder, atomically (cleaned
        by ``catalog.jsonable``: NaN is null, ±inf is "inf"/"-inf", as in every file); indented
        unless ``indent`` is None (large machine-read files: the C encoder, one line)."""
        return self.write_text(name, json.dumps(jsonable(payload), indent=indent,
                                                allow_nan=False))

    def write_text(self, name: str, text: str) -> Path:
        """Write UTF-8 text to ``name`` in the run folder, atomically."""
        return self.write_bytes(name, text.encode("utf-8"))

    def write_bytes(self, name: str, data: bytes) -> Path:
        """Write bytes to ``name`` (may contain sub-folders) in the run folder, atomically."""
        return write_file(self.path / name, data)


def read_meta(folder: Path) -> dict:
    """The parsed ``run.json`` of ``folder``; RunError naming the file if it is not usable."""
    file = folder / "run.json"
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RunError(f"cannot read {file}: {exc.strerror or exc}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise RunError(f"{file} is not valid JSON ({exc}); it is not a usable run") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("kind"), str):
        raise RunError(f"{file} is not a run description (expected a JSON object with a 'kind')")
    return meta


# --- schema migrations: MIGRATIONS[v] upgrades a registry from user_version v to v + 1 ---------


__all__ = ["MIN_PREFIX", "REGISTRY_NAME", "Run", "RunError", "StoreError", "dumps_summary", "new_id", "now", "read_meta",
           "runs_root", "write_file"]
