"""Run folders and the SQLite run registry (v2).

Every run (train, backtest, walk-forward, sweep, paper, compare) gets ``<root>/<id>/`` holding a
``run.json`` that describes it, and one row in ``<root>/registry.sqlite``, so runs can be listed,
compared and reused by id later without re-running anything. Only the driver process writes runs.

The registry also keeps an append-only ``trials`` table: one row per strategy/config tried on a
data set, so a later deflated-Sharpe check can count every trial, including removed runs. A trial
is keyed by (kind, data fingerprint, config id): the same configuration, seed and fold evaluated
again on the same data is the same trial, never a new one (a unique index; ``add_trial`` keeps the
first row). The ``comparisons`` table, append-only too, keeps every verdict of one model against
another on a data set, so the k-th comparison of a pair on the same bars can be judged at α / k.

A run that is ``running`` is owned by the process that created (or resumed) it: that process
holds an exclusive ``flock`` on ``<run>/.owner.lock`` and the row records its pid and host. The
operating system releases the lock when the process ends, however it ends (SIGKILL included), so
``list``/``get`` show a ``running`` run whose lock is free as ``dead``. A run owned by another
host cannot be checked from here (pids are per host and locks over network file systems are not
reliable): it stays ``running`` with ``liveness`` ``"unverifiable"``.

Files are written atomically and durably (``data.atomic.atomic_write``: temp file, fsync,
``os.replace``, fsync of the folder) and ``finish`` is called last, so a run
whose status is ``done`` always has complete files. The schema version lives in
``PRAGMA user_version`` (``backtests.store.sqlitedb``, shared with the paper journals); older registries
(v1, made by ``backtests/runs.py``; v2, without owners and with duplicate trials; v3, whose trials
column ``sharpe_per_bar`` was called ``sharpe``; v4, without the ``comparisons`` table) are
upgraded in place.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from backtests.store import runs
from backtests.store import sqlitedb as sqldb
from backtests.store.owners import OWNER_LOCK, host, liveness, release, take_ownership
from backtests.store.runs import (
    MIN_PREFIX,
    REGISTRY_NAME,
    Run,
    RunError,
    StoreError,
    dumps_summary,
    now,
    read_meta,
    runs_root,
)
from data.errors import AttnbtError

KINDS = ("train", "backtest", "walkforward", "sweep", "paper", "compare")
STATUSES = ("running", "done", "failed", "interrupted")
DEAD = "dead"                   # shown, never stored: 'running' whose owner process has ended
SHOWN_STATUSES = (*STATUSES, DEAD)
UNOWNED_KINDS = ("paper",)      # a paper account stays open between the processes that step it
SCHEMA_VERSION = 5

COLUMNS = ("id", "kind", "created", "finished", "status", "model", "data", "fingerprint",
           "parent", "config_id", "command", "summary", "owner_pid", "owner_host")


def _m0_v1_table(db: sqlite3.Connection) -> None:
    """v1: the ``runs`` table made by ``backtests/runs.py`` (already present in v1 files)."""
    db.execute("""
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
        )""")


def _m1_v2(db: sqlite3.Connection) -> None:
    """v2: finished time, config id and command line on runs; the append-only trials table."""
    for column in ("finished", "config_id", "command"):
        db.execute(f"ALTER TABLE runs ADD COLUMN {column} TEXT")
    db.execute("CREATE INDEX IF NOT EXISTS runs_created ON runs (created)")
    db.execute("CREATE INDEX IF NOT EXISTS runs_kind_status ON runs (kind, status, created)")
    db.execute("""
        CREATE TABLE IF NOT EXISTS trials (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            created TEXT NOT NULL,
            run_id TEXT,
            kind TEXT,
            config_id TEXT,
            fingerprint TEXT,
            n_obs INTEGER,
            sharpe REAL,
            skew REAL,
            kurtosis REAL,
            note TEXT
        )""")
    db.execute("CREATE INDEX IF NOT EXISTS trials_fingerprint ON trials (fingerprint, kind)")


def _m2_v3(db: sqlite3.Connection) -> None:
    """v3: the owner (pid, host) of a running run; a trial is unique per (kind, data
    fingerprint, config id).

    Repeated trials of a v2 registry (a finished study re-run, which the DSR counted twice) are
    moved, not deleted, to ``trials_duplicates``: the first of each key stays in ``trials``.
    """
    for column, kind in (("owner_pid", "INTEGER"), ("owner_host", "TEXT")):
        db.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
    db.execute("CREATE TABLE IF NOT EXISTS trials_duplicates AS SELECT * FROM trials WHERE 0")
    repeated = ("SELECT id FROM trials t WHERE config_id IS NOT NULL AND EXISTS (SELECT 1 FROM "
                "trials e WHERE e.kind IS t.kind AND e.fingerprint IS t.fingerprint AND "
                "e.config_id = t.config_id AND e.id < t.id)")
    db.execute(f"INSERT INTO trials_duplicates SELECT * FROM trials WHERE id IN ({repeated})")
    db.execute("DELETE FROM trials WHERE id IN (SELECT id FROM trials_duplicates)")
    db.execute("CREATE UNIQUE INDEX IF NOT EXISTS trials_key ON trials "
               "(kind, ifnull(fingerprint, ''), config_id) WHERE config_id IS NOT NULL")


def _m3_v4(db: sqlite3.Connection) -> None:
    """v4: the trials' per-bar Sharpe ratio is ``sharpe_per_bar`` (``sharpe`` is the annualised
    figure everywhere else); the column is renamed, its values kept."""
    for table in ("trials", "trials_duplicates"):
        db.execute(f"ALTER TABLE {table} RENAME COLUMN sharpe TO sharpe_per_bar")


def _m4_v5(db: sqlite3.Connection) -> None:
    """v5: the ``comparisons`` table (one row per pair, data set and configuration compared)."""
    db.execute("""
        CREATE TABLE IF NOT EXISTS comparisons (
            id INTEGER PRIMARY KEY AUTOINCREMENT, created TEXT NOT NULL, run_id TEXT, fingerprint
            TEXT NOT NULL, pair TEXT NOT NULL, config_id TEXT NOT NULL, n_obs INTEGER, diff REAL,
            p_bootstrap REAL, p_spa_better REAL, p_spa_worse REAL, alpha REAL, decision TEXT)""")
    db.execute("CREATE UNIQUE INDEX IF NOT EXISTS comparisons_key ON comparisons "
               "(fingerprint, pair, config_id)")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_m0_v1_table, _m1_v2, _m2_v3, _m3_v4,
                                                           _m4_v5]
assert len(MIGRATIONS) == SCHEMA_VERSION


def _nan_as_null(*values: Any) -> list:
    return [None if isinstance(v, float) and v != v else v for v in values]   # NaN → NULL


def _sort_key(value: Any) -> tuple[int, Any]:
    """Numbers (and "inf"/"-inf") before text, so mixed values never raise when sorted."""
    if isinstance(value, (int, float)):
        return (0, float(value))
    if value in ("inf", "-inf"):
        return (0, float(value))
    return (1, str(value))


class Registry:
    """The run registry of one runs folder; opens a short-lived connection per operation."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = runs_root(root)
        self.path = self.root / REGISTRY_NAME

    # --- connections ---------------------------------------------------------------------

    def _check(self, write: bool) -> bool:
        """Check the runs folder and registry file; False when there is nothing to read yet."""
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"runs folder {self.root} is a file, not a folder: move it away or "
                             f"point ATTNBT_RUNS at a folder")
        if self.path.is_dir():
            raise StoreError(f"registry {self.path} is a directory, not a SQLite file: move it "
                             f"away (run folders are kept) and re-run")
        if not write and not self.path.exists():
            return False
        if write:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create runs folder {self.root}: {exc.strerror or exc}; "
                                 f"point ATTNBT_RUNS at a writable folder") from exc
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StoreError(f"runs folder {self.root} is not writable: fix its permissions or "
                             f"point ATTNBT_RUNS at another folder")
        return True

    def _storage_error(self, exc: sqlite3.Error) -> StoreError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return StoreError(f"registry {self.path} stayed locked for over a minute by another "
                              f"attnbt process ({text}); wait for it to end and re-run")
        return StoreError(f"registry {self.path} is not a usable attnbt registry ({text}): move "
                          f"it aside (e.g. to {REGISTRY_NAME}.bad); run folders are kept and a new "
                          f"registry is made on the next run")

    @contextmanager
    def _connect(self, write: bool = False) -> Iterator[sqlite3.Connection | None]:
        """A connection in autocommit mode (WAL, busy timeout, migrated), or None if no registry."""
        if not self._check(write):
            yield None
            return
        try:
            db = sqldb.connect(self.path, timeout=60)
        except sqlite3.Error as exc:
            raise self._storage_error(exc) from exc
        with closing(db):
            try:
                sqldb.prepare(db, timeout=60, steps=MIGRATIONS, newer=self._newer)
            except sqlite3.Error as exc:
                raise self._storage_error(exc) from exc
            db.row_factory = sqlite3.Row
            try:
                yield db
            except sqlite3.Error as exc:
                raise self._storage_error(exc) from exc

    def _transaction(self, db: sqlite3.Connection):
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (``sqlitedb.transaction``)."""
        return sqldb.transaction(db)

    def _newer(self, version: int) -> StoreError:
        return StoreError(f"registry {self.path} was made by a newer attnbt (schema "
                          f"v{version}, this one knows v{SCHEMA_VERSION}): upgrade attnbt")

    # --- writing runs ----------------------------------------------------------------------

    def create(self, kind: str, *, model: str | None = None, data: str | None = None,
               fingerprint: str | None = None, parent: str | None = None,
               config_id: str | None = None, command: str | Sequence[str] | None = None,
               meta: dict | None = None) -> Run:
        """Make the run folder with ``run.json`` and insert its row (status 'running').

        This process becomes the run's owner (its lock, pid and host), except for kinds in
        ``UNOWNED_KINDS``, which no single process runs.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown run kind {kind!r}; expected one of {', '.join(KINDS)}")
        clash = {"id", "kind", "created"} & set(meta or {})
        if clash:
            raise ValueError(f"meta may not set {', '.join(sorted(clash))}")
        if command is not None and not isinstance(command, str):
            command = shlex.join(command)
        with self._connect(write=True) as db:
            assert db is not None
            for _ in range(5):
                run_id, created = runs.new_id(), now()
                path = self.root / run_id
                try:
                    path.mkdir()
                except FileExistsError:
                    continue
                except OSError as exc:
                    raise StoreError(f"cannot create run folder {path}: {exc.strerror or exc}") \
                        from exc
                run = Run(run_id, kind, path, self.root)
                try:
                    run.write_json("run.json", {
                        "id": run_id, "kind": kind, "created": created, "model": model,
                        "data": data, "fingerprint": fingerprint, "parent": parent,
                        "config_id": config_id, "command": command, **(meta or {})})
                    owner = (None, None)
                    if kind not in UNOWNED_KINDS:
                        take_ownership(path)
                        owner = (os.getpid(), host())
                    with self._transaction(db):
                        db.execute(
                            "INSERT INTO runs (id, kind, created, status, model, data, fingerprint,"
                            " parent, config_id, command, owner_pid, owner_host) VALUES "
                            "(?,?,?,?,?,?,?,?,?,?,?,?)",
                            (run_id, kind, created, "running", model, data, fingerprint, parent,
                             config_id, command, *owner))
                except sqlite3.IntegrityError:
                    release(path)
                    shutil.rmtree(path, ignore_errors=True)
                    continue
                except BaseException:
                    release(path)
                    shutil.rmtree(path, ignore_errors=True)
                    raise
                return run
        raise StoreError(f"could not find a free run id in {self.root} after 5 tries")

    def finish(self, run: Run, summary: dict, status: str = "done") -> None:
        """Record the summary, status and finished time. Call it LAST, after all files are written.

        NaN in the summary is stored as null and +/-inf as "inf"/"-inf", so it stays valid JSON.
        """
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; expected one of {', '.join(STATUSES)}")
        self._update(run.id, "UPDATE runs SET status=?, finished=?, summary=? WHERE id=?",
                     (status, now(), dumps_summary(summary), run.id))
        release(run.path)

    def mark(self, run: Run | str, status: str) -> None:
        """Set a run's status to 'failed' or 'interrupted', or back to 'running' (resuming it:
        this process becomes its owner; RunError if a live process still owns it)."""
        if status not in STATUSES or status == "done":
            raise ValueError(f"mark() takes 'failed', 'interrupted' or 'running', not {status!r}"
                             f" (use finish() for 'done')")
        run_id = run.id if isinstance(run, Run) else run
        folder = run.path if isinstance(run, Run) else self.root / run_id
        if status != "running":
            self._update(run_id, "UPDATE runs SET status=?, finished=? WHERE id=?",
                         (status, now(), run_id))
            release(folder)
            return
        owned = folder.is_dir() and self._kind(run_id) not in UNOWNED_KINDS
        if owned and not take_ownership(folder):
            raise RunError(f"run {run_id} is still running in another process (it holds "
                           f"{folder / OWNER_LOCK}); wait for it to end")
        owner = (os.getpid(), host()) if owned else (None, None)
        try:
            self._update(run_id, "UPDATE runs SET status=?, finished=NULL, owner_pid=?, "
                         "owner_host=? WHERE id=?", ("running", *owner, run_id))
        except BaseException:
            release(folder)
            raise

    def _kind(self, run_id: str) -> str | None:
        with self._connect() as db:
            row = None if db is None else db.execute("SELECT kind FROM runs WHERE id=?",
                                                     (run_id,)).fetchone()
        return None if row is None else row["kind"]

    def _update(self, run_id: str, sql: str, args: tuple) -> None:
        with self._connect(write=True) as db:
            assert db is not None
            with self._transaction(db):
                if db.execute(sql, args).rowcount != 1:
                    raise RunError(f"run {run_id} is not in the registry {self.path}")

    @contextmanager
    def recording(self, run: Run) -> Iterator[Run]:
        """Mark ``run`` 'interrupted' on KeyboardInterrupt (SIGTERM too, via the CLI) and 'failed'
        on any other exception, then re-raise. Success does not finish it: call ``finish``.

        Only a run still 'running' is marked, so an error after ``finish`` keeps a done run done.
        """
        try:
            yield run
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, Exception)):
                status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
                try:
                    with self._connect(write=True) as db:
                        assert db is not None
                        with self._transaction(db):
                            db.execute("UPDATE runs SET status=?, finished=? WHERE id=? AND "
                                       "status='running'", (status, now(), run.id))
                except AttnbtError as err:  # never hide the original error
                    exc.add_note(f"(could not mark run {run.id} {status}: {err})")
                release(run.path)
            raise

    def discard(self, run: Run) -> None:
        """Remove the run's folder and row: a run that failed on bad input leaves nothing."""
        release(run.path)
        shutil.rmtree(run.path, ignore_errors=True)
        with self._connect(write=True) as db:
            assert db is not None
            with self._transaction(db):
                db.execute("DELETE FROM runs WHERE id=?", (run.id,))

    def remove(self, ids: Iterable[str]) -> list[str]:
        """Delete the rows and folders of these exact ids (all checked first); trials are kept."""
        ids = list(dict.fromkeys(ids))
        with self._connect(write=True) as db:
            assert db is not None
            known = {r["id"] for r in db.execute(
                f"SELECT id FROM runs WHERE id IN ({','.join('?' * len(ids))})", ids)}
            unknown = [i for i in ids if i not in known]
            if unknown:
                raise RunError(f"no run {', '.join(unknown)} in {self.root}/ (nothing removed)",
                               see="runs list")
            for run_id in ids:
                folder = self.root / run_id
                if folder.parent != self.root or run_id in ("", ".", ".."):
                    raise RunError(f"refusing to remove {folder}: not a run folder of {self.root}")
                release(folder)
                try:
                    shutil.rmtree(folder)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise StoreError(f"could not remove {folder}: {exc.strerror or exc}") from exc
                with self._transaction(db):
                    db.execute("DELETE FROM runs WHERE id=?", (run_id,))
        return ids

    # --- trials ------------------------------------------------------------------------------

    def add_trial(self, *, run_id: str | None, kind: str, config_id: str | None = None,
                  fingerprint: str | None = None, n_obs: int | None = None,
                  sharpe_per_bar: float | None = None, skew: float | None = None,
                  kurtosis: float | None = None, note: str | None = None) -> int:
        """Append one trial (never updated or deleted); returns its id.

        A trial with the same ``kind``, ``fingerprint`` and ``config_id`` as a recorded one (the
        same configuration, seed and fold evaluated again on the same data) is that trial, not a
        new one: nothing is added and the recorded trial's id is returned. ``kurtosis`` is plain
        (non-excess), 3.0 for normal returns, as the deflated Sharpe ratio expects;
        ``sharpe_per_bar`` is per bar; a NaN statistic (not defined) is stored as NULL."""
        sharpe_per_bar, skew, kurtosis = _nan_as_null(sharpe_per_bar, skew, kurtosis)
        with self._connect(write=True) as db:
            assert db is not None
            with self._transaction(db):
                cur = db.execute(
                    "INSERT OR IGNORE INTO trials (created, run_id, kind, config_id, fingerprint,"
                    " n_obs, sharpe_per_bar, skew, kurtosis, note) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (now(), run_id, kind, config_id, fingerprint, n_obs, sharpe_per_bar, skew,
                     kurtosis, note))
                if cur.rowcount == 1:
                    return int(cur.lastrowid)
                return int(db.execute(
                    "SELECT id FROM trials WHERE kind IS ? AND fingerprint IS ? AND config_id=?",
                    (kind, fingerprint, config_id)).fetchone()[0])

    def trials(self, fingerprint: str | None = None, kind: str | None = None) -> list[dict]:
        """All trials (of this data fingerprint / kind), oldest first."""
        where, args = self._where(fingerprint=fingerprint, kind=kind)
        with self._connect() as db:
            if db is None:
                return []
            return [dict(r) for r in db.execute(f"SELECT * FROM trials{where} ORDER BY id", args)]

    def comparison_family(self, *, fingerprint: str, pair: str, config_id: str) -> list[dict]:
        """The comparisons of ``pair`` on ``fingerprint`` recorded before the one keyed by
        ``config_id`` (all of them when it is not recorded yet), oldest first: the family a new
        verdict of the pair on these bars is charged for."""
        with self._connect() as db:
            rows = [] if db is None else [dict(r) for r in db.execute(
                "SELECT * FROM comparisons WHERE fingerprint=? AND pair=? ORDER BY id",
                (fingerprint, pair))]
        ids = [r["config_id"] for r in rows]
        return rows[:ids.index(config_id)] if config_id in ids else rows

    def add_comparison(self, *, run_id: str | None, fingerprint: str, pair: str, config_id: str,
                       **numbers: Any) -> None:
        """Record one comparison (``numbers``: n_obs, diff, p_bootstrap, p_spa_better/worse,
        alpha, decision; NaN as NULL); one already recorded is kept as it was."""
        keys = ("n_obs", "diff", "p_bootstrap", "p_spa_better", "p_spa_worse", "alpha", "decision")
        values = _nan_as_null(*(numbers.get(k) for k in keys))
        with self._connect(write=True) as db:
            assert db is not None
            with self._transaction(db):
                db.execute(f"INSERT OR IGNORE INTO comparisons (created, run_id, fingerprint, pair,"
                           f" config_id, {', '.join(keys)}) VALUES ({', '.join('?' * 12)})",
                           (now(), run_id, fingerprint, pair, config_id, *values))

    @staticmethod
    def _where(**equal: Any) -> tuple[str, list]:
        parts = [(f"{k}=?", v) for k, v in equal.items() if v is not None]
        return (" WHERE " + " AND ".join(p for p, _ in parts) if parts else "",
                [v for _, v in parts])

    # --- reading runs ------------------------------------------------------------------------

    def _row_dict(self, row: sqlite3.Row) -> dict:
        out = {c: row[c] for c in COLUMNS}
        try:
            summary = json.loads(row["summary"]) if row["summary"] else {}
        except ValueError:
            summary = {}
        out["summary"] = summary if isinstance(summary, dict) else {"value": summary}
        folder = self.root / row["id"]
        out["missing"] = not folder.is_dir()
        out["liveness"] = None
        if out["status"] == "running" and out["kind"] not in UNOWNED_KINDS:
            out["liveness"] = liveness(folder, out["owner_pid"], out["owner_host"])
            if out["liveness"] == "dead":
                out["status"] = DEAD
        return out

    def list(self, kind: str | None = None, data: str | None = None, model: str | None = None,
             sort: str | None = None, descending: bool = True, limit: int | None = None,
             status: str | None = None) -> list[dict]:
        """Registry rows, newest first; ``data``/``model`` match by substring (any case).

        ``sort`` is a column name or else a summary key; rows without it come last either way.
        Each dict has the columns, ``summary`` parsed, ``missing`` (folder gone) and
        ``liveness`` (of a running run's owner: see ``liveness``; None otherwise). ``status`` is
        as shown: ``dead`` for a running run whose owner has ended; ``status`` filters on it.
        """
        if status is not None and status not in SHOWN_STATUSES:
            raise RunError(f"unknown run status {status!r}; choose {', '.join(SHOWN_STATUSES)}")
        stored = "running" if status == DEAD else status
        where, args = self._where(kind=kind, status=stored)
        for column, text in (("data", data), ("model", model)):
            if text is not None:
                where += (" AND " if where else " WHERE ") + f"instr(lower({column}), lower(?)) > 0"
                args.append(text)
        order = "DESC" if descending else "ASC"
        with self._connect() as db:
            if db is None:
                return []
            rows = [self._row_dict(r) for r in db.execute(
                f"SELECT * FROM runs{where} ORDER BY created {order}, rowid {order}", args)]
        if status is not None:
            rows = [r for r in rows if r["status"] == status]
        if sort is not None:
            def value(row: dict) -> Any:
                return row.get(sort) if sort in COLUMNS else row["summary"].get(sort)
            present = [r for r in rows if value(r) is not None]
            present.sort(key=lambda r: _sort_key(value(r)), reverse=descending)
            rows = present + [r for r in rows if value(r) is None]
        return rows[:limit] if limit is not None else rows

    def _lookup(self, ref: str | Path, kind: str | None) -> tuple[Run, dict | None]:
        """The run ``ref`` names, and its row (None for a folder given by path without a row)."""
        text = str(ref)
        with self._connect() as db:
            if text == "latest":
                where, args = self._where(kind=kind, status="done")
                row = db.execute(f"SELECT * FROM runs{where} ORDER BY created DESC, rowid DESC "
                                 "LIMIT 1", args).fetchone() if db is not None else None
                if row is None:
                    what = f"finished {kind} run" if kind else "finished run"
                    raise RunError(f"no {what} in {self.root}/ yet", see="runs list")
                matches = [row]
            elif db is None:
                matches = []
            else:
                matches = db.execute("SELECT * FROM runs WHERE id=?", (text,)).fetchall()
                if not matches and len(text) >= MIN_PREFIX:
                    matches = db.execute("SELECT * FROM runs WHERE substr(id, 1, ?) = ? "
                                         "ORDER BY id LIMIT 11", (len(text), text)).fetchall()
        if len(matches) == 1:
            row = self._row_dict(matches[0])
            run = Run(row["id"], row["kind"], self.root / row["id"], self.root)
        else:
            folder = Path(ref)
            if (folder / "run.json").is_file():
                meta = read_meta(folder)
                run, row = Run(str(meta.get("id") or folder.name), meta["kind"], folder,
                               folder.parent), None
            elif matches:
                ids = [m["id"] for m in matches]
                more = " and more" if len(ids) > 10 else ""
                raise RunError(f"{text!r} matches several runs in {self.root}/: "
                               f"{', '.join(ids[:10])}{more}; give more characters")
            elif len(text) < MIN_PREFIX:
                raise RunError(f"no run {text!r} in {self.root}/; id prefixes need "
                               f"{MIN_PREFIX}+ characters", see="runs list")
            else:
                raise RunError(f"no run {text!r} in {self.root}/", see="runs list")
        if kind is not None and run.kind != kind:
            raise RunError(f"run {run.id} is a {run.kind} run, not a {kind} run")
        return run, row

    def unfinished(self, kind: str, config_id: str) -> Run | None:
        """A run of ``kind`` with this config id that did not finish and still has its folder
        (what the same command resumes), or None. One that a live process is computing is
        never resumed: RunError if that is the only one."""
        busy = None
        for row in self.list(kind=kind):
            if row["config_id"] == config_id and row["status"] != "done" and not row["missing"]:
                if row["liveness"] == "alive":
                    busy = busy or row
                    continue
                return Run(row["id"], kind, self.root / row["id"], self.root)
        if busy is not None:
            raise RunError(f"{kind} run {busy['id']} with these settings is still running "
                           f"(process {busy['owner_pid']} on {busy['owner_host']}); wait for it "
                           f"to end, or stop it and run the same command to resume it")
        return None

    def finished(self, kind: str, config_id: str) -> Run | None:
        """The newest finished run of ``kind`` with this config id whose folder is still there
        (what the same command reprints instead of recomputing), or None."""
        for row in self.list(kind=kind, status="done"):
            if row["config_id"] == config_id and not row["missing"]:
                return Run(row["id"], kind, self.root / row["id"], self.root)
        return None

    def resolve(self, ref: str | Path, kind: str | None = None) -> Run:
        """The run ``ref`` names: ``latest`` (newest done run, of ``kind`` if given), an exact
        id, a unique id prefix of 4+ characters, or a folder path holding ``run.json``."""
        run, _ = self._lookup(ref, kind)
        if not run.path.is_dir():
            raise RunError(f"run {run.id} is in the registry but its folder {run.path} is gone; "
                           "removing the run drops the row", see=f"runs rm {run.id}")
        return run

    def get(self, ref: str | Path) -> dict:
        """The run's row plus ``files`` (names in its folder, sorted) and ``meta`` (run.json)."""
        run, row = self._lookup(ref, None)
        meta = read_meta(run.path) if run.path.is_dir() else {}
        if row is None:  # a folder given by path that the registry does not know
            row = {c: meta.get(c) for c in COLUMNS}
            row.update(id=run.id, kind=run.kind, summary={}, missing=False, liveness=None)
        files = sorted(p.name for p in run.path.iterdir()
                       if not p.name.endswith(".tmp") and p.name != OWNER_LOCK) \
            if run.path.is_dir() else []
        return {**row, "files": files, "meta": meta}
