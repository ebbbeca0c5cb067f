"""The run store: run folders, the SQLite registry v2, its migration from v1, and its failures."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import re
import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from backtests.store import Registry, RunError, StoreError
from backtests.store import registry as store

# backtests/runs.py (registry v1) SCHEMA, copied so the migration test does not depend on it.
V1_SCHEMA = """
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


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"invalid JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def _raw(root: Path, sql: str, args: tuple = ()) -> list[tuple]:
    with closing(sqlite3.connect(root / "registry.sqlite")) as db:
        return db.execute(sql, args).fetchall()


def _ids(monkeypatch, *ids: str) -> None:
    """Make the next create() calls draw these ids in order."""
    queue = list(ids)
    monkeypatch.setattr(store.runs, "new_id", lambda: queue.pop(0))


def test_create_and_finish(tmp_path):
    reg = Registry(tmp_path)
    run = reg.create("backtest", model="attention", data="sample:EURUSD_H1", fingerprint="fp1",
                     parent="abcd", config_id="cfg1", command=["attnbt", "backtest", "--x", "a b"],
                     meta={"threshold": 0.5})
    assert run.path == tmp_path / run.id and run.root == tmp_path
    meta = _strict((run.path / "run.json").read_text())
    assert meta["id"] == run.id and meta["kind"] == "backtest" and meta["threshold"] == 0.5
    assert meta["command"] == "attnbt backtest --x 'a b'"
    (row,) = reg.list()
    assert row["status"] == "running" and row["finished"] is None and row["summary"] == {}
    assert row["config_id"] == "cfg1" and row["missing"] is False

    run.write_json("metrics.json", {"a": 1})
    reg.finish(run, {"win_rate_pct": 55.0, "nan": float("nan"), "up": float("inf"),
                     "down": float("-inf"), "nested": [float("nan"), 1.0]})
    (row,) = reg.list()
    assert row["status"] == "done" and row["finished"] >= row["created"]
    assert row["summary"] == {"win_rate_pct": 55.0, "nan": None, "up": "inf", "down": "-inf",
                              "nested": [None, 1.0]}
    (text,) = _raw(tmp_path, "SELECT summary FROM runs")[0]
    _strict(text)  # raises on NaN / Infinity
    got = reg.get(run.id)
    assert got["files"] == ["metrics.json", "run.json"] and got["meta"]["model"] == "attention"


def test_ids_are_distinct_hex():
    ids = {store.runs.new_id() for _ in range(3000)}
    assert len(ids) == 3000
    assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids)


def test_create_retries_an_id_clash(tmp_path, monkeypatch):
    _ids(monkeypatch, "aaaa000000000001", "aaaa000000000001", "aaaa000000000002",
         "aaaa000000000001", "aaaa000000000003")
    reg = Registry(tmp_path)
    assert reg.create("train").id == "aaaa000000000001"
    assert reg.create("train").id == "aaaa000000000002"  # folder clash
    store.shutil.rmtree(tmp_path / "aaaa000000000001")
    assert reg.create("train").id == "aaaa000000000003"  # row clash (folder was gone)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [
        "aaaa000000000002", "aaaa000000000003"]
    assert len(reg.list()) == 3


def test_resolve_prefixes(tmp_path, monkeypatch):
    _ids(monkeypatch, "abcd111100000000", "abcd222200000000")
    reg = Registry(tmp_path)
    one, two = reg.create("train"), reg.create("backtest")
    assert reg.resolve("abcd1").id == one.id
    assert reg.resolve("abcd2222", kind="backtest").id == two.id
    assert reg.resolve(two.id).id == two.id
    assert reg.resolve(tmp_path / one.id).id == one.id  # a folder path
    with pytest.raises(RunError, match=f"{one.id}.*{two.id}"):
        reg.resolve("abcd")
    with pytest.raises(RunError, match="4\\+ characters"):
        reg.resolve("abc")
    with pytest.raises(RunError, match=f"no run 'ffff' in {re.escape(str(tmp_path))}") as unknown:
        reg.resolve("ffff")
    assert unknown.value.see == "runs list"
    with pytest.raises(RunError, match=f"run {one.id} is a train run, not a backtest run"):
        reg.resolve(one.id, kind="backtest")


