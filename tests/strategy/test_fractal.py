"""The fractal strategy on hand-made bars: signals, fills, stops, targets, time and opposite exits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtests.simulation import run_backtest
from strategy.fractal import Costs, FractalParams, signal_from_probs, signals_from_frame

FREE = Costs(spread=0.0)
FLAT = (1.0, 1.0005, 0.9995, 1.0)


def make_bars(rows: list[tuple[float, float, float, float]]) -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=len(rows), freq="h", tz="UTC", name="time")
    frame = pd.DataFrame(rows, index=index, columns=["open", "high", "low", "close"], dtype=float)
    frame["volume"] = 1.0
    return frame


def probs_for(candles: pd.DataFrame, signals: dict[int, int]) -> pd.DataFrame:
    p = np.tile([1.0, 0.0, 0.0], (len(candles), 1))
    for bar, sig in signals.items():
        p[bar] = [0.0, 1.0, 0.0] if sig > 0 else [0.0, 0.0, 1.0]
    return pd.DataFrame(p, index=candles.index, columns=["p_none", "p_buy", "p_sell"])


def long_setup(after: list[tuple[float, float, float, float]]) -> pd.DataFrame:
    """Bar 1 signals long: stop 0.999; entry at bar 2's open 1.000; risk 0.001, target 1.002."""
    return make_bars([FLAT, (1.0, 1.001, 0.999, 1.0), *after])


def test_signal_rule_threshold_argmax_and_nan():
    assert signal_from_probs(np.array([0.2, 0.5, 0.3]), 0.5) == 1
    assert signal_from_probs(np.array([0.2, 0.3, 0.5]), 0.5) == -1
    assert signal_from_probs(np.array([0.3, 0.45, 0.25]), 0.5) == 0   # below threshold
    assert signal_from_probs(np.array([0.5, 0.5, 0.0]), 0.5) == 0     # tie goes to none
    assert signal_from_probs(np.array([0.1, 0.45, 0.45]), 0.4) == 1   # buy before sell on a tie
    assert signal_from_probs(np.array([np.nan, 0.9, 0.1]), 0.5) == 0
    frame = pd.DataFrame([[0.2, 0.5, 0.3], [0.2, 0.3, 0.5], [0.3, 0.45, 0.25],
                          [np.nan, 0.9, 0.1]], columns=["p_none", "p_buy", "p_sell"])
    assert signals_from_frame(frame, 0.5).tolist() == [1, -1, 0, 0]


def test_params_reject_nonsense():
    with pytest.raises(ValueError):
        FractalParams(sizing="martingale")
    with pytest.raises(ValueError):
        FractalParams(max_hold=-1)
    with pytest.raises(ValueError):
        Costs(commission=-1)


def test_target_hit_at_k_times_risk_from_the_fill():
    c = long_setup([(1.0, 1.0015, 0.9995, 1.001), (1.001, 1.0025, 1.0005, 1.002), FLAT])
    r = run_backtest(c, probs_for(c, {1: 1}), FractalParams(), FREE)
    t = r.trades.iloc[0]
    assert (t.direction, t.entry_bar, t.exit_bar, t.exit_reason) == (1, 2, 3, "target")
    assert t.entry_price == pytest.approx(1.0)
    assert t.exit_price == pytest.approx(1.002)
    assert t.pnl_net == pytest.approx(20.0)
    assert t.signal_time < t.entry_time


def test_stop_hit_and_gap_through_stop_fills_at_open():
    c = long_setup([FLAT, (1.0, 1.0005, 0.998, 0.9985)])
    t = run_backtest(c, probs_for(c, {1: 1}), FractalParams(), FREE).trades.iloc[0]
    assert (t.exit_bar, t.exit_reason) == (3, "stop")
    assert t.exit_price == pytest.approx(0.999)
    gap = long_setup([FLAT, (0.9980, 0.9985, 0.9975, 0.998)])
    t = run_backtest(gap, probs_for(gap, {1: 1}), FractalParams(), FREE).trades.iloc[0]
    assert t.exit_reason == "stop"
    assert t.exit_price == pytest.approx(0.998)   # the open, worse than the stop


def test_stop_wins_when_stop_and_target_share_a_bar():
    c = long_setup([FLAT, (1.0, 1.003, 0.998, 1.0)])
    t = run_backtest(c, probs_for(c, {1: 1}), FractalParams(), FREE).trades.iloc[0]
    assert t.exit_reason == "stop"
    assert t.pnl_net == pytest.approx(-10.0)


