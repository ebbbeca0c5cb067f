"""Features: each indicator against an independent loop-by-loop calculation (as MT5 defines it)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from candle_helpers import candles

from data import FEATURE_SETS, compute_features
from data.features import WARMUP, atr, cci, macd, rsi

# 50 hand-made H1 candles: closes typed in, opens at the previous close (+ a few gaps),
# wicks and volumes from short hand-made cycles.
CLOSES = [
    100.0, 100.4, 100.1, 100.9, 101.5, 101.2, 100.8, 100.8, 101.6, 102.3,
    102.0, 101.1, 100.5, 100.9, 101.8, 102.6, 103.1, 102.7, 102.2, 102.9,
    103.8, 104.0, 103.2, 102.5, 101.9, 102.4, 103.0, 102.8, 101.7, 100.9,
    100.2, 100.6, 101.3, 101.0, 100.4, 99.8, 99.1, 99.6, 100.5, 101.2,
    101.9, 101.4, 100.7, 100.9, 101.8, 102.5, 102.1, 101.6, 102.2, 103.0,
]
GAPS = {0: -0.2, 11: 0.3, 24: -0.4, 37: 0.2}
UP_WICK = [0.3, 0.1, 0.5, 0.2, 0.4, 0.0, 0.6]
DOWN_WICK = [0.2, 0.4, 0.0, 0.3, 0.1, 0.5]
VOLUMES = [1200, 950, 1430, 800, 2210, 1675, 1010, 1890]


@pytest.fixture(scope="module")
def hand() -> pd.DataFrame:
    n = len(CLOSES)
    opens = [(CLOSES[i - 1] if i else CLOSES[0]) + GAPS.get(i, 0.0) for i in range(n)]
    highs = [max(o, c) + UP_WICK[i % 7] for i, (o, c) in enumerate(zip(opens, CLOSES, strict=True))]
    lows = [min(o, c) - DOWN_WICK[i % 6] for i, (o, c) in enumerate(zip(opens, CLOSES, strict=True))]
    index = pd.date_range("2024-03-29 19:00", periods=n, freq="h", tz="UTC", name="time")
    return pd.DataFrame({"open": opens, "high": highs, "low": lows, "close": CLOSES,
                         "volume": [float(VOLUMES[i % 8]) for i in range(n)]}, index=index)


# --- independent references: plain loops over lists ---------------------------------------------

def ref_rsi(close: list[float], n: int = 14) -> list[float]:
    """MT5 iRSI: simple average of the first n changes, then Wilder's smoothing."""
    out = [math.nan] * len(close)
    pos = neg = 0.0
    for i in range(1, len(close)):
        d = close[i] - close[i - 1]
        up, down = max(d, 0.0), max(-d, 0.0)
        if i <= n:
            pos += up / n
            neg += down / n
        else:
            pos = (pos * (n - 1) + up) / n
            neg = (neg * (n - 1) + down) / n
        if i >= n:
            out[i] = 100.0 - 100.0 / (1.0 + pos / neg) if neg else (100.0 if pos else 50.0)
    return out


def ref_cci(high, low, close, n: int = 14) -> list[float]:
    tp = [(h + lo + c) / 3.0 for h, lo, c in zip(high, low, close, strict=True)]
    out = [math.nan] * len(tp)
    for i in range(n - 1, len(tp)):
        window = tp[i - n + 1:i + 1]
        sma = sum(window) / n
        md = sum(abs(x - sma) for x in window) / n
        out[i] = (tp[i] - sma) / (0.015 * md) if md else 0.0
    return out


def ref_atr(high, low, close, n: int = 14) -> list[float]:
    """MT5 iATR: simple average of the true range; its first value is at bar n."""
    tr = [math.nan] + [max(high[i], close[i - 1]) - min(low[i], close[i - 1])
                       for i in range(1, len(close))]
    return [math.nan] * n + [sum(tr[i - n + 1:i + 1]) / n for i in range(n, len(close))]


def ref_ema(x: list[float], n: int) -> list[float]:
    k = 2.0 / (n + 1)
    out = [x[0]]
    for v in x[1:]:
        out.append(v * k + out[-1] * (1 - k))
    return out


def ref_macd(close: list[float]) -> tuple[list[float], list[float]]:
    """MT5 iMACD: EMA12 - EMA26 (both seeded at the first price), signal = SMA9 of main."""
    fast, slow = ref_ema(close, 12), ref_ema(close, 26)
    main = [f - s for f, s in zip(fast, slow, strict=True)]
    signal = [math.nan] * len(close)
    for i in range(25 + 8, len(close)):
        signal[i] = sum(main[i - 8:i + 1]) / 9
    return main, signal


def assert_close_from(actual, expected, first: int, rtol: float = 1e-10) -> None:
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    np.testing.assert_allclose(actual[first:], expected[first:], rtol=rtol, atol=1e-12)