def test_latest_skips_unfinished_and_respects_kind(tmp_path):
    reg = Registry(tmp_path)
    with pytest.raises(RunError, match="no finished train run"):
        reg.resolve("latest", kind="train")
    done_train = reg.create("train")
    reg.finish(done_train, {})
    done_bt = reg.create("backtest")
    reg.finish(done_bt, {})
    reg.create("train")  # still running
    reg.mark(reg.create("train"), "failed")
    reg.mark(reg.create("train").id, "interrupted")
    assert reg.resolve("latest").id == done_bt.id
    assert reg.resolve("latest", kind="train").id == done_train.id
    assert [r["status"] for r in reg.list(kind="train")] == [
        "interrupted", "failed", "running", "done"]


def test_bad_run_json_is_a_clear_error(tmp_path):
    for name, text in (("notjson", "{oops"), ("alist", "[1, 2]"), ("nokind", '{"id": "x"}')):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "run.json").write_text(text)
        with pytest.raises(RunError, match=re.escape(str(folder / "run.json"))):
            Registry(tmp_path).resolve(folder)


def test_folder_without_row_resolves_by_path_only(tmp_path):
    reg = Registry(tmp_path)
    reg.create("train")
    copied = tmp_path / "copied0000000000"
    copied.mkdir()
    (copied / "run.json").write_text(json.dumps({"id": copied.name, "kind": "backtest"}))
    assert reg.resolve(copied).kind == "backtest"
    assert reg.get(copied)["files"] == ["run.json"]
    with pytest.raises(RunError, match="no run"):
        reg.resolve("copied0000000000")  # by id: rows win, and it has none
    assert len(reg.list()) == 1


def test_migrates_a_v1_registry_in_place(tmp_path):
    old_id = "train-20250101-120000-ab12"
    with closing(sqlite3.connect(tmp_path / "registry.sqlite")) as db, db:
        db.execute(V1_SCHEMA)
        db.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?)",
                   (old_id, "train", "2025-01-01T12:00:00+00:00", "done", "attention",
                    "sample:EURUSD_H1", "fp0", None, json.dumps({"accuracy": 0.61})))
    (tmp_path / old_id).mkdir()
    (tmp_path / old_id / "run.json").write_text(json.dumps({"id": old_id, "kind": "train"}))

    reg = Registry(tmp_path)
    (row,) = reg.list()
    assert _raw(tmp_path, "PRAGMA user_version") == [(store.SCHEMA_VERSION,)]
    assert row["id"] == old_id and row["status"] == "done" and row["model"] == "attention"
    assert row["summary"] == {"accuracy": 0.61} and row["finished"] is None
    assert row["missing"] is False
    assert reg.resolve(old_id).kind == "train"
    assert reg.resolve("train-2025", kind="train").id == old_id
    assert reg.resolve("latest").id == old_id
    schema = _raw(tmp_path, "SELECT name, sql FROM sqlite_master ORDER BY name")
    new = reg.create("backtest", parent=old_id)  # a v2 row fits the upgraded table
    assert reg.list()[0]["id"] == new.id
    reg2 = Registry(tmp_path)  # opening again is a no-op
    assert len(reg2.list()) == 2
    assert _raw(tmp_path, "SELECT name, sql FROM sqlite_master ORDER BY name") == schema
    assert _raw(tmp_path, "PRAGMA user_version") == [(store.SCHEMA_VERSION,)]
    assert reg.trials() == []


