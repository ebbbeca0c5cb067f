"""run_backtest: exact costs, no look-ahead, batched = one-window-at-a-time, tidy results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import data
from backtests.simulation import run_backtest
from strategy.fractal import Costs, FractalParams

COLS = ["p_none", "p_buy", "p_sell"]


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return data.load("sample:EURUSD_H1")


def random_probs(candles: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet([4.0, 1.0, 1.0], size=len(candles))
    p[:20] = np.nan   # a warm-up without predictions
    return pd.DataFrame(p, index=candles.index, columns=COLS)


def causal_probs(candles: pd.DataFrame) -> pd.DataFrame:
    """A simple causal rule: fade the 3-bar move (uses bars <= t only)."""
    close = candles["close"].to_numpy()
    r3 = np.full(len(close), np.nan)
    r3[3:] = close[3:] / close[:-3] - 1.0
    scores = np.stack([np.full(len(close), 0.3), -800.0 * r3, 800.0 * r3], axis=1)
    e = np.exp(scores)
    return pd.DataFrame(e / e.sum(axis=1, keepdims=True), index=candles.index, columns=COLS)


def make_bars(rows: list[tuple[float, float, float, float]], spread: float | None = None):
    index = pd.date_range("2024-01-01", periods=len(rows), freq="h", tz="UTC", name="time")
    frame = pd.DataFrame(rows, index=index, columns=["open", "high", "low", "close"], dtype=float)
    frame["volume"] = 1.0
    if spread is not None:
        frame["spread"] = spread
    return frame


def one_signal(candles: pd.DataFrame, bar: int, direction: int) -> pd.DataFrame:
    p = np.tile([1.0, 0.0, 0.0], (len(candles), 1))
    p[bar] = [0.0, 1.0, 0.0] if direction > 0 else [0.0, 0.0, 1.0]
    return pd.DataFrame(p, index=candles.index, columns=COLS)


# ten bars, drifting up; no stop or target is touched; max_hold 4 closes at bar 6's open
TEN = [(1.1000 + 0.0002 * i, 1.1004 + 0.0002 * i, 1.0996 + 0.0002 * i, 1.1001 + 0.0002 * i)
       for i in range(10)]


@pytest.mark.parametrize("direction", [1, -1])
def test_spread_commission_and_slippage_cost_exactly_what_they_should(direction):
    spread, comm, slip, units = 0.0002, 0.00003, 0.00001, 10_000
    c = make_bars(TEN)
    params = FractalParams(max_hold=4, take_profit_r=0, stop_buffer=0.01, units=units)
    free = run_backtest(c, one_signal(c, 1, direction), params, Costs(spread=0.0))
    paid = run_backtest(c, one_signal(c, 1, direction), params,
                        Costs(spread=spread, commission=comm, slippage=slip))
    f, p = free.trades.iloc[0], paid.trades.iloc[0]
    assert (f.entry_bar, f.exit_bar, f.exit_reason) == (2, 6, "max_hold")
    assert (p.entry_bar, p.exit_bar) == (2, 6)
    expected_costs = units * (spread + 2 * slip + 2 * comm)
    assert p.costs == pytest.approx(expected_costs, abs=1e-9)
    assert f.pnl_net - p.pnl_net == pytest.approx(expected_costs, abs=1e-9)
    assert p.pnl_gross == pytest.approx(f.pnl_gross, abs=1e-9)
    open2, open6 = c["open"].iloc[2], c["open"].iloc[6]
    if direction > 0:   # buy at the ask, sell at the bid
        assert p.entry_price == pytest.approx(open2 + spread + slip)
        assert p.exit_price == pytest.approx(open6 - slip)
    else:               # sell at the bid, buy back at the ask
        assert p.entry_price == pytest.approx(open2 - slip)
        assert p.exit_price == pytest.approx(open6 + spread + slip)
    assert paid.equity.iloc[-1] == pytest.approx(100_000 + p.pnl_net)


def test_spread_column_is_used_per_bar_and_an_explicit_spread_overrides_it():
    c = make_bars(TEN, spread=0.0003)
    c.loc[c.index[2], "spread"] = 0.0005   # the entry bar's spread is what a long pays
    params = FractalParams(max_hold=4, take_profit_r=0, stop_buffer=0.01)
    t = run_backtest(c, one_signal(c, 1, 1), params, Costs()).trades.iloc[0]
    assert t.entry_price == pytest.approx(c["open"].iloc[2] + 0.0005)
    t = run_backtest(c, one_signal(c, 1, 1), params, Costs(spread=0.0001)).trades.iloc[0]
    assert t.entry_price == pytest.approx(c["open"].iloc[2] + 0.0001)
    no_col = c.drop(columns="spread")
    t = run_backtest(no_col, one_signal(c, 1, 1), params, Costs()).trades.iloc[0]
    assert t.spread_cost == pytest.approx(0.0001 * 10_000)   # default 1 pip


def test_short_stop_triggers_on_the_ask():
    # short from bar 1 (high 1.0010): the bid high of bar 3 stays below the stop, the ask does not
    c = make_bars([(1.0, 1.0005, 0.9995, 1.0), (1.0, 1.0010, 0.9995, 1.0), (1.0, 1.0004, 0.9996, 1.0),
                   (1.0, 1.0009, 0.9996, 1.0), (1.0, 1.0004, 0.9996, 1.0)])
    params = FractalParams(take_profit_r=0)
    t = run_backtest(c, one_signal(c, 1, -1), params, Costs(spread=0.0002)).trades.iloc[0]
    assert (t.exit_bar, t.exit_reason) == (3, "stop")
    assert t.exit_price == pytest.approx(1.0010)
    t = run_backtest(c, one_signal(c, 1, -1), params, Costs(spread=0.0)).trades.iloc[0]
    assert t.exit_reason == "end"


@pytest.mark.slow   # a few seconds: runs in `make test`, not in the fast subset
def test_results_are_tidy_and_reconcile(sample):
    r = run_backtest(sample, random_probs(sample), FractalParams(stop_buffer=0.0002),
                     Costs(commission=0.00002))
    t = r.trades
    assert len(t) > 100
    assert set(t["exit_reason"]) <= {"stop", "target", "opposite", "max_hold", "end"}
    assert {"stop", "target", "opposite"} <= set(t["exit_reason"])
    assert r.equity.index.equals(sample.index)
    assert r.equity.notna().all()
    assert r.stats["final_equity"] == pytest.approx(100_000 + t["pnl_net"].sum(), abs=1e-6)
    assert r.stats["n_trades"] == len(t)
    assert (t["entry_time"] >= t["signal_time"]).all()
    assert (t["exit_time"] >= t["entry_time"]).all()
    assert (t["bars_held"] <= 24).all()
    # one position at a time: each trade enters at or after the previous exit
    assert (t["entry_bar"].to_numpy()[1:] >= t["exit_bar"].to_numpy()[:-1]).all()
    assert set(r.orders.columns) >= {"created_time", "executed_time", "type", "price"}
    done = r.orders.dropna(subset=["executed_time"])
    assert (done["executed_time"] > done["created_time"]).all()
    assert len(done) == 2 * len(t) - (t["exit_reason"] == "end").sum()


def test_entries_fill_at_the_next_open_never_earlier(sample):
    costs = Costs(spread=0.00015, slippage=0.00001)
    r = run_backtest(sample, random_probs(sample, seed=3), FractalParams(), costs)
    t = r.trades
    assert (t["entry_time"] > t["signal_time"]).all()
    assert (t["entry_bar"] == t["signal_bar"] + 1).all()
    opens = sample["open"].to_numpy()[t["entry_bar"].to_numpy()]
    expected = np.where(t["direction"] > 0, opens + 0.00015 + 0.00001, opens - 0.00001)
    np.testing.assert_allclose(t["entry_price"].to_numpy(), expected, rtol=0, atol=1e-12)


TRUNCATED = FractalParams(stop_buffer=0.0001), Costs(commission=0.00002)


@pytest.fixture(scope="module")
def untruncated(sample):
    """The run that every cut below is compared with (the same for each: computed once)."""
    probs = random_probs(sample, seed=1)
    return probs, run_backtest(sample.iloc[:3000], probs.iloc[:3000], *TRUNCATED)


@pytest.mark.slow   # a few seconds: runs in `make test`, not in the fast subset
@pytest.mark.parametrize("cut", [700, 1500, 2999])
def test_truncating_after_bar_t_leaves_everything_up_to_t_unchanged(sample, untruncated, cut):
    probs, full = untruncated
    part = run_backtest(sample.iloc[:cut + 1], probs.iloc[:cut + 1], *TRUNCATED)
    t_cut = sample.index[cut]

    def fills(orders: pd.DataFrame) -> pd.DataFrame:
        done = orders[orders["executed_time"] <= t_cut]
        return done.drop(columns=["status", "ref"]).reset_index(drop=True)

    pd.testing.assert_frame_equal(fills(full.orders), fills(part.orders))
    assert len(fills(full.orders)) > 50
    closed = part.trades[part.trades["exit_reason"] != "end"]
    pd.testing.assert_frame_equal(full.trades.iloc[:len(closed)].reset_index(drop=True),
                                  closed.reset_index(drop=True))
    pd.testing.assert_series_equal(full.equity.iloc[:cut], part.equity.iloc[:cut])


def test_batched_and_predictor_modes_give_identical_orders(sample):
    candles = sample.iloc[:2500]
    probs = random_probs(candles, seed=7)
    table = probs.to_numpy()
    params = FractalParams(stop_buffer=0.0001, max_hold=12)
    batched = run_backtest(candles, probs, params)
    looked_up = run_backtest(candles, None, params, predictor=lambda t: table[t])
    assert len(batched.trades) > 50
    pd.testing.assert_frame_equal(batched.trades, looked_up.trades)
    pd.testing.assert_frame_equal(batched.orders, looked_up.orders)
    pd.testing.assert_series_equal(batched.equity, looked_up.equity)


@pytest.mark.slow   # a few seconds: runs in `make test`, not in the fast subset
def test_predictor_recomputed_from_truncated_data_matches_the_batch(sample):
    candles = sample.iloc[:1200]
    probs = causal_probs(candles)

    def predictor(t: int) -> np.ndarray:
        window = candles.iloc[max(0, t - 5):t + 1]   # only bars <= t
        return causal_probs(window).to_numpy()[-1]

    params = FractalParams(threshold=0.4, max_hold=6)
    batched = run_backtest(candles, probs, params)
    online = run_backtest(candles, None, params, predictor=predictor)
    assert len(batched.trades) > 20
    pd.testing.assert_frame_equal(batched.trades, online.trades)
    pd.testing.assert_frame_equal(batched.orders, online.orders)


def test_probs_on_a_subset_of_the_index_and_bad_probs(sample):
    candles = sample.iloc[:600]
    probs = random_probs(candles).iloc[100:]   # no prediction for the first 100 bars
    r = run_backtest(candles, probs)
    assert (r.trades["signal_bar"] >= 100).all()
    assert len(r.trades) > 5
    with pytest.raises(ValueError, match="missing columns"):
        run_backtest(candles, probs.drop(columns="p_sell"))
    with pytest.raises(ValueError, match="not in the candles"):
        run_backtest(candles.iloc[:300], probs)


def test_no_trades_gives_flat_equity_and_nan_trade_stats(sample):
    candles = sample.iloc[:300]
    r = run_backtest(candles, None, predictor=lambda t: np.array([1.0, 0.0, 0.0]))
    assert r.trades.empty
    assert (r.equity == 100_000).all()
    assert r.stats["n_trades"] == 0
    assert np.isnan(r.stats["win_rate_pct"])