# --- the indicators against the references ------------------------------------------------------

def test_rsi_matches_mt5_wilder(hand):
    got = rsi(hand["close"])
    want = ref_rsi(CLOSES)
    assert got.iloc[:14].isna().all()
    assert_close_from(got, want, 14)


def test_cci_matches_mean_absolute_deviation(hand):
    got = cci(hand["high"], hand["low"], hand["close"])
    want = ref_cci(list(hand["high"]), list(hand["low"]), CLOSES)
    assert got.iloc[:13].isna().all()
    assert_close_from(got, want, 13)


def test_atr_is_a_simple_average_of_true_range(hand):
    got = atr(hand["high"], hand["low"], hand["close"])
    want = ref_atr(list(hand["high"]), list(hand["low"]), CLOSES)
    assert_close_from(got, want, 14)


def test_macd_main_and_sma_signal(hand):
    main, signal = macd(hand["close"])
    want_main, want_signal = ref_macd(CLOSES)
    assert_close_from(main, want_main, 25)
    assert main.iloc[:25].isna().all()
    assert_close_from(signal, want_signal, 33)
    assert signal.iloc[:33].isna().all()


def test_article_set_after_warm_up_matches_references(hand):
    f = compute_features(hand, "article")
    assert list(f.columns) == list(FEATURE_SETS["article"])
    assert f.iloc[:WARMUP].isna().all().all()
    assert np.isfinite(f.iloc[WARMUP:].to_numpy()).all()
    rows = slice(WARMUP, None)
    main, signal = ref_macd(CLOSES)
    want = {
        "close_open": (hand["close"] - hand["open"]).to_numpy(),
        "high_open": (hand["high"] - hand["open"]).to_numpy(),
        "low_open": (hand["low"] - hand["open"]).to_numpy(),
        "volume_k": [VOLUMES[i % 8] / 1000 for i in range(len(CLOSES))],
        "rsi14": ref_rsi(CLOSES),
        "cci14": ref_cci(list(hand["high"]), list(hand["low"]), CLOSES),
        "atr14": ref_atr(list(hand["high"]), list(hand["low"]), CLOSES),
        "macd": main, "macd_signal": signal,
    }
    for name, values in want.items():
        np.testing.assert_allclose(f[name].to_numpy()[rows], np.asarray(values, float)[rows],
                                   rtol=1e-10, atol=1e-12, err_msg=name)


def test_time_fields_month_hour_and_sunday_is_zero():
    stamps = ["2024-03-31 05:00", "2024-04-01 00:00", "2024-04-06 13:00", "2024-04-07 23:00",
              "2024-12-31 22:00", "2025-01-01 09:30", "2025-01-03 17:00"]
    warm = pd.date_range("2024-03-29 19:00", periods=WARMUP, freq="h", tz="UTC")
    frame = candles(WARMUP + len(stamps))
    frame.index = warm.append(pd.DatetimeIndex(stamps, tz="UTC"))
    f = compute_features(frame, "article").iloc[WARMUP:]
    # Sun, Mon, Sat, Sun, Tue, Wed, Fri as MT5 numbers them (Sunday 0 … Saturday 6)
    assert f["weekday"].tolist() == [0, 1, 6, 0, 2, 3, 5]
    assert f["hour"].tolist() == [5, 0, 13, 23, 22, 9, 17]
    assert f["month"].tolist() == [3, 4, 4, 4, 12, 1, 1]
    g = compute_features(frame, "scaled").iloc[WARMUP:]
    # the cyclic weekday counts from Monday (any origin gives the same circle)
    np.testing.assert_allclose(g[["weekday_sin", "weekday_cos"]].iloc[1], [0.0, 1.0], atol=1e-15)
    np.testing.assert_allclose(g["weekday_cos"].iloc[2], math.cos(2 * math.pi * 5 / 7))  # Sat
    np.testing.assert_allclose(g["hour_sin"].iloc[5], math.sin(2 * math.pi * 9.5 / 24))
    np.testing.assert_allclose(g["month_cos"].iloc[5], 1.0)  # January


# --- hand-computed values -----------------------------------------------------------------------

def test_rsi_by_hand():
    # changes +1, -0.5, +1; n=2: first averages (1+0)/2, (0+0.5)/2 → RS 2 → 66.67;
    # then gain (0.5+1)/2 = 0.75, loss (0.25+0)/2 = 0.125 → RS 6 → 100 - 100/7
    got = rsi(pd.Series([10.0, 11.0, 10.5, 11.5]), n=2).tolist()
    assert math.isnan(got[0]) and math.isnan(got[1])
    assert got[2] == pytest.approx(200 / 3, rel=1e-12)
    assert got[3] == pytest.approx(100 - 100 / 7, rel=1e-12)