def test_newer_registry_is_refused(tmp_path):
    Registry(tmp_path).create("train")
    with closing(sqlite3.connect(tmp_path / "registry.sqlite")) as db:
        db.execute(f"PRAGMA user_version = {store.SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer attnbt"):
        Registry(tmp_path).list()


def test_journal_mode_is_wal(tmp_path):
    Registry(tmp_path).create("train")
    assert _raw(tmp_path, "PRAGMA journal_mode") == [("wal",)]


def test_list_filters_sorts_and_flags_missing_folders(tmp_path):
    reg = Registry(tmp_path)
    for model, data, win in (("attention", "EURUSD_H1", 55.0), ("dense", "eurusd_h4", None),
                             ("attention-big", "GBPUSD_H1", 61.5), ("lstm", "EURUSD_H1", 40.0)):
        run = reg.create("backtest", model=model, data=data)
        reg.finish(run, {"win_rate_pct": win} if win is not None else {})
    assert [r["model"] for r in reg.list()] == ["lstm", "attention-big", "dense", "attention"]
    assert [r["model"] for r in reg.list(data="eurusd")] == ["lstm", "dense", "attention"]
    assert [r["model"] for r in reg.list(model="attention")] == ["attention-big", "attention"]
    by_win = [r["model"] for r in reg.list(sort="win_rate_pct")]
    assert by_win == ["attention-big", "attention", "lstm", "dense"]
    up = [r["model"] for r in reg.list(sort="win_rate_pct", descending=False)]
    assert up == ["lstm", "attention", "attention-big", "dense"]  # lacking the key: last
    assert [r["model"] for r in reg.list(sort="model", descending=False, limit=2)] == [
        "attention", "attention-big"]
    assert reg.list(kind="sweep") == [] and reg.list(kind="nonsense") == []

    gone = reg.list()[0]["id"]
    store.shutil.rmtree(tmp_path / gone)
    flags = {r["id"]: r["missing"] for r in reg.list()}
    assert flags[gone] is True and sum(flags.values()) == 1
    assert reg.get(gone)["files"] == []
    with pytest.raises(RunError, match="folder .* is gone"):
        reg.resolve(gone)


