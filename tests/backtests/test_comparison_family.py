"""A comparison of two models is charged for the comparisons of the same pair made before it on the
same bars: the k-th is judged at α / k (Bonferroni over the comparisons made so far, as the DSR
counts the trials made so far). The registry's ``comparisons`` table keeps them; another
configuration of the two models (here another label rule) is another comparison, the same tasks
compared again are the same one, and other bars start a new family.
"""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
import pytest
from test_walkforward_data import synthetic, write_csv

from backtests import walkforward as wfm
from backtests.analysis import significance as sig
from backtests.config import Experiment
from backtests.store import SCHEMA_VERSION, Registry
from backtests.walkforward import results as R

PLAN = wfm.FoldPlan(train_bars=500, val_bars=200, test_bars=200)


def _tasks() -> list[dict]:
    return [{"task": {"seed": 0, "fold": k}, "metrics": {"hit_pct": 40.0 + k, "macro_f1": 0.5},
             "stats": {"total_return_pct": 1.0}} for k in range(3)]


@pytest.mark.slow   # six comparisons at the product's resample counts (about 3 s)
def test_the_kth_comparison_is_judged_at_alpha_over_k_and_says_which_earlier_verdicts_hold():
    index = pd.date_range("2024-01-01", periods=600, freq="h", tz="UTC")
    z = np.random.default_rng(3).standard_normal((2, 600))
    decided = 0
    for edge in (0.0, 0.002, 0.004):
        a = pd.Series(0.01 * z[0] + edge, index=index)
        b = pd.Series(0.01 * z[1], index=index)
        first = R.compare("a", "b", _tasks(), _tasks(), a, b, 6000)
        assert first["family"] == {"k": 1, "alpha": sig.ALPHA, "earlier_runs": [],
                                   "earlier_decided": 0, "still_holding": 0}
        assert "comparison 1" not in first["verdict"] and "Bonferroni" not in first["verdict"]
        earlier = [{"run_id": "r1", "decision": first["decision"],
                    "diff": first["sharpe_diff"]["diff"],
                    "p_bootstrap": first["sharpe_diff"]["p_value"],
                    "p_spa_better": first["spa"]["p_value"],
                    "p_spa_worse": first["spa_worse"]["p_value"]}]
        second = R.compare("a", "b", _tasks(), _tasks(), a, b, 6000, earlier * 2)
        sd, f = second["sharpe_diff"], second["family"]
        assert f["k"] == 3 and f["alpha"] == pytest.approx(sig.ALPHA / 3) and \
            f["earlier_runs"] == ["r1", "r1"]
        # the same p-values, a smaller α: the decision is the rule's at α / 3
        assert sd["p_value"] == first["sharpe_diff"]["p_value"]
        assert second["decision"] == sig.decide(sd["diff"], sd["p_value"], second["spa"]["p_value"],
                                                second["spa_worse"]["p_value"], sig.ALPHA / 3)
        assert "comparison 3 of this pair on these bars, so judged at α = 0.05/3" in \
            second["verdict"], second["verdict"]
        if first["decision"] in ("better", "worse"):
            decided += 1
            holds = int(second["decision"] == first["decision"])
            assert (f["earlier_decided"], f["still_holding"]) == (2, 2 * holds)
            assert f"of the 2 earlier better/worse verdicts {2 * holds} still hold" in \
                second["verdict"]
    assert decided >= 1     # the largest edge is found at α


def test_a_plain_p_between_alpha_over_2_and_alpha_is_a_verdict_first_and_none_second():
    # decide() is the rule; the family only lowers its α
    assert sig.decide(0.1, 0.03, 0.01, 0.9, sig.ALPHA) == "better"
    assert sig.decide(0.1, 0.03, 0.01, 0.9, sig.ALPHA / 2) == "none"
    f = sig.comparison_family([{"run_id": "x", "decision": "better", "diff": 0.1,
                              "p_bootstrap": 0.03, "p_spa_better": 0.01, "p_spa_worse": 0.9}])
    assert (f["k"], f["earlier_decided"], f["still_holding"]) == (2, 1, 0)
    assert "of the 1 earlier better/worse verdicts 0 still hold" in sig.family_text(f)


