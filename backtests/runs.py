"""Run folders and the SQLite run registry.

Every run (train, backtest, walk-forward, paper) gets ``<runs>/<id>/`` with a ``run.json`` that
describes it, and one row in ``<runs>/registry.sqlite``, so runs can be listed and compared by id
later without re-running anything.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from data.errors import AttnbtError

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    created TEXT NOT NULL,
    status TEXT NOT NULL,
    model TEXT,
    data TEXT,
    fingerprint TEXT,
    parent TEXT,
    summary TEXT
)
"""


class RunError(AttnbtError):
    """A run id or folder that does not exist or is not of the expected kind."""


def runs_root(root: str | Path | None = None) -> Path:
    """The runs directory: the argument, ``$ATTNBT_RUNS`` or ``./runs``."""
    return Path(root if root is not None else os.environ.get("ATTNBT_RUNS", "runs"))


@dataclass
class Run:
    id: str
    kind: str
    path: Path
    root: Path

    def write_json(self, name: str, payload: dict) -> Path:
        target = self.path / name
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(json.dumps(payload, indent=2, default=str))
        os.replace(tmp, target)
        return target

    def discard(self) -> None:
        """Remove the folder and the registry row: for a run that failed on bad input."""
        import shutil

        shutil.rmtree(self.path, ignore_errors=True)
        with closing(_connect(self.root)) as db, db:
            db.execute("DELETE FROM runs WHERE id=?", (self.id,))

    def finish(self, summary: dict, status: str = "done") -> None:
        with closing(_connect(self.root)) as db, db:
            db.execute("UPDATE runs SET status=?, summary=? WHERE id=?",
                       (status, json.dumps(summary, default=str), self.id))


def new_run(kind: str, *, root: str | Path | None = None, model: str | None = None,
            data: str | None = None, fingerprint: str | None = None,
            parent: str | None = None, meta: dict | None = None) -> Run:
    """Create the run folder and its registry row (status 'running')."""
    base = runs_root(root)
    base.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC)
    run_id = f"{kind}-{stamp:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
    path = base / run_id
    path.mkdir()
    run = Run(run_id, kind, path, base)
    run.write_json("run.json", {"id": run_id, "kind": kind, "created": stamp.isoformat(),
                                "model": model, "data": data, "fingerprint": fingerprint,
                                "parent": parent, **(meta or {})})
    with closing(_connect(base)) as db, db:
        db.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?)",
                   (run_id, kind, stamp.isoformat(), "running", model, data, fingerprint,
                    parent, None))
    return run


def resolve(ref: str | Path, *, root: str | Path | None = None, kind: str | None = None) -> Run:
    """A run by id, unique id prefix, ``latest`` (of ``kind``), or folder path."""
    base = runs_root(root)
    text = str(ref)
    candidate = Path(text)
    if candidate.is_dir() and (candidate / "run.json").exists():
        meta = json.loads((candidate / "run.json").read_text())
        run = Run(meta["id"], meta["kind"], candidate, candidate.parent)
    else:
        ids = [p.name for p in base.iterdir() if (p / "run.json").exists()] if base.is_dir() else []
        if text == "latest":
            ids = sorted(i for i in ids if kind is None or i.startswith(kind + "-"))
            matches = ids[-1:]
        else:
            matches = [i for i in ids if i == text] or [i for i in ids if i.startswith(text)]
        if len(matches) != 1:
            what = "no run" if not matches else f"{len(matches)} runs"
            raise RunError(f"{what} matches {text!r} in {base}/ (see `attnbt runs`)")
        meta = json.loads((base / matches[0] / "run.json").read_text())
        run = Run(meta["id"], meta["kind"], base / matches[0], base)
    if kind is not None and run.kind != kind:
        raise RunError(f"run {run.id} is a {run.kind} run, not a {kind} run")
    return run


def list_runs(root: str | Path | None = None, kind: str | None = None) -> list[dict]:
    """Registry rows, newest first."""
    base = runs_root(root)
    if not (base / "registry.sqlite").exists():
        return []
    with closing(_connect(base)) as db:
        db.row_factory = sqlite3.Row
        sql = "SELECT * FROM runs" + (" WHERE kind=?" if kind else "") + " ORDER BY created DESC"
        rows = db.execute(sql, (kind,) if kind else ()).fetchall()
    return [{**dict(r), "summary": json.loads(r["summary"]) if r["summary"] else {}} for r in rows]


def _connect(base: Path) -> sqlite3.Connection:
    db = sqlite3.connect(base / "registry.sqlite", timeout=30)
    db.execute(SCHEMA)
    return db
