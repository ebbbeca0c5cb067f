"""Tasks side by side: the same numbers whatever the worker count; only the driver records."""

import pytest

from backtests.config import Experiment
from backtests.execution import TaskFailure, run_tasks
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


# --- the executor seam: LocalExecutor and make_executor (Ray's own tests: test_ray_executor.py)
def test_the_local_executor_maps_like_run_tasks_in_order_with_failures():
    from backtests.execution import Executor, LocalExecutor, make_executor

    seen = []
    with make_executor("local", workers=1) as ex:
        assert isinstance(ex, LocalExecutor) and isinstance(ex, Executor)
        out = ex.map(_square, [3, -1, 2], catch=(ValueError,),
                     on_done=lambda i, r: seen.append(i))
    assert out[0] == 9 and out[2] == 4 and sorted(seen) == [0, 1, 2]
    assert isinstance(out[1], TaskFailure) and out[1].index == 1
    assert isinstance(out[1].error, ValueError) and "negative" in str(out[1].error)
    assert LocalExecutor().map(_square, []) == []
    with pytest.raises(ValueError):
        LocalExecutor().map(_square, [-1])


def test_make_executor_refuses_unknown_kinds_and_ray_options_for_local():
    from backtests.config import ConfigError
    from backtests.execution import make_executor

    with pytest.raises(ConfigError, match="unknown executor 'dask'; choose local or ray"):
        make_executor("dask")
    with pytest.raises(ConfigError, match="`address` is for the `executor` ray"):
        make_executor("local", address="auto")


def test_make_executor_ray_without_ray_installed_says_how_to_install(monkeypatch):
    import sys

    from backtests.config import ConfigError
    from backtests.execution import make_executor
    from backtests.execution.ray_cluster import LOOPBACK_ENV

    monkeypatch.setitem(sys.modules, "ray", None)      # `import ray` fails as if not installed
    monkeypatch.setenv(LOOPBACK_ENV, "0")              # restored afterwards
    with pytest.raises(ConfigError) as info:
        make_executor("ray", workers=2)
    assert str(info.value) == "Ray is not installed: pip install -e '.[ray]' in the checkout (the ray extra)"


def test_walkforward_cli_refuses_an_address_without_the_ray_executor(tmp_path):
    from typer.testing import CliRunner

    from backtests.cli import app

    res = CliRunner().invoke(app, ["walkforward", "--address", "auto", "--runs-dir",
                                   str(tmp_path), "--dry-run"])
    assert res.exit_code != 0 and "--executor ray" in res.output
    res = CliRunner().invoke(app, ["walkforward", "--executor", "dask", "--dry-run"])
    assert res.exit_code != 0 and "local or ray" in res.output