def test_the_winner_margin_over_a_compared_runner_up_is_judged_at_the_comparisons_alpha():
    """The winner line and the comparison of the same pair use one α: the charged one. (Seed 17:
    a margin with bootstrap p 0.026, "better" at 0.05 and not at 0.025.)"""
    rng = np.random.default_rng(17)
    idx = pd.date_range("2024-01-01", periods=800, freq="h")
    returns = {"attention/article": pd.Series(rng.normal(4e-4, 2e-3, 800), idx),
               "rule/newhl": pd.Series(rng.normal(0.0, 2e-3, 800), idx)}

    def model(r):
        return {"sharpe": float(r.mean() / r.std() * np.sqrt(6000)), "psr": 0.5, "dsr": 0.5,
                "total_return_pct": 1.0, "bars_per_year": 6000.0, "dsr_sr0": 0.01,
                "dsr_trials": 2, "across_seeds": {"hit_pct": {"mean": 50.0}}}

    models = {k: model(v) for k, v in returns.items()}
    charged = [{"a": "rule/newhl", "b": "attention/article",
                "family": sig.comparison_family([{"run_id": "x", "decision": "none", "diff": 0.0,
                                                  "p_bootstrap": 0.5, "p_spa_better": 0.5,
                                                  "p_spa_worse": 0.5}])}]
    other = [{"a": "attention/article", "b": "dense/matched", "family": charged[0]["family"]}]
    best, second = sorted(models, key=lambda k: models[k]["sharpe"], reverse=True)
    a, b = returns[best].to_numpy(), returns[second].to_numpy()
    for comparisons, alpha in (((), sig.ALPHA), (other, sig.ALPHA), (charged, sig.ALPHA / 2)):
        w = R.winner(models, returns, comparisons)
        r = w["runner_up"]
        assert r["alpha"] == pytest.approx(alpha)
        assert r["decision"] == sig.difference_verdict(a, b, both=False, alpha=alpha)["decision"]
        assert ("the pair's comparison's charge" in w["text"]) == (alpha < sig.ALPHA)
        assert r["decision"] == ("better" if alpha == sig.ALPHA else "none"), r


@pytest.fixture(scope="module")
def csv(tmp_path_factory):
    return write_csv(synthetic(900, seed=4), tmp_path_factory.mktemp("d") / "family.csv")


def _wf(source, runs, **settings) -> wfm.WalkForward:
    base = Experiment().override({"runtime.runs_dir": str(runs), "train.epochs": 1,
                                  "train.batch_size": 64, "dataset.window": 8, **settings})
    return wfm.WalkForward(base=base, sources=[source], models=wfm.parse_models("attention,rule/newhl"),
                           seeds=[0], plan=PLAN, workers=1, device="cpu")


def _comparison(out) -> dict:
    (c,) = json.loads((out.run.path / "walkforward.json").read_text())["comparisons"]
    return c


@pytest.mark.slow   # three one-fold walk-forwards of one attention net and a rule (about 5 s)
def test_walkforwards_of_a_pair_on_the_same_bars_form_one_family(csv, tmp_path):
    """The walk-forward's data fingerprint covers the bars and the fold plan: the fingerprint a
    comparison is filed under is the stitched trials' (other bars: test_a_v4_registry_...)."""
    first = wfm.run(_wf(csv, tmp_path))
    second = wfm.run(_wf(csv, tmp_path, **{"dataset.labels": "horizon:1"}))
    c1, c2 = _comparison(first), _comparison(second)
    assert c1["family"]["k"] == 1 and c1["family"]["alpha"] == sig.ALPHA
    assert c2["family"]["k"] == 2 and c2["family"]["alpha"] == pytest.approx(sig.ALPHA / 2)
    assert c2["family"]["earlier_runs"] == [first.run.id]
    assert "comparison 2 of this pair on these bars" in c2["verdict"]
    reg = Registry(tmp_path)
    ((fp, pair),) = _keys(tmp_path)
    assert pair == "attention/article vs rule/newhl"
    rows = reg.comparison_family(fingerprint=fp, pair=pair, config_id="not recorded")
    assert [r["run_id"] for r in rows] == [first.run.id, second.run.id]
    assert [r["alpha"] for r in rows] == [sig.ALPHA, pytest.approx(sig.ALPHA / 2)]
    assert [r["decision"] for r in rows] == [c1["decision"], c2["decision"]]

    # the same command again: reprinted, the family unchanged
    again = wfm.run(_wf(csv, tmp_path, **{"dataset.labels": "horizon:1"}))
    assert again.reused and len(_rows(tmp_path)) == 2
    # the first walk-forward recomputed from nothing is still comparison 1 of the family
    reg.remove([first.run.id])
    redo = wfm.run(_wf(csv, tmp_path))
    assert _comparison(redo)["family"]["k"] == 1 and len(_rows(tmp_path)) == 2