def test_corrupt_registry_file(tmp_path):
    (tmp_path / "registry.sqlite").write_bytes(os.urandom(4096))
    for action in (lambda r: r.list(), lambda r: r.create("train")):
        with pytest.raises(StoreError, match=re.escape(str(tmp_path / "registry.sqlite"))):
            action(Registry(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == ["registry.sqlite"]  # no run folder left


def test_registry_path_is_a_directory(tmp_path):
    (tmp_path / "registry.sqlite").mkdir()
    with pytest.raises(StoreError, match=f"{re.escape(str(tmp_path / 'registry.sqlite'))}.*"
                                         "directory"):
        Registry(tmp_path).create("train")


def test_runs_root_is_a_file(tmp_path):
    root = tmp_path / "runs"
    root.write_text("not a folder")
    for action in (lambda r: r.list(), lambda r: r.create("train"), lambda r: r.resolve("x")):
        with pytest.raises(StoreError, match=f"{re.escape(str(root))} is a file"):
            action(Registry(root))


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to a read-only folder")
def test_runs_root_not_writable(tmp_path):
    root = tmp_path / "runs"
    Registry(root).create("train")
    root.chmod(0o555)
    try:
        with pytest.raises(StoreError, match=f"{re.escape(str(root))} is not writable"):
            Registry(root).create("train")
    finally:
        root.chmod(0o755)


def test_runs_root_not_writable_simulated(tmp_path, monkeypatch):
    """The same check as above where tests run as root: os.access says no."""
    Registry(tmp_path).create("train")
    monkeypatch.setattr(store.os, "access", lambda path, mode: False)
    for action in (lambda r: r.list(), lambda r: r.create("train")):
        with pytest.raises(StoreError, match=f"{re.escape(str(tmp_path))} is not writable"):
            action(Registry(tmp_path))


def test_runs_root_default_and_env(tmp_path, monkeypatch):
    monkeypatch.delenv("ATTNBT_RUNS", raising=False)
    assert store.runs_root() == Path("runs")
    monkeypatch.setenv("ATTNBT_RUNS", str(tmp_path))
    assert store.runs_root() == tmp_path and Registry().root == tmp_path
    assert store.runs_root("elsewhere") == Path("elsewhere")


def test_recording_marks_interrupted_and_failed(tmp_path):
    reg = Registry(tmp_path)
    stopped, broken, done = reg.create("train"), reg.create("train"), reg.create("train")
    with pytest.raises(KeyboardInterrupt), reg.recording(stopped):
        raise KeyboardInterrupt
    with pytest.raises(ValueError), reg.recording(broken):
        raise ValueError("bad input")
    with pytest.raises(RuntimeError), reg.recording(done):
        reg.finish(done, {"ok": 1})
        raise RuntimeError("after finish")  # a done run stays done
    ok = reg.create("train")
    with reg.recording(ok):
        pass
    status = {r["id"]: r["status"] for r in reg.list()}
    assert status == {stopped.id: "interrupted", broken.id: "failed", done.id: "done",
                      ok.id: "running"}
    assert all(r["finished"] for r in reg.list() if r["status"] != "running")


def _worker(root: str, n: int) -> None:
    reg = Registry(root)
    for i in range(n):
        run = reg.create("sweep", config_id=f"c{i}")
        run.write_json("result.json", {"i": i})
        reg.finish(run, {"i": i})
        reg.add_trial(run_id=run.id, kind="sweep", config_id=f"c{i}-{run.id}", fingerprint="fp",
                      n_obs=100, sharpe_per_bar=0.1 * i, skew=0.0, kurtosis=3.0)


@pytest.mark.slow
def test_concurrent_writers(tmp_path):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_worker, args=(str(tmp_path), 25)) for _ in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * 8
    reg = Registry(tmp_path)
    rows = reg.list()
    assert len(rows) == 200 and len({r["id"] for r in rows}) == 200
    assert all(r["status"] == "done" and not r["missing"] for r in rows)
    assert len(reg.trials(fingerprint="fp", kind="sweep")) == 200
    assert _raw(tmp_path, "PRAGMA integrity_check") == [("ok",)]


@pytest.mark.parametrize("fail_at", ["fsync", "replace"])
def test_atomic_write_failure_leaves_no_cut_file(tmp_path, monkeypatch, fail_at):
    run = Registry(tmp_path).create("train")
    run.write_text("notes.txt", "old content")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.os, fail_at, full)
    with pytest.raises(StoreError, match=re.escape(str(run.path / "notes.txt"))):
        run.write_text("notes.txt", "new content " * 1000)
    with pytest.raises(StoreError, match=re.escape(str(run.path / "model.bin"))):
        run.write_bytes("model.bin", b"\0" * 10_000)
    monkeypatch.undo()
    assert (run.path / "notes.txt").read_text() == "old content"
    assert not (run.path / "model.bin").exists()
    assert sorted(p.name for p in run.path.iterdir()) == [store.OWNER_LOCK, "notes.txt", "run.json"]


def test_create_leaves_nothing_when_the_insert_fails(tmp_path, monkeypatch):
    reg = Registry(tmp_path)
    first = reg.create("train")  # the registry exists and is migrated

    def broken(self, db):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(Registry, "_transaction", broken)
    with pytest.raises(StoreError, match="registry.sqlite"):
        reg.create("train")
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == [first.id]


