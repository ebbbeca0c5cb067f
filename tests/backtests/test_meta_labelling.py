"""Meta-labelling (backtests/meta.py, issue 18 §2): the nested folds stay inside the training part
and are purged by the label horizon, the meta model's training set holds no validation or test
bar, its decisions are causal, it removes planted losers, and walk-forward runs it as a second
arm beside the primary alone."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from backtests import meta as M
from backtests.config import ConfigError, Experiment
from data.dataset import CandleDataset, DatasetSpec
from data.folds import Fold, Period
from data.labels import horizon
from strategy.fractal import PROB_COLUMNS, Costs, FractalParams

PARAMS = FractalParams(max_hold=1, take_profit_r=0.0, stop="atr:5", meta_threshold=0.5)
COSTS = Costs()
SPEC = DatasetSpec(window=8)
TRAIN_LAST, VAL_LAST = 1999, 2299


def hour_world(n: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Random-walk H1 candles and a primary that says "buy" (p 0.7) on every third bar; the bar
    after such a signal drifts 6 pips up when the signal bar's UTC hour is before 12, 6 pips
    down otherwise (noise ~3 pips a bar, spread 1 pip): the hour makes half the signals losers."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    sig = np.flatnonzero(np.arange(n) % 3 == 0)
    sig = sig[sig < n - 1]
    drift = np.zeros(n)
    drift[sig + 1] = np.where(idx.hour[sig] < 12, 6e-4, -6e-4)
    step = rng.normal(0, 3e-4, n) + drift
    close = 1.1 + np.cumsum(step)
    open_ = np.r_[1.1, close[:-1]]
    wick = np.abs(rng.normal(0, 1e-4, (2, n)))
    candles = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) + wick[0],
                            "low": np.minimum(open_, close) - wick[1], "close": close,
                            "volume": rng.integers(100, 1000, n).astype(float),
                            "spread": np.full(n, 1e-4)}, index=idx)
    probs = pd.DataFrame(np.tile([1.0, 0.0, 0.0], (n, 1)), index=idx, columns=list(PROB_COLUMNS))
    probs.iloc[sig] = [0.3, 0.7, 0.0]
    return candles, probs


def _fold(index: pd.DatetimeIndex, embargo: int = 0) -> Fold:
    return Fold(Period(index[0], index[TRAIN_LAST]), Period(index[TRAIN_LAST + 1], index[VAL_LAST]),
                Period(index[VAL_LAST + 1], index[-1]), embargo)


@pytest.fixture(scope="module")
def world():
    return hour_world()


def _fixed_primary(probs: pd.DataFrame, calls: list | None = None):
    def train_and_predict(fold: Fold, first: int, last: int) -> pd.DataFrame:
        if calls is not None:
            calls.append((fold, first, last))
        return probs
    return train_and_predict


def _train(candles, probs, calls=None, params=PARAMS, embargo=0):
    """The meta model of the fold of the full world (its training part ends at TRAIN_LAST)."""
    fold = _fold(hour_world(3000)[0].index, embargo)
    return M.train_meta(candles, SPEC, fold, params, COSTS, 100_000.0, None,
                        _fixed_primary(probs, calls), signal_threshold=0.4)


def test_inner_folds_stay_in_training_and_are_purged_by_the_label_horizon(world):
    candles, _ = world
    ds = CandleDataset(candles, SPEC)
    h = horizon(SPEC.labels)
    for embargo in (0, 5):
        folds = M.inner_folds(candles.index, 0, TRAIN_LAST, 3, embargo)
        assert len(folds) == 3
        held = []
        for fold, a, b in folds:
            start = candles.index.get_loc(fold.test.start)
            assert a == start + embargo and 0 < a <= b <= TRAIN_LAST
            ends = np.concatenate([ds.ends("train", fold), ds.ends("val", fold)])
            assert len(ends) and ends.max() + h < start          # no label reaches the block
            assert ds.ends("val", fold).min() >= candles.index.get_loc(fold.validation.start) \
                + embargo
            held.append((a, b))
        # the held-out blocks follow each other, none overlaps another
        assert all(b1 < a2 for (_, b1), (a2, _) in zip(held, held[1:], strict=False))


def test_meta_training_set_holds_no_validation_or_test_bar(world):
    candles, probs = world
    calls = []
    trained = _train(candles, probs, calls)
    assert len(calls) == 3
    for fold, a, b in calls:            # the inner primaries saw and scored training bars only
        assert a <= b
        assert fold.test.end <= candles.index[TRAIN_LAST] and b <= TRAIN_LAST
        assert fold.validation.end < fold.test.start
    pos = trained.samples["pos"].to_numpy()
    assert len(pos) > 300
    assert pos.min() >= calls[0][1]                         # block 0 only trains
    assert pos.max() + M.horizon_of(PARAMS) <= TRAIN_LAST    # each trade ends in training
    d = trained.describe()
    assert d["last_position"] <= d["train_last"] == TRAIN_LAST < TRAIN_LAST + 1


def test_meta_training_reads_no_bar_after_the_training_part(world):
    candles, probs = world
    full = _train(candles, probs)
    cut = _train(candles.iloc[:TRAIN_LAST + 1], probs.iloc[:TRAIN_LAST + 1])
    pd.testing.assert_frame_equal(full.samples, cut.samples)
    x = np.random.default_rng(1).normal(size=(50, len(M.CONTEXT) + SPEC.n_features))
    np.testing.assert_array_equal(full.model.predict(x), cut.model.predict(x))


def test_truncating_after_bar_t_changes_no_meta_decision_at_or_before_t(world):
    candles, probs = world
    trained = _train(candles, probs)
    first, last = VAL_LAST + 1, len(candles) - 1
    params = replace_threshold(PARAMS, 0.5)
    out, _, info = M.apply_meta(trained, candles, SPEC, probs, first, last, params, COSTS, None)
    for t in (first + 10, first + 301, last - 7):
        cut_out, _, cut_info = M.apply_meta(trained, candles.iloc[:t + 1], SPEC,
                                            probs.iloc[:t + 1], first, t, params, COSTS, None)
        assert cut_info["q"] == {p: q for p, q in info["q"].items() if p <= t}
        pd.testing.assert_frame_equal(cut_out, out.iloc[:t + 1])


def replace_threshold(params: FractalParams, threshold: float) -> FractalParams:
    from dataclasses import replace

    return replace(params, threshold=threshold)


def test_meta_filter_removes_the_planted_losers(world):
    """Measured (/tmp script, seeds 0–5 of this world): on seed 0 the meta model drops 96.6 % of
    the test part's 119 losing signals and keeps 98.2 % of its 114 winning ones; over seeds 1–5
    it drops 92.6–97.4 % and keeps 96.4–99.1 %. Asserted with room below the worst seed: drops
    ≥ 85 % of the losers and keeps ≥ 85 % of the winners. A meta model without the hour (or
    trained on shuffled labels) keeps or drops both alike, about half, and fails this."""
    candles, probs = world
    trained = _train(candles, probs)
    first, last = VAL_LAST + 1, len(candles) - 1
    _, params, info = M.apply_meta(trained, candles, SPEC, probs, first, last,
                                   replace_threshold(PARAMS, 0.5), COSTS, None)
    arrays = M.RuleArrays.of(candles, PARAMS, COSTS, None)
    p = probs.to_numpy().copy()
    p[:first] = np.nan
    outcomes = M.signal_outcomes(arrays, p, PARAMS, COSTS, 100_000.0, 0.5, last)
    kept = {pos for pos, q in info["q"].items() if q >= PARAMS.meta_threshold}
    win = outcomes["win"].to_numpy() == 1
    was_kept = outcomes["pos"].isin(kept).to_numpy()
    losers_dropped = 1 - was_kept[~win].mean()
    winners_kept = was_kept[win].mean()
    assert win.sum() > 50 and (~win).sum() > 50
    assert losers_dropped >= 0.85 and winners_kept >= 0.85
    assert losers_dropped > 1 - winners_kept
    assert params.threshold == 0.0 and params.min_margin == 0.0


def test_kept_signals_carry_q_for_kelly_sizing(world):
    candles, probs = world
    trained = _train(candles, probs)
    first, last = VAL_LAST + 1, len(candles) - 1
    out, params, info = M.apply_meta(trained, candles, SPEC, probs, first, last,
                                     replace_threshold(PARAMS, 0.5), COSTS, None)
    rows = out.dropna()
    assert len(rows) == info["kept"] > 0
    for t, row in rows.iterrows():
        q = info["q"][candles.index.get_loc(t)]
        assert row.tolist() == [0.0, q, 0.0] and q >= PARAMS.meta_threshold


def test_meta_model_is_deterministic_and_falls_back_when_too_few_samples():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    y = (x[:, 0] > 0).astype(int)
    a, b = M.fit_meta(x, y, seed=3), M.fit_meta(x, y, seed=3)
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    few = M.fit_meta(x[:10], y[:10])
    assert few.clf is None and np.all(few.predict(x) == y[:10].mean())
    one = M.fit_meta(x, np.ones(200, int))
    assert one.clf is None and np.all(one.predict(x) == 1.0)


def test_meta_keys_are_checked():
    with pytest.raises(ConfigError, match="strategy.meta_threshold"):
        Experiment().override({"strategy.meta_threshold": 1.0})
    with pytest.raises(ConfigError, match="strategy.meta_folds"):
        Experiment().override({"strategy.meta_folds": 1})
    with pytest.raises(ConfigError, match="strategy.max_hold"):
        M.horizon_of(FractalParams(max_hold=0))


# --- walk-forward: the primary alone and primary + meta side by side -----------------------------
@pytest.fixture(scope="module")
def walk_csv(tmp_path_factory):
    from test_walkforward_data import synthetic, write_csv

    return write_csv(synthetic(1300, seed=1, planted=True),
                     tmp_path_factory.mktemp("d") / "meta_walk.csv")


def _meta_wf(source, runs, meta: bool, **settings):
    from backtests import walkforward as wfm

    base = Experiment().override({"runtime.runs_dir": str(runs), "strategy.meta": meta,
                                  "strategy.max_hold": 4, **settings})
    return wfm.WalkForward(base=base, sources=[source], models=wfm.parse_models("rule/newhl"),
                           seeds=[0], plan=wfm.FoldPlan(train_bars=500, val_bars=200,
                                                        test_bars=200), device="cpu")


def test_meta_arm_adds_tasks_and_keeps_the_primary_ids(walk_csv, tmp_path):
    from backtests import walkforward as wfm

    alone = wfm.plan(_meta_wf(walk_csv, tmp_path, False))
    both = wfm.plan(_meta_wf(walk_csv, tmp_path, True, **{"strategy.meta_threshold": 0.6}))
    assert [t.model for t in both.tasks] == ["rule/newhl"] * 3 + ["rule/newhl+meta"] * 3
    assert [t.id for t in both.tasks[:3]] == [t.id for t in alone.tasks]
    other = wfm.plan(_meta_wf(walk_csv, tmp_path, True, **{"strategy.meta_threshold": 0.7}))
    assert [t.id for t in other.tasks[:3]] == [t.id for t in alone.tasks]
    assert not {t.id for t in other.tasks[3:]} & {t.id for t in both.tasks[3:]}


@pytest.mark.slow   # a whole walk-forward (6 tasks, registry, report page): about 6-9 s
def test_walkforward_reports_both_arms_with_their_trials(walk_csv, tmp_path):
    from backtests import walkforward as wfm
    from backtests.execution.driver import STITCHED_KIND
    from backtests.store import Registry

    out = wfm.run(_meta_wf(walk_csv, tmp_path, True))
    reg = Registry(str(tmp_path))
    notes = [t["note"] for t in reg.trials(kind="walkforward")]
    assert sorted(n.split(" ")[1] for n in notes) == ["rule/newhl"] * 3 + ["rule/newhl+meta"] * 3
    stitched = [t["note"].split(" ")[1] for t in reg.trials(kind=STITCHED_KIND)]
    assert sorted(stitched) == ["rule/newhl", "rule/newhl+meta"]    # the DSR charges both
    run_dir = out.run.path
    payload = json.loads((run_dir / "walkforward.json").read_text())
    assert set(payload["models"]) == {"rule/newhl", "rule/newhl+meta"}
    assert payload["models"]["rule/newhl+meta"]["dsr_trials"] == 2
    assert [(c["a"], c["b"]) for c in payload["comparisons"]] == [("rule/newhl+meta",
                                                                  "rule/newhl")]
    table = pd.read_csv(run_dir / "results.csv")
    assert sorted(set(table["model"])) == ["rule/newhl", "rule/newhl+meta"]
    assert (table.groupby("fold")["threshold"].nunique() == 1).all()   # the same primary signals
    frame = pd.read_csv(walk_csv, index_col="time", parse_dates=True)
    for task in (run_dir / "tasks").glob("*.json"):
        r = json.loads(task.read_text())
        if r["task"]["model"].endswith("+meta"):
            m, val_start = r["meta"], pd.Timestamp(r["task"]["val"][0])
            assert m["last_position"] + 5 <= m["train_last"]          # max_hold 4 + 1
            assert frame.index[m["train_last"]] < val_start.tz_localize(None)
            assert m["kept"] <= m["test_signals"] and m["train_samples"] > 0
            assert m["threshold"] in M.META_THRESHOLDS and len(m["threshold_table"]) == 10


def test_meta_keys_leave_earlier_ids_and_are_refused_where_no_meta_model_is_trained():
    from backtests.backtest import compute_signals_backtest
    from backtests.sweep.grid import parse_grid

    base = Experiment()
    on = base.override({"strategy.meta": True})
    assert on.id != base.id and on.train_id == base.train_id
    # at their defaults the keys are in no id (test_config pins the earlier ids)
    assert base.override({"strategy.meta_threshold": "none"}).id == base.id
    assert on.override({"strategy.meta_threshold": 0.6}).id != on.id
    with pytest.raises(ConfigError, match="grid.*strategy.meta_threshold"):
        parse_grid(["strategy.meta_threshold=0.5,0.6"], base)
    with pytest.raises(ConfigError, match="strategy.meta: a sweep"):
        parse_grid(["threshold=0.5,0.6"], on)
    candles, probs = hour_world(300)
    with pytest.raises(ConfigError, match="strategy.meta: a backtest"):
        compute_signals_backtest(on, candles, probs)
    from backtests.paper.trading import init

    with pytest.raises(ConfigError, match="strategy.meta: a paper account"):
        init("x", "nope", "sample:EURUSD_H1", params=on.strategy)


def test_kelly_sizing_of_kept_signals_follows_q(world):
    """With ``strategy.sizing=kelly`` a kept signal risks min(kelly_fraction × f*, risk_fraction)
    of equity at its stop, f* = q − (1 − q)/b (b = 1: no target): each trade's size is that share
    of the equity at its signal bar over the stop distance (5 ATR here), to the unit (leverage
    cap raised so that it does not bind)."""
    from dataclasses import replace

    from strategy.fast import simulate_fast

    candles, probs = world
    trained = _train(candles, probs)
    first, last = VAL_LAST + 1, len(candles) - 1
    params = replace(PARAMS, sizing="kelly", risk_fraction=0.45, threshold=0.5,
                     max_leverage=1e4)
    out, trade_params, info = M.apply_meta(trained, candles, SPEC, probs, first, last, params,
                                           COSTS, None)
    bars = candles.iloc[first:]
    trades, equity = simulate_fast(bars, out.iloc[first:], trade_params, COSTS, 100_000.0)
    assert len(trades) > 20
    atr = M.RuleArrays.of(candles, params, COSTS, None).atr
    shares = []
    for _, tr in trades.iterrows():
        signal = candles.index.get_loc(tr["entry_time"]) - 1
        q = info["q"][signal]
        share = min(params.kelly_fraction * (q - (1 - q)), params.risk_fraction)
        eq = equity.iloc[signal - first]
        cap = 0.95 * params.max_leverage * eq / candles["close"].iloc[signal]
        size = min(share * eq / (5 * atr[signal]), cap)
        assert tr["size"] == np.floor(size * (1 + 1e-12))
        shares.append(share)
    assert len(set(np.round(shares, 6))) > 5      # sizes follow q, not one fixed size


def test_meta_threshold_none_is_chosen_on_validation_bars_only(world):
    """``strategy.meta_threshold = none``: the grid traded on the validation part, the best
    validation return chosen; cutting the data after the validation part changes nothing."""
    from dataclasses import replace

    candles, probs = world
    trained = _train(candles, probs)
    params = replace(PARAMS, meta_threshold=None, threshold=0.5)
    first, last = TRAIN_LAST + 1, VAL_LAST
    chosen, rows = M.choose_meta_threshold(trained, candles, SPEC, probs, first, last, params,
                                           COSTS, 100_000.0, None)
    assert [r["meta threshold"] for r in rows] == list(M.META_THRESHOLDS)
    best = max(r["validation return %"] for r in rows)
    assert chosen == max(r["meta threshold"] for r in rows if r["validation return %"] == best)
    cut = M.choose_meta_threshold(trained, candles.iloc[:last + 1], SPEC, probs.iloc[:last + 1],
                                  first, last, params, COSTS, 100_000.0, None)
    assert cut == (chosen, rows)
    with pytest.raises(ValueError, match="meta threshold"):
        M.apply_meta(trained, candles, SPEC, probs, last + 1, len(candles) - 1, params, COSTS,
                     None)
