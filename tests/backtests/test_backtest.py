"""`attnbt backtest` with a real trained model: modes agree, report folder, registry, errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from backtests.backtest import backtest, backtest_experiment
from backtests.scoring import score
from backtests.simulation import run_backtest
from backtests.store import Registry
from strategy.fractal import FractalParams


def list_runs(runs_dir, kind=None):
    return Registry(runs_dir).list(kind=kind)


def run_bt(run, runs_dir, candles, **settings):
    """Backtest ``run`` with settings given as config keys (unique leaf names allowed)."""
    exp = backtest_experiment(run.id, runs_dir, {"runtime.runs_dir": str(runs_dir), **settings})
    return backtest(exp, run.id, source="sample:EURUSD_H1", candles=candles)


def test_real_model_batched_and_one_window_at_a_time_give_identical_orders(trained_run, eurusd,
                                                                           runs_dir):
    scored = score(trained_run.id, runs_dir=runs_dir, candles=eurusd, period="test")
    first = scored.first
    bars = scored.period_candles.iloc[:160]
    params = FractalParams(threshold=0.4, max_hold=6)
    batched = run_backtest(bars, scored.period_probs.iloc[:160], params)
    # One window at a time: bar t of the period is scored from the candles up to it alone.
    online = run_backtest(bars, None, params,
                          predictor=lambda t: scored.predictor.predict_at(eurusd, first + t))
    assert len(batched.trades) > 10
    pd.testing.assert_frame_equal(batched.trades, online.trades)
    pd.testing.assert_frame_equal(batched.orders, online.orders)


@pytest.fixture(scope="module")
def outcome(trained_run, eurusd, runs_dir):
    return run_bt(trained_run, runs_dir, eurusd, random_draws=200)


def test_backtest_writes_a_self_describing_report_folder(outcome, trained_run, runs_dir):
    folder = outcome.run.path
    for name in ("report.html", "report.json", "trades.csv", "equity.csv", "run.json"):
        assert (folder / name).exists(), name
    report = json.loads((folder / "report.json").read_text())
    assert report["stats"]["n_trades"] == len(outcome.result.trades) > 0
    sources = [row["source"] for row in report["comparison"]]
    assert sum(s.startswith("article") for s in sources) == 4 and "ours" in sources
    # baselines are keyed by kind; their labels are for people
    assert set(report["baselines"]) >= {"buy_and_hold", "random_entries", "oracle"}
    assert report["baselines"]["buy_and_hold"]["label"] == "buy and hold (all cash, unlevered)"
    assert 0 < report["baselines"]["random_entries"]["p_value"] <= 1
    html = (folder / "report.html").read_text()
    assert "Against the earlier article" in html and "Attention maps" in html
    row = next(r for r in list_runs(runs_dir, "backtest") if r["id"] == outcome.run.id)
    assert row["parent"] == trained_run.id and row["status"] == "done"
    assert row["summary"]["in_sample"] is False
    assert row["config_id"] == outcome.config_id and row["fingerprint"] == outcome.fingerprint
    assert report["extra"]["model_hash"] == outcome.model_hash
    # every backtest is a trial: the deflated Sharpe ratio can count the configurations tried
    trial = [t for t in Registry(runs_dir).trials() if t["run_id"] == outcome.run.id]
    assert len(trial) == 1 and trial[0]["n_obs"] == len(outcome.result.equity) - 1
    assert trial[0]["config_id"] == outcome.config_id
    from backtests.analysis.significance import moments
    # the trial holds the per-bar moments of the backtest, NULL where not defined
    m = moments(outcome.result.equity.pct_change().dropna().to_numpy())
    assert [trial[0][k] for k in m] == [None if v != v else v for v in m.values()]
    assert "sharpe" not in trial[0] and trial[0]["sharpe_per_bar"] is not None


def test_test_period_starts_after_validation_and_oracle_is_run(outcome, trained_run):
    meta = json.loads((trained_run.path / "model.json").read_text())
    assert outcome.result.equity.index[0] > pd.Timestamp(meta["split"]["val_end"])
    assert not outcome.in_sample
    oracle = outcome.baselines["oracle"]
    # Perfect fractal foresight with these exits wins most of its trades on this sample.
    assert oracle["n_trades"] > 100 and oracle["win_rate_pct"] > 50


def test_a_training_period_backtest_is_flagged_in_sample(trained_run, eurusd, runs_dir):
    # the first 1,000 bars of the sample, all inside the model's training period (its first
    # 3,500): the same flag as on the whole period, at under a third of its four simulations
    train_end = pd.Timestamp(json.loads((trained_run.path / "model.json").read_text())[
        "split"]["train_end"])
    first_bars = eurusd.iloc[:1000]
    assert first_bars.index[-1] < train_end
    res = run_bt(trained_run, runs_dir, first_bars, period="train", random_draws=50)
    assert res.in_sample and len(res.result.equity) <= 1000
    assert all(r["bars"].startswith("in-sample") for r in res.comparison)


def attnbt(*args, runs_dir):
    env = {**os.environ, "ATTNBT_RUNS": str(runs_dir)}
    return subprocess.run([sys.executable, "-m", "backtests", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def test_cli_backtest_with_a_baseline_run(cli, trained_run, runs_dir):
    res = cli("backtest", "--run", trained_run.id, "--vs", trained_run.id, "--random-draws",
              "100", "--spread-pips", "1.5", "--sizing", "risk", runs_dir=runs_dir)
    assert res.returncode == 0, res.stderr
    for text in ("Win rate", "buy and hold", "random entries", "against the earlier article",
                 "report:"):
        assert text in res.stdout
    report_html = res.stdout.split("report:")[1].split()[0]
    with open(os.path.join(os.path.dirname(report_html), "report.json")) as fh:
        report = json.load(fh)
    costs = report["costs"]
    assert costs["spread"] == pytest.approx(0.00015)
    # the terminal says what the report says: the verdict, the costs charged, the run (not a hash)
    out = " ".join(res.stdout.split())
    assert "verdict: " + " ".join(report["verdict"]["text"].split()) in out, out
    total = report["costs_charged"]["total_costs"]
    assert f"total {total:,.2f}" in out and "costs charged (USD)" in out, out
    run_id = os.path.basename(os.path.dirname(report_html))
    assert f"backtest run {run_id}" in out and "model hash " in out, out
    # risk sizing at 1 % with stops at the signal bar's extreme runs well above 5× leverage:
    # the terminal and the report say so
    lev = report["leverage"]
    assert lev["max"] > lev["high"] and lev["warning"]
    assert "warning: " + " ".join(lev["warning"].split()) in out, out
    html = open(report_html).read()
    assert "<b>Leverage:</b> leverage reached" in html


@pytest.mark.parametrize("args,message", [
    (["--run", "nope"], "no run 'nope'"),
    (["--data", "sample:GOOG_D1"], "trained on 0 days 01:00:00 bars"),
    (["--threshold", "nan"], "strategy.threshold = nan is out of range"),
    (["--cash", "0"], "backtest.cash = 0.0 is out of range"),
    (["--random-draws", "100000000"], "backtest.random_draws"),
    (["--spread", "1e5"], "over 5% of the price"),
    (["--period", "foo"], "backtest.period = 'foo'; choose"),
    (["--from", "9999-12-31"], "out of the range of dates"),
    (["--from", "0001-01-01"], "out of the range of dates"),
    (["--from", "-1"], "out of the range of dates"),
    (["--from", "2030-01-01"], "holds no bars"),
])
def test_cli_backtest_bad_options_are_one_clear_line(cli, trained_run, runs_dir, args, message):
    res = cli("backtest", *args, runs_dir=runs_dir)
    assert res.returncode == 2 and message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr


@pytest.mark.slow
def test_a_bad_option_is_one_clear_line_through_the_console_script(tmp_path):
    """The cases above run in this process; one goes through a real `python -m backtests`."""
    res = attnbt("backtest", "--run", "nope", runs_dir=tmp_path)
    assert res.returncode == 2 and "no run 'nope'" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr


def test_cli_backtest_spread_twice_is_a_usage_error(cli, trained_run, runs_dir):
    res = cli("backtest", "--spread", "0.0001", "--spread-pips", "1", runs_dir=runs_dir)
    assert res.returncode == 2 and "not both" in res.stderr


@pytest.mark.slow
def test_demo_end_to_end(cli, tmp_path):
    # one training at a time, in this process: two pool processes would each import torch
    # again (seconds of start-up); training side by side is checked by the executor's tests
    res = cli("demo", "--epochs", "1", "--workers", "1", "--runs-dir", str(tmp_path),
              runs_dir=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "against the earlier article" in res.stdout and "dense/matched" in res.stdout
    reports = list(tmp_path.glob("*/report.html"))
    assert len(reports) == 2                          # attention (with --vs dense) and dense
    runs = list_runs(tmp_path)
    assert sorted((r["kind"], r["model"] or "") for r in runs) == [
        ("backtest", "attention/article"), ("backtest", "dense/matched"),
        ("compare", "attention/article, dense/matched"),
        ("train", "attention/article"), ("train", "dense/matched")]
    assert {r["status"] for r in runs} == {"done"}
    for report in reports:
        assert np.isfinite(json.loads((report.parent / "report.json").read_text())["stats"][
            "final_equity"])
    assert "compare.html" in res.stdout


def test_auto_threshold_is_chosen_on_validation_bars_only(trained_run, eurusd, runs_dir):
    from backtests.backtest import scored_threshold
    from backtests.simulation import THRESHOLD_GRID
    from strategy.fractal import Costs

    scored = score(trained_run.id, runs_dir=runs_dir, candles=eurusd, period="test")
    params, rows = scored_threshold(scored, FractalParams(), Costs(), 100_000.0)
    assert [r["threshold"] for r in rows] == list(THRESHOLD_GRID)
    best = max(r["validation return %"] for r in rows)
    assert params.threshold in THRESHOLD_GRID
    assert next(r for r in rows if r["threshold"] == params.threshold)["validation return %"] == best
    # the compiled simulator's table is backtrader's
    from backtests.backtest import validation_frame

    bars, probs = validation_frame(scored)
    for row in rows[::3]:
        stats = run_backtest(bars, probs, FractalParams(threshold=row["threshold"]), Costs(),
                             100_000.0).stats
        assert row["validation trades"] == stats["n_trades"]
        assert row["validation return %"] == pytest.approx(stats["total_return_pct"], abs=1e-9)
    # Scrambling every test-period probability changes nothing about the choice.
    rng = np.random.default_rng(0)
    scored.probs.iloc[scored.first:] = rng.dirichlet([1, 1, 1], len(scored.probs) - scored.first)
    again = scored_threshold(scored, FractalParams(), Costs(), 100_000.0)[1]
    pd.testing.assert_frame_equal(pd.DataFrame(again), pd.DataFrame(rows))


def test_cli_a_threshold_that_is_no_number_nor_auto_is_a_usage_error(cli, trained_run, runs_dir):
    bad = cli("backtest", "--run", trained_run.id, "--threshold", "high", runs_dir=runs_dir)
    assert bad.returncode == 2 and "number or 'auto'" in bad.stderr


def test_threshold_auto_works_on_a_file_without_the_training_bars(cli, trained_run, eurusd,
                                                                      runs_dir, tmp_path):
    """`--threshold auto` through the CLI. The train run keeps its validation bars and
    probabilities, so the threshold is chosen on them whatever file the backtest reads (here:
    only the test period, as a CSV)."""
    csv = tmp_path / "later.csv"
    eurusd.iloc[-1200:][["open", "high", "low", "close", "volume"]].to_csv(csv, index_label="time")
    res = cli("backtest", "--run", trained_run.id, "--data", str(csv), "--period", "all",
              "--threshold", "auto", "--random-draws", "20", runs_dir=runs_dir)
    assert res.returncode == 0, res.stderr
    assert "chosen on the validation bars" in res.stdout
    kept = pd.read_parquet(trained_run.path / "validation.parquet")
    meta = json.loads((trained_run.path / "model.json").read_text())
    assert kept.index[-1] == pd.Timestamp(meta["split"]["val_end"])
    assert kept[["p_none", "p_buy", "p_sell"]].notna().all(axis=None)


@pytest.mark.slow
def test_the_timezone_a_model_was_trained_with_is_used_when_it_is_applied(cli, eurusd, tmp_path):
    """Broker-time (naive) timestamps read with --tz at training are read the same way by
    later commands, without repeating the option."""
    local = eurusd.iloc[:2500][["open", "high", "low", "close", "volume"]].copy()
    local.index = local.index.tz_convert("Europe/Athens").tz_localize(None)
    csv = tmp_path / "athens.csv"
    local.to_csv(csv, index_label="time")
    runs = tmp_path / "runs"
    tr = cli("train", "--data", str(csv), "--tz", "Europe/Athens", "--model", "dense",
             "--epochs", "1", runs_dir=runs)
    assert tr.returncode == 0, tr.stderr
    out = tmp_path / "p.csv"
    pr = cli("predict", "--run", "latest", "--out", str(out), runs_dir=runs)
    assert pr.returncode == 0, pr.stderr
    # the file's naive times were read in Athens time, as at training, not as UTC
    times = pd.to_datetime(pd.read_csv(out)["time"], utc=True)
    assert times.iloc[0] == eurusd.index[0] and times.iloc[-1] == eurusd.index[2499]
    out_utc = tmp_path / "p_utc.csv"
    pr = cli("predict", "--run", "latest", "--tz", "UTC", "--out", str(out_utc), runs_dir=runs)
    assert pr.returncode == 0, pr.stderr
    assert pd.to_datetime(pd.read_csv(out_utc)["time"], utc=True).iloc[0] != eurusd.index[0]
