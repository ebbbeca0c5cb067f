"""The one SQLite helper of the registry and the paper journals: WAL, busy timeout, migrations
by user_version (pending steps in one transaction), BEGIN IMMEDIATE transactions."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from backtests.store import sqlitedb

STEPS = [lambda db: db.execute("CREATE TABLE a (x INTEGER)"),
         lambda db: db.execute("ALTER TABLE a ADD COLUMN y TEXT")]


class Newer(Exception):
    pass


def _open(path, steps=STEPS, **kw):
    db = sqlitedb.connect(path, timeout=5)
    sqlitedb.prepare(db, timeout=5, steps=steps, newer=lambda v: Newer(f"v{v}"), **kw)
    return db


def test_prepare_sets_wal_timeout_and_migrates_step_by_step(tmp_path):
    path = tmp_path / "x.sqlite"
    with closing(_open(path, STEPS[:1])) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    with closing(_open(path, synchronous_full=True)) as db:      # the next step only
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2   # FULL
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
        assert [r[1] for r in db.execute("PRAGMA table_info(a)")] == ["x", "y"]
    with pytest.raises(Newer, match="v2"):
        _open(path, STEPS[:1])


def test_a_failed_migration_leaves_the_file_as_it_was(tmp_path):
    path = tmp_path / "x.sqlite"
    _open(path, STEPS[:1]).close()

    def broken(db):
        db.execute("ALTER TABLE a ADD COLUMN z TEXT")
        raise sqlite3.OperationalError("disk I/O error")

    with pytest.raises(sqlite3.OperationalError):
        _open(path, [STEPS[0], broken])
    with closing(sqlitedb.connect(path, timeout=5)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
        assert [r[1] for r in db.execute("PRAGMA table_info(a)")] == ["x"]


def test_transaction_commits_rolls_back_and_reports_a_held_lock(tmp_path):
    path = tmp_path / "x.sqlite"
    with closing(_open(path)) as db, closing(_open(path)) as other:
        with sqlitedb.transaction(db):
            db.execute("INSERT INTO a VALUES (1, 'kept')")
        with pytest.raises(KeyError), sqlitedb.transaction(db):
            db.execute("INSERT INTO a VALUES (2, 'dropped')")
            raise KeyError("fails mid-transaction")
        assert db.execute("SELECT y FROM a").fetchall() == [("kept",)]
        other.execute("PRAGMA busy_timeout = 0")
        seen = []
        with sqlitedb.transaction(db, before_commit=lambda: seen.append("commit")):
            with pytest.raises(Newer, match="busy"), sqlitedb.transaction(
                    other, busy=lambda exc: Newer("busy")):
                pass
        assert seen == ["commit"]
