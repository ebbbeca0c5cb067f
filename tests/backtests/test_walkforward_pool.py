"""Walk-forward with several instruments pooled into one model (``data.pool``): one model per
(model, seed, fold) trained on every instrument's windows, the same numbers as a single-source
run when given one instrument, training causal across instruments, results and trials per
instrument, and the CLI's ``--data A,B --pool``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from backtests import walkforward as wfm
from backtests.cli import app
from backtests.config import ConfigError, Experiment
from backtests.store import Registry
from backtests.walkforward.pooled import compute_pooled_task, view
from backtests.walkforward.tasks import compute_task
from data import DatasetSpec
from data.folds import walk_forward
from data.pool import calendar
from data.synth import generate
from models.config import TrainConfig
from models.train import fit

ONE_FOLD = wfm.FoldPlan(train_bars=500, val_bars=200, test_bars=200)
CFG = TrainConfig(epochs=1, batch_size=64, device="cpu", threads=1)
SPEC = DatasetSpec(window=8, features="scaled", labels="3bar")


def _write(frame: pd.DataFrame, path) -> str:
    out = frame.copy()
    out.index = out.index.strftime("%Y-%m-%d %H:%M:%S")
    out.to_csv(path, index_label="time", float_format="%.6f")
    return str(path)


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    a = generate("order", seed=1, bars=1000)
    b = generate("regime", seed=2, bars=1000)
    b = b.iloc[np.arange(len(b)) % 6 != 1]         # another calendar: every sixth bar missing
    return {"A": a, "B": b}


@pytest.fixture(scope="module")
def csvs(frames, tmp_path_factory):
    d = tmp_path_factory.mktemp("pool")
    return [_write(frames["A"], d / "EURUSD_H1.csv"), _write(frames["B"], d / "GBPUSD_H1.csv")]


def _weights(result) -> dict[str, torch.Tensor]:
    return result.model.state_dict()


def test_pooled_training_on_one_instrument_is_the_single_source_training(frames):
    fold = walk_forward(frames["A"].index, train_bars=500, val_bars=200, test_bars=200)[0]
    one = fit(frames["A"], SPEC, fold, kind="dense", preset="matched", cfg=CFG)
    pooled = fit({"A": frames["A"]}, SPEC, fold, kind="dense", preset="matched", cfg=CFG)
    for k, v in _weights(one).items():
        assert torch.equal(v, _weights(pooled)[k]), k
    np.testing.assert_array_equal(pooled.normaliser.of("A").mean, one.normaliser.mean)


def test_pooled_training_is_causal_in_every_instrument(frames):
    """Bars after the fold's validation end, in either instrument, changed or removed: the
    same pooled model, weight for weight."""
    fold = walk_forward(calendar({s: f.index for s, f in frames.items()}), train_bars=500,
                        val_bars=200, test_bars=200)[0]
    base = fit(dict(frames), SPEC, fold, kind="dense", preset="matched", cfg=CFG)
    t = fold.validation.end
    changed = {"A": frames["A"][frames["A"].index <= t], "B": frames["B"].copy()}
    late = changed["B"].index > t
    changed["B"].loc[late, ["open", "high", "low", "close"]] *= 1.3
    again = fit(changed, SPEC, fold, kind="dense", preset="matched", cfg=CFG)
    for k, v in _weights(base).items():
        assert torch.equal(v, _weights(again)[k]), k
    # and the pool is not ignoring B: without B the model differs
    alone = fit({"A": frames["A"]}, SPEC, fold, kind="dense", preset="matched", cfg=CFG)
    assert any(not torch.equal(v, _weights(alone)[k]) for k, v in _weights(base).items())


def test_a_pooled_task_on_one_instrument_gives_todays_numbers(csvs):
    base = Experiment().override({"train.epochs": 1, "train.batch_size": 64,
                                  "dataset.window": 8, "train.device": "cpu"})
    wf = wfm.WalkForward(base=base, sources=[csvs[0]], models=wfm.parse_models("dense"),
                         seeds=[0], plan=ONE_FOLD, device="cpu")
    p = wfm.plan(wf)
    single = p.tasks[0]
    candles = p.candles[csvs[0]]
    from backtests.walkforward.pooled import plan_pooled_tasks
    from data import fingerprint

    pooled = plan_pooled_tasks(base.override({"data.pool": True}), {csvs[0]: candles},
                               {csvs[0]: fingerprint(candles)}, wf.models, [0], ONE_FOLD)[0]
    assert pooled.fold == single.fold
    want = compute_task((single, candles))
    got = compute_pooled_task((pooled, {csvs[0]: candles}))["instruments"][csvs[0]]
    assert got["equity"] == want["equity"] and got["times"] == want["times"]
    assert got["metrics"] == want["metrics"] and got["threshold"] == want["threshold"]
    assert got["task"]["id"] != want["task"]["id"]      # a pooled task is no single task
    assert view(pooled, csvs[0]).id == got["task"]["id"]


def test_a_pooled_run_records_each_instrument_and_charges_the_dsr_for_each(csvs, tmp_path,
                                                                          capsys):
    base = Experiment().override({"runtime.runs_dir": str(tmp_path), "train.epochs": 1,
                                  "train.batch_size": 64, "dataset.window": 8,
                                  "data.pool": True})
    wf = wfm.WalkForward(base=base, sources=csvs, models=wfm.parse_models("dense"), seeds=[0],
                         plan=ONE_FOLD, device="cpu")
    p = wfm.plan(wf)
    assert [t.source for t in p.tasks] == ["pooled"] * len(p.tasks)
    assert wfm.trials_added(p, wf) == 2 * len(p.tasks) + 2
    out = wfm.run(wf)
    payload = json.loads((out.run.path / "walkforward.json").read_text())
    assert set(payload["models"]) == {f"dense/matched on {s}" for s in csvs}
    assert payload["settings"]["pool"] is True
    assert payload["pooled"]["dense/matched"]["instruments"] == csvs
    table = pd.read_csv(out.run.path / "results.csv")
    assert sorted(table.source) == sorted(csvs * len(p.tasks))
    reg = Registry(tmp_path)
    trials = [t for t in reg.trials() if t["run_id"] == out.run.id]
    assert len(trials) == 2 * len(p.tasks) + 2          # per instrument: tasks + stitched
    for name, m in payload["models"].items():
        assert m["dsr_trials"] >= 1, name
    from backtests.cli.walkforward import print_outcome

    print_outcome(out)
    assert "pooled dense/matched over 2 instruments" in capsys.readouterr().out
    again = wfm.run(wf)                                  # a re-run adds no trial
    assert again.reused and len([t for t in reg.trials() if t["run_id"] == out.run.id]) == \
        len(trials)


def test_pool_refuses_meta_and_a_repeated_source(csvs, tmp_path):
    base = Experiment().override({"runtime.runs_dir": str(tmp_path), "data.pool": True})
    for over, sources, key in (({"strategy.meta": True}, csvs, "strategy.meta"),
                               ({}, [csvs[0], csvs[0]], "listed twice")):
        wf = wfm.WalkForward(base=base.override(over), sources=sources,
                             models=wfm.parse_models("dense"), seeds=[0], plan=ONE_FOLD)
        with pytest.raises(ConfigError, match=key):
            wfm.plan(wf)


def test_pool_refuses_mixed_timeframes(frames, tmp_path):
    from data import DataError

    daily = frames["A"].resample("1D").agg({"open": "first", "high": "max", "low": "min",
                                            "close": "last", "volume": "sum",
                                            "spread": "mean"}).dropna()
    paths = [_write(frames["A"], tmp_path / "EURUSD_H1.csv"),
             _write(daily, tmp_path / "GBPUSD_D1.csv")]
    wf = wfm.WalkForward(base=Experiment().override({"runtime.runs_dir": str(tmp_path),
                                                     "data.pool": True}),
                         sources=paths, models=wfm.parse_models("dense"), seeds=[0],
                         plan=ONE_FOLD)
    with pytest.raises(DataError, match="different timeframes"):
        wfm.plan(wf)


def test_pool_is_left_out_of_ids_at_its_default():
    assert "pool" not in Experiment().to_dict(for_id=True)["data"]
    assert Experiment().override({"data.pool": True}).id != Experiment().id


def test_cli_takes_comma_separated_sources_and_pool(csvs, tmp_path):
    runner = CliRunner()
    common = ["walkforward", "--models", "dense", "--seeds", "1", "--train-bars", "300",
              "--val-bars", "200", "--test-bars", "200", "--runs-dir", str(tmp_path),
              "--dry-run"]
    pooled = runner.invoke(app, [*common, "--data", ",".join(csvs), "--pool"])
    assert pooled.exit_code == 0, pooled.output
    assert "pooled dense/matched seed 0 fold 1" in pooled.output
    apart = runner.invoke(app, [*common, "--data", ",".join(csvs)])
    assert apart.exit_code == 0, apart.output
    assert "pooled" not in apart.output
    assert apart.output.count("dense/matched seed 0 fold 1") == 2     # one per source
    assert pooled.output.count("dense/matched seed 0 fold 1") == 1    # one for both


@pytest.mark.slow      # a training and a backtest with its report and baselines, end to end
def test_train_pooled_then_backtest_it_on_one_instrument(csvs, tmp_path):
    """`attnbt train --data A,B --pool` saves one model with both normalisers;
    `attnbt backtest --data A` applies A's (threshold on A's own validation bars); an
    instrument it was not trained on is refused, naming the ones it was."""
    from models.checkpoint import load_model

    runner = CliRunner()
    runs = ["--runs-dir", str(tmp_path)]
    trained = runner.invoke(app, ["train", "--data", ",".join(csvs), "--model", "dense",
                                  "--window", "8", "--epochs", "1", *runs, "--pool"])
    assert trained.exit_code == 0, trained.output
    run = Registry(tmp_path).resolve("latest", kind="train")
    meta = json.loads((run.path / "model.json").read_text())
    assert set(meta["normaliser"]["pooled"]) == set(csvs) and meta["instruments"] == csvs
    a = load_model(run.path, instrument=csvs[0])
    assert a.normaliser.mean.tolist() == meta["normaliser"]["pooled"][csvs[0]]["mean"]
    bt = runner.invoke(app, ["backtest", "--data", csvs[1], "--threshold", "auto", *runs])
    assert bt.exit_code == 0, bt.output
    other = tmp_path / "USDJPY_H1.csv"
    other.write_text(open(csvs[0]).read())
    refused = runner.invoke(app, ["backtest", "--data", str(other), *runs])
    assert refused.exit_code != 0
    assert "pooled from" in str(refused.exception) and "USDJPY_H1.csv" in str(refused.exception)
    # without a source: which instrument is not guessed
    unsaid = runner.invoke(app, ["backtest", *runs])
    assert unsaid.exit_code != 0 and "give one of them" in str(unsaid.exception)
    # paper trading takes it on one instrument, and refuses one it was not trained on
    paper = runner.invoke(app, ["paper", "init", "pooled-b", "--run", "latest", "--source",
                                csvs[1], *runs])
    assert paper.exit_code == 0, paper.output
    step = runner.invoke(app, ["paper", "step", "pooled-b", *runs])
    assert step.exit_code == 0, step.output
    no = runner.invoke(app, ["paper", "init", "pooled-jpy", "--run", "latest", "--source",
                             str(other), *runs])
    assert no.exit_code != 0 and "pooled from" in str(no.exception) + no.output


def test_a_rule_baseline_in_a_pool_is_the_single_source_trial(csvs, tmp_path):
    """Rules pool nothing: on a fold the calendar shares with the instrument, a rule's view is
    the single-source task (same id: the registry counts it once); a network's is not."""
    base = Experiment().override({"runtime.runs_dir": str(tmp_path)})
    models = wfm.parse_models("dense,rule/newhl")
    single = wfm.plan(wfm.WalkForward(base=base, sources=[csvs[0]], models=models, seeds=[0],
                                      plan=ONE_FOLD))
    pooled = wfm.plan(wfm.WalkForward(base=base.override({"data.pool": True}), sources=csvs,
                                      models=models, seeds=[0], plan=ONE_FOLD))
    ids = {(t.kind, t.fold_no): t.id for t in single.tasks}
    for t in pooled.tasks:
        assert t.fold == next(s.fold for s in single.tasks if s.fold_no == t.fold_no)
        same = view(t, csvs[0]).id == ids[(t.kind, t.fold_no)]
        assert same == (t.kind == "rule")


