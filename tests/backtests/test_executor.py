"""Tasks side by side: the same numbers whatever the worker count; only the driver records."""

import pytest

from backtests.config import Experiment
from backtests.executor import TaskFailure, run_tasks
from backtests.store import Registry
from backtests.workflows import train_many
from models.checkpoint import load_model


def _square(x):
    if x < 0:
        raise ValueError(f"negative: {x}")
    return x * x


def test_results_come_back_in_order_and_failures_are_returned():
    seen = []
    out = run_tasks(_square, [3, -1, 2], catch=(ValueError,), on_done=lambda i, r: seen.append(i))
    assert out[0] == 9 and out[2] == 4 and isinstance(out[1], TaskFailure)
    assert "negative" in str(out[1].error) and sorted(seen) == [0, 1, 2]
    with pytest.raises(ValueError):
        run_tasks(_square, [-1])


@pytest.mark.slow
def test_a_pool_trains_the_same_models_as_one_process_and_only_the_driver_records(
        eurusd, tmp_path):
    candles = eurusd.iloc[:2000]
    exps = [Experiment().override({"model.kind": kind, "model.preset": "article",
                                   "train.epochs": 2, "train.seed": 7,
                                   "runtime.runs_dir": str(tmp_path / name)})
            for kind in ("dense", "conv") for name in ("inline",)]
    inline = train_many(exps, candles, workers=1)
    pooled_exps = [e.override({"runtime.runs_dir": str(tmp_path / "pool")}) for e in exps]
    pooled = train_many(pooled_exps, candles, workers=2)
    for (run_a, _), (run_b, _) in zip(inline, pooled, strict=True):
        assert load_model(run_a.path).model_hash == load_model(run_b.path).model_hash
    # the pool's workers wrote nothing: each run was recorded once, by the driver
    rows = Registry(tmp_path / "pool").list()
    assert len(rows) == 2 and {r["status"] for r in rows} == {"done"}
    assert len([p for p in (tmp_path / "pool").iterdir() if p.is_dir()]) == 2
    # the config id ignores the runs folder (an output path): same config, same id
    assert exps[0].id == pooled_exps[0].id
