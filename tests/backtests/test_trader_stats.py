"""The trader's statistics (CAGR, volatility, Calmar, exposure-adjusted return, longest flat
period, rolling Sharpe) against hand-computed values, intervals within their support, and the
report's stacked Bokeh panels checked on the model objects (no browser)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from backtests.analysis.catalog import BY_KEY
from backtests.analysis.performance import compute_stats, rolling_sharpe
from backtests.analysis.significance import mean_ci


def _trades(entries, exits, pnl) -> pd.DataFrame:
    return pd.DataFrame({"entry_time": entries, "exit_time": exits, "pnl_net": pnl,
                         "bars_held": [1] * len(pnl)})


def test_cagr_volatility_calmar_and_exposure_by_hand():
    # exactly two calendar years (730.5 days) from the first bar to the last
    idx = pd.DatetimeIndex(["2020-01-01 00:00", "2021-01-01 00:00", "2021-12-31 12:00"], tz="UTC")
    eq = pd.Series([100.0, 150.0, 121.0], index=idx)
    s = compute_stats(eq, _trades([idx[0]], [idx[2]], [21.0]), bars_per_year=4)
    assert s["cagr_pct"] == pytest.approx(10.0)                  # 1.21 ** (1/2) - 1
    # returns +50 % and -19.33 %: sd (ddof 1) = |difference| / sqrt(2); annualised by sqrt(4)
    assert s["volatility_ann_pct"] == pytest.approx(100 * (0.5 + 29 / 150) / math.sqrt(2) * 2)
    assert s["max_drawdown_pct"] == pytest.approx(-100 * 29 / 150)
    assert s["calmar"] == pytest.approx(10.0 / (100 * 29 / 150))
    assert s["exposure_pct"] == pytest.approx(200 / 3)             # bars 0 and 1 of 3
    assert s["exposure_adjusted_return_pct"] == pytest.approx(15.0)
    for key in ("cagr_pct", "volatility_ann_pct", "calmar", "exposure_adjusted_return_pct",
                "longest_flat_bars", "longest_flat"):
        assert key in BY_KEY


def test_longest_flat_period_counts_spells_without_a_new_high():
    idx = pd.date_range("2024-01-01", periods=5, freq="h", tz="UTC")
    eq = pd.Series([100.0, 100.0, 100.0, 110.0, 105.0], index=idx)
    s = compute_stats(eq, _trades([], [], []))
    # equal to the high is no new high: flat from bar 0 to bar 3; a drawdown only after bar 3
    assert (s["longest_flat_bars"], s["longest_flat"]) == (3, pd.Timedelta(hours=3))
    assert s["max_drawdown_duration_bars"] == 1
    assert math.isnan(s["exposure_adjusted_return_pct"])          # never in the market
    never = compute_stats(pd.Series([100.0, 99.0, 98.0], index=idx[:3]), _trades([], [], []))
    assert never["longest_flat_bars"] == 2                          # no new high at all
    flat = compute_stats(pd.Series([100.0, 100.0], index=idx[:2]), _trades([], [], []))
    assert math.isnan(flat["calmar"])                               # no drawdown


def test_rolling_sharpe_by_hand():
    idx = pd.date_range("2024-01-01", periods=6, freq="h", tz="UTC")
    values = np.array([100.0, 101.0, 100.5, 102.0, 101.0, 103.0])
    window, rs = rolling_sharpe(pd.Series(values, index=idx), bars_per_year=100, window=3)
    r = values[1:] / values[:-1] - 1
    assert window == 3 and rs.iloc[:3].isna().all()
    assert rs.iloc[3] == pytest.approx(r[:3].mean() / r[:3].std(ddof=1) * 10)
    assert rs.iloc[5] == pytest.approx(r[2:].mean() / r[2:].std(ddof=1) * 10)


def test_intervals_respect_their_support():
    counts = mean_ci([0.0, 0.0, 500.0], support=(0, None))
    assert counts["ci"][0] == 0.0 and counts["ci"][1] > 500 / 3
    assert mean_ci([0.0, 0.0, 500.0])["ci"][0] < 0                 # unclipped: below zero
    pct = mean_ci([99.0, 100.0, 60.0], support=(0, 100))
    assert pct["ci"][1] == 100.0 and pct["ci"][0] < pct["mean"]


# --- the report's panels, on the Bokeh model objects ---------------------------------------------

def _candles(n: int = 240) -> pd.DataFrame:
    """Hourly bars Monday to Friday: a weekend gap every 120 bars."""
    days = pd.bdate_range("2024-01-01", periods=n // 24 + 1, tz="UTC")
    idx = pd.DatetimeIndex([d + pd.Timedelta(hours=h) for d in days for h in range(24)])[:n]
    close = 1.1 + np.cumsum(np.random.default_rng(0).normal(0, 1e-4, n))
    return pd.DataFrame({"open": close, "high": close + 2e-4, "low": close - 2e-4,
                         "close": close}, index=idx)


def _fake_trades(candles: pd.DataFrame, k: int) -> pd.DataFrame:
    at = np.linspace(0, len(candles) - 3, k).astype(int)
    pnl = np.where(np.arange(k) % 2 == 0, 5.0, -3.0)
    return pd.DataFrame({"entry_time": candles.index[at], "exit_time": candles.index[at + 2],
                         "entry_price": candles["close"].to_numpy()[at],
                         "exit_price": candles["close"].to_numpy()[at + 2],
                         "direction": np.where(np.arange(k) % 3 == 0, -1, 1), "size": 1000.0,
                         "pnl_net": pnl, "pnl_gross": pnl + 1, "costs": 1.0, "bars_held": 2,
                         "exit_reason": "stop", "signal_bar": at})


def _ys(fig) -> list[np.ndarray]:
    return [np.asarray(r.data_source.data[r.glyph.y], float) for r in fig.renderers
            if hasattr(r.glyph, "y") and isinstance(r.glyph.y, str)]


def test_panels_align_legends_sit_outside_and_gaps_take_no_room():
    from bokeh.models import Legend

    from backtests.reports import figures as F

    candles = _candles()
    probs = pd.DataFrame({"p_none": .6, "p_buy": .3, "p_sell": .1}, index=candles.index)
    strategy = pd.Series(100_000 + np.linspace(0, 300, len(candles)), index=candles.index)
    hold = pd.Series(100_000 + np.linspace(0, 30_000, len(candles)), index=candles.index)
    price = F.price_figure(candles, _fake_trades(candles, 12))
    figs = {"price": price, "trades": F.trades_strip(candles, _fake_trades(candles, 12),
                                                      price.x_range),
            "probs": F.probs_figure(probs, price.x_range, 0.5),
            **F.equity_figures([("model", strategy), ("buy and hold", hold)], price.x_range,
                               axis=F.bar_axis(candles.index), cash=100_000)}
    assert set(figs) == {"price", "trades", "probs", "equity", "drawdown", "sharpe", "benchmark"}
    for name, fig in figs.items():
        assert fig.x_range is price.x_range, name                      # one x range
        assert (fig.min_border_left, fig.min_border_right, fig.toolbar_location) == \
            (F.MIN_BORDER_LEFT, F.MIN_BORDER_RIGHT, "right"), name      # the same frame width
        assert not [c for c in fig.center if isinstance(c, Legend)], name   # none over the bars
        assert len(fig.xaxis[0].formatter.args["ms"]) == len(candles), name  # dates on bars
    assert all(isinstance(x, Legend) for x in figs["price"].above if x is not figs["price"].title)
    first_ms = candles.index[0].timestamp() * 1000
    assert figs["price"].xaxis[0].formatter.args["ms"][0] == first_ms
    # times in another unit (pandas reads some files in µs) label the same dates
    again = F.equity_figures([("model", strategy.set_axis(strategy.index.as_unit("us")))])
    assert again["equity"].xaxis[0].formatter.args["ms"][0] == first_ms
    # bar-index axis: the probabilities run 0, 1, 2, ... across the weekend gaps
    line = next(r for r in figs["probs"].renderers if hasattr(r.glyph, "y"))
    assert np.array_equal(line.data_source.data["x"], np.arange(len(candles)))
    # the strategy fills its own panel: buy-and-hold (100 times its move) is on another one
    (ret,) = _ys(figs["equity"])
    assert ret.max() == pytest.approx(0.3) and ret.min() == pytest.approx(0.0)
    (bh,) = _ys(figs["benchmark"])
    assert bh.max() == pytest.approx(30.0)


def test_the_trades_layer_is_off_beyond_the_limit_and_summarised():
    from backtests.reports import figures as F

    candles = _candles()
    few = F.price_figure(candles, _fake_trades(candles, 5), max_trades=10)
    many = F.price_figure(candles, _fake_trades(candles, 40), max_trades=10)
    layered = [r for r in few.renderers if r.data_source.data.get("entry_x") is not None]
    assert layered and all(r.visible for r in layered)
    hidden = [r for r in many.renderers if r.data_source.data.get("entry_x") is not None]
    assert hidden and not any(r.visible for r in hidden) and "40 trades" in many.title.text
    strip = F.trades_strip(candles, _fake_trades(candles, 40), many.x_range)
    assert strip.title.text.startswith("Trades: 40 (26 long, 14 short), 50% won")


def test_table_numbers_never_use_scientific_notation():
    from backtests.analysis.catalog import format_value

    assert format_value(1250.0) == "1,250.00" and format_value(1250) == "1,250"
    assert format_value(2.353e-06) == "< 0.0001" and format_value(-8.7e-17) == "> -0.0001"
    assert format_value(0.0) == "0" and format_value(0.0001234) == "0.0001234"
    assert format_value(float("nan")) == "—" and format_value(0.41234) == "0.4123"
