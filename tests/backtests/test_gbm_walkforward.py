"""The gradient-boosting baseline in a walk-forward: planned once whatever the seeds (it is
deterministic), trained per fold, thresholded on validation, traded on the test part and charged
as a trial per fold like every other model."""

from __future__ import annotations

import json

import pytest
from test_walkforward_data import synthetic, write_csv

from backtests.config import Experiment
from backtests.walkforward import FoldPlan, parse_models

SMALL = FoldPlan(train_bars=500, val_bars=200, test_bars=200)


@pytest.fixture(scope="module")
def gbm_csv(tmp_path_factory):
    return write_csv(synthetic(1300, seed=1), tmp_path_factory.mktemp("d") / "walk.csv")


def test_models_gbm_is_a_model_kind_with_its_preset():
    assert parse_models("gbm,attention") == [("gbm", "hgb"), ("attention", "article")]
    assert parse_models("gbm/hgb") == [("gbm", "hgb")]


@pytest.mark.slow   # a 3-fold walk-forward: about 10 s on the 2-core machine
def test_walkforward_trains_gbm_per_fold_and_records_a_trial_per_fold(gbm_csv, tmp_path):
    from backtests import walkforward as wfm
    from backtests.store import Registry

    base = Experiment().override({"runtime.runs_dir": str(tmp_path), "dataset.window": 5})
    wf = wfm.WalkForward(base=base, sources=[str(gbm_csv)],
                         models=parse_models("gbm,rule/newhl"), seeds=[0, 1], plan=SMALL,
                         workers=1, device="cpu")
    p = wfm.plan(wf)
    folds = len(SMALL.folds(p.candles[str(gbm_csv)].index))
    gbm_tasks = [t for t in p.tasks if t.kind == "gbm"]
    assert len(gbm_tasks) == folds and {t.seed for t in gbm_tasks} == {0}   # one seed: no copies
    out = wfm.run(wf)
    payload = json.loads((out.run.path / "walkforward.json").read_text())
    assert set(payload["models"]) == {"gbm/hgb", "rule/newhl"}
    gbm = payload["models"]["gbm/hgb"]
    assert gbm["dsr_trials"] == payload["models"]["rule/newhl"]["dsr_trials"] >= 1
    trials = Registry(tmp_path).trials(kind="walkforward")
    assert len(trials) == 2 * folds
    tasks = sorted(out.run.path.glob("tasks/*.json"))
    trained = [json.loads(f.read_text()) for f in tasks]
    gbm_rows = [r for r in trained if r["task"]["model"] == "gbm/hgb"]
    assert len(gbm_rows) == folds
    assert all(r["train"]["best_epoch"] >= 1 for r in gbm_rows)   # iterations chosen on val


def test_cli_walkforward_plans_gbm_once_whatever_the_seeds(gbm_csv, tmp_path):
    from typer.testing import CliRunner

    from backtests.cli import app

    res = CliRunner().invoke(app, ["walkforward", "--data", str(gbm_csv), "--dry-run",
                                   "--models", "attention,dense,gbm", "--seeds", "2",
                                   "--train-bars", "500", "--val-bars", "200",
                                   "--test-bars", "200", "--runs-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "gbm/hgb seed 0 fold 1" in res.output and "gbm/hgb seed 1" not in res.output
    assert "dense/matched seed 1 fold 1" in res.output


def test_cli_train_refuses_gbm_naming_the_walkforward(gbm_csv, tmp_path):
    from typer.testing import CliRunner

    from backtests.cli import app
    from backtests.config import ConfigError

    for extra in ([], ["--preset", "hgb"]):     # the default preset (article) and its own
        res = CliRunner().invoke(app, ["train", "--data", str(gbm_csv), "--model", "gbm",
                                       *extra, "--runs-dir", str(tmp_path)])
        assert isinstance(res.exception, ConfigError), res.output
        assert "walk-forward" in str(res.exception), res.exception
    assert not list(tmp_path.glob("*/model.json"))        # nothing trained or saved


def test_a_sweeps_best_network_is_never_gbm_nor_a_rule():
    import pandas as pd

    from backtests.sweep.study import best_network_and_rule, versus_best_rule

    table = pd.DataFrame({"model": ["gbm/hgb", "rule/newhl", "dense/matched", "attention/article"],
                          "rules": ["a", "b", "c", "d"], "sharpe": [2.0, 1.0, 0.5, 0.2],
                          "total_return_pct": [3.0, 1.0, 0.4, 0.1]})
    net, rule = best_network_and_rule(table)
    assert net["model"] == "dense/matched" and rule["model"] == "rule/newhl"
    net, rule = best_network_and_rule(table.iloc[:2])
    assert net is None and rule["model"] == "rule/newhl"
    text = versus_best_rule({"best_network": net, "best_rule": rule})
    assert text.startswith("No network was swept"), text