def test_stop_active_in_entry_bar_unless_switched_off():
    c = long_setup([(1.0, 1.0005, 0.9985, 0.9995), FLAT, FLAT])
    t = run_backtest(c, probs_for(c, {1: 1}), FractalParams(), FREE).trades.iloc[0]
    assert (t.entry_bar, t.exit_bar, t.bars_held, t.exit_reason) == (2, 2, 0, "stop")
    late = run_backtest(c, probs_for(c, {1: 1}), FractalParams(stops_in_entry_bar=False), FREE)
    t = late.trades.iloc[0]
    assert t.exit_reason == "end"   # never touched again after the entry bar


def test_short_stop_and_target_mirror_the_long():
    c = make_bars([FLAT, (1.0, 1.001, 0.999, 1.0), FLAT, (0.999, 0.9995, 0.9975, 0.998), FLAT])
    t = run_backtest(c, probs_for(c, {1: -1}), FractalParams(), FREE).trades.iloc[0]
    # entry 1.000 at the bid, stop 1.001, risk 0.001 → target 0.998
    assert (t.direction, t.exit_reason) == (-1, "target")
    assert t.exit_price == pytest.approx(0.998)
    assert t.pnl_net == pytest.approx(20.0)


def test_max_hold_exits_at_the_open_after_max_hold_bars():
    c = long_setup([FLAT] * 8)
    t = run_backtest(c, probs_for(c, {1: 1}), FractalParams(max_hold=3), FREE).trades.iloc[0]
    assert (t.entry_bar, t.exit_bar, t.bars_held, t.exit_reason) == (2, 5, 3, "max_hold")
    assert t.exit_price == pytest.approx(c["open"].iloc[5])


def test_opposite_signal_exits_and_reverses():
    c = long_setup([FLAT, FLAT, FLAT, FLAT, FLAT])
    params = FractalParams(max_hold=0, stop_buffer=0.0002)   # FLAT bars never reach the stops
    r = run_backtest(c, probs_for(c, {1: 1, 3: -1}), params, FREE)
    first, second = r.trades.iloc[0], r.trades.iloc[1]
    assert (first.direction, first.exit_bar, first.exit_reason) == (1, 4, "opposite")
    assert (second.direction, second.entry_bar, second.exit_reason) == (-1, 4, "end")


def test_allow_short_false_sell_only_closes_a_long():
    c = long_setup([FLAT, FLAT, FLAT, FLAT, FLAT])
    params = FractalParams(max_hold=0, allow_short=False)
    r = run_backtest(c, probs_for(c, {1: 1, 3: -1, 5: -1}), params, FREE)
    assert len(r.trades) == 1
    assert r.trades.iloc[0].exit_reason == "opposite"
    sells = r.orders[r.orders["side"] == "sell"]
    assert sorted(sells["role"]) == ["exit", "stop", "target"]   # no short entry
    assert r.orders.loc[r.orders["role"] == "entry", "side"].tolist() == ["buy"]


def test_same_direction_signal_is_ignored_and_opposite_can_be_switched_off():
    c = long_setup([FLAT] * 5)
    params = FractalParams(max_hold=0, exit_on_opposite=False)
    r = run_backtest(c, probs_for(c, {1: 1, 2: 1, 3: -1}), params, FREE)
    assert len(r.trades) == 1
    assert r.trades.iloc[0].exit_reason == "end"
    assert (r.orders["role"] == "entry").sum() == 1


def test_take_profit_zero_places_no_target():
    c = long_setup([FLAT, (1.001, 1.01, 1.0005, 1.009), FLAT])
    r = run_backtest(c, probs_for(c, {1: 1}), FractalParams(take_profit_r=0), FREE)
    assert set(r.orders["role"]) == {"entry", "stop"}
    assert r.trades.iloc[0].exit_reason == "end"


def test_risk_sizing_loses_risk_fraction_at_the_stop():
    c = long_setup([FLAT, (1.0, 1.0005, 0.998, 0.9985)])
    params = FractalParams(sizing="risk", risk_fraction=0.01)
    t = run_backtest(c, probs_for(c, {1: 1}), params, FREE, cash=100_000).trades.iloc[0]
    assert t["size"] == pytest.approx(1_000_000)   # 1,000 at risk / 0.001 per unit
    assert t.pnl_net == pytest.approx(-1_000)


def test_risk_sizing_is_capped_by_leverage():
    c = make_bars([FLAT, (1.0, 1.00001, 0.99999, 1.0), FLAT, FLAT])
    params = FractalParams(sizing="risk", risk_fraction=0.01, max_leverage=10)
    t = run_backtest(c, probs_for(c, {1: 1}), params, FREE, cash=100_000).trades.iloc[0]
    assert t["size"] == pytest.approx(0.95 * 10 * 100_000)   # not 1,000 / 0.00001 = 1e8