def test_discard_and_remove(tmp_path):
    reg = Registry(tmp_path)
    bad, keep, old = reg.create("train"), reg.create("train"), reg.create("backtest")
    reg.add_trial(run_id=old.id, kind="backtest", fingerprint="fp", sharpe_per_bar=1.2)
    reg.discard(bad)
    assert not bad.path.exists() and bad.id not in {r["id"] for r in reg.list()}
    with pytest.raises(RunError, match="nothing removed"):
        reg.remove([old.id, "ffffffffffffffff"])
    assert old.path.exists()
    assert reg.remove([old.id]) == [old.id]
    assert not old.path.exists() and [r["id"] for r in reg.list()] == [keep.id]
    assert [t["run_id"] for t in reg.trials()] == [old.id]  # trials are kept
    assert reg.trials(fingerprint="other") == []
    with pytest.raises(RunError, match="not in the registry"):
        reg.finish(old, {})


# --- owners: a running run whose process has ended shows as dead --------------------------------
OWNER_SNIPPET = """
import sys, time
from backtests.store import Registry
reg = Registry(sys.argv[1])
run = reg.create("train", model="attention/article", config_id="cfg")   # as workflows do
with reg.recording(run):
    print(run.id, flush=True)
    time.sleep(300)
"""


def _owner_process(root: Path):
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", OWNER_SNIPPET, str(root)],
                            stdout=subprocess.PIPE, text=True, env=env)
    run_id = proc.stdout.readline().strip()
    assert run_id, f"the owner process printed no run id (exit {proc.poll()})"
    return proc, run_id


@pytest.mark.slow   # a few seconds: runs in `make test`, not in the fast subset
def test_a_sigkilled_owner_shows_dead_and_a_live_one_running(tmp_path):
    import signal

    from typer.testing import CliRunner

    from backtests.cli import app

    killed, killed_id = _owner_process(tmp_path)
    live, live_id = _owner_process(tmp_path)
    try:
        reg = Registry(tmp_path)
        rows = {r["id"]: r for r in reg.list()}
        assert rows[killed_id]["status"] == "running" and rows[killed_id]["liveness"] == "alive"
        assert rows[killed_id]["owner_pid"] == killed.pid
        killed.send_signal(signal.SIGKILL)             # no handler runs: the row stays 'running'
        killed.wait(30)
        assert _raw(tmp_path, "SELECT status FROM runs WHERE id=?", (killed_id,)) == [
            ("running",)]
        rows = {r["id"]: r for r in reg.list()}
        assert rows[killed_id]["status"] == "dead" and rows[killed_id]["liveness"] == "dead"
        assert rows[live_id]["status"] == "running" and rows[live_id]["liveness"] == "alive"
        assert [r["id"] for r in reg.list(status="dead")] == [killed_id]
        assert [r["id"] for r in reg.list(status="running")] == [live_id]
        assert reg.get(killed_id)["status"] == "dead"
        with pytest.raises(RunError, match="unknown run status 'zombie'"):
            reg.list(status="zombie")

        cli = CliRunner()
        out = cli.invoke(app, ["runs", "list", "--status", "dead", "--runs-dir", str(tmp_path)])
        assert out.exit_code == 0 and killed_id in out.output and live_id not in out.output
        show = cli.invoke(app, ["runs", "show", killed_id, "--runs-dir", str(tmp_path)])
        assert show.exit_code == 0 and "dead" in show.output and "(ended)" in show.output

        # the same command resumes a dead run (this process becomes its owner) ...
        assert reg.unfinished("train", "cfg").id == killed_id
        reg.mark(killed_id, "running")
        assert reg.get(killed_id)["status"] == "running"
        assert reg.get(killed_id)["owner_pid"] == os.getpid()
        # ... but never a run a live process is computing
        with pytest.raises(RunError, match="still running"):
            reg.mark(live_id, "running")
        reg.mark(killed_id, "interrupted")
        assert reg.unfinished("train", "cfg").id == killed_id     # the live one is skipped
        reg.remove([killed_id])
        with pytest.raises(RunError, match=f"{live_id} with these settings is still running"):
            reg.unfinished("train", "cfg")
    finally:
        live.kill()
        live.wait(30)
        killed.kill()
        killed.wait(30)
    assert Registry(tmp_path).list()[0]["status"] == "dead"


