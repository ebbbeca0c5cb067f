"""Every study trades a triple-barrier model with its label's exits unless the user set the
exits (``strategy.rules.label_exits``), and says which exits it traded."""

from __future__ import annotations

import json

import pytest

from backtests.config import ConfigError, Experiment
from data.folds import walk_forward


def _task(exp: Experiment, candles):
    from backtests.walkforward import tasks as T

    fold = walk_forward(candles.index, train_bars=600, val_bars=200, test_bars=200)[0]
    return T.Task("sample", exp.model.kind, exp.model.preset, 0, 1, fold, exp, "fp", False)


@pytest.mark.parametrize("settings,barriers,hold", [
    ({}, "atr:1:0.5", 7),                                   # the label's exits
    ({"strategy.stop": "atr:2"}, "none", 7),                # a stop of yours: your stop
    ({"strategy.max_hold": 3}, "atr:1:0.5", 3),              # your hold, the label's barriers
    ({"strategy.barriers": "none"}, "none", 24),            # opted out: the rules as set
])
def test_a_walkforward_task_trades_the_labels_exits_unless_set(eurusd, monkeypatch, settings,
                                                               barriers, hold):
    from backtests.walkforward import tasks as T

    candles = eurusd.iloc[:1200]
    exp = Experiment().override({"model.kind": "rule", "model.preset": "newhl",
                                 "dataset.labels": "triple:1:0.5:6", **settings})
    seen = []
    real = T.run_backtest
    monkeypatch.setattr(T, "run_backtest", lambda *a, **k: seen.append(a[2]) or real(*a, **k))
    task = _task(exp, candles)
    T.evaluate_task(task, candles, T.train_fold(task, candles))
    assert (seen[0].barriers, seen[0].max_hold) == (barriers, hold)
    # other labels: the rules as set (auto trades as none)
    seen.clear()
    plain = _task(exp.override({"dataset.labels": "swing"}), candles)
    T.evaluate_task(plain, candles, T.train_fold(plain, candles))
    assert seen[0] == exp.strategy


def test_the_barriers_key_is_checked_and_enters_the_id_only_when_set():
    base = Experiment()
    assert base.override({"barriers": "auto"}).id == base.id == "7fe8b7747224"
    assert base.override({"barriers": "atr:1:1"}).id != base.id
    assert base.override({"barriers": "none"}).id != base.id
    with pytest.raises(ConfigError, match="strategy.barriers"):
        base.override({"barriers": "atr:1"})
    # with triple-barrier labels `auto` trades the label's exits, which attnbt did not do before
    # the key existed: the id says so (a triple run recorded earlier is not taken for this one)
    triple = base.override({"labels": "triple:1:1:24"})
    assert "barriers" in triple.to_dict(for_id=True)["strategy"]
    assert triple.id != triple.override({"barriers": "none"}).id
    assert "barriers" not in base.override({"labels": "swing"}).to_dict(for_id=True)["strategy"]


@pytest.mark.slow
def test_a_backtest_of_a_triple_model_records_the_exits_it_traded(eurusd, tmp_path):
    """Trains a small dense model on triple-barrier labels (1 epoch), backtests it and reads the
    exits back from the run's record, on 1,000 sample bars (slow: about 7 CPU-s after the imports)."""
    from backtests.backtest import backtest, backtest_experiment
    from backtests.workflows import train_run

    exp = Experiment().override({"model.kind": "dense", "model.preset": "matched",
                                 "dataset.labels": "triple:1.5:1:12", "train.epochs": 1,
                                 "runtime.runs_dir": str(tmp_path)})
    run, _ = train_run(exp, candles=eurusd.iloc[:1000])
    bexp = backtest_experiment(run.id, tmp_path)
    out = backtest(bexp, run.id, candles=eurusd.iloc[:1000])
    params = json.loads((out.run.path / "run.json").read_text())["params"]
    assert (params["barriers"], params["max_hold"]) == ("atr:1.5:1", 13)
    assert "atr:1.5:1" in (out.run.path / "report.html").read_text()
    assert bexp.strategy.barriers == "auto"                  # the config as given
