"""compute_stats against values worked out by hand on tiny series."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest

from backtests.analysis.performance import compute_stats, infer_bars_per_year

H = pd.Timedelta(hours=1)


def hourly(values: list[float]) -> pd.Series:
    return pd.Series(values, index=pd.date_range("2024-01-01", periods=len(values), freq="h",
                                                 tz="UTC"), dtype=float)


def trades_frame(equity: pd.Series, spans: list[tuple[int, int]], pnl: list[float]) -> pd.DataFrame:
    idx = equity.index
    return pd.DataFrame({"entry_time": [idx[a] for a, _ in spans],
                         "exit_time": [idx[b] for _, b in spans],
                         "bars_held": [b - a for a, b in spans], "pnl_net": pnl})


def test_hand_computed_statistics():
    eq = hourly([100, 110, 99, 121])
    trades = trades_frame(eq, [(0, 1), (1, 3), (3, 3), (3, 3)], [10, -5, 20, -5])
    s = compute_stats(eq, trades, bars_per_year=4)
    r = [0.1, -0.1, 22 / 99]
    mean = sum(r) / 3
    assert s["bars"] == 4
    assert s["start"] == eq.index[0] and s["end"] == eq.index[-1]
    assert s["final_equity"] == 121
    assert s["total_return_pct"] == pytest.approx(21.0)
    assert s["annual_return_pct"] == pytest.approx(100 * (1.21 ** (4 / 3) - 1))
    assert s["max_drawdown_pct"] == pytest.approx(-10.0)
    assert s["max_drawdown_duration_bars"] == 2
    assert s["max_drawdown_duration"] == 2 * H
    assert s["sharpe"] == pytest.approx(mean / statistics.stdev(r) * 2)
    assert s["sortino"] == pytest.approx(mean / math.sqrt(0.01 / 3) * 2)
    assert s["exposure_pct"] == pytest.approx(100.0)   # bars 0,1,2 and bar 3 (in and out in it)
    assert s["n_trades"] == 4
    assert s["win_rate_pct"] == pytest.approx(50.0)
    assert s["profit_factor"] == pytest.approx(3.0)
    assert s["expectancy"] == pytest.approx(5.0)
    assert s["avg_win"] == pytest.approx(15.0)
    assert s["avg_loss"] == pytest.approx(-5.0)
    assert s["best_trade"] == 20 and s["worst_trade"] == -5
    assert s["avg_holding_bars"] == pytest.approx(0.75)
    assert s["sqn"] == pytest.approx(2 * 5 / math.sqrt(150))


def test_exposure_counts_entry_to_exit_bars():
    eq = hourly([100] * 10)
    s = compute_stats(eq, trades_frame(eq, [(1, 4), (6, 7)], [1, 1]), bars_per_year=10)
    assert s["exposure_pct"] == pytest.approx(40.0)   # bars 1,2,3 and 6


def test_no_trades_gives_nan_not_a_crash():
    s = compute_stats(hourly([100, 100, 100]), pd.DataFrame(columns=["pnl_net", "bars_held"]),
                      bars_per_year=10)
    assert s["n_trades"] == 0
    for key in ("win_rate_pct", "profit_factor", "expectancy", "avg_win", "avg_loss", "sqn",
                "sharpe", "sortino", "best_trade"):
        assert math.isnan(s[key]), key
    assert s["total_return_pct"] == 0
    assert s["max_drawdown_pct"] == 0
    assert s["max_drawdown_duration_bars"] == 0
    assert s["exposure_pct"] == 0


def test_no_losing_trade_gives_infinite_profit_factor_and_one_trade_no_sqn():
    eq = hourly([100, 105, 110])
    s = compute_stats(eq, trades_frame(eq, [(0, 2)], [10.0]), bars_per_year=10)
    assert s["profit_factor"] == math.inf
    assert s["win_rate_pct"] == 100
    assert math.isnan(s["avg_loss"])
    assert math.isnan(s["sqn"])
    assert math.isnan(s["sortino"])   # no down bar


def test_unrecovered_drawdown_lasts_to_the_last_bar():
    eq = hourly([100, 120, 90, 100, 110, 130, 125, 126])
    s = compute_stats(eq, pd.DataFrame(columns=["pnl_net", "bars_held"]), bars_per_year=10)
    assert s["max_drawdown_pct"] == pytest.approx(-25.0)
    assert s["max_drawdown_duration_bars"] == 4   # 120 at bar 1, regained at bar 5
    eq = hourly([100, 120, 119, 118, 117, 116, 130])
    assert compute_stats(eq, pd.DataFrame(columns=["pnl_net"]),
                         bars_per_year=10)["max_drawdown_duration_bars"] == 5
    eq = hourly([100, 120, 119, 118, 117, 116, 115])
    s = compute_stats(eq, pd.DataFrame(columns=["pnl_net"]), bars_per_year=10)
    assert s["max_drawdown_duration_bars"] == 5
    assert s["max_drawdown_duration"] == 5 * H


def test_bars_per_year_inferred_from_the_index():
    fx = pd.date_range("2024-01-01", "2024-03-31", freq="h", tz="UTC")
    fx = fx[fx.day_of_week < 5]   # 24 × 5 bars a week
    assert infer_bars_per_year(fx) == pytest.approx(120 * 365.25 / 7)
    daily = pd.bdate_range("2019-01-01", "2023-12-31", tz="UTC")
    assert infer_bars_per_year(daily) == 261   # median of 2020-2022 (262, 261, 260)
    s = compute_stats(pd.Series(np.linspace(100, 110, len(fx)), index=fx),
                      pd.DataFrame(columns=["pnl_net"]))
    assert s["bars_per_year"] == pytest.approx(6261.43, abs=0.01)


def test_leverage_used_is_notional_over_equity_at_the_signal_bar():
    """Leverage by hand: size × entry price (× the quote→account rate) / equity at the signal
    bar; a warning above HIGH_LEVERAGE, and above the cap (which fixed sizing does not obey)."""
    from backtests.analysis.performance import HIGH_LEVERAGE, leverage_used
    from strategy.fractal import FractalParams

    equity = hourly([100_000.0, 100_000.0, 50_000.0, 50_000.0])
    t = equity.index
    trades = pd.DataFrame({"signal_time": [t[0], t[2]], "entry_time": [t[1], t[3]],
                           "size": [200_000.0, 400_000.0], "entry_price": [1.25, 1.25]})
    risk = FractalParams(sizing="risk", max_leverage=30.0)
    lev = leverage_used(trades, equity, risk)
    assert lev["max"] == pytest.approx(10.0) and lev["median"] == pytest.approx(6.25)
    assert lev["n_high"] == 1 and lev["n_over_cap"] == 0 and lev["at"] == t[3]
    assert lev["warning"].startswith("leverage reached 10.0× (median 6.2×")
    low = leverage_used(trades.assign(size=[1_000.0, 1_000.0]), equity, risk)
    assert low["max"] < HIGH_LEVERAGE and low["warning"] is None
    over = leverage_used(trades, equity, FractalParams(max_leverage=8.0))     # fixed sizing
    assert over["n_over_cap"] == 1 and "fixed sizing is not capped" in over["warning"]
    # USD/JPY-like, P&L converted at 1 / close: the notional in account money is the size
    rates = pd.Series(1 / 125.0, index=t)
    jpy = leverage_used(trades.assign(entry_price=125.0), equity, risk, rates)
    assert jpy["max"] == pytest.approx(8.0)
    none = leverage_used(trades.iloc[:0], equity, risk)
    assert none["max"] is None and none["warning"] is None