def _rows(runs) -> list[tuple]:
    with sqlite3.connect(runs / "registry.sqlite") as db:
        return db.execute("SELECT fingerprint, pair, config_id FROM comparisons").fetchall()


def _keys(runs) -> set[tuple[str, str]]:
    return {(f, p) for f, p, _ in _rows(runs)}


def test_a_v4_registry_gains_the_comparisons_table_and_keeps_its_trials(tmp_path):
    reg = Registry(tmp_path)
    reg.add_trial(run_id="r1", kind="k", config_id="c", fingerprint="f", n_obs=3,
                  sharpe_per_bar=0.1, skew=0.0, kurtosis=3.0)
    with sqlite3.connect(tmp_path / "registry.sqlite") as db:
        db.execute("DROP TABLE comparisons")
        db.execute("PRAGMA user_version = 4")
    assert reg.comparison_family(fingerprint="f", pair="a vs b", config_id="c") == []
    # other bars (another fingerprint) or another pair: a family of their own
    assert reg.comparison_family(fingerprint="g", pair="a vs b", config_id="x") == []
    assert reg.comparison_family(fingerprint="f", pair="a vs c", config_id="x") == []
    reg.add_comparison(run_id="r2", fingerprint="f", pair="a vs b", config_id="c", n_obs=10,
                       diff=0.1, p_bootstrap=float("nan"), decision="none", alpha=0.05)
    reg.add_comparison(run_id="r3", fingerprint="f", pair="a vs b", config_id="c", n_obs=99)
    (row,) = reg.comparison_family(fingerprint="f", pair="a vs b", config_id="other")
    assert (row["run_id"], row["n_obs"], row["p_bootstrap"]) == ("r2", 10, None)
    assert reg.comparison_family(fingerprint="f", pair="a vs b", config_id="c") == []
    # other bars (another fingerprint) or another pair: a family of their own
    assert reg.comparison_family(fingerprint="g", pair="a vs b", config_id="x") == []
    assert reg.comparison_family(fingerprint="f", pair="a vs c", config_id="x") == []
    assert [t["run_id"] for t in reg.trials()] == ["r1"]
    with sqlite3.connect(tmp_path / "registry.sqlite") as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (5,)


# --- `attnbt compare` is charged the same way ---------------------------------------------------

