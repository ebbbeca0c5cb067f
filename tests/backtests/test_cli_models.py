"""The model commands end to end, as a user runs them: through attnbt's entry point in this
process, and through a real `python -m backtests` where a process is the point (another hash
seed, SIGTERM)."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

pytestmark = pytest.mark.slow   # most train; two start `python -m backtests`


def attnbt(*args, runs_dir, cwd=None):
    env = {**os.environ, "ATTNBT_RUNS": str(runs_dir), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "backtests", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory, cli_wide):
    """A dense model trained by `attnbt train` in this process (a real process trains below)."""
    runs = tmp_path_factory.mktemp("cli_runs")
    done = cli_wide("train", "--model", "dense", "--preset", "matched", "--epochs", "3",
                    "--seed", "2", runs_dir=runs)
    assert done.returncode == 0, done.stderr
    assert "run " in done.stdout
    # epochs count from 1 wherever a user sees them: the progress, history.csv, "best N"
    (run,) = [p for p in runs.iterdir() if p.is_dir()]
    history = pd.read_csv(run / "history.csv")
    assert history.epoch.tolist() == list(range(1, len(history) + 1))
    assert "epoch 1/3" in done.stderr and "epoch 0/" not in done.stderr
    best = int(history.epoch[history.val_loss.idxmin()])
    assert f"epochs, best {best})" in done.stdout
    return runs


def test_train_evaluate_predict_and_list(cli, cli_runs, tmp_path):
    ev = cli("evaluate", "--run", "latest", runs_dir=cli_runs)
    assert ev.returncode == 0, ev.stderr
    for text in ("out-of-sample", "in-sample", "always none", "class-prior random",
                 "article Part 8", "confusion"):
        assert text in ev.stdout
    out = tmp_path / "p.parquet"
    pr = cli("predict", "--run", "latest", "--out", str(out), runs_dir=cli_runs)
    assert pr.returncode == 0, pr.stderr
    probs = pd.read_parquet(out)
    assert list(probs.columns) == ["p_none", "p_buy", "p_sell"] and len(probs) == 5000
    again = cli("predict", "--run", "latest", "--out", str(out), runs_dir=cli_runs)
    assert again.returncode != 0 and "nothing is overwritten" in again.stderr
    ls = cli("runs", runs_dir=cli_runs)
    assert "dense/matched" in ls.stdout and "done" in ls.stdout
    listed = json.loads(cli("runs", "list", "--json", runs_dir=cli_runs).stdout)
    assert len(listed) == 1 and listed[0]["command"].startswith("attnbt train --model dense")
    assert listed[0]["fingerprint"] and listed[0]["config_id"]
    (run_id,) = [p.name for p in cli_runs.iterdir() if p.is_dir()]
    meta = json.loads((cli_runs / run_id / "model.json").read_text())
    assert meta["kind"] == "dense" and meta["data"] == "sample:EURUSD_H1"


@pytest.mark.draws
def test_attention_map_png(cli, trained_run_alone, tmp_path):
    # the latest run: the session's attention model, in a runs folder of its own (`attnbt
    # train` itself runs in cli_runs and the tests below)
    runs = trained_run_alone.root
    png = tmp_path / "map.png"
    at = cli("attention", "--at", "2018-01-10 12:00", "--out", str(png), runs_dir=runs)
    assert at.returncode == 0, at.stderr
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 20_000
    bad = cli("attention", "--at", "2018-01-10 12:30", runs_dir=runs)
    assert bad.returncode == 2 and "no bar at" in bad.stderr


@pytest.mark.parametrize("args,message", [
    (["evaluate", "--run", "nope"], "no run 'nope'"),
    (["evaluate", "--data", "sample:GOOG_D1"], "trained on 0 days 01:00:00 bars"),
    (["evaluate", "--from", "2030-01-01"], "holds no bars"),
    (["evaluate", "--from", "2018-13-45"], "cannot read the start time '2018-13-45'"),
    (["evaluate", "--data", "missing.csv"], "no such file"),
    (["attention"], "no finished attention run"),
])
def test_bad_options_give_one_clear_line(cli, cli_runs, args, message):
    res = cli(*args, runs_dir=cli_runs)
    assert res.returncode == 2
    assert message in res.stderr
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_unknown_model_kind_is_a_usage_error(cli, tmp_path):
    res = cli("train", "--model", "gpt5", "--epochs", "1", runs_dir=tmp_path)
    assert res.returncode == 2 and "model.kind = 'gpt5'; choose attention" in res.stderr
    assert "Traceback" not in res.stderr


def test_training_that_fails_on_bad_input_leaves_no_run_behind(tmp_path):
    import data
    from backtests.config import Experiment
    from backtests.store import Registry
    from backtests.workflows import train_run
    from models.errors import ModelError

    tiny = data.load("sample:EURUSD_H1").iloc[:150]
    with pytest.raises(ModelError, match="too few samples"):
        train_run(Experiment().override({"runtime.runs_dir": str(tmp_path)}), candles=tiny)
    assert Registry(tmp_path).list() == []
    assert [p for p in tmp_path.iterdir() if p.is_dir()] == []


def test_train_on_a_date_range_then_resume(cli, tmp_path):
    """An interrupted training on a date range resumes on the same range, from its checkpoint,
    and ends with the weights of a training never interrupted."""
    import signal
    import time

    runs = tmp_path / "runs"
    args = ("train", "--model", "conv", "--epochs", "6", "--patience", "100", "--from",
            "2017-06-01", "--to", "2017-12-31")
    full = cli(*args, runs_dir=tmp_path / "full")          # never interrupted: in this process
    assert full.returncode == 0, full.stderr
    env = {**os.environ, "ATTNBT_RUNS": str(runs)}
    proc = subprocess.Popen([sys.executable, "-m", "backtests", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and not list(runs.glob("*/state.pt")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    (run_id,) = [p.name for p in runs.iterdir() if p.is_dir()]
    if proc.returncode == 0:
        pytest.skip("training finished before it could be interrupted")
    assert proc.returncode == 130 and f"attnbt train --resume {run_id}" in err
    listed = json.loads(cli("runs", "list", "--json", runs_dir=runs).stdout)
    assert listed[0]["status"] == "interrupted"
    meta = json.loads((runs / run_id / "run.json").read_text())
    assert meta["from"].startswith("2017-06-01") and meta["to"].startswith("2017-12-29")
    bad = cli("train", "--resume", run_id, "--lr", "0.1", runs_dir=runs)
    assert bad.returncode == 2 and "cannot change when resuming" in bad.stderr
    again = cli("train", "--resume", run_id, runs_dir=runs)
    assert again.returncode == 0, again.stderr
    (full_id,) = [p.name for p in (tmp_path / "full").iterdir() if p.is_dir()]
    done = json.loads((runs / run_id / "model.json").read_text())
    assert done["split"]["val_end"] < "2017-12-31"
    assert (runs / run_id / "last.safetensors").read_bytes() == (
        tmp_path / "full" / full_id / "last.safetensors").read_bytes()
    finished = cli("train", "--resume", run_id, runs_dir=runs)
    assert finished.returncode == 0 and "nothing to resume" in finished.stdout


def test_the_same_command_gives_the_same_config_id_and_the_same_model(cli, tmp_path):
    """The two trainings in separate processes (another hash seed each): one in a real
    `python -m backtests`, the other in this test's process."""
    args = ("train", "--model", "dense", "--epochs", "2", "--from", "2017-06-01", "--to",
            "2017-09-30", "--seed", "3")
    ids, hashes = [], []
    for name, run in (("a", attnbt), ("b", cli)):
        res = run(*args, runs_dir=tmp_path / name)
        assert res.returncode == 0, res.stderr
        (row,) = json.loads(cli("runs", "list", "--json", runs_dir=tmp_path / name).stdout)
        ids.append(row["config_id"])
        meta = json.loads((tmp_path / name / row["id"] / "model.json").read_text())
        hashes.append(meta["model_hash"])
    assert ids[0] == ids[1] and hashes[0] == hashes[1]
    other = cli(*args[:-1], "4", runs_dir=tmp_path / "c")
    assert other.returncode == 0, other.stderr
    (row,) = json.loads(cli("runs", "list", "--json", runs_dir=tmp_path / "c").stdout)
    assert row["config_id"] != ids[0]