def test_the_gpu_branch_trains_each_pooled_task_once(csvs, tmp_path, monkeypatch):
    """On a GPU the study computes pooled tasks one at a time (no vmapped ensemble across
    pools); here on the CPU, the branch's results equal the pool's."""
    from backtests.walkforward import pooled as P
    from backtests.walkforward.driver import WalkForwardStudy

    base = Experiment().override({"runtime.runs_dir": str(tmp_path), "train.epochs": 1,
                                  "train.batch_size": 64, "dataset.window": 8,
                                  "data.pool": True})
    wf = wfm.WalkForward(base=base, sources=csvs, models=wfm.parse_models("dense"), seeds=[0],
                         plan=ONE_FOLD, device="cpu")
    study = WalkForwardStudy(wf)
    assert study.compute is P.compute_pooled_task
    p = study.plan()
    calls = []
    monkeypatch.setattr(P, "compute_pooled_task_cuda",
                        lambda payload: calls.append(payload[0].id) or P.compute_pooled_task(
                            payload))
    got = dict(study.ensembles(p, p.tasks[:1], lambda s: None))
    assert calls == [p.tasks[0].id] and set(got) == {0}
    want = P.compute_pooled_task(study.payload(p, p.tasks[0]))
    for s in csvs:
        assert got[0]["instruments"][s]["equity"] == want["instruments"][s]["equity"]


