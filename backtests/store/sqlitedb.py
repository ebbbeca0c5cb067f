"""The one SQLite set-up of the run registry (``store``) and the paper journals (``paper``).

- ``connect``: an autocommit connection (transactions are explicit, see ``transaction``);
- ``prepare``: busy timeout, WAL journal (readers never block the one writer), optionally
  ``synchronous = FULL``, and the schema brought to the newest version: ``steps[v]`` upgrades a
  file from ``PRAGMA user_version`` v to v + 1, all pending steps in one transaction;
- ``transaction``: ``BEGIN IMMEDIATE`` (the write lock is taken at the start, so two writers
  queue instead of failing half-way) … ``COMMIT``, ``ROLLBACK`` on any exception.

SQLite errors propagate as ``sqlite3.Error``: each caller turns them into its own message.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

Step = Callable[[sqlite3.Connection], None]


def connect(path: str | Path, *, timeout: float) -> sqlite3.Connection:
    """An autocommit connection to ``path`` that waits up to ``timeout`` seconds for a lock."""
    return sqlite3.connect(path, timeout=timeout, isolation_level=None)


def prepare(db: sqlite3.Connection, *, timeout: float, steps: Sequence[Step],
            newer: Callable[[int], Exception], synchronous_full: bool = False) -> None:
    """Busy timeout, WAL and the schema at version ``len(steps)``; ``newer(version)`` is the
    error raised for a file made by a newer attnbt (its version is above ``len(steps)``)."""
    db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        db.execute("PRAGMA journal_mode = WAL")
    if synchronous_full:
        db.execute("PRAGMA synchronous = FULL")
    migrate(db, steps, newer)


def migrate(db: sqlite3.Connection, steps: Sequence[Step],
            newer: Callable[[int], Exception]) -> None:
    """Run ``steps[user_version:]`` and set ``user_version = len(steps)``, in one transaction
    (a second process migrating at the same time waits, then finds nothing left to do)."""
    latest = len(steps)
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version == latest:
        return
    if version > latest:
        raise newer(version)
    with transaction(db):
        version = db.execute("PRAGMA user_version").fetchone()[0]   # another process won?
        for step in steps[version:]:
            step(db)
        db.execute(f"PRAGMA user_version = {latest}")


@contextmanager
def transaction(db: sqlite3.Connection, *,
                busy: Callable[[sqlite3.OperationalError], Exception] | None = None,
                before_commit: Callable[[], None] | None = None) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``; ``ROLLBACK`` and re-raise on any exception.

    ``busy(error)``: the error to raise instead when the write lock cannot be taken;
    ``before_commit``: called after the body, just before ``COMMIT`` (crash tests hook here).
    """
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if busy is None:
            raise
        raise busy(exc) from exc
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    if before_commit is not None:
        before_commit()
    db.execute("COMMIT")


__all__ = ["Step", "connect", "migrate", "prepare", "transaction"]
