"""A backtest is recorded in the runs folder its model was found in, not in the one recorded
when the model was trained: a runs folder that was copied or moved (or an ``ATTNBT_RUNS`` that
changed) keeps its backtests to itself."""

from __future__ import annotations

import json

import pytest

from backtests.store import Registry


@pytest.mark.slow   # one backtest through the CLI (about 3 s)
def test_a_backtest_of_a_copied_runs_folder_is_recorded_in_that_folder(cli, trained_run_alone):
    runs = trained_run_alone.root
    trained_in = json.loads((runs / trained_run_alone.id / "run.json").read_text())
    assert trained_in["config"]["runtime"]["runs_dir"] != str(runs)    # the premise
    original = Registry(trained_in["config"]["runtime"]["runs_dir"])
    before = [r["id"] for r in original.list(kind="backtest")]

    done = cli("backtest", "--run", trained_run_alone.id, "--random-draws", "5", runs_dir=runs)
    assert done.returncode == 0, done.stderr
    (row,) = Registry(runs).list(kind="backtest")
    assert (runs / row["id"] / "report.json").is_file()
    assert [r["id"] for r in original.list(kind="backtest")] == before
    meta = json.loads((runs / row["id"] / "run.json").read_text())
    assert meta["config"]["runtime"]["runs_dir"] == str(runs)
