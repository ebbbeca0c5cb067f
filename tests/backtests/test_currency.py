"""P&L in the account currency: XXX/USD as is, USD/XXX converted at each bar's close, crosses
refused; checked against an independent bar-by-bar booking."""

import numpy as np
import pandas as pd
import pytest

import data
from backtests.analysis.baselines import buy_and_hold, random_entries
from backtests.currency import conversion, instrument_of, rates
from backtests.simulation import run_backtest
from data.errors import DataError
from strategy.fractal import Costs, FractalParams


@pytest.fixture(scope="module")
def sample():
    return data.load("sample:EURUSD_H1").iloc[:1500]


def _probs(candles, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.dirichlet([3, 1, 1], len(candles)), index=candles.index,
                        columns=["p_none", "p_buy", "p_sell"])


@pytest.mark.parametrize("source,expected", [
    ("sample:EURUSD_H1", "EURUSD"), ("yahoo:USDCHF=X:1h", "USDCHF"),
    ("/data/exports/GBPUSD_M5.csv", "GBPUSD"), ("sample:GOOG_D1", "GOOG"),
    ("yahoo:SPY:1d", "SPY"), ("prices.csv", "prices"), ("/data/GBPUSD_M15.csv", "GBPUSD")])
def test_the_instrument_comes_from_the_source_name(source, expected):
    assert instrument_of(source) == expected


def test_which_pairs_convert_and_which_are_refused(sample):
    assert conversion("sample:EURUSD_H1", None, "USD").rule == "none"
    usdchf = conversion("yahoo:USDCHF=X:1h", None, "USD")
    assert usdchf.rule == "1/close" and usdchf.quote == "CHF"
    np.testing.assert_array_equal(rates(sample, usdchf), 1 / sample["close"].to_numpy())
    assert conversion("x.csv", "EURGBP", "GBP").rule == "none"
    with pytest.raises(DataError, match="EURGBP makes P&L in GBP.*account is in USD"):
        conversion("yahoo:EURGBP=X:1d", None, "USD")
    unknown = conversion("prices.csv", None, "USD")
    assert unknown.quote is None and "taken as quoted in the account currency" in \
        unknown.describe()


def test_pnl_is_booked_at_each_bars_rate_and_reconciles_with_equity(sample):
    """Independent check: replay every trade bar by bar, booking each close-to-close move at
    that bar's rate, and compare with the engine's trades and equity."""
    r = 1 / sample["close"].to_numpy() * 1.3     # a varying rate, not close to 1
    params = FractalParams(stop_buffer=0.0002)
    costs = Costs(spread=0.0001, commission=0.00002, slippage=0.00001)
    res = run_backtest(sample, _probs(sample), params, costs, rates=r)
    assert len(res.trades) > 20
    close = sample["close"].to_numpy()
    for t in res.trades.itertuples():
        e, x, d = t.entry_bar, t.exit_bar, t.direction
        if x == e:
            move = (t.exit_price - t.entry_price) * r[e]
        else:
            move = (close[e] - t.entry_price) * r[e]
            for b in range(e + 1, x):
                move += (close[b] - close[b - 1]) * r[b]
            move += (t.exit_price - close[x - 1]) * r[x]
        assert t.pnl_net == pytest.approx(d * t.size * move - t.commission, rel=1e-12, abs=1e-9)
    assert res.stats["final_equity"] == pytest.approx(100_000 + res.trades.pnl_net.sum(),
                                                      abs=1e-6)


@pytest.mark.slow   # a few seconds: runs in `make test`, not in the fast subset
def test_a_constant_rate_scales_every_amount(sample):
    params, costs = FractalParams(stop_buffer=0.0002), Costs(spread=0.0001)
    plain = run_backtest(sample, _probs(sample), params, costs)
    k = 0.8
    scaled = run_backtest(sample, _probs(sample), params, costs,
                          rates=np.full(len(sample), k))
    pd.testing.assert_series_equal(plain.trades.entry_time, scaled.trades.entry_time)
    np.testing.assert_allclose(scaled.trades.pnl_net, k * plain.trades.pnl_net, rtol=1e-9)
    np.testing.assert_allclose(scaled.equity - 100_000, k * (plain.equity - 100_000),
                               atol=1e-6)
    # risk sizing sizes the position by the risk in account money: 1 / k times the units
    risk = FractalParams(stop_buffer=0.0002, sizing="risk", max_leverage=1e6)
    a = run_backtest(sample.iloc[:300], _probs(sample.iloc[:300]), risk, costs)
    b = run_backtest(sample.iloc[:300], _probs(sample.iloc[:300]), risk, costs,
                     rates=np.full(300, k))
    assert len(a.trades) and (b.trades["size"].iloc[0] == pytest.approx(
        np.floor(a.trades["size"].iloc[0] / k), abs=1.0))


def test_baselines_convert_the_same_way(sample):
    k = 0.5
    costs = Costs(spread=0.0001)
    bh, bh_k = buy_and_hold(sample, costs), buy_and_hold(sample, costs,
                                                           rates=np.full(len(sample), k))
    # with a constant rate 0.5 the same cash buys twice the units: the same return
    assert bh_k["total_return_pct"] == pytest.approx(bh["total_return_pct"], rel=1e-3)
    trades = run_backtest(sample, _probs(sample), FractalParams(), costs).trades
    a = random_entries(sample, trades, costs, n_draws=50, seed=1)
    b = random_entries(sample, trades, costs, n_draws=50, seed=1, rates=np.full(len(sample), k))
    np.testing.assert_allclose(b, k * a, rtol=1e-9)