def test_rsi_edges_all_up_and_flat():
    assert rsi(pd.Series(np.arange(1.0, 21.0))).iloc[14:].eq(100.0).all()
    assert rsi(pd.Series(np.full(20, 1.1))).iloc[14:].eq(50.0).all()


def test_cci_by_hand():
    # typical prices 1, 2, 3 → SMA 2, mean |dev| 2/3 → (3 - 2) / (0.015 * 2/3) = 100
    s = pd.Series([1.0, 2.0, 3.0])
    assert cci(s, s, s, n=3).iloc[2] == pytest.approx(100.0, rel=1e-12)
    flat = pd.Series([5.0] * 4)
    assert cci(flat, flat, flat, n=3).iloc[2:].eq(0.0).all()


def test_atr_by_hand():
    h = pd.Series([10.0, 11.0, 12.0, 11.0])
    lo = pd.Series([8.0, 9.0, 10.0, 9.0])
    c = pd.Series([9.0, 10.0, 11.5, 9.5])
    # true ranges from bar 1: 2, 2, max(11, 11.5) - min(9, 11.5) = 2.5
    got = atr(h, lo, c, n=2)
    assert got.iloc[2] == pytest.approx(2.0) and got.iloc[3] == pytest.approx(2.25)


def test_macd_by_hand():
    # EMA2 (k=2/3): 1, 5/3, 23/9, 95/27; EMA3 (k=1/2): 1, 3/2, 9/4, 25/8
    main, signal = macd(pd.Series([1.0, 2.0, 3.0, 4.0]), fast=2, slow=3, signal=2)
    assert main.iloc[:2].isna().all()
    assert main.iloc[2] == pytest.approx(11 / 36, rel=1e-12)
    assert main.iloc[3] == pytest.approx(85 / 216, rel=1e-12)
    assert signal.iloc[3] == pytest.approx(151 / 432, rel=1e-12)


# --- the scaled set -----------------------------------------------------------------------------

def test_scaled_set_is_finite_after_warm_up(eurusd):
    f = compute_features(eurusd, "scaled")
    assert list(f.columns) == list(FEATURE_SETS["scaled"])
    assert f.iloc[:WARMUP].isna().all().all()
    assert np.isfinite(f.iloc[WARMUP:].to_numpy()).all()
    assert f["rsi14_c"].iloc[WARMUP:].between(-0.5, 0.5).all()
    assert f["cci14_s"].iloc[WARMUP:].abs().le(1.0).all()
    assert f["hour_sin"].iloc[WARMUP:].abs().le(1.0).all()


def test_scaled_set_is_finite_on_flat_and_zero_volume_bars():
    frame = candles(80)
    frame.iloc[40:60, :4] = 1.1  # twenty identical bars: ATR 0, range 0
    frame["volume"] = 0.0
    f = compute_features(frame, "scaled")
    assert np.isfinite(f.iloc[WARMUP:].to_numpy()).all()


EXACT = ["log_volume_rel", "hour_sin", "hour_cos", "weekday_sin", "weekday_cos", "month_sin",
         "month_cos"]


def test_scaled_set_does_not_change_when_prices_are_multiplied(eurusd):
    base = eurusd.iloc[:1500]
    f = compute_features(base, "scaled").iloc[WARMUP:]
    scaled = base.copy()
    scaled[["open", "high", "low", "close"]] *= 100.0
    g = compute_features(scaled, "scaled").iloc[WARMUP:]
    # price-derived features: equal up to rounding of the multiplication
    np.testing.assert_allclose(g.to_numpy(), f.to_numpy(), rtol=0, atol=1e-9)
    # volume and calendar features never see a price: bit-for-bit equal
    pd.testing.assert_frame_equal(g[EXACT], f[EXACT])
    # a power of two scales every intermediate exactly, so then everything is bit-for-bit
    doubled = base.copy()
    doubled[["open", "high", "low", "close"]] *= 2.0
    pd.testing.assert_frame_equal(compute_features(doubled, "scaled").iloc[WARMUP:], f)


def test_article_set_is_not_scale_free_but_oscillators_are(eurusd):
    base = eurusd.iloc[:600]
    scaled = base.copy()
    scaled[["open", "high", "low", "close"]] *= 100.0
    f, g = compute_features(base).iloc[WARMUP:], compute_features(scaled).iloc[WARMUP:]
    np.testing.assert_allclose(g["close_open"], 100 * f["close_open"], rtol=1e-9)
    np.testing.assert_allclose(g["atr14"], 100 * f["atr14"], rtol=1e-9)
    np.testing.assert_allclose(g["rsi14"], f["rsi14"], rtol=1e-9)
    np.testing.assert_allclose(g["cci14"], f["cci14"], rtol=1e-7)


def test_unknown_feature_set(hand):
    with pytest.raises(ValueError, match="unknown feature set"):
        compute_features(hand, "nope")
