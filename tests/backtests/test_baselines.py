"""Baselines: buy-and-hold, the perfect-foresight oracle, random entries and the p-value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import data
from backtests.analysis.baselines import buy_and_hold, oracle_probs, p_value, random_entries
from backtests.simulation import run_backtest
from strategy.fractal import Costs, FractalParams


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return data.load("sample:EURUSD_H1")


def line_bars(opens: np.ndarray) -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=len(opens), freq="h", tz="UTC")
    return pd.DataFrame({"open": opens, "high": opens + 0.001, "low": opens - 0.001,
                         "close": opens + 0.0005, "volume": 1.0}, index=index)


def fake_trades(held: list[int], direction: list[int], size: float = 1.0) -> pd.DataFrame:
    return pd.DataFrame({"bars_held": held, "direction": direction, "size": size})


def test_buy_and_hold_by_hand():
    c = line_bars(np.array([10.0, 10.5, 11.0, 12.0]))
    s = buy_and_hold(c, Costs(spread=0.1, commission=0.01), cash=1000)
    units = 98   # floor(1000 / (10.1 + 0.01))
    final = 1000 + units * (12.0005 - 10.1) - 2 * units * 0.01
    assert s["final_equity"] == pytest.approx(final)
    assert s["total_return_pct"] == pytest.approx((final / 1000 - 1) * 100)
    assert s["n_trades"] == 1


def test_oracle_probs_are_the_labels_one_hot(sample):
    probs = oracle_probs(sample)
    labels = data.fractal_labels(sample, "3bar").to_numpy()
    known = labels >= 0
    assert probs[known].to_numpy().sum(axis=1) == pytest.approx(1.0)
    assert (probs.to_numpy()[known].argmax(axis=1) == labels[known]).all()
    assert probs[~known].isna().all().all()


@pytest.mark.slow   # a few seconds: runs in `make test`, not in the fast subset
def test_oracle_beats_chance_through_the_same_backtest(sample):
    candles = sample.iloc[:1500]
    oracle = run_backtest(candles, oracle_probs(candles), FractalParams())
    assert oracle.stats["win_rate_pct"] > 50
    assert oracle.stats["total_return_pct"] > 0
    dist = random_entries(candles, oracle.trades, Costs(), n_draws=500, seed=1)
    assert p_value(oracle.stats["total_return_pct"], dist) < 0.01


def test_random_entries_by_hand_flat_prices_lose_exactly_the_spread():
    c = line_bars(np.full(200, 1.2))
    trades = fake_trades([3, 0, 5, 1], [1, -1, -1, 1], size=1000.0)
    dist = random_entries(c, trades, Costs(spread=0.0002, commission=0.00001), n_draws=50,
                          cash=10_000)
    per_trade = 1000 * (0.0002 + 2 * 0.00001)
    # a 0-bar trade exits at its entry bar's close, 0.0005 above the open
    move = 1000 * 0.0005 * (-1)   # the 0-bar trade is the short one
    assert dist == pytest.approx(np.full(50, 100 * (move - 4 * per_trade) / 10_000))


def test_random_entries_by_hand_on_a_rising_line():
    c = line_bars(1.0 + 0.01 * np.arange(300))
    dist = random_entries(c, fake_trades([2, 2, 2], [1, 1, 1]), Costs(spread=0.0), n_draws=20,
                          cash=100)
    assert dist == pytest.approx(np.full(20, 100 * 3 * 0.02 / 100))


@pytest.mark.slow
def test_random_entries_are_seeded(sample):
    r = run_backtest(sample, oracle_probs(sample))
    a = random_entries(sample, r.trades, Costs(), n_draws=1000, seed=5)
    b = random_entries(sample, r.trades, Costs(), n_draws=1000, seed=5)
    c = random_entries(sample, r.trades, Costs(), n_draws=1000, seed=6)
    assert a.shape == (1000,)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.std(a) > 0


def test_p_value_counts_draws_at_least_as_good_with_the_plus_one():
    dist = np.array([1.0, 2.0, 3.0, 4.0])
    assert p_value(3.0, dist) == pytest.approx(3 / 5)
    assert p_value(10.0, dist) == pytest.approx(1 / 5)
    assert p_value(-1.0, dist) == pytest.approx(1.0)
