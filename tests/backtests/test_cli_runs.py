"""`attnbt runs list|show|rm` and an old (v1) runs folder upgraded in place."""

import json
import shutil
import sqlite3
import subprocess
import sys

import pytest

from backtests.store import SCHEMA_VERSION

pytestmark = pytest.mark.slow   # trained model, backtests; one test starts `python -m backtests`

V1_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, created TEXT NOT NULL, status TEXT NOT NULL,
    model TEXT, data TEXT, fingerprint TEXT, parent TEXT, summary TEXT)
"""

# the later half of the model's test period (2017-12-08 → 2018-02-07): what these tests check of a
# backtest (it runs, is listed, sorted, shown, removed) does not need the whole period
LATE_TEST = "2018-01-08"


@pytest.fixture(scope="module")
def old_runs(trained_run, tmp_path_factory):
    """A runs folder as the first version wrote it: v1 registry, kind-stamped ids, a model.json
    without a hash and with the first split format."""
    root = tmp_path_factory.mktemp("old_runs")
    old_id = "train-20250101-120000-ab12"
    folder = root / old_id
    folder.mkdir()
    for name in ("model.safetensors", "model.json"):
        shutil.copy(trained_run.path / name, folder / name)
    meta = json.loads((folder / "model.json").read_text())
    for key in ("model_hash", "experiment", "data_config", "config_id"):
        meta.pop(key, None)
    meta["split"] = {"train_end": meta["split"]["train_end"], "val_end": meta["split"]["val_end"]}
    (folder / "model.json").write_text(json.dumps(meta))
    (folder / "run.json").write_text(json.dumps({"id": old_id, "kind": "train",
                                                 "created": "2025-01-01T12:00:00+00:00",
                                                 "model": "attention/article",
                                                 "data": "sample:EURUSD_H1"}))
    db = sqlite3.connect(root / "registry.sqlite")
    db.execute(V1_SCHEMA)
    db.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?)",
               (old_id, "train", "2025-01-01T12:00:00+00:00", "done", "attention/article",
                "sample:EURUSD_H1", None, None, json.dumps({"val_accuracy": 0.41})))
    db.commit()
    db.close()
    return root, old_id


@pytest.mark.slow
def test_an_old_runs_folder_is_upgraded_listed_and_its_model_backtested(cli, old_runs, tmp_path):
    root, old_id = tmp_path / "runs", old_runs[1]
    shutil.copytree(old_runs[0], root)
    ls = cli("runs", "list", runs_dir=root)
    assert ls.returncode == 0, ls.stderr
    assert old_id in ls.stdout and "done" in ls.stdout
    assert sqlite3.connect(root / "registry.sqlite").execute(
        "PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    refused = cli("backtest", "--run", "train-2025", "--random-draws", "20", runs_dir=root)
    assert refused.returncode == 2 and "--trust-unhashed" in refused.stderr, refused.stderr
    bt = cli("backtest", "--run", "train-2025", "--from", LATE_TEST, "--random-draws", "20",
             "--trust-unhashed", runs_dir=root)
    assert bt.returncode == 0, bt.stderr
    rows = json.loads(cli("runs", "list", "--json", runs_dir=root).stdout)
    assert {r["kind"] for r in rows} == {"train", "backtest"}
    new = next(r for r in rows if r["kind"] == "backtest")
    assert new["parent"] == old_id and len(new["id"]) == 16 and new["config_id"]


@pytest.mark.slow
def test_list_sort_show_prefix_and_rm(cli, old_runs, tmp_path):
    root = tmp_path / "runs"
    shutil.copytree(old_runs[0], root)
    for threshold in ("0.4", "0.45"):
        res = cli("backtest", "--run", old_runs[1], "--threshold", threshold, "--from",
                  LATE_TEST, "--random-draws", "20", "--trust-unhashed", runs_dir=root)
        assert res.returncode == 0, res.stderr
    rows = json.loads(cli("runs", "list", "--kind", "backtest", "--sort", "win_rate",
                          "--json", runs_dir=root).stdout)
    rates = [r["summary"]["win_rate_pct"] for r in rows]
    assert len(rates) == 2 and rates == sorted(rates, reverse=True)
    assert len({r["config_id"] for r in rows}) == 2        # another threshold, another config
    table = cli("runs", "list", "--sort", "win_rate", runs_dir=root)
    assert table.returncode == 0 and "Win" in table.stdout
    first = rows[0]["id"]
    show = cli("runs", "show", first[:6], runs_dir=root)
    assert show.returncode == 0, show.stderr
    for text in (first, "config_id", "[strategy]", "threshold", "report.html"):
        assert text in show.stdout
    short = cli("runs", "show", first[:3], runs_dir=root)
    assert short.returncode == 2 and "4" in short.stderr
    bad_kind = cli("runs", "list", "--kind", "foo", runs_dir=root)
    assert bad_kind.returncode == 2 and "unknown run kind 'foo'" in bad_kind.stderr
    no = cli("runs", "rm", first, runs_dir=root, stdin="n\n")
    assert no.returncode == 1 and (root / first).exists()
    yes = cli("runs", "rm", first, "--yes", runs_dir=root)
    assert yes.returncode == 0 and not (root / first).exists()
    left = json.loads(cli("runs", "list", "--json", runs_dir=root).stdout)
    assert first not in {r["id"] for r in left}
    # the trials table keeps what was tried, for the deflated Sharpe ratio
    from backtests.store import Registry

    assert len(Registry(root).trials(kind="backtest")) == 2


def test_a_missing_folder_is_shown_and_a_corrupt_registry_is_one_line(cli, tmp_path, old_runs):
    root = tmp_path / "runs"
    shutil.copytree(old_runs[0], root)
    shutil.rmtree(root / old_runs[1])
    ls = cli("runs", "list", runs_dir=root)
    assert "missing" in ls.stdout
    assert json.loads(cli("runs", "list", "--json", runs_dir=root).stdout)[0]["missing"]
    (root / "registry.sqlite").write_bytes(b"\x00garbage" * 100)
    for path in root.glob("registry.sqlite-*"):
        path.unlink()
    bad = cli("runs", "list", runs_dir=root)
    assert bad.returncode == 2 and "registry.sqlite" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr


def test_a_sigkilled_training_is_listed_dead(cli, tmp_path):
    """`attnbt train` killed with SIGKILL (no handler runs) is shown `dead`, not `running`."""
    import os
    import signal
    import time

    from backtests.store import Registry

    root = tmp_path / "runs"
    env = {**os.environ, "ATTNBT_RUNS": str(root)}
    proc = subprocess.Popen([sys.executable, "-m", "backtests", "train", "--model", "dense",
                             "--epochs", "500"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        rows = []
        while not rows and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            rows = Registry(root).list(kind="train")
        assert rows, f"no train run appeared (exit code {proc.poll()})"
        assert rows[0]["status"] == "running" and rows[0]["owner_pid"] == proc.pid
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(60)
    run_id = rows[0]["id"]
    dead = cli("runs", "list", "--status", "dead", runs_dir=root)
    assert dead.returncode == 0 and run_id in dead.stdout, dead.stdout
    running = cli("runs", "list", "--status", "running", runs_dir=root)
    assert running.returncode == 0 and run_id not in running.stdout
    bad = cli("runs", "list", "--status", "zombie", runs_dir=root)
    assert bad.returncode == 2 and "unknown run status 'zombie'" in bad.stderr