def _backtest_run(reg: Registry, model: str, config: str, seed: int, bars: int = 400,
                  drift: float = 0.0) -> str:
    """A finished backtest run as compare reads it (report.json and equity.csv): an equity of
    ``bars`` hourly bars from ``seed``'s returns, on the data fingerprint "fp"."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-01-01", periods=bars, freq="h", tz="UTC", name="time")
    equity = 10_000 * np.cumprod(1 + drift + rng.normal(0, 1e-3, bars))
    run = reg.create("backtest", model=model, data="sample:EURUSD_H1", fingerprint="fp",
                     config_id=config)
    run.write_json("report.json", {"stats": {"total_return_pct": equity[-1] / 100 - 100},
                                   "model": {"model": model}})
    run.write_text("equity.csv", pd.DataFrame({"equity": equity}, index=index).to_csv())
    reg.finish(run, {})
    return run.id


def _recorded(reg: Registry) -> list[dict]:
    with sqlite3.connect(reg.root / "registry.sqlite") as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM comparisons ORDER BY id")]


def test_compare_charges_the_kth_comparison_of_a_pair_on_the_same_bars(tmp_path, cli):
    """The same two runs compared again (in either order, as a run, --json or through the API)
    are one comparison; another configuration of the same two models on the same bars is the
    next one, judged at α/2 and said so; other bars start a family of their own."""
    from backtests import api
    from backtests.compare import run_compare

    reg = Registry(tmp_path)
    a = _backtest_run(reg, "attention/article", "cfg-a", seed=1)
    b = _backtest_run(reg, "dense/matched", "cfg-b", seed=2)
    b2 = _backtest_run(reg, "dense/matched", "cfg-b2", seed=3)
    shorter = _backtest_run(reg, "dense/matched", "cfg-b3", seed=4, bars=300)

    res = cli("compare", a, b, runs_dir=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "comparison 2" not in res.stdout
    (first,) = _recorded(reg)
    (compare_run,) = Registry(tmp_path).list(kind="compare")
    assert first["run_id"] == compare_run["id"] and first["pair"] == \
        "attention/article vs dense/matched" and first["alpha"] == sig.ALPHA
    for args in ((b, a), (a, b, "--json")):              # the same comparison: not charged again
        res = cli("compare", *args, runs_dir=tmp_path)
        assert res.returncode == 0 and "comparison 2" not in res.stdout, res.stdout + res.stderr
    assert len(_recorded(reg)) == 1

    out = run_compare([a, b2], tmp_path, record=False)    # the API's way: no run, still charged
    (row,) = out.result["significance"]
    assert row["family"]["k"] == 2 and row["family"]["alpha"] == sig.ALPHA / 2
    assert "comparison 2 of this pair on these bars, so judged at α = 0.05/2 = 0.025" in row["text"]
    assert _recorded(reg)[-1]["run_id"] is None and _recorded(reg)[-1]["alpha"] == sig.ALPHA / 2
    assert len(Registry(tmp_path).list(kind="compare")) == 2   # (a, b) and (b, a); --json, API: none

    # one call comparing two configurations: the second is charged for the first
    table = api.compare(a, b, b2, runs_dir=tmp_path).outcome.result["significance"]
    assert [s["family"]["k"] for s in table] == [1, 2]
    # other bars (a shorter span): a family of their own
    res = cli("compare", a, shorter, runs_dir=tmp_path)
    assert "not tested" in res.stdout          # different bars are not tested at all
    c = _backtest_run(reg, "attention/article", "cfg-c", seed=5, bars=300)
    out = run_compare([c, shorter], tmp_path, record=False)
    assert out.result["significance"][0]["family"]["k"] == 1
    assert len(_recorded(reg)) == 3


def test_charge_key_is_the_bars_the_unordered_pair_and_the_unordered_curves():
    from backtests.compare import Comparable, charge_key

    index = pd.date_range("2024-01-01", periods=10, freq="h", tz="UTC")

    def rec(rid, name, level=1.0, fp="fp"):
        return Comparable(id=rid, kind="backtest", name=f"{name} {rid}", stats={},
                          equity=pd.Series(np.linspace(1.0, level, 10), index=index),
                          data={"fingerprint": fp}, model={"name": name})

    a, b = rec("r1", "attention/article", 1.1), rec("r2", "dense/matched", 0.9)
    assert charge_key(a, b) == charge_key(b, a)
    assert charge_key(a, b)["pair"] == "attention/article vs dense/matched"
    # another run of the same curve (a re-run, a copied folder) is the same comparison
    assert charge_key(a, rec("r3", "dense/matched", 0.9)) == charge_key(a, b)
    assert charge_key(a, rec("r3", "dense/matched", 0.95))["config_id"] != \
        charge_key(a, b)["config_id"]
    assert charge_key(rec("r1", "attention/article", 1.1, fp="other"), b)["fingerprint"] != \
        charge_key(a, b)["fingerprint"]
