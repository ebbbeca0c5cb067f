"""The walk-forward speed benchmark runs (smoke mode: a tiny slice, CPU and the ensemble path)."""

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "walkforward_speed.py"


def _bench():
    spec = importlib.util.spec_from_file_location("walkforward_speed", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_walkforward_speed_smoke_cpu(capsys):
    r = _bench().main(["--smoke"])
    assert r["same_table"] and all(row["tasks"] > 0 for row in r["runs"].values())
    assert "same table whatever the worker count: True" in capsys.readouterr().out


@pytest.mark.slow
def test_walkforward_speed_smoke_ensemble_path(capsys):
    r = _bench().main(["--smoke", "--device", "cuda"])      # on CPU where there is no GPU
    assert set(r["rows"]) == {"dense/matched", "lstm/article"}
    assert r["rows"]["dense/matched"]["vmapped"] and r["rows"]["lstm/article"]["vmapped"]
    assert "sequential" in capsys.readouterr().out