def test_an_owner_on_another_host_is_not_verifiable(tmp_path):
    from typer.testing import CliRunner

    from backtests.cli import app

    reg = Registry(tmp_path)
    run = reg.create("walkforward")
    with closing(sqlite3.connect(tmp_path / "registry.sqlite")) as db, db:
        db.execute("UPDATE runs SET owner_host='elsewhere', owner_pid=1 WHERE id=?", (run.id,))
    store.release(run.path)                       # even with its lock free, another host's
    (row,) = reg.list()                            # process cannot be checked from here
    assert row["status"] == "running" and row["liveness"] == "unverifiable"
    out = CliRunner().invoke(app, ["runs", "list", "--runs-dir", str(tmp_path)])
    assert "running? (on host elsewhere" in out.output


def test_paper_accounts_have_no_owner(tmp_path):
    reg = Registry(tmp_path)
    run = reg.create("paper")
    (row,) = reg.list()
    assert row["owner_pid"] is None and row["liveness"] is None and row["status"] == "running"
    assert not (run.path / store.OWNER_LOCK).exists()


def test_the_same_trial_is_never_added_twice(tmp_path):
    reg = Registry(tmp_path)
    first = reg.add_trial(run_id="r1", kind="walkforward", config_id="task-a", fingerprint="fp",
                          n_obs=10, sharpe_per_bar=0.1)
    again = reg.add_trial(run_id="r2", kind="walkforward", config_id="task-a", fingerprint="fp",
                          n_obs=10, sharpe_per_bar=0.1)
    other_kind = reg.add_trial(run_id="r2", kind="sweep", config_id="task-a", fingerprint="fp")
    other_data = reg.add_trial(run_id="r3", kind="walkforward", config_id="task-a",
                               fingerprint="fp2")     # the same settings on changed data
    no_data = reg.add_trial(run_id="r4", kind="walkforward", config_id="task-a")
    assert reg.add_trial(run_id="r5", kind="walkforward", config_id="task-a") == no_data
    assert again == first and len({first, other_kind, other_data, no_data}) == 4
    assert [t["run_id"] for t in reg.trials()] == ["r1", "r2", "r3", "r4"]
    with closing(sqlite3.connect(tmp_path / "registry.sqlite")) as db, \
            pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO trials (created, kind, config_id, fingerprint) VALUES ('t', "
                   "'walkforward', 'task-a', 'fp')")


def test_migrates_a_v2_registry_owners_and_duplicate_trials(tmp_path):
    """A v2 registry (before owners and unique trials) opens: its running row cannot be checked,
    and a study recorded twice keeps its first trials; the repeats are moved aside, not lost."""
    with closing(sqlite3.connect(tmp_path / "registry.sqlite", isolation_level=None)) as db:
        for step in store.MIGRATIONS[:2]:
            step(db)
        db.execute("PRAGMA user_version = 2")
        db.execute("INSERT INTO runs (id, kind, created, status) VALUES "
                   "('aaaa000000000001', 'walkforward', '2026-01-01T00:00:00+00:00', 'running')")
        for run_id in ("first", "again"):
            for cid, sr in (("task-a", 0.1), ("task-b", 0.2), (None, 0.3)):
                db.execute("INSERT INTO trials (created, run_id, kind, config_id, fingerprint, "
                           "sharpe) VALUES ('t', ?, 'walkforward', ?, 'fp', ?)",
                           (run_id, cid, sr))
    (tmp_path / "aaaa000000000001").mkdir()
    reg = Registry(tmp_path)
    (row,) = reg.list()
    assert _raw(tmp_path, "PRAGMA user_version") == [(store.SCHEMA_VERSION,)]
    assert row["status"] == "running" and row["liveness"] == "unverifiable"
    assert row["owner_pid"] is None
    kept = [(t["run_id"], t["config_id"]) for t in reg.trials()]
    assert kept == [("first", "task-a"), ("first", "task-b"), ("first", None), ("again", None)]
    moved = _raw(tmp_path, "SELECT run_id, config_id FROM trials_duplicates ORDER BY id")
    assert moved == [("again", "task-a"), ("again", "task-b")]
    reg.add_trial(run_id="third", kind="walkforward", config_id="task-a", fingerprint="fp")
    assert len(reg.trials()) == 4


