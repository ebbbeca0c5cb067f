"""The searchable rules on hand-made bars, on backtrader (the engine of record): ATR and pip stops,
ATR targets, trailing stops, entry filters and Kelly sizing; and the rules' text forms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtests.simulation import run_backtest
from strategy.fractal import Costs, FractalParams
from strategy.rules import hour_mask, parse_hours, parse_rule

FREE = Costs(spread=0.0)
FLAT = (1.0, 1.0005, 0.9995, 1.0)        # true range 0.001 → ATR 0.001


def bars(rows, start="2024-01-01 00:00"):
    index = pd.date_range(start, periods=len(rows), freq="h", tz="UTC", name="time")
    frame = pd.DataFrame(rows, index=index, columns=["open", "high", "low", "close"], dtype=float)
    frame["volume"] = 1.0
    return frame


def probs(candles, signals, p=None):
    out = np.tile([1.0, 0.0, 0.0], (len(candles), 1))
    for bar, sig in signals.items():
        out[bar] = p if p is not None else ([0.0, 1.0, 0.0] if sig > 0 else [0.0, 0.0, 1.0])
    return pd.DataFrame(out, index=candles.index, columns=["p_none", "p_buy", "p_sell"])


def stop_price(result):
    o = result.orders
    return float(o.loc[o["role"] == "stop", "order_price"].iloc[0])


def target_price(result):
    o = result.orders
    return float(o.loc[o["role"] == "target", "order_price"].iloc[0])


def test_atr_and_pip_stops_sit_that_far_from_the_expected_fill():
    c = bars([FLAT] * 8)
    base = dict(atr_period=3, max_hold=0)
    r = run_backtest(c, probs(c, {4: 1}), FractalParams(stop="atr:2", **base), FREE)
    assert stop_price(r) == pytest.approx(1.0 - 2 * 0.001)
    r = run_backtest(c, probs(c, {4: -1}), FractalParams(stop="pips:15", **base), FREE)
    assert stop_price(r) == pytest.approx(1.0 + 15 * 0.0001)
    spread = Costs(spread=0.0002)    # a long's reference is the ask close
    r = run_backtest(c, probs(c, {4: 1}), FractalParams(stop="pips:15", **base), spread)
    assert stop_price(r) == pytest.approx(1.0002 - 0.0015)


def test_an_atr_rule_in_the_warm_up_skips_the_entry():
    c = bars([FLAT] * 8)
    r = run_backtest(c, probs(c, {1: 1}), FractalParams(stop="atr:2", atr_period=3), FREE)
    assert len(r.trades) == 0 and len(r.orders) == 0


def test_atr_target_replaces_the_r_target():
    c = bars([FLAT] * 5 + [(1.0, 1.0035, 1.0, 1.003), FLAT])
    params = FractalParams(atr_period=3, take_profit_atr=3.0, take_profit_r=2.0)
    r = run_backtest(c, probs(c, {4: 1}), params, FREE)
    t = r.trades.iloc[0]
    assert target_price(r) == pytest.approx(1.0 + 0.003)
    assert (t.exit_reason, t.exit_price) == ("target", pytest.approx(1.003))


def test_trailing_stop_follows_the_close_and_never_loosens():
    rising = [(1.0 + k * 0.001, 1.0005 + k * 0.001, 0.9999 + k * 0.001, 1.001 + k * 0.001)
              for k in range(3)]
    c = bars([FLAT, (1.0, 1.001, 0.999, 1.0), *rising, (1.0025, 1.003, 1.0015, 1.002), FLAT])
    params = FractalParams(trail="r:1", take_profit_r=0, max_hold=0)
    r = run_backtest(c, probs(c, {1: 1}), params, FREE)
    t = r.trades.iloc[0]
    # entry 1.000, stop 0.999 (risk 0.001); closes 1.001, 1.002, 1.003 lift it to 1.002;
    # the next bar dips to 1.0015: stopped at 1.002
    assert (t.exit_bar, t.exit_reason) == (5, "stop")
    assert t.exit_price == pytest.approx(1.002)
    short = run_backtest(c, probs(c, {1: -1}), FractalParams(trail="r:1", take_profit_r=0,
                                                              max_hold=0), FREE)
    t = short.trades.iloc[0]     # a loosened stop (1.002) would not be touched at bar 3
    assert (t.exit_bar, t.exit_reason, t.exit_price) == (3, "stop", pytest.approx(1.001))


def test_hours_filter_reads_the_signal_bars_utc_hour():
    c = bars([FLAT] * 12)                         # bars at 00:00 … 11:00 UTC
    for hours, traded in (("7-17", False), ("3-5", True), ("22-6", True), ("5-3", False)):
        r = run_backtest(c, probs(c, {4: 1}), FractalParams(hours=hours, max_hold=2), FREE)
        assert (len(r.trades) > 0) == traded, hours


def test_margin_and_stop_distance_filters():
    c = bars([FLAT, (1.0, 1.001, 0.999, 1.0), FLAT, FLAT, FLAT])
    p = [0.3, 0.45, 0.25]
    r = run_backtest(c, probs(c, {1: 1}, p), FractalParams(threshold=0.4, min_margin=0.2), FREE)
    assert len(r.trades) == 0
    r = run_backtest(c, probs(c, {1: 1}, p), FractalParams(threshold=0.4, min_margin=0.1), FREE)
    assert len(r.trades) == 1
    wide = Costs(spread=0.0005)                 # stop distance 1.0005 − 0.999 = 3 spreads
    assert len(run_backtest(c, probs(c, {1: 1}), FractalParams(min_stop_spreads=4), wide)
               .trades) == 0
    assert len(run_backtest(c, probs(c, {1: 1}), FractalParams(min_stop_spreads=2), wide)
               .trades) == 1


def test_kelly_sizing_scales_with_the_probability_and_is_capped():
    c = bars([FLAT, (1.0, 1.001, 0.999, 1.0), FLAT, FLAT])
    # p = 0.4, b = 2: f* = 0.4 − 0.6 / 2 = 0.1; half Kelly 0.05 of equity at risk, stop 0.01 away
    params = FractalParams(sizing="kelly", kelly_fraction=0.5, risk_fraction=0.1, threshold=0.3,
                           stop_buffer=0.009, take_profit_r=2.0)
    r = run_backtest(c, probs(c, {1: 1}, [0.35, 0.4, 0.25]), params, FREE)
    assert r.trades.iloc[0]["size"] == pytest.approx(0.05 * 100_000 / 0.01)
    capped = FractalParams(sizing="kelly", kelly_fraction=0.5, risk_fraction=0.01,
                           threshold=0.3, stop_buffer=0.009, take_profit_r=2.0)
    r = run_backtest(c, probs(c, {1: 1}, [0.35, 0.4, 0.25]), capped, FREE)
    assert r.trades.iloc[0]["size"] == pytest.approx(0.01 * 100_000 / 0.01)
    no_edge = FractalParams(sizing="kelly", threshold=0.3, take_profit_r=1.0)   # f* < 0
    assert len(run_backtest(c, probs(c, {1: 1}, [0.3, 0.36, 0.34]), no_edge, FREE).trades) == 0


def test_rule_text_forms_and_errors():
    assert parse_rule("bar", ("bar", "atr", "pips"), "stop") == ("bar", 0.0)
    assert parse_rule("atr:1.5", ("bar", "atr", "pips"), "stop") == ("atr", 1.5)
    for bad in ("atr", "atr:", "atr:-1", "atr:nan", "atr:x", "foo:1", "r:1"):
        with pytest.raises(ValueError, match="stop"):
            parse_rule(bad, ("bar", "atr", "pips"), "stop")
    assert parse_hours("") is None and parse_hours("22-6") == (22, 6)
    for bad in ("7", "7-7", "25-3", "a-b", "7-17-1"):
        with pytest.raises(ValueError, match="hours"):
            parse_hours(bad)
    index = pd.date_range("2024-01-01", periods=24, freq="h", tz="UTC")
    assert hour_mask(index, (22, 6)).sum() == 8
    assert hour_mask(index.tz_convert("Asia/Tokyo"), (7, 17)).tolist() == hour_mask(
        index, (7, 17)).tolist()
    for bad in (dict(stop="atr:0"), dict(trail="bar"), dict(hours="x"), dict(min_margin=2),
                dict(kelly_fraction=0), dict(atr_period=0), dict(pip=0)):
        with pytest.raises(ValueError):
            FractalParams(**bad)


@pytest.mark.slow   # a few seconds: runs in `make test`, not in the fast subset
@pytest.mark.parametrize("engine", ["backtrader", "compiled"])
def test_no_rule_looks_ahead_truncating_after_bar_t_changes_nothing_up_to_t(engine):
    """ATR stops and targets, trailing stops, filters and Kelly sizing read bars ≤ t only: the
    equity up to t and every trade closed by t are the same with the future cut off."""
    from strategy.engine import simulate
    from strategy.fast import simulate_fast

    rng = np.random.default_rng(8)
    n = 400
    close = 1.1 + np.cumsum(rng.normal(0, 0.0008, n))
    open_ = np.r_[1.1, close[:-1]]
    c = bars(np.c_[open_, np.maximum(open_, close) + 0.0003, np.minimum(open_, close) - 0.0003,
                   close].tolist())
    p = pd.DataFrame(rng.dirichlet([2, 1, 1], n), index=c.index,
                     columns=["p_none", "p_buy", "p_sell"])
    params = FractalParams(stop="atr:1.5", take_profit_atr=2.0, trail="atr:1", hours="2-22",
                           min_margin=0.05, min_stop_spreads=1.0, sizing="kelly",
                           risk_fraction=0.02, threshold=0.4, atr_period=10)
    costs = Costs(spread=0.0001, commission=0.00003)

    def run(frame):
        if engine == "backtrader":
            r = simulate(frame, p.loc[frame.index], params, costs, finalize=False)
            return r.trades, r.equity
        return simulate_fast(frame, p.loc[frame.index], params, costs, finalize=False)

    full_trades, full_equity = run(c)
    assert len(full_trades) > 10
    for t in (120, 250, 333):
        trades, equity = run(c.iloc[:t + 1])
        pd.testing.assert_series_equal(equity, full_equity.iloc[:t + 1], check_exact=True,
                                       check_freq=False)
        closed = full_trades[full_trades["exit_bar"] <= t].reset_index(drop=True)
        pd.testing.assert_frame_equal(trades.reset_index(drop=True), closed, check_exact=True)
