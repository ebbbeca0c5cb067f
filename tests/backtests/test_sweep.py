"""`attnbt sweep`: the grid, the plan and dry run, the statistics (no edge stays insignificant,
a planted edge is found), trials paid across sweeps, failures, and real training end to end."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from test_walkforward_data import assert_readable_interactive_page, synthetic, write_csv
from typer.testing import CliRunner

from backtests import sweep as swm
from backtests.cli import app
from backtests.config import ConfigError, Experiment
from backtests.store import Registry
from backtests.sweep import tasks as sweep_tasks
from backtests.walkforward import FoldPlan, parse_models
from data.errors import DataError

SMALL = FoldPlan(train_bars=500, val_bars=200, test_bars=200)     # 3 folds on 1,400 bars
GRID = ["threshold=0.4,0.5,0.6", "stop=bar,atr:1.5", "take_profit_r=1,2"]


@pytest.fixture(scope="module")
def walk_csv(tmp_path_factory):
    return write_csv(synthetic(1400, seed=3), tmp_path_factory.mktemp("d") / "walk.csv")


def _sweep(source, runs, grid=GRID, seeds=1, models="attention", **kw) -> swm.Sweep:
    # on the CPU unless a test says otherwise: with `auto` a CUDA machine trains on its GPU, past
    # the train functions some tests replace
    kw.setdefault("device", "cpu")
    base = Experiment().override({"runtime.runs_dir": str(runs), "train.epochs": 1,
                                  "data.source": str(source)})
    return swm.Sweep(base=base, source=str(source), models=parse_models(models),
                     seeds=list(range(seeds)), grid=swm.parse_grid(grid, base), plan=SMALL,
                     **kw)


def test_grid_axes_split_into_model_and_rule_sides_with_typed_values():
    g = swm.parse_grid(["threshold=0.5,0.6", "stop=bar,atr:1.5", "window=8,12",
                        "costs.slippage=0,0.00002"], Experiment())
    assert g.rule_axes == {"strategy.threshold": [0.5, 0.6], "strategy.stop": ["bar", "atr:1.5"],
                           "costs.slippage": [0.0, 0.00002]}
    assert g.model_axes == {"dataset.window": [8, 12]}
    assert len(g.rule_combos()) == 8 and len(g.model_combos()) == 2
    assert swm.combo_label(g.rule_combos()[0]) == "threshold=0.5 stop=bar slippage=0"


@pytest.mark.parametrize("items, message", [
    (["threshold"], "key=value1,value2"),
    (["threshold=0.5,,0.6"], "an empty value"),
    (["threshold=0.5,2"], "strategy.threshold = 2.0 is out of range"),
    (["stop=bar,atr:x"], "not a number"),
    (["threshold=0.5", "strategy.threshold=0.6"], "given twice"),
    (["threshold=0.5,0.5"], "listed twice"),
    (["features=scaled+shape,scaled+shape+time"],
     r"scaled\+shape and scaled\+shape\+time are the same setting \(scaled\+shape\)"),
    (["source=a.csv,b.csv"], "not a sweepable setting"),
    (["workers=1,2"], "not a sweepable setting"),
    (["nonsense=1"], "unknown setting"),
])
def test_bad_grids_fail_with_the_key_named(items, message):
    with pytest.raises(ConfigError, match=message):
        swm.parse_grid(items, Experiment())


def test_dry_run_counts_tasks_combinations_and_trials_and_runs_nothing(walk_csv, tmp_path):
    res = CliRunner().invoke(app, ["sweep", "--data", walk_csv, "--models", "attention,dense",
                                   "--seeds", "2", "--train-bars", "500", "--val-bars", "200",
                                   "--test-bars", "200", "--runs-dir", str(tmp_path),
                                   "--grid", "threshold=0.4,0.5,0.6", "--grid",
                                   "stop=bar,atr:1.5", "--grid", "window=8,12", "--dry-run"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    # 2 models × 2 windows × 2 seeds × 3 folds; 6 rule combinations on each
    assert "24 training tasks" in text and "6 rule combinations on each" in text
    assert "24 combinations in all" in text and "add 48 trials" in text
    assert Registry(tmp_path).list() == []


def test_cli_refuses_a_heatmap_axis_that_is_not_swept(walk_csv, tmp_path):
    res = CliRunner().invoke(app, ["sweep", "--data", walk_csv, "--runs-dir", str(tmp_path),
                                   "--grid", "threshold=0.4,0.5", "--heatmap", "threshold,trail",
                                   "--dry-run"])
    assert res.exit_code != 0 and "'trail' is not a --grid axis" in str(res.exception)
    res = CliRunner().invoke(app, ["sweep", "--data", walk_csv, "--runs-dir", str(tmp_path)])
    assert res.exit_code == 2 and "--grid" in res.output


# --- statistics with planted predictions (no training: the model is replaced) -------------------
def _fake_model(monkeypatch, candles_by_source: dict, edge: float, seed: int = 0, fail=None):
    """Replace training and prediction: probabilities that know the next 4 bars' direction with
    strength ``edge`` (0: pure noise); ``fail``: a fold whose training raises DataError."""
    def train(task, candles):
        if fail is not None and task.fold_no == fail:
            raise DataError(f"fold {task.fold_no}: bad bars", rule="test")
        return SimpleNamespace(metrics={"best_epoch": 1, "epochs_run": 1, "seconds": 0.0})

    def predict(trained, candles, first, last):
        rng = np.random.default_rng(seed + first)
        n = len(candles)
        future = candles["close"].shift(-4).to_numpy() - candles["close"].to_numpy()
        p = rng.dirichlet([2.0, 1.0, 1.0], n)
        tilt = np.sign(np.nan_to_num(future)) * edge
        p[:, 1] += np.clip(tilt, 0, None)
        p[:, 2] += np.clip(-tilt, 0, None)
        p /= p.sum(axis=1, keepdims=True)
        out = np.full((n, 3), np.nan)
        out[first:last + 1] = p[first:last + 1]
        return pd.DataFrame(out, index=candles.index, columns=["p_none", "p_buy", "p_sell"])

    monkeypatch.setattr(sweep_tasks, "train_fold", train)
    monkeypatch.setattr(sweep_tasks, "predict_bars", predict)


RULES = ["threshold=0.4,0.5,0.6", "stop=bar,atr:1,atr:2", "take_profit_r=0,1,2"]  # 27


@pytest.mark.slow
def test_a_planted_edge_is_found_and_survives_the_deflation(tmp_path, monkeypatch):
    csv = write_csv(synthetic(1400, seed=11), tmp_path / "edge.csv")
    _fake_model(monkeypatch, {}, edge=0.6)
    out = swm.run(_sweep(csv, tmp_path / "runs", grid=RULES, top=1))
    best = out.table.iloc[0]
    assert best["sharpe"] > 2 and best["dsr"] > 0.95
    payload = json.loads((out.run.path / "sweep.json").read_text())
    assert payload["spa"]["random_entries"]["p_value"] < 0.05
    # buy-and-hold (fully invested) is far noisier than 10k-unit trades on 600 bars: the SPA
    # against it is computed, not asserted significant
    assert 0 <= payload["spa"]["buy_and_hold"]["p_value"] <= 1
    assert payload["backtrader"][0]["agree"]
    # the DSR's hurdle is stated: SR0 of every stitched trial on these bars, annualised as the
    # table's Sharpe ratios; a best combination that passes the DSR is above it
    from backtests.analysis import significance as sig
    from backtests.analysis.performance import infer_bars_per_year

    srs = [t["sharpe_per_bar"] for t in Registry(tmp_path / "runs").trials(kind=swm.STITCHED_KIND)]
    srs = [x for x in srs if x is not None and np.isfinite(x)]
    index = pd.read_csv(out.run.path / "equity.csv", index_col="time", parse_dates=True).index
    want = sig.expected_max_sharpe(len(srs), float(np.var(srs, ddof=1))) * np.sqrt(
        infer_bars_per_year(index))
    assert payload["dsr_hurdle"] == pytest.approx(want, rel=1e-9), (payload["dsr_hurdle"], want)
    assert 0 < payload["dsr_hurdle"] < best["sharpe"]
    assert f"unskilled trials as spread as these would reach, is a Sharpe of {want:.2f}" \
        in payload["verdict"]


def _table_only(monkeypatch):
    """Record a sweep's table and trials alone (``aggregate``: the PSR and DSR of every
    combination, the trials added), without its report, heatmap, backtrader re-run, benchmarks
    and SPA: what a calibration over many data sets reads is the table, and the rest is checked
    by the tests of whole sweeps (four fifths of a small sweep's time is that rest)."""
    from backtests.sweep import study

    def record(run_, sw, p, results, failures, reg, say):
        table, _ = swm.aggregate(p, sw, results, reg, run_.id)
        return table.drop(columns=["_key"]), {"combinations": p.n_combinations}

    monkeypatch.setattr(study, "record", record)


@pytest.mark.slow
def test_no_edge_is_rarely_significant_after_deflation(tmp_path, monkeypatch):
    """Random predictions on random walks: the best of 27 combinations looks good by luck, the
    deflated Sharpe ratio says so (α = 5 %: over 12 data sets, at most 2 significant)."""
    _table_only(monkeypatch)
    significant, raw = 0, 0
    for k in range(12):
        csv = write_csv(synthetic(1400, seed=100 + k), tmp_path / f"walk{k}.csv")
        _fake_model(monkeypatch, {}, edge=0.0, seed=k)
        out = swm.run(_sweep(csv, tmp_path / f"runs{k}", grid=RULES, top=1))
        best = out.table.iloc[0]
        significant += best["dsr"] > 0.95
        raw += best["psr"] > 0.95
    assert significant <= 2
    assert raw >= significant       # PSR ignores the search: never stricter than DSR


@pytest.mark.slow
@pytest.mark.draws
def test_every_combination_is_a_trial_and_a_later_sweep_pays_for_it(walk_csv, tmp_path,
                                                                       monkeypatch):
    _fake_model(monkeypatch, {}, edge=0.0)
    first = swm.run(_sweep(walk_csv, tmp_path, top=1, seeds=2))
    assert len(first.table) == 12 and (first.table["seeds"] == 2).all()
    assert (first.table["dsr_trials"] == 24).all()                 # 12 combinations × 2 seeds
    trials = Registry(tmp_path).trials(kind=swm.STITCHED_KIND)
    assert len(trials) == 24 and {t["run_id"] for t in trials} == {first.run.id}
    second = swm.run(_sweep(walk_csv, tmp_path, grid=["threshold=0.7,0.8"], top=1))
    assert (second.table["dsr_trials"] == 26).all()
    files = {p.name for p in first.run.path.iterdir()}
    assert {"table.csv", "sweep.json", "report.html", "heatmap.png", "equity.csv"} <= files
    table = pd.read_csv(first.run.path / "table.csv")
    assert list(table["rank"]) == list(range(1, 13))
    assert set(table["rules"]) == {swm.combo_label(c) for c in
                                   swm.parse_grid(GRID, Experiment()).rule_combos()}
    html = (first.run.path / "report.html").read_text()
    assert "Every combination" in html and "data:image/png;base64" in html
    assert_readable_interactive_page(html)
    row = Registry(tmp_path).get(first.run.id)
    assert row["kind"] == "sweep" and row["status"] == "done"


@pytest.mark.slow
def test_a_finished_sweep_rerun_reprints_its_result_and_adds_no_trial(walk_csv, tmp_path,
                                                                      monkeypatch):
    """The same sweep twice: the second returns the recorded table without computing and the
    trials (so every DSR) stay as they were; removed and computed again, still no new trial."""
    _fake_model(monkeypatch, {}, edge=0.3)
    grid = ["threshold=0.4,0.5", "take_profit_r=1,2"]
    first = swm.run(_sweep(walk_csv, tmp_path, grid=grid, top=1))
    reg = Registry(tmp_path)
    trials = reg.trials()
    assert len(trials) == 4 and not first.reused

    lines = []
    again = swm.run(_sweep(walk_csv, tmp_path, grid=grid, top=1), progress=lines.append)
    assert again.reused and again.run.id == first.run.id and again.computed == 0
    assert lines == [f"sweep {first.run.id} with these settings has finished: its recorded "
                     "result follows (nothing recomputed, no trial added)"]
    pd.testing.assert_frame_equal(again.table, first.table, check_dtype=False)
    assert again.summary == Registry(tmp_path).get(first.run.id)["summary"]
    assert reg.trials() == trials and len(reg.list(kind="sweep")) == 1
    sw = _sweep(walk_csv, tmp_path, grid=grid)
    assert swm.trials_added(swm.plan(sw), sw) == 0
    res = CliRunner().invoke(app, ["sweep", "--data", str(walk_csv), "--models", "attention",
                                   "--seeds", "1", "--train-bars", "500", "--val-bars", "200",
                                   "--test-bars", "200", "--grid", grid[0], "--grid", grid[1],
                                   "--runs-dir", str(tmp_path), "--workers", "1", "--top", "1",
                                   "train.epochs=1"])
    assert res.exit_code == 0, res.output
    assert f"sweep {first.run.id} had already finished with these settings" in res.output
    assert first.table.iloc[0]["rules"] in res.output and reg.trials() == trials

    reg.remove([first.run.id])
    redone = swm.run(_sweep(walk_csv, tmp_path, grid=grid, top=1))
    assert not redone.reused and redone.computed == 3 and reg.trials() == trials
    np.testing.assert_allclose(redone.table["dsr"], first.table["dsr"], rtol=0, atol=1e-12)
    assert (redone.table["dsr_trials"] == first.table["dsr_trials"]).all()


@pytest.mark.slow
def test_a_task_that_fails_on_bad_data_is_reported_and_the_rest_finish(walk_csv, tmp_path,
                                                                        monkeypatch):
    _fake_model(monkeypatch, {}, edge=0.0, fail=2)
    out = swm.run(_sweep(walk_csv, tmp_path, top=1))
    assert len(out.failures) == 1
    f = out.failures[0]
    assert f["task"]["fold"] == 2 and "bad bars" in f["error"] and f["task"]["train"]
    assert (out.table["folds"] == 2).all()
    payload = json.loads((out.run.path / "sweep.json").read_text())
    assert payload["tasks_done"] == 2 and payload["failures"][0]["error"] == f["error"]


# --- real training ------------------------------------------------------------------------------
@pytest.mark.slow
def test_sweep_end_to_end_with_training_same_table_with_two_workers(walk_csv, tmp_path):
    cmd = ["sweep", "--data", walk_csv, "--train-bars", "500", "--val-bars", "200",
           "--test-bars", "200", "--grid", "threshold=0.4,0.5", "--grid", "stop=bar,atr:1.5",
           "--top", "2", "epochs=1"]
    one = CliRunner().invoke(app, [*cmd, "--runs-dir", str(tmp_path / "a"), "--workers", "1"])
    assert one.exit_code == 0, one.output
    # 2 models (attention and the default rule baseline) × 4 rule combinations
    assert "agrees" in one.output and "Best of 8 combinations" in " ".join(one.output.split())
    two = CliRunner().invoke(app, [*cmd, "--runs-dir", str(tmp_path / "b"), "--workers", "2"])
    assert two.exit_code == 0, two.output
    a = pd.read_csv(next((tmp_path / "a").glob("*/table.csv")))
    b = pd.read_csv(next((tmp_path / "b").glob("*/table.csv")))
    pd.testing.assert_frame_equal(a, b)


def test_run_rules_counts_trades_and_wins_as_the_trades_frame_does():
    from strategy.fast import simulate_fast

    candles = synthetic(800, seed=4)
    rng = np.random.default_rng(4)
    probs = pd.DataFrame(rng.dirichlet([2, 1, 1], len(candles)), index=candles.index,
                         columns=["p_none", "p_buy", "p_sell"])
    combos = swm.parse_grid(["threshold=0.4,0.6", "stop=bar,atr:1", "commission=0,0.00004"],
                            Experiment()).rule_combos()
    rules = swm.rule_sets(Experiment(), combos)
    for rule, got in zip(rules, swm.run_rules(candles, probs, rules), strict=True):
        trades, equity = simulate_fast(candles, probs, rule.params, rule.costs, rule.cash)
        assert got["n_trades"] == len(trades) > 0
        assert got["wins"] == int((trades["pnl_net"] > 0).sum())
        assert got["final"] == equity.iloc[-1]
        np.testing.assert_allclose(np.cumprod(1 + np.asarray(got["returns"])) * rule.cash,
                                   equity.to_numpy(), rtol=1e-12)


@pytest.mark.slow
def test_a_killed_sweep_resumes_with_the_same_command_and_gives_the_same_table(
        walk_csv, tmp_path, monkeypatch):
    # the table alone: what a resume could get wrong is which tasks it reuses, and the table
    # is their aggregate (a whole sweep's report, SPA and backtrader re-runs, which read the
    # same results, are checked by the tests above)
    _table_only(monkeypatch)
    _fake_model(monkeypatch, {}, edge=0.3)
    whole = swm.run(_sweep(walk_csv, tmp_path / "whole", top=1))
    fake_train = sweep_tasks.train_fold
    calls = []

    def killed(task, candles):                    # the driver is stopped during the 2nd task
        calls.append(task.fold_no)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return fake_train(task, candles)

    monkeypatch.setattr(sweep_tasks, "train_fold", killed)
    with pytest.raises(KeyboardInterrupt) as info:
        swm.run(_sweep(walk_csv, tmp_path / "cut", top=1))
    assert "the same command resumes it" in info.value.hint
    (row,) = Registry(tmp_path / "cut").list(kind="sweep")
    assert row["status"] == "interrupted"
    monkeypatch.setattr(sweep_tasks, "train_fold", fake_train)
    again = swm.run(_sweep(walk_csv, tmp_path / "cut", top=1))
    assert again.run.id == row["id"] and (again.resumed, again.computed) == (1, 2)
    pd.testing.assert_frame_equal(again.table, whole.table)
    assert Registry(tmp_path / "cut").get(row["id"])["status"] == "done"


@pytest.mark.slow   # two sweeps
def test_a_larger_grid_gives_the_same_rows_as_a_sweep_of_its_subset(tmp_path, monkeypatch):
    """What a combination scores does not depend on the other combinations run with it (the
    arrays one task's combinations share are computed once); only the trial count (DSR) and
    the rank may differ. The tables alone (``_table_only``: the table a whole sweep returns and
    writes is the same ``aggregate``)."""
    _table_only(monkeypatch)
    csv = write_csv(synthetic(600, seed=5), tmp_path / "sub.csv")   # 2 folds
    _fake_model(monkeypatch, {}, edge=0.2)

    def table(name, grid):
        base = Experiment().override({"runtime.runs_dir": str(tmp_path / name),
                                      "data.source": str(csv)})
        return swm.run(swm.Sweep(base=base, source=str(csv), models=parse_models("attention"),
                                 seeds=[0], grid=swm.parse_grid(grid, base), top=1,
                                 plan=FoldPlan(train_bars=300, val_bars=100,
                                               test_bars=100))).table

    big = table("big", ["threshold=0.4,0.5", "stop=bar,atr:2", "atr_period=7,14",
                        "commission=0,0.00004"])
    small = table("small", ["threshold=0.5", "stop=atr:2", "atr_period=14,7",
                            "commission=0.00004"])
    assert len(big) == 16 and len(small) == 2
    keep = [c for c in small.columns if c not in ("rank", "dsr", "dsr_trials")]
    got = big.set_index("rules").loc[small["rules"]].reset_index()[keep]
    pd.testing.assert_frame_equal(got, small[keep], check_exact=True)