def test_migrates_a_v3_registry_trials_sharpe_becomes_sharpe_per_bar(tmp_path):
    """A v3 registry (its trials' per-bar Sharpe ratio in a column called ``sharpe``) opens: the
    column is renamed ``sharpe_per_bar`` in trials and trials_duplicates, every value kept, the
    unique trial key still holds, and the DSR readers find the old rows under the new key."""
    with closing(sqlite3.connect(tmp_path / "registry.sqlite", isolation_level=None)) as db:
        for step in store.MIGRATIONS[:3]:
            step(db)
        db.execute("PRAGMA user_version = 3")
        for cid, sr in (("task-a", 0.1), ("task-b", -0.25), ("task-c", None)):
            db.execute("INSERT INTO trials (created, run_id, kind, config_id, fingerprint, n_obs,"
                       " sharpe, skew, kurtosis) VALUES ('t', 'old', 'walkforward', ?, 'fp', 200,"
                       " ?, 0.1, 3.5)", (cid, sr))
        db.execute("INSERT INTO trials_duplicates (created, run_id, kind, config_id, sharpe) "
                   "VALUES ('t', 'again', 'walkforward', 'task-a', 0.1)")
    reg = Registry(tmp_path)
    rows = reg.trials(fingerprint="fp", kind="walkforward")
    assert _raw(tmp_path, "PRAGMA user_version") == [(store.SCHEMA_VERSION,)]
    assert [t["sharpe_per_bar"] for t in rows] == [0.1, -0.25, None]
    assert all("sharpe" not in t for t in rows)
    assert [(t["n_obs"], t["skew"], t["kurtosis"]) for t in rows] == [(200, 0.1, 3.5)] * 3
    for table in ("trials", "trials_duplicates"):
        cols = [c[1] for c in _raw(tmp_path, f"PRAGMA table_info({table})")]
        assert "sharpe_per_bar" in cols and "sharpe" not in cols, (table, cols)
    assert _raw(tmp_path, "SELECT sharpe_per_bar FROM trials_duplicates") == [(0.1,)]
    first = rows[0]["id"]
    assert reg.add_trial(run_id="new", kind="walkforward", config_id="task-a", fingerprint="fp",
                         sharpe_per_bar=0.5) == first            # the same trial: not added
    reg.add_trial(run_id="new", kind="walkforward", config_id="task-d", fingerprint="fp",
                  n_obs=3, sharpe_per_bar=float("nan"), skew=float("nan"),
                  kurtosis=float("nan"))                          # not defined: stored as NULL
    assert [t["sharpe_per_bar"] for t in reg.trials()] == [0.1, -0.25, None, None]
    assert _raw(tmp_path, "SELECT typeof(sharpe_per_bar), typeof(skew) FROM trials WHERE "
                          "config_id='task-d'") == [("null", "null")]


def test_run_json_files_are_strict_json(tmp_path):
    """Every JSON file of a run is strict JSON: NaN null, ±inf "inf"/"-inf" (no NaN/Infinity tokens)."""
    run = Registry(tmp_path).create("train")
    path = run.write_json("metrics.json", {"mcc": float("nan"), "pf": float("inf"), "n": np.int64(3),
                                           "worst": -np.inf})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text, text
    assert json.loads(text) == {"mcc": None, "pf": "inf", "n": 3, "worst": "-inf"}
