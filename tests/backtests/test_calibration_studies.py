"""Calibrated probabilities in the studies (issue 18 §5): evaluate, backtest and walk-forward trade
and report the same calibrated probabilities; the threshold is chosen on them."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from test_walkforward_data import synthetic, write_csv

from backtests import walkforward as wfm
from backtests.config import Experiment
from backtests.simulation import choose_threshold
from models.checkpoint import load_model
from models.evaluate import brier_scores
from models.predict import Predictor

# Each test trains a small model and scores, trades or renders a study (~2-3 s each on an idle
# 2-core machine): slow by the suite's 2 s rule. The calibration maps themselves are tested fast
# in tests/models/test_calibration.py.
pytestmark = pytest.mark.slow

SMALL = wfm.FoldPlan(train_bars=500, val_bars=200, test_bars=200)   # 3 folds on 1,300 bars
TINY = {"model.kind": "dense", "model.preset": "matched", "dataset.window": 8,
        "train.epochs": 1}


@pytest.fixture(scope="module")
def calibrated_run(eurusd, tmp_path_factory):
    from backtests.workflows import train_run

    runs = tmp_path_factory.mktemp("runs")
    exp = Experiment().override({**TINY, "train.calibration": "isotonic",
                                 "runtime.runs_dir": str(runs)})
    run, _ = train_run(exp, candles=eurusd.iloc[:2500])
    return run, runs, eurusd.iloc[:2500]


def test_evaluate_shows_brier_before_and_after_and_draws_the_diagram(calibrated_run, cli):
    from backtests.workflows import evaluate_run

    run, runs, candles = calibrated_run
    out = evaluate_run(run.id, runs_dir=runs, candles=candles)
    c = out["calibration"]
    assert c["method"] == "isotonic" and c["brier_uncalibrated"] is not None
    loaded = load_model(run.path)
    probs = Predictor(loaded).predict_frame(candles)
    raw = Predictor(loaded, calibrated=False).predict_frame(candles)
    from backtests.scoring import score

    ends, y = score(run.id, runs_dir=runs, candles=candles).labelled()
    assert c["brier"] == pytest.approx(brier_scores(y, probs.to_numpy()[ends]), abs=1e-12)
    assert c["brier_uncalibrated"] == pytest.approx(brier_scores(y, raw.to_numpy()[ends]),
                                                    abs=1e-12)
    assert sum(r["windows"] for r in c["reliability"]) == 3 * len(ends)
    with open(c["figure"], "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    done = cli("evaluate", "--run", run.id, runs_dir=runs)
    assert done.returncode == 0, done.stderr
    assert "Brier score" in done.stdout and "network's own (uncalibrated)" in done.stdout
    assert "reliability diagram →" in done.stdout


def test_backtest_chooses_its_threshold_on_calibrated_validation_probabilities(calibrated_run):
    from backtests.backtest import calibration_facts, compute_backtest
    from backtests.reports.backtest import calibration_section
    from backtests.scoring import score, validation_bars

    run, runs, candles = calibrated_run
    kept = validation_bars(run)
    loaded = load_model(run.path)
    probs = kept[["p_none", "p_buy", "p_sell"]]
    first, last = loaded.fold.bounds(candles.index, "val")
    lo = max(0, first - loaded.spec.window - 64)       # the history record_training scores
    raw = Predictor(loaded, calibrated=False).predict_frame(
        candles.iloc[lo:last + 1]).loc[kept.index]
    assert np.allclose(probs.to_numpy(), loaded.meta_info.calibration.apply(raw.to_numpy()),
                       atol=1e-12)
    exp = Experiment().override({**TINY, "train.calibration": "isotonic",
                                 "runtime.runs_dir": str(runs), "backtest.auto_threshold": True,
                                 "backtest.random_draws": 10})
    out = compute_backtest(exp, run.id, candles=candles, with_report=False)
    bars = kept.drop(columns=list(probs.columns))
    _, table = choose_threshold(bars, probs, exp.strategy, exp.costs, exp.backtest.cash)
    assert out.threshold_tables[out.model] == table
    # the probabilities traded on the test bars are the calibrated ones
    assert np.allclose(out.probs.to_numpy(), Predictor(loaded).predict_frame(candles)
                       .loc[out.probs.index].to_numpy(), equal_nan=True)
    # the report's calibration block (render_report places it; Bokeh pages take ~10 s to draw)
    scored = score(run.id, runs_dir=runs, candles=candles)
    facts = calibration_facts(scored, scored.metrics(rules=())["model"])
    assert facts["method"] == "isotonic" and 0 <= facts["brier"] <= 2
    html = calibration_section(facts)
    assert "Calibration (labelled windows of the period)" in html and "data:image/png" in html

def test_walkforward_trades_calibrated_probabilities_and_reports_brier(tmp_path):
    from backtests.walkforward import tasks as T

    source = write_csv(synthetic(1300, seed=1), tmp_path / "walk.csv")
    base = Experiment().override({"runtime.runs_dir": str(tmp_path), "train.epochs": 1,
                                  "dataset.window": 8, "train.calibration": "platt"})
    wf = wfm.WalkForward(base=base, sources=[source], models=wfm.parse_models("dense"),
                         seeds=[0], plan=SMALL, workers=1, device="cpu")
    p = wfm.plan(wf)
    task, candles = p.tasks[0], p.candles[source]
    trained = T.train_fold(task, candles)
    v_first, _ = task.fold.bounds(candles.index, "val")
    _, t_last = task.fold.bounds(candles.index, "test")
    probs = T.predict_bars(trained, candles, v_first, t_last)
    raw = T.predict_bars(replace(trained, meta={}), candles, v_first, t_last)
    ok = raw.notna().all(axis=1).to_numpy()
    cal = T.predictor_of(trained).calibrator
    assert cal.method == "platt"
    assert np.array_equal(probs.to_numpy()[ok], cal.apply(raw.to_numpy()[ok]))

    out = wfm.run(wf)
    payload = json.loads((out.run.path / "walkforward.json").read_text())
    (m,) = payload["models"].values()
    assert m["calibration"] == ["platt"] and m["reliability"]["buy"]["count"]
    assert 0 <= m["across_seeds"]["brier"]["mean"] <= 2
    table = pd.read_csv(out.run.path / "results.csv")
    assert table["brier"].between(0, 2).all() and len(table) == 3
    html = (out.run.path / "report.html").read_text()
    assert "<h2>Calibration</h2>" in html and "reliability of" in html
