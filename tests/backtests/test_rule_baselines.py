"""Rule baselines in every study: evaluate, backtest (and --vs), walk-forward and sweep show them
on the same bars through the same threshold choice, rules and costs, and the verdicts name the
strongest one (not chance)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_walkforward_data import synthetic, write_csv

from backtests.backtest import backtest_experiment, compute_backtest
from backtests.config import Experiment
from backtests.scoring import score
from backtests.simulation import run_backtest
from backtests.walkforward import FoldPlan, parse_models
from backtests.workflows import evaluate_run
from models.rules import rule_probs

SMALL = FoldPlan(train_bars=500, val_bars=200, test_bars=200)


def test_evaluate_shows_the_rules_and_their_hit_rate_is_the_hand_count(cli, trained_run, eurusd,
                                                                           runs_dir):
    res = evaluate_run(trained_run.id, runs_dir=runs_dir, candles=eurusd)
    scored = score(trained_run.id, runs_dir=runs_dir, candles=eurusd, period="test")
    ends, y = scored.labelled()
    h, lo = eurusd["high"].to_numpy(), eurusd["low"].to_numpy()
    hits = signals = 0
    for t in ends:                          # the rule as stated, bar by bar
        up, down = h[t] > h[t - 1], lo[t] < lo[t - 1]
        if up != down:
            signals += 1
            hits += int(y[list(ends).index(t)] == (2 if up else 1))
    got = res["results"]["rule/newhl"]
    assert got["signals"] == signals
    assert got["hit_pct"] == pytest.approx(100 * hits / signals, abs=1e-9)
    assert "rule/newhl-range" in res["results"]
    v = res["versus_rules"]
    assert v["text"].startswith(f"attention/article hit {res['results']['model']['hit_pct']:.1f}"
                                f" % vs best rule baseline {v['rule']}")
    out = cli("evaluate", "--run", trained_run.id, runs_dir=runs_dir)
    assert out.returncode == 0, out.stderr
    assert "rule baseline: rule/newhl" in out.stdout and "vs best rule baseline" in out.stdout


def no_attention_maps(monkeypatch) -> None:
    """The backtest's report without its three attention-map pictures (about a third of its
    cost here; tests/backtests/test_backtest.py checks them): these tests read the rules."""
    monkeypatch.setattr("backtests.backtest.attention_examples", lambda *a, **k: [])


def test_backtest_trades_the_rules_beside_the_model_and_the_verdict_names_the_best(
        trained_run, eurusd, runs_dir, monkeypatch):
    no_attention_maps(monkeypatch)
    exp = backtest_experiment(trained_run.id, runs_dir, {"runtime.runs_dir": str(runs_dir),
                                                         "backtest.auto_threshold": True,
                                                         "backtest.random_draws": 20})
    out = compute_backtest(exp, trained_run.id, vs=["rule/newhl-range:2"], candles=eurusd)
    keys = [k for k, b in out.baselines.items() if b["kind"] == "rule"]
    assert keys == ["rule:newhl", "rule:newhl-range", "rule:newhl-range:2"]
    assert {"rule/newhl", "rule/newhl-range:2"} <= set(out.threshold_tables)
    # the rule's row is a plain backtest of its probabilities with its chosen threshold
    scored = score(trained_run.id, runs_dir=runs_dir, candles=eurusd, period="test")
    b = out.baselines["rule:newhl"]
    probs = rule_probs(eurusd, "newhl").iloc[scored.first:scored.last + 1]
    from dataclasses import replace

    alone = run_backtest(scored.period_candles, probs, replace(exp.strategy,
                                                              threshold=b["threshold"]),
                         exp.costs, exp.backtest.cash)
    assert b["n_trades"] == alone.stats["n_trades"] > 0
    assert b["total_return_pct"] == pytest.approx(alone.stats["total_return_pct"], abs=1e-9)
    rows = {r["network"]: r for r in out.comparison}
    assert rows["rule/newhl"]["source"] == "rule baseline"
    assert rows["rule/newhl"]["hit %"] == pytest.approx(b["hit_pct"])
    text = json.loads(out.files["report.json"])["verdict"]["text"]
    assert "best rule baseline rule/" in text and "vs best rule baseline" in text
    assert "rule/newhl" in out.files["report.html"]


def test_cli_backtest_takes_a_rule_with_vs_and_refuses_a_bad_one(cli, trained_run, runs_dir,
                                                                  monkeypatch):
    no_attention_maps(monkeypatch)
    ok = cli("backtest", "--run", trained_run.id, "--vs", "rule/newhl-range:0.5",
             "--random-draws", "20", runs_dir=runs_dir)
    assert ok.returncode == 0, ok.stderr
    assert "rule/newhl-range:0.5" in ok.stdout and "signals: attention/article hit" in ok.stdout
    bad = cli("backtest", "--run", trained_run.id, "--vs", "rule/nosuch", runs_dir=runs_dir)
    assert bad.returncode == 2 and "unknown rule 'nosuch'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr


@pytest.fixture(scope="module")
def walk_csv(tmp_path_factory):
    return write_csv(synthetic(1300, seed=1), tmp_path_factory.mktemp("d") / "walk.csv")


@pytest.mark.slow
def test_walkforward_runs_rules_as_models_and_says_how_the_network_does_against_them(
        walk_csv, tmp_path):
    from backtests import walkforward as wfm
    from backtests.walkforward.tasks import compute_task
    from data.dataset import CandleDataset
    from models.evaluate import article_metrics

    base = Experiment().override({"runtime.runs_dir": str(tmp_path), "train.epochs": 1})
    wf = wfm.WalkForward(base=base, sources=[str(walk_csv)],
                         models=parse_models("lstm,rule/newhl,rule/newhl-range"), seeds=[0],
                         plan=SMALL, workers=1, device="cpu")
    out = wfm.run(wf)
    payload = json.loads((out.run.path / "walkforward.json").read_text())
    assert {"rule/newhl", "rule/newhl-range", "lstm/article"} == set(payload["models"])
    [v] = payload["versus_rules"]
    assert v["text"].startswith("lstm/article ") and " vs best rule baseline rule/" in v["text"]
    assert "vs best rule baseline" in (out.run.path / "report.html").read_text()
    # a rule task's hit rate is the rule's on the fold's test windows
    p = wfm.plan(wf)
    task = next(t for t in p.tasks if t.model == "rule/newhl" and t.fold_no == 2)
    r = compute_task((task, p.candles[str(walk_csv)]))
    candles = p.candles[str(walk_csv)]
    ends = CandleDataset(candles, task.exp.dataset).ends("test", task.fold)
    want = article_metrics(CandleDataset(candles, task.exp.dataset).labels[ends],
                           rule_probs(candles, "newhl").to_numpy()[ends])
    assert r["metrics"]["hit_pct"] == pytest.approx(want["hit_pct"], abs=1e-12)
    assert r["train"]["epochs_run"] == 0


def test_walkforward_default_models_include_the_rules(walk_csv, tmp_path):
    from typer.testing import CliRunner

    from backtests.cli import app

    res = CliRunner().invoke(app, ["walkforward", "--data", str(walk_csv), "--dry-run",
                                   "--seeds", "1", "--train-bars", "500", "--val-bars", "200",
                                   "--test-bars", "200", "--runs-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "rule/newhl seed 0 fold 1" in res.output
    assert "rule/newhl-range seed 0 fold 1" in res.output


@pytest.mark.slow   # a few seconds: runs in `make test`, not in the fast subset
def test_a_rule_is_one_trial_whatever_the_seeds(walk_csv, tmp_path):
    """A rule has no seed: several seeds would be identical copies, each charged as a trial."""
    from backtests import walkforward as wfm
    from backtests.store import Registry

    base = Experiment().override({"runtime.runs_dir": str(tmp_path)})
    wf = wfm.WalkForward(base=base, sources=[str(walk_csv)],
                         models=parse_models("rule/newhl,rule/newhl-range"), seeds=[0, 1, 2],
                         plan=SMALL, workers=1, device="cpu")
    p = wfm.plan(wf)
    folds = len(SMALL.folds(p.candles[str(walk_csv)].index))
    assert len(p.tasks) == 2 * folds and {t.seed for t in p.tasks} == {0}
    out = wfm.run(wf)
    payload = json.loads((out.run.path / "walkforward.json").read_text())
    assert set(payload["models"]) == {"rule/newhl", "rule/newhl-range"}
    assert len(Registry(tmp_path).trials(kind="walkforward")) == 2 * folds


@pytest.mark.slow   # a few seconds: runs in `make test`, not in the fast subset
def test_sweep_ranks_rule_combinations_and_the_verdict_names_the_best_rule(tmp_path):
    from backtests import sweep as swm

    csv = write_csv(synthetic(1300, seed=3), tmp_path / "walk.csv")
    base = Experiment().override({"runtime.runs_dir": str(tmp_path / "runs"),
                                  "train.epochs": 1, "data.source": str(csv)})
    sw = swm.Sweep(base=base, source=str(csv), models=parse_models("lstm,rule/newhl"),
                   seeds=[0], grid=swm.parse_grid(["threshold=0.5,0.7"], base), plan=SMALL,
                   top=1)
    out = swm.run(sw)
    assert set(out.table["model"]) == {"lstm/article", "rule/newhl"}
    rule_rows = out.table[out.table["model"] == "rule/newhl"]
    assert len(rule_rows) == 2
    # the graded score makes the threshold mean something for the rule too
    assert rule_rows["n_trades"].nunique() == 2
    payload = json.loads((out.run.path / "sweep.json").read_text())
    assert payload["best_rule"]["model"] == "rule/newhl"
    assert "vs best rule baseline rule/newhl" in payload["verdict"]
    alone = swm.verdict_text({**payload, "best_rule": None})
    assert "No rule baseline was swept" in alone
    assert np.isfinite(rule_rows["sharpe"]).all()
