"""`attnbt compare`: the table (best per row, flagged differences), the paired Sharpe bootstrap,
compare.html in headless Chromium, and real backtest runs by id prefix."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_report import assert_drawn, assert_offline, render_in_chromium
from typer.testing import CliRunner

import data
from backtests.analysis.significance import sharpe_difference_test
from backtests.cli import app
from backtests.compare import (
    ARTICLE_COLUMN,
    Comparable,
    CompareError,
    compare,
    load,
    render_compare,
    to_json,
)
from backtests.simulation import run_backtest
from backtests.store import Registry, RunError
from backtests.store import runs as store_runs
from strategy.fractal import FractalParams


def comparable(run_id: str, threshold: float = 0.5, rows: slice = slice(0, 600),
               seed: int = 0, spread: float | None = None) -> Comparable:
    """A Comparable from a real engine run on sample bars with random probabilities."""
    candles = data.load("sample:EURUSD_H1").iloc[rows]
    rng = np.random.default_rng(seed)
    probs = pd.DataFrame(rng.dirichlet([4, 1, 1], size=len(candles)), index=candles.index,
                         columns=["p_none", "p_buy", "p_sell"])
    r = run_backtest(candles, probs, FractalParams(threshold=threshold))
    fp = f"{rows.start}-{rows.stop}"
    costs = r.costs.to_dict() | ({"spread": spread} if spread is not None else {})
    return Comparable(id=run_id, kind="backtest", name=f"model {run_id}", stats=dict(r.stats),
                      equity=r.equity, params=r.params.to_dict(), costs=costs,
                      data={"source": "sample:EURUSD_H1", "instrument": "EURUSD",
                            "timeframe": "1h", "fingerprint": fp},
                      period={"start": str(candles.index[0]), "end": str(candles.index[-1]),
                              "bars": len(candles)},
                      pnl=r.trades["pnl_net"].to_numpy(float), cash=r.cash, in_sample=False,
                      model={"name": f"model {run_id}", "train_run": run_id, "model_hash": "h"})


@pytest.fixture(scope="module")
def pair():
    return [comparable("aaaa1111", seed=0), comparable("bbbb2222", seed=1)]


def test_same_bars_best_per_row_and_like_for_like(pair):
    result = compare(pair, n_boot=200)
    rows = {r["key"]: r for r in result["rows"]}
    a, b = (r.stats for r in pair)
    for key, better in (("total_return_pct", max), ("max_drawdown_pct", max)):
        values = {"aaaa1111": a[key], "bbbb2222": b[key]}
        assert rows[key]["best"] == [k for k, v in values.items() if v == better(values.values())]
    assert rows["n_trades"]["best"] == []          # no better direction: nothing marked
    assert rows["total_return_pct"]["unit"] == "%" and rows["total_return_pct"]["label"] == "Return"
    assert result["flagged"] == []                  # same data, period, costs, parameters
    sig = result["significance"][0]
    assert 0 < sig["p_value"] <= 1 and sig["n_obs"] == 599 and "p =" in sig["text"]


@pytest.mark.slow   # a few seconds: runs in `make test`, not in the fast subset
def test_different_bars_costs_and_params_are_flagged_and_not_tested():
    a = comparable("aaaa1111")
    b = comparable("cccc3333", threshold=0.6, rows=slice(600, 1200), spread=0.0002)
    result = compare([a, b], article=True, n_boot=100)
    flagged = {d["key"] for d in result["flagged"]}
    assert {"data.fingerprint", "period.start", "period.end", "costs.spread",
            "params.threshold"} <= flagged
    assert "data.source" not in flagged and "model.name" not in flagged
    assert "model.calibration" not in flagged
    assert "not tested" in result["significance"][0]["text"]
    # another calibration map (train.calibration) is another model: shown as a difference of
    # the models (the point of comparing them), not flagged as unlike bars, costs or rules
    c = comparable("dddd4444")
    c.model["calibration"] = "isotonic"
    cal = compare([a, c], n_boot=50)
    row = next(d for d in cal["differences"] if d["key"] == "model.calibration")
    assert row["differs"] and row["values"] == {"aaaa1111": None, "dddd4444": "isotonic"}
    assert not cal["flagged"]
    # the article's figures: their own column, in-sample, never marked best
    hit = next(r for r in result["rows"] if r["key"] == "hit_pct")
    assert hit["values"][ARTICLE_COLUMN] == 22.5 and ARTICLE_COLUMN not in hit["best"]
    out = to_json(result)
    json.dumps(out, allow_nan=False)
    row = next(r for r in out["rows"] if r["key"] == "sharpe")
    assert set(row) >= {"key", "label", "unit", "better", "values", "differs"}
    assert set(row["values"]) == {"aaaa1111", "cccc3333", ARTICLE_COLUMN}
    assert {d["key"] for d in out["differences"]} == flagged
    page = render_compare([a, b], result)
    assert "not like for like" in page and "params.threshold" in page
    assert_offline(page)


def test_an_ambiguous_prefix_lists_both_runs(tmp_path, monkeypatch):
    ids = iter(["abcd1111aaaa0000", "abcd2222bbbb0000", "ffff0000ffff0000"])
    monkeypatch.setattr(store_runs, "new_id", lambda: next(ids))
    reg = Registry(tmp_path)
    for _ in range(2):
        reg.finish(reg.create("backtest", model="m"), {})
    with pytest.raises(RunError, match="abcd1111aaaa0000.*abcd2222bbbb0000"):
        load("abcd", reg)
    res = CliRunner().invoke(app, ["compare", "abcd", "abcd2", "--runs-dir", str(tmp_path)])
    assert res.exit_code != 0 and "matches several runs" in str(res.exception)
    train = reg.create("train", model="m")
    with pytest.raises(CompareError, match="is a train run"):
        load(train.id, reg)


def test_bootstrap_result_shape_and_block_rule():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.1, 1, 343), rng.normal(0, 1, 343)
    r = sharpe_difference_test(a, b, n_boot=200, seed=1)
    assert set(r) >= {"diff", "p_value", "ci", "block", "n_boot"}
    assert r["block"] == 7 and r["n_boot"] == 200      # round(343 ** (1/3))
    assert r["ci"][0] < r["diff"] < r["ci"][1]
    assert r == sharpe_difference_test(a, b, n_boot=200, seed=1)   # seeded
    with pytest.raises(ValueError):
        sharpe_difference_test(a, b[:-1])


@pytest.mark.slow
def test_bootstrap_is_calibrated_and_finds_a_planted_edge():
    """No edge: about 5 % of 500 independent pairs reach p < 0.05; an edge of 0.2 sd per bar on
    500 bars (Sharpe difference ≈ 3.2 standard errors) is found in at least 80 % of 50 draws."""
    rng = np.random.default_rng(0)
    false = np.mean([sharpe_difference_test(rng.normal(size=500), rng.normal(size=500),
                                            n_boot=300, seed=i)["p_value"] < 0.05
                     for i in range(500)])
    assert 0.02 <= false <= 0.09
    found = np.mean([sharpe_difference_test(rng.normal(0.2, 1, 500), rng.normal(size=500),
                                            n_boot=300, seed=i)["p_value"] < 0.05
                     for i in range(50)])
    assert found >= 0.8


@pytest.mark.slow
@pytest.mark.draws
def test_compare_html_renders_in_headless_chromium(pair, tmp_path):
    path = tmp_path / "compare.html"
    path.write_text(render_compare(pair, compare(pair, n_boot=100)), encoding="utf-8")
    found = render_in_chromium(path, tmp_path)
    assert_drawn(found, ["equity", "drawdown", "pnl"])


# --- real runs: two backtests of a trained model ---------------------------------------------

def _backtest(trained_run, runs_dir, eurusd, **settings):
    from backtests.backtest import backtest, backtest_experiment

    exp = backtest_experiment(trained_run.id, runs_dir, {"runtime.runs_dir": str(runs_dir),
                                                         "random_draws": 100, **settings})
    return backtest(exp, trained_run.id, source="sample:EURUSD_H1", candles=eurusd).run


def test_compare_backtest_runs_by_prefix(trained_run, eurusd, runs_dir, tmp_path):
    a = _backtest(trained_run, runs_dir, eurusd)
    b = _backtest(trained_run, runs_dir, eurusd, threshold=0.6)
    c = _backtest(trained_run, runs_dir, eurusd, period="val")
    runner = CliRunner()
    res = runner.invoke(app, ["compare", a.id[:6], b.id, "--runs-dir", str(runs_dir), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert list(out["columns"]) == [a.id, b.id]
    assert [d["key"] for d in out["differences"]] == ["params.threshold"]
    assert load(a.id, Registry(runs_dir)).model["calibration"] == "none"   # from report.json
    assert out["significance"][0]["p_value"] is not None
    # the rule baselines each backtest traded on its bars, and each run against the strongest
    rules = out["rule_baselines"]
    report_a = json.loads((runs_dir / a.id / "report.json").read_text())
    want = {b["name"]: b for b in report_a["baselines"].values() if b.get("kind") == "rule"}
    assert {"rule/newhl", "rule/newhl-range"} <= set(want)
    got = {r["rule"]: r for r in rules["rows"] if r["run"].endswith(a.id[:8])}
    assert set(got) == set(want)
    for name, row in got.items():
        assert row["hit_pct"] == want[name]["hit_pct"] and row["n_trades"] == want[name]["n_trades"]
    best = max(want, key=lambda k: want[k]["hit_pct"])
    assert [v["rule"] for v in rules["versus"]] == [best, best]
    assert " vs best rule baseline " + best in rules["versus"][0]["text"]
    assert out["html"] is None and not Registry(runs_dir).list(kind="compare")   # --json records nothing
    res = runner.invoke(app, ["compare", a.id[:6], b.id, "--runs-dir", str(runs_dir)])
    assert res.exit_code == 0, res.output
    (row,) = Registry(runs_dir).list(kind="compare")
    html_file = str(runs_dir / row["id"] / "compare.html")
    assert "Rule baselines" in Path(html_file).read_text()
    assert re.search(r"/[0-9a-f]{16}/compare\.html$", html_file)
    assert Registry(runs_dir).get(html_file.split("/")[-2])["kind"] == "compare"
    # different bars: flagged, said, not tested; --out refuses to overwrite without --force
    target = tmp_path / "c.html"
    res = runner.invoke(app, ["compare", a.id, c.id, "--runs-dir", str(runs_dir),
                              "--out", str(target)])
    assert res.exit_code == 0, res.output
    assert "different period" in res.output and "not tested" in res.output
    assert target.exists() and f"compare: {target}" in res.output.replace("\n", "")
    res = runner.invoke(app, ["compare", a.id, c.id, "--runs-dir", str(runs_dir),
                              "--out", str(target)])
    assert res.exit_code != 0 and "--force" in str(res.exception)
    res = runner.invoke(app, ["compare", a.id, c.id, "--runs-dir", str(runs_dir),
                              "--out", str(target), "--force"])
    assert res.exit_code == 0
