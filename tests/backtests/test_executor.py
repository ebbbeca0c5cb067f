"""Tasks side by side: the same numbers whatever the worker count; only the driver records."""

import pandas as pd
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
                                   "train.epochs": 2, "train.seed": 7, "train.device": "cpu",
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


# --- the GPU path's pool: CPU workers evaluate while the driver trains (run_alongside)
def _touch_then_square(payload):
    """A worker's task that leaves a mark the producer can wait for."""
    from pathlib import Path

    path, x = payload
    Path(path).write_text("done")
    return _square(x)


@pytest.mark.slow      # ~9 s: two spawned workers import torch and this module
def test_run_alongside_computes_deferred_results_while_the_producer_goes_on(tmp_path):
    import time

    from backtests.execution import Deferred, run_alongside

    def produce(mark):
        yield 0, Deferred(_touch_then_square, (mark, 3))
        # the producer (a GPU loop) waits for the first task's worker before going on: it only
        # returns if that task was computed while the producer is still running
        t0 = time.monotonic()
        while not mark.exists():
            assert time.monotonic() - t0 < 60, "the deferred task did not run alongside"
            time.sleep(0.01)
        yield 1, 10                                       # a finished result: handed on as is
        yield 2, Deferred(_square, -1)                    # a failure
        yield 3, TaskFailure(3, ValueError("trained badly"))

    outs = {}
    for workers in (1, 2):
        got = {}
        run_alongside(produce(tmp_path / f"mark{workers}"), workers=workers,
                      on_done=got.__setitem__, catch=(ValueError,))
        outs[workers] = got
    for got in outs.values():
        assert got[0] == 9 and got[1] == 10 and sorted(got) == [0, 1, 2, 3]
        assert isinstance(got[2], TaskFailure) and got[2].index == 2
        assert "negative" in str(got[2].error) and isinstance(got[3], TaskFailure)


@pytest.fixture
def gpu_branch_on_cpu(monkeypatch):
    """The GPU branch (ensembles trained in the driver) on the CPU: the device check is faked and
    the trainer is the real stacked ensemble on the CPU. Returns the sizes of the groups trained."""
    from dataclasses import replace

    import backtests.execution as execution
    import models.ensemble as ensemble
    from backtests.execution.driver import GpuEnsembles, Placement, build_executor

    train_ensemble, groups = ensemble.train_ensemble, []

    def on_cpu(*args, cfgs, **kw):
        groups.append(len(cfgs))
        return train_ensemble(*args, cfgs=[replace(c, device="cpu") for c in cfgs], **kw)

    monkeypatch.setattr(execution, "local_device", lambda name: "cuda")
    monkeypatch.setattr(ensemble, "train_ensemble", on_cpu)
    assert isinstance(build_executor(Placement(device="cuda", workers=2), 1), GpuEnsembles)
    return groups


@pytest.mark.slow
def test_the_gpu_path_gives_the_same_table_with_workers_evaluating_alongside(
        tmp_path, gpu_branch_on_cpu):
    """Evaluating in 2 worker processes while the driver trains the next group gives the table
    of evaluating in the driver."""
    from test_walkforward_data import synthetic, write_csv

    from backtests import walkforward as wfm

    source = write_csv(synthetic(1300, seed=1), tmp_path / "walk.csv")
    tables = []
    for workers in (1, 2):
        base = Experiment().override({"runtime.runs_dir": str(tmp_path / f"w{workers}"),
                                      "train.epochs": 2, "dataset.window": 8})
        wf = wfm.WalkForward(base=base, sources=[source], models=wfm.parse_models("dense,rule"),
                             seeds=[0, 1], workers=workers, device="cuda",
                             plan=wfm.FoldPlan(train_bars=500, val_bars=200, test_bars=200))
        out = wfm.run(wf)
        assert out.computed == 9 and not out.failures
        tables.append([(out.run.path / f).read_text() for f in ("results.csv", "equity.csv")])
    assert gpu_branch_on_cpu == [6, 6]      # dense: 2 seeds × 3 folds in one ensemble, per run
    assert tables[0] == tables[1]


@pytest.mark.slow
def test_a_gpu_sweep_gives_the_same_table_with_workers_evaluating_alongside(
        tmp_path, gpu_branch_on_cpu):
    from test_walkforward_data import synthetic, write_csv

    from backtests import sweep as swm
    from backtests.walkforward import FoldPlan, parse_models

    source = write_csv(synthetic(1400, seed=3), tmp_path / "walk.csv")
    tables = []
    for workers in (1, 2):
        base = Experiment().override({"runtime.runs_dir": str(tmp_path / f"w{workers}"),
                                      "train.epochs": 1, "data.source": source})
        sw = swm.Sweep(base=base, source=source, models=parse_models("dense"), seeds=[0],
                       grid=swm.parse_grid(["threshold=0.4,0.5", "stop=bar,atr:1.5"], base),
                       plan=FoldPlan(train_bars=500, val_bars=200, test_bars=200),
                       workers=workers, device="cuda")
        out = swm.run(sw)
        assert out.computed == 3 and not out.failures
        tables.append(out.table)
    assert gpu_branch_on_cpu == [3, 3]
    pd.testing.assert_frame_equal(tables[0], tables[1])


def _env_value(name):
    import os

    return os.environ.get(name)


@pytest.mark.slow      # a pool of two workers (forked from the forkserver once it runs)
def test_workers_see_the_drivers_environment_of_the_moment(monkeypatch):
    """Workers fork from a forkserver started once per driver (``pool_context``); each pool
    still hands them the driver's environment as it is when the pool starts."""
    from backtests.execution import run_tasks
    from backtests.execution.local import pool_context

    assert pool_context().get_start_method() == "forkserver"     # Linux: the CI machine
    for value in ("first", "second"):
        monkeypatch.setenv("ATTNBT_TEST_WORKER_ENV", value)
        got = run_tasks(_env_value, ["ATTNBT_TEST_WORKER_ENV"] * 2, workers=2)
        assert got == [value, value], got
