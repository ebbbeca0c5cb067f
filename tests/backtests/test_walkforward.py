"""`attnbt walkforward` on small synthetic slices: plan, dry run, results, resume, failures,
worker-count invariance, and end to end: no edge on random walks, a planted edge found."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from test_walkforward_data import assert_readable_interactive_page, synthetic, write_csv
from typer.testing import CliRunner

from backtests import walkforward as wfm
from backtests.cli import app
from backtests.config import ConfigError, Experiment
from backtests.store import Registry
from data.errors import DataError

SMALL = wfm.FoldPlan(train_bars=500, val_bars=200, test_bars=200)   # 3 folds on 1,300 bars


@pytest.fixture(scope="module")
def walk_csv(tmp_path_factory):
    return write_csv(synthetic(1300, seed=1), tmp_path_factory.mktemp("d") / "walk.csv")


@pytest.fixture(scope="module")
def planted_csv(tmp_path_factory):
    return write_csv(synthetic(1300, seed=1, planted=True),
                     tmp_path_factory.mktemp("d") / "planted.csv")


def _wf(source, runs, models="attention,dense", seeds=1, epochs=2, workers=1, **settings):
    base = Experiment().override({"runtime.runs_dir": str(runs), "train.epochs": epochs,
                                  **settings})
    return wfm.WalkForward(base=base, sources=[source], models=wfm.parse_models(models),
                           seeds=list(range(seeds)), plan=SMALL, workers=workers, device="cpu")


def test_fold_plan_rules_and_defaults(eurusd):
    assert len(wfm.FoldPlan().folds(eurusd.index)) == 5        # the defaults on the sample
    with pytest.raises(ConfigError, match="empty"):
        wfm.FoldPlan(val_bars=10, embargo=10)
    with pytest.raises(ConfigError, match="at least folds.test_bars"):
        wfm.FoldPlan(test_bars=500, step_bars=100)
    assert wfm.parse_models("attention,dense/article,lstm") == [
        ("attention", "article"), ("dense", "article"), ("lstm", "article")]
    assert wfm.parse_models("dense", "dense=article") == [("dense", "article")]
    assert wfm.parse_models("attention,dense") == [("attention", "article"), ("dense", "matched")]
    with pytest.raises(ConfigError):
        wfm.parse_models("transformer")


def test_task_ids_follow_their_inputs(walk_csv, tmp_path):
    p = wfm.plan(_wf(walk_csv, tmp_path))
    assert len(p.tasks) == 2 * 3 and len({t.id for t in p.tasks}) == 6
    again = wfm.plan(_wf(walk_csv, tmp_path / "elsewhere"))          # runs folder: not an input
    assert [t.id for t in again.tasks] == [t.id for t in p.tasks]
    other = wfm.plan(_wf(walk_csv, tmp_path, epochs=3))
    assert not {t.id for t in other.tasks} & {t.id for t in p.tasks}


def test_dry_run_prints_tasks_and_trials_and_runs_nothing(walk_csv, tmp_path):
    res = CliRunner().invoke(app, ["walkforward", "--data", walk_csv, "--models", "dense",
                                   "--seeds", "2", "--train-bars", "500", "--val-bars", "200",
                                   "--test-bars", "200", "--runs-dir", str(tmp_path),
                                   "--dry-run"])
    assert res.exit_code == 0, res.output
    assert res.output.count("todo") == 6
    assert "6 tasks, 6 to compute" in res.output and "add 8 trials" in res.output
    assert Registry(tmp_path).list() == []


def test_a_task_files_per_bar_sharpe_is_read_under_its_old_and_new_key():
    from backtests.walkforward import results as R

    new = {"n_obs": 200, "sharpe_per_bar": 0.05, "skew": 0.1, "kurtosis": 3.2}
    old = {"n_obs": 200, "sharpe": 0.05, "skew": 0.1, "kurtosis": 3.2}   # before schema v4
    assert R.sharpe_per_bar(new) == R.sharpe_per_bar(old) == 0.05
    assert R.sharpe_per_bar({**new, "sharpe_per_bar": None}) is None     # not defined


@pytest.mark.slow
@pytest.mark.draws
def test_a_run_records_table_json_report_trials_and_resumes(walk_csv, tmp_path, monkeypatch):
    from backtests.walkforward import tasks as T

    real, calls = T.train_fold, []

    def killed(task, candles):                       # the process dies during the 4th task
        calls.append(task.id)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(task, candles)

    monkeypatch.setattr(T, "train_fold", killed)
    wf = _wf(walk_csv, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        wfm.run(wf)
    reg = Registry(tmp_path)
    (row,) = reg.list(kind="walkforward")
    assert row["status"] == "interrupted"
    # two finished tasks as an attnbt before `sharpe_per_bar` wrote them: the resume reads both
    old = sorted((tmp_path / row["id"] / "tasks").glob("*.json"))[:2]
    for f in old:
        r = json.loads(f.read_text())
        r["moments"]["sharpe"] = r["moments"].pop("sharpe_per_bar")
        if f == old[0]:            # and before tasks kept their probabilities
            del r["probs"], r["labels"]
        f.write_text(json.dumps(r))
    monkeypatch.setattr(T, "train_fold", real)
    lines = []
    out = wfm.run(wf, progress=lines.append)               # the same command again
    assert out.run.id == row["id"] and out.resumed == 3 and out.computed == 3
    assert lines[0].startswith(f"resuming walk-forward run {row['id']}: 3 of 6")
    assert sum("] sample" in x or "walk.csv" in x for x in lines) >= 3
    files = {p.name for p in out.run.path.iterdir()}
    assert {"walkforward.json", "results.csv", "results.json", "equity.csv",
            "report.html"} <= files
    payload = json.loads((out.run.path / "walkforward.json").read_text())
    assert payload["schema"] == 1 and len(payload["tasks"]) == 6
    m = payload["models"]["attention/article"]
    for key in ("psr", "dsr", "dsr_trials", "dsr_sr_var", "skew", "kurtosis", "n_obs",
                "sharpe", "sharpe_per_bar"):
        assert key in m
    assert "per_bar_sharpe" not in m and "sharpe_per_bar" in m["per_seed"]["0"]
    # each task's moments (old file or new) are its returns' moments, as its trial holds them
    from backtests.analysis import significance as sig
    from backtests.walkforward import results as R
    by_task = {t["config_id"]: t for t in reg.trials(kind="walkforward")}
    for f in (out.run.path / "tasks").glob("*.json"):
        r = json.loads(f.read_text())
        want = sig.moments(r["returns"])["sharpe_per_bar"]
        want = None if want != want else want                 # not defined: null in files
        assert R.sharpe_per_bar(r["moments"]) == by_task[f.stem]["sharpe_per_bar"] == want
    assert m["dsr_trials"] >= 1 and m["n_obs"] == 600
    (c,) = payload["comparisons"]
    assert c["a"] == "attention/article" and c["b"] == "dense/matched"
    assert "attention/article vs dense/matched:" in c["verdict"] and "pp hit" in c["verdict"]
    assert payload["winner"]["text"].startswith("Best out-of-sample Sharpe")
    # the DSR's hurdle is stated: the winner's SR0 (per bar) annualised like its Sharpe ratio
    w = payload["winner"]
    wm = payload["models"][w["model"]]
    assert w["dsr_trials"] == wm["dsr_trials"] == 2
    want = wm["dsr_sr0"] * math.sqrt(wm["bars_per_year"])
    assert w["dsr_hurdle"] == pytest.approx(want, rel=1e-12), (w["dsr_hurdle"], want)
    assert f"the best of 2 unskilled trials as spread as these would reach, is a Sharpe of " \
           f"{want:.2f}" in w["text"]
    # every task's backtest is one trial (none twice after the resume), plus the stitched series
    trials = reg.trials(kind="walkforward")
    assert len(trials) == 6 and len({t["config_id"] for t in trials}) == 6
    assert len(reg.trials(kind="walkforward-stitched")) == 2
    assert reg.list(kind="walkforward")[0]["status"] == "done"
    html = (out.run.path / "report.html").read_text()
    assert "data:image/png;base64" in html and "http" not in html.split("<body>")[1][:2000]
    assert_readable_interactive_page(html)
    rec = wfm.walkforward_record(out.run)
    assert set(rec) == {"attention/article", "dense/matched"}
    assert set(rec["dense/matched"]) == {"stats", "equity", "params", "costs", "data", "period"}
    assert len(rec["dense/matched"]["equity"]) == 600
    assert rec["dense/matched"]["params"]["threshold"] == "auto"
    # predictions.csv: each task's test probabilities and scored labels (the old file's: none)
    import pandas as pd

    pred = pd.read_csv(out.run.path / "predictions.csv", parse_dates=["time"])
    assert tuple(pred.columns) == R.PREDICTION_COLUMNS
    lost = json.loads(old[0].read_text())["task"]
    per_task = pred.groupby(["model", "seed", "fold"])
    assert (lost["model"], lost["seed"], lost["fold"]) not in per_task.groups
    assert len(per_task) == 5
    probs = pred[["p_none", "p_buy", "p_sell"]].to_numpy()
    assert np.isfinite(probs).all() and np.abs(probs.sum(1) - 1).max() < 1e-5
    tasks = [json.loads(f.read_text()) for f in (out.run.path / "tasks").glob("*.json")]
    rows = {(t["task"]["model"], t["task"]["seed"], t["task"]["fold"]): t["metrics"]
            for t in tasks}
    equity = pd.read_csv(out.run.path / "equity.csv", index_col="time", parse_dates=["time"])
    for key, part in per_task:
        assert part["label"].notna().sum() == rows[key]["samples"]    # the windows scored
        assert part["time"].isin(equity.index).all() and part["time"].is_monotonic_increasing
    assert set(pred["label"].dropna()) <= {0, 1, 2}


@pytest.mark.slow
def test_predictions_are_the_models_probabilities_on_its_test_bars_and_their_labels(
        walk_csv, tmp_path):
    """Rule baselines (no training): predictions.csv holds, for each fold's test bars, exactly
    the rule's probabilities at those bars (not shifted) and the fractal label of each bar the
    metrics score."""
    import pandas as pd

    import data
    from backtests.walkforward import results as R
    from data.labels import fractal_labels
    from models.rules import rule_probs

    out = wfm.run(_wf(walk_csv, tmp_path, models="rule/newhl,rule/newhl-range"))
    # pandas 3 reads back exactly what it wrote; before 3 only its round-trip parser does (the
    # default one was thousands of units in the last place off on small probabilities)
    exact = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
    pred = pd.read_csv(out.run.path / "predictions.csv", parse_dates=["time"], **exact)
    candles = data.load(walk_csv)
    labels = Experiment().dataset.labels
    truth = fractal_labels(candles, labels)
    folds = SMALL.folds(candles.index)
    for model in ("rule/newhl", "rule/newhl-range"):
        mine = pred[pred["model"] == model].set_index("time")
        want = rule_probs(candles, model.split("/")[1], labels).loc[mine.index]
        assert np.array_equal(mine[["p_none", "p_buy", "p_sell"]].to_numpy(), want.to_numpy())
        test_bars = [candles.index[a:b + 1] for a, b in (f.bounds(candles.index, "test")
                                                         for f in folds)]
        assert mine.index.equals(test_bars[0].append(test_bars[1:]))
        scored = mine["label"].dropna()
        assert len(scored) > 100 and np.array_equal(scored.to_numpy(int),
                                                    truth.loc[scored.index].to_numpy(int))
    assert tuple(pred.columns) == R.PREDICTION_COLUMNS


@pytest.mark.slow
def test_a_task_failing_on_bad_data_is_reported_while_the_others_finish(walk_csv, tmp_path,
                                                                        monkeypatch):
    from backtests.walkforward import tasks as T

    real = T.train_fold

    def bad(task, candles):
        if task.kind == "dense" and task.fold_no == 2:
            raise DataError("bad bars in this fold", rule="test")
        return real(task, candles)

    monkeypatch.setattr(T, "train_fold", bad)
    out = wfm.run(_wf(walk_csv, tmp_path))
    (f,) = out.failures
    assert f["task"]["model"] == "dense/matched" and f["task"]["fold"] == 2
    assert "bad bars" in f["error"] and f["task"]["id"]
    payload = json.loads((out.run.path / "walkforward.json").read_text())
    assert [t["status"] for t in payload["tasks"]].count("failed") == 1
    assert payload["models"]["dense/matched"]["missing_tasks"] == 1
    assert payload["models"]["attention/article"]["missing_tasks"] == 0


@pytest.mark.slow
def test_a_finished_walkforward_rerun_reprints_its_result_and_adds_no_trial(walk_csv, tmp_path):
    """The same command twice: the second says the run had finished, returns its recorded
    result without computing, and the trials (so every DSR) stay as they were. Removing the run
    and computing it again still adds no trial: the same (config, seed, fold) is never new."""
    args = ["walkforward", "--data", walk_csv, "--models", "attention,dense", "--seeds", "1",
            "--train-bars", "500", "--val-bars", "200", "--test-bars", "200", "--workers", "1",
            "--device", "cpu", "--runs-dir", str(tmp_path), "train.epochs=1"]
    cli = CliRunner()
    first = cli.invoke(app, args)
    assert first.exit_code == 0, first.output
    reg = Registry(tmp_path)
    (row,) = reg.list(kind="walkforward")
    trials = reg.trials()
    assert len(trials) == 6 + 2                     # 3 folds × 2 models, 2 stitched series
    file = tmp_path / row["id"] / "walkforward.json"
    payload = json.loads(file.read_text())
    old = json.loads(file.read_text())             # as an attnbt before `sharpe_per_bar` wrote it
    models = list(old["models"].values())
    for m in models + [s for x in models for s in x["per_seed"].values()]:
        m["per_bar_sharpe"] = m.pop("sharpe_per_bar")
    file.write_text(json.dumps(old))
    assert wfm.walkforward_record(tmp_path / row["id"]).keys() == payload["models"].keys()

    page = tmp_path / "study.md"                  # --doc re-renders the study page from the files
    task_files = {f: f.stat().st_mtime_ns for f in (tmp_path / row["id"] / "tasks").iterdir()}
    again = cli.invoke(app, [*args, "--doc", str(page)])
    assert again.exit_code == 0, again.output
    # nothing trained or traded again: no task line, every task file as it was; the table printed
    assert "[1/6]" not in again.output and len(task_files) == 6
    assert {f: f.stat().st_mtime_ns for f in task_files} == task_files
    for name in payload["models"]:
        assert f"{name}: hit " in again.output, again.output
    text = page.read_text()
    assert f"walk-forward run `{row['id']}`" in text
    assert f"Command (as the run recorded it): `{row['command']}`" in text, text
    assert f"walk-forward {row['id']} had already finished" in again.output
    assert "nothing recomputed, no trial added" in again.output
    assert [r["id"] for r in reg.list(kind="walkforward")] == [row["id"]]
    assert reg.trials() == trials
    for line in (payload["winner"]["text"], payload["comparisons"][0]["verdict"]):
        assert line in again.output.replace("\n", " ") or line in again.output
    dry = cli.invoke(app, [*args, "--dry-run"])
    assert dry.exit_code == 0 and "0 trials to add" in dry.output

    reg.remove([row["id"]])                          # recomputed from nothing, same trials
    redo = cli.invoke(app, args)
    assert redo.exit_code == 0 and "6 tasks computed" in redo.output, redo.output
    assert reg.trials() == trials
    (new,) = reg.list(kind="walkforward")
    redone = json.loads((tmp_path / new["id"] / "walkforward.json").read_text())
    for name, m in payload["models"].items():
        assert redone["models"][name]["dsr_trials"] == m["dsr_trials"]
        assert redone["models"][name]["dsr"] == pytest.approx(m["dsr"], abs=1e-12), (
            redone["models"][name]["dsr"] - m["dsr"])


def test_better_and_worse_verdicts_need_the_same_evidence():
    """A steady model (per-bar Sharpe 0.15) against a noisy one with a higher mean return: the
    Sharpe difference test is significant, SPA on mean returns is not. Both orders must give
    the same answer (no verdict); before, "worse" rested on the bootstrap alone."""
    import re

    import numpy as np
    import pandas as pd

    from backtests.analysis import significance as sig
    from backtests.walkforward import results as R

    z = np.random.default_rng(0).standard_normal((2, 500))
    index = pd.date_range("2024-01-01", periods=500, freq="h", tz="UTC")
    steady = pd.Series(0.001 * z[0] + 0.00015, index=index)
    noisy = pd.Series(0.01 * z[1] + 0.0002, index=index)
    tasks = [{"task": {"seed": 0, "fold": k}, "metrics": {"hit_pct": 40.0 + k, "macro_f1": 0.5},
              "stats": {"total_return_pct": 1.0}} for k in range(3)]
    one = R.compare("steady", "noisy", tasks, tasks, steady, noisy, 6000)
    other = R.compare("noisy", "steady", tasks, tasks, noisy, steady, 6000)
    assert one["sharpe_diff"]["p_value"] < sig.ALPHA and other["sharpe_diff"]["p_value"] < sig.ALPHA
    assert (one["decision"], other["decision"]) == ("mixed", "mixed")
    for c in (one, other):
        assert not re.search(r"— evidence \S+ trades (better|worse)", c["verdict"]), c["verdict"]
        assert "SPA does not confirm" in c["verdict"] and sig.VERDICT_RULE in c["verdict"]
    # the same pair with the edge made plain: a verdict both ways, mirrored
    strong = pd.Series(0.01 * z[0] + 0.004, index=index)
    up = R.compare("strong", "noisy", tasks, tasks, strong, noisy, 6000)
    down = R.compare("noisy", "strong", tasks, tasks, noisy, strong, 6000)
    assert (up["decision"], down["decision"]) == ("better", "worse")
    assert "evidence strong trades better" in up["verdict"]
    assert "evidence noisy trades worse" in down["verdict"]


@pytest.mark.slow
def test_one_or_two_workers_give_the_same_table(walk_csv, tmp_path):
    one = wfm.run(_wf(walk_csv, tmp_path / "one", models="dense", seeds=2, workers=1))
    two = wfm.run(_wf(walk_csv, tmp_path / "two", models="dense", seeds=2, workers=2))
    assert (one.run.path / "results.csv").read_text() == (two.run.path / "results.csv").read_text()
    assert (one.run.path / "equity.csv").read_text() == (two.run.path / "equity.csv").read_text()


@pytest.mark.slow
def test_end_to_end_random_walk_has_no_edge_and_a_planted_pattern_is_found(
        walk_csv, planted_csv, tmp_path):
    """Zero costs. On a random walk the verdict finds no edge; on candles with a planted,
    learnable fractal pattern the models hit far above the base rate and the edge is found."""
    kw = {"epochs": 15, "costs.spread": 0.0}
    walk = wfm.run(_wf(walk_csv, tmp_path / "walk", **kw))
    p = json.loads((walk.run.path / "walkforward.json").read_text())
    assert all(m["psr"] < 0.95 and m["dsr"] < 0.95 for m in p["models"].values())
    assert "no evidence attention/article trades better or worse" in p["comparisons"][0]["verdict"]
    assert "not significantly above zero" in p["winner"]["text"]

    planted = wfm.run(_wf(planted_csv, tmp_path / "planted", **kw))
    p = json.loads((planted.run.path / "walkforward.json").read_text())
    for m in p["models"].values():
        hit, base = m["across_seeds"]["hit_pct"]["mean"], m["across_seeds"]["base_hit_pct"]["mean"]
        assert hit > 2 * base, (hit, base)
        assert m["psr"] > 0.95 and m["total_return_pct"] > 0
    assert "significantly above zero (PSR > 0.95)" in p["winner"]["text"]
    assert p["winner"]["dsr"] > 0.95


@pytest.mark.slow
def test_compare_accepts_a_walkforward_run_one_column_per_model(walk_csv, tmp_path):
    from backtests.compare import run_compare

    out = wfm.run(_wf(walk_csv, tmp_path))
    cmp = run_compare([out.run.id[:6]], tmp_path, out=tmp_path / "c.html", n_boot=50)
    names = [r.id for r in cmp.records]
    assert names == [f"{out.run.id}:attention/article", f"{out.run.id}:dense/matched"]
    assert cmp.records[0].stats["psr"] is not None and len(cmp.records[0].equity) == 600
    # the two models traded the same test bars: their Sharpe difference is tested
    sig = cmp.result["significance"][0]
    assert sig.get("p_value") is not None
    picked = run_compare([f"{out.run.id}:dense/matched", f"{out.run.id[:6]}:attention/article"],
                         tmp_path, out=tmp_path / "d.html", n_boot=50)
    assert [r.id for r in picked.records] == names[::-1]


def test_predict_bars_is_the_networks_softmax_on_the_bars_asked_only(walk_csv, tmp_path):
    """The walk-forward scores a fold's bars with ``models.predict.Predictor``: each bar of
    first … last with a complete window gets the network's softmax of that window (the features
    of the whole frame), every other bar NaN."""
    import numpy as np
    import torch

    from backtests.walkforward import tasks as T
    from data.dataset import CandleDataset

    p = wfm.plan(_wf(walk_csv, tmp_path, models="dense", epochs=1))
    task = p.tasks[0]
    candles = p.candles[task.source]
    trained = T.train_fold(task, candles)
    first, _ = task.fold.bounds(candles.index, "val")
    _, last = task.fold.bounds(candles.index, "test")
    got = T.predict_bars(trained, candles, first, last).to_numpy()
    ds = CandleDataset(candles, trained.spec)
    ends = np.arange(first, last + 1)
    ends = ends[ds.window_ok[ends]]
    assert len(ends) > 100
    with torch.no_grad():
        x = torch.as_tensor(ds.windows(ds.matrix(trained.normaliser), ends))
        want = trained.model.cpu().eval()(x).float().softmax(-1).numpy()
    np.testing.assert_allclose(got[ends], want, rtol=0, atol=1e-7)
    others = np.setdiff1d(np.arange(len(candles)), ends)
    assert np.isnan(got[others]).all()
