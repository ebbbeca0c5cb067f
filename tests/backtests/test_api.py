"""The Python API (``backtests.api``): the CLI's code with pandas results, and your own signals
traded by the same engine with the same alignment as a model's probabilities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtests import api
from backtests.analysis.catalog import BY_KEY
from data.errors import AttnbtError, DataError

FEW = {"backtest.random_draws": 20}          # the p-value's draws: few, the tests check wiring


@pytest.fixture(scope="module")
def small(eurusd):
    return eurusd.iloc[:120].copy()


def test_signals_become_one_hot_probabilities_on_the_candles_bars(small):
    sig = pd.Series([1, -1, 0], index=small.index[[10, 11, 12]])
    probs = api.signals_to_probs(sig, small)
    assert probs.index.equals(small.index)
    assert probs.iloc[10].tolist() == [0.0, 1.0, 0.0]
    assert probs.iloc[11].tolist() == [0.0, 0.0, 1.0]
    assert probs.iloc[12].tolist() == [1.0, 0.0, 0.0]
    assert probs.drop(small.index[[10, 11, 12]]).isna().all(axis=None)   # no signal elsewhere
    frame = pd.DataFrame({"long": [True, False], "short": [False, True]},
                         index=small.index[[5, 6]].tz_convert("Europe/Athens"))
    assert api.signals_to_probs(frame, small).iloc[[5, 6]].to_numpy().tolist() == [
        [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]


@pytest.mark.parametrize("make, message", [
    (lambda c: pd.Series(1, index=c.index[:3].tz_localize(None)), "has no timezone"),
    (lambda c: pd.Series(1, index=c.index[:3] + pd.Timedelta(minutes=30)),
     "index does not match the candles: 3 timestamps are not bars"),
    (lambda c: pd.Series([1, 2], index=c.index[:2]), "2 is not +1 (long), -1 (short) or 0"),
    (lambda c: pd.Series([True], index=c.index[:1]), "holds +1 (long), -1 (short) or 0"),
    (lambda c: pd.DataFrame({"long": [True], "short": [True]}, index=c.index[:1]),
     "long and short at the same bar"),
    (lambda c: pd.DataFrame({"p_none": [0.5], "p_buy": [0.6], "p_sell": [0.0]},
                            index=c.index[:1]), "sum to 1"),
    (lambda c: pd.DataFrame({"buy": [1]}, index=c.index[:1]), "needs boolean columns long"),
    (lambda c: pd.Series([1, 1], index=c.index[[3, 3]]), "appears twice"),
    (lambda c: [1, 0, -1], "must be a pandas Series or DataFrame"),
])
def test_bad_signals_are_refused_with_what_to_fix(small, make, message):
    with pytest.raises(DataError, match="signals") as err:
        api.signals_to_probs(make(small), small)
    assert message in str(err.value)


def test_backtest_needs_a_model_or_signals_not_both(small):
    with pytest.raises(AttnbtError, match="one of them"):
        api.backtest(data=small)
    with pytest.raises(AttnbtError, match="one of them"):
        api.backtest("rule/newhl", small, signals=pd.Series(dtype=float))
    with pytest.raises(AttnbtError, match="rule baselines only"):
        api.backtest(signals=pd.Series(0, index=small.index), data=small, vs=["abcd"],
                     record=False)


def test_a_signal_at_bar_t_trades_at_t_plus_1_and_the_future_changes_nothing_before(small,
                                                                                    tmp_path):
    """Causality: a signal at bar t is read at its close and fills at the next open, as a
    model's probability for bar t is; changing or cutting signals after t leaves every trade
    decided by t and the equity up to t as they were."""
    rng = np.random.default_rng(3)
    sig = pd.Series(rng.choice([-1, 0, 0, 0, 1], len(small)), index=small.index)
    kw = dict(data=small, period="all", record=False, settings=FEW)
    base = api.backtest(signals=sig, **kw)
    assert len(base.trades) >= 5
    t = base.trades.iloc[0]
    pos = small.index.get_loc(t["signal_time"])
    assert sig.iloc[pos] != 0 and t["entry_time"] == small.index[pos + 1]
    cut = 70
    later = sig.copy()
    later.iloc[cut + 1:] = -later.iloc[cut + 1:]            # the future turned around
    for other in (later, sig.iloc[:cut + 1]):               # ... or not given at all
        res = api.backtest(signals=other, **kw)
        pd.testing.assert_series_equal(res.equity.iloc[:cut + 1], base.equity.iloc[:cut + 1])
        decided = lambda tr: tr[tr["signal_time"] <= small.index[cut]][  # noqa: E731
            ["signal_time", "entry_time", "direction", "entry_price"]].reset_index(drop=True)
        pd.testing.assert_frame_equal(decided(res.trades), decided(base.trades))


@pytest.fixture(scope="module")
def recorded(small, tmp_path_factory):
    runs = tmp_path_factory.mktemp("api-runs")
    rule = api.backtest("rule/newhl", small, period="all", settings=FEW, runs_dir=runs)
    momentum = np.sign(small["close"].diff(12)).fillna(0)
    own = api.backtest(signals=momentum, data=small, name="momentum", period="all",
                       settings=FEW, runs_dir=runs)
    return rule, own


@pytest.mark.slow   # a few seconds: runs in `make test`, not in the fast subset
def test_results_are_pandas_labelled_with_the_stats_table_and_recorded(recorded):
    rule, own = recorded
    assert own.stats.name == "momentum"
    assert own.stats[BY_KEY["n_trades"].heading] == len(own.trades) > 0
    assert own.stats["Return [%]"] == own.outcome.result.stats["total_return_pct"]
    assert own.equity.index.equals(rule.equity.index)          # the same bars
    assert {"buy and hold (all cash, unlevered)", "random entries"} <= set(own.baselines.index)
    assert own.report.is_file() and own.run_id and rule.run_id != own.run_id
    page = own._repr_html_()
    assert "Return [%]" in page and own.verdict.split(":")[0] in page
    assert "only you know" in own.report.read_text()          # in-sample: not known
    layout = own.plot()                                        # not in Jupyter: returned
    assert type(layout).__name__ == "Column" and len(layout.children) >= 4


@pytest.mark.slow   # a few seconds: runs in `make test`, not in the fast subset
def test_compare_takes_results_and_refs_and_refuses_unrecorded_ones(recorded, small):
    rule, own = recorded
    c = api.compare(rule, own.run_id)
    assert list(c.table.columns) == [f"rule/newhl {rule.run_id[:8]}",
                                     f"momentum {own.run_id[:8]}"]
    assert c.table.loc["Trades"].tolist() == [len(rule.trades), len(own.trades)]
    assert c.significance and "same" in c.significance[0]
    assert "<table" in c._repr_html_()
    quick = api.backtest(signals=pd.Series(0, index=small.index), data=small, record=False,
                         settings=FEW)
    with pytest.raises(AttnbtError, match="`record` False"):
        api.compare(rule, quick)


def test_model_probabilities_as_signals_trade_exactly_like_the_model(trained_run, eurusd):
    """The same engine and alignment: a model's own probabilities given as signals give the
    model backtest's trades and equity, bar for bar."""
    model = api.run(trained_run.id, runs_dir=trained_run.path.parent)
    span = dict(start=str(eurusd.index[-300]), end=str(eurusd.index[-150]), record=False,
                settings={**FEW, "strategy.threshold": 0.34})   # any arg-max trades
    by_model = api.backtest(model, eurusd, **span)
    by_signals = api.backtest(signals=model.probabilities(eurusd), data=eurusd, **span)
    assert len(by_model.trades) > 0
    pd.testing.assert_frame_equal(by_model.trades, by_signals.trades)
    pd.testing.assert_series_equal(by_model.equity, by_signals.equity)


def test_walkforward_and_sweep_pass_the_embargo_to_the_fold_plan(tmp_path, monkeypatch):
    """api.walkforward/api.sweep take ``embargo_bars``; the fold plan's field is ``embargo``
    (they failed with a TypeError before, whatever the embargo). The study itself is not run."""
    import backtests.sweep as swm
    import backtests.walkforward as wfm

    class Planned(Exception):
        pass

    def capture(study, **_):
        raise Planned(study.plan)

    monkeypatch.setattr(wfm, "run", capture)
    monkeypatch.setattr(swm, "run", capture)
    folds = dict(train_bars=500, val_bars=200, test_bars=200, embargo_bars=7)
    for call in (lambda: api.walkforward("rule/newhl", "sample:EURUSD_H1", runs_dir=tmp_path,
                                         **folds),
                 lambda: api.sweep({"threshold": [0.5]}, "rule/newhl", "sample:EURUSD_H1",
                                   runs_dir=tmp_path, **folds)):
        with pytest.raises(Planned) as planned:
            call()
        plan = planned.value.args[0]
        assert (plan.train_bars, plan.val_bars, plan.test_bars, plan.embargo) == (500, 200, 200, 7)