def test_a_pooled_reference_is_recorded_per_instrument_and_never_charged(csvs, tmp_path,
                                                                         capsys):
    from backtests.cli.walkforward import print_outcome
    from backtests.execution.driver import REFERENCE_KIND, STITCHED_KIND

    base = Experiment().override({"runtime.runs_dir": str(tmp_path), "data.pool": True})
    wf = wfm.WalkForward(base=base, sources=csvs, models=wfm.parse_models("rule/newhl-range"),
                         references=wfm.parse_models("rule/newhl"), seeds=[0], plan=ONE_FOLD)
    out = wfm.run(wf)
    payload = json.loads((out.run.path / "walkforward.json").read_text())
    for s in csvs:
        assert payload["models"][f"rule/newhl on {s}"]["reference"] is True
        assert payload["models"][f"rule/newhl-range on {s}"]["reference"] is False
        assert payload["models"][f"rule/newhl-range on {s}"]["dsr_trials"] == 1
    assert payload["pooled"]["rule/newhl"]["reference"] is True
    assert payload["pooled"]["rule/newhl"]["dsr_passes"] == []
    assert payload["winner"]["model"].startswith("rule/newhl-range on ")
    reg = Registry(tmp_path)
    assert len(reg.trials(kind=REFERENCE_KIND)) == 2 == len(reg.trials(kind=STITCHED_KIND))
    print_outcome(out)
    assert "pooled rule/newhl (reference) over 2 instruments" in capsys.readouterr().out
