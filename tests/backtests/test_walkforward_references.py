"""Walk-forward references (`--references`, `WalkForward.references`): run, traded and
compared on the same folds as the models, but not candidates: never the winner and never
charged in a DSR (their stitched series are recorded under their own trial kind)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_walkforward_data import synthetic, write_csv
from typer.testing import CliRunner

from backtests import walkforward as wfm
from backtests.cli import app
from backtests.config import ConfigError, Experiment
from backtests.execution.driver import REFERENCE_KIND, STITCHED_KIND
from backtests.store import Registry
from backtests.walkforward import results as R

FOLDS = ["--seeds", "1", "--train-bars", "500", "--val-bars", "200", "--test-bars", "200",
         "--workers", "1"]


@pytest.fixture(scope="module")
def walk_csv(tmp_path_factory):
    return write_csv(synthetic(1300, seed=3), tmp_path_factory.mktemp("d") / "walk.csv")


def _payload(runs) -> dict:
    (row,) = Registry(runs).list(kind="walkforward")
    return json.loads((runs / row["id"] / "walkforward.json").read_text())


def test_a_reference_is_traded_and_reported_but_charged_nowhere(walk_csv, tmp_path):
    """The candidate's DSR with a reference beside it equals its DSR alone, to the last digit;
    the reference's series is recorded under its own kind; the CLI and the report mark it."""
    with_ref, alone = tmp_path / "with", tmp_path / "alone"
    cli = CliRunner()
    res = cli.invoke(app, ["walkforward", "--data", walk_csv, "--models", "rule/newhl-range",
                           "--references", "rule/newhl", "--runs-dir", str(with_ref), *FOLDS])
    assert res.exit_code == 0, res.output
    assert "rule/newhl (reference: not charged, cannot win)" in res.output
    res = cli.invoke(app, ["walkforward", "--data", walk_csv, "--models", "rule/newhl-range",
                           "--runs-dir", str(alone), *FOLDS])
    assert res.exit_code == 0, res.output

    a, b = _payload(with_ref), _payload(alone)
    cand, ref = a["models"]["rule/newhl-range"], a["models"]["rule/newhl"]
    assert ref["reference"] is True and cand["reference"] is False
    assert ref["n_obs"] > 100 and np.isfinite(ref["sharpe"])     # it was traded
    assert cand["dsr_trials"] == b["models"]["rule/newhl-range"]["dsr_trials"] == 1
    assert cand["dsr"] == b["models"]["rule/newhl-range"]["dsr"], (cand["dsr"], b["models"])
    assert ref["dsr_trials"] == 2       # its own DSR: as if it had been one more candidate
    assert a["winner"]["model"] == "rule/newhl-range"
    assert a["settings"]["references"] == ["rule/newhl"] and "references" not in b["settings"]

    reg = Registry(with_ref)
    charged = [t["note"] for t in reg.trials(kind=STITCHED_KIND)]
    recorded = [t["note"] for t in reg.trials(kind=REFERENCE_KIND)]
    assert len(charged) == 1 and "rule/newhl-range" in charged[0], charged
    assert len(recorded) == 1 and "rule/newhl " in recorded[0], recorded
    (row,) = reg.list(kind="walkforward")
    html = (with_ref / row["id"] / "report.html").read_text()
    assert "rule/newhl (reference, not charged)" in html

    # a later walk-forward on the same bars and folds is charged for the candidate only
    res = cli.invoke(app, ["walkforward", "--data", walk_csv, "--models", "rule/newhl",
                           "--runs-dir", str(with_ref), *FOLDS])
    assert res.exit_code == 0, res.output
    assert "DSR" in res.output and "(2 trials)" in res.output, res.output


def _model(sharpe: float, reference: bool = False) -> dict:
    return {"sharpe": sharpe, "psr": 0.5, "dsr": 0.5, "total_return_pct": sharpe,
            "bars_per_year": 6000.0, "dsr_sr0": 0.01, "dsr_trials": 2, "reference": reference,
            "across_seeds": {"hit_pct": {"mean": 50.0}}}


def test_the_winner_and_its_runner_up_are_candidates_even_when_a_reference_is_best():
    rng = np.random.default_rng(0)
    idx = pd.date_range("2024-01-01", periods=400, freq="h")
    returns = {k: pd.Series(rng.normal(0, 1e-3, 400), idx) for k in ("ref", "a", "b")}
    models = {"ref": _model(9.0, reference=True), "a": _model(2.0), "b": _model(1.0)}
    w = R.winner(models, returns)
    assert w["model"] == "a" and w["runner_up"]["model"] == "b", w
    assert R.winner({"ref": _model(9.0, reference=True)}, returns) is None


def test_a_dry_run_says_the_references_are_not_charged(walk_csv, tmp_path):
    res = CliRunner().invoke(app, ["walkforward", "--data", walk_csv, "--models", "rule/newhl",
                                   "--references", "rule/newhl-range", "--runs-dir",
                                   str(tmp_path), "--dry-run", *FOLDS])
    assert res.exit_code == 0, res.output
    assert "6 tasks, 6 to compute" in res.output and "add 8 trials" in res.output
    assert "references' series are recorded but charged in no DSR" in res.output
    assert Registry(tmp_path).list() == []


def test_a_references_meta_arm_is_a_reference_too(walk_csv):
    wf = wfm.WalkForward(base=Experiment(), sources=[walk_csv],
                         models=wfm.parse_models("dense"),
                         references=wfm.parse_models("rule/newhl"), seeds=[0])
    assert wf.is_reference("rule/newhl") and wf.is_reference("rule/newhl+meta")
    assert not wf.is_reference("dense/matched") and not wf.is_reference("dense/matched+meta")


def test_a_model_cannot_be_both_a_candidate_and_a_reference(walk_csv, tmp_path):
    with pytest.raises(ConfigError, match="both a model and a reference"):
        wfm.WalkForward(base=Experiment(), sources=[walk_csv],
                        models=wfm.parse_models("rule/newhl,dense"),
                        references=wfm.parse_models("rule/newhl"), seeds=[0])
    res = CliRunner().invoke(app, ["walkforward", "--data", walk_csv, "--models", "dense",
                                   "--references", "dense/matched", "--runs-dir",
                                   str(tmp_path), *FOLDS])
    # the CLI's entry point turns this ConfigError into one line on stderr and exit code 2
    assert isinstance(res.exception, ConfigError), res.output
    assert "dense/matched is both a model and a reference" in str(res.exception)
    assert Registry(tmp_path).list() == []


def test_the_python_api_takes_references(walk_csv, tmp_path):
    from backtests import api

    wf = api.walkforward("rule/newhl-range", walk_csv, references="rule/newhl",
                         runs_dir=tmp_path, train_bars=500, val_bars=200, test_bars=200)
    p = json.loads((wf.outcome.run.path / "walkforward.json").read_text())
    assert {m: r["reference"] for m, r in p["models"].items()} == {"rule/newhl-range": False,
                                                                    "rule/newhl": True}
    assert p["winner"]["model"] == "rule/newhl-range" and p["winner"]["dsr_trials"] == 1
