"""Per-bar features. Every value at bar t is computed from bars <= t only.

Two named sets:
- ``article``: the 12 inputs of the MQL5 series, computed as MetaTrader 5 defines them;
- ``scaled``: scale-free price features (divided by ATR), bounded oscillators and cyclic time,
  so that one model can read any instrument and any price level.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ARTICLE_FEATURES = (
    "close_open", "high_open", "low_open", "volume_k", "month", "hour", "weekday",
    "rsi14", "cci14", "atr14", "macd", "macd_signal",
)
SCALED_FEATURES = (
    "body_atr", "upper_wick_atr", "lower_wick_atr", "range_atr", "ret1_atr", "ret5_atr",
    "pos_in_range20", "log_volume_rel", "rsi14_c", "cci14_s", "macd_atr", "macd_hist_atr",
    "log_atr_rel", "hour_sin", "hour_cos", "weekday_sin", "weekday_cos", "month_sin", "month_cos",
)
FEATURE_SETS = {"article": ARTICLE_FEATURES, "scaled": SCALED_FEATURES}
# Bars needed before the first complete row (the slowest indicator: MACD signal, 26 + 9 - 1).
WARMUP = 34


def rsi(close: pd.Series, n: int = 14) -> pd.Series:
    """Wilder's RSI as MT5's iRSI: first average is the simple mean of n changes, then smoothed."""
    delta = close.diff()
    gain, loss = delta.clip(lower=0.0), (-delta).clip(lower=0.0)
    avg_gain, avg_loss = wilder(gain, n), wilder(loss, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    out = out.where(avg_loss > 0, 100.0).where(avg_gain.notna())
    return out.where(~((avg_gain == 0) & (avg_loss == 0)), 50.0)


def wilder(x: pd.Series, n: int) -> pd.Series:
    values = x.to_numpy(dtype="float64")
    out = np.full(len(values), np.nan)
    if len(values) > n:
        avg = values[1:n + 1].mean()  # values[0] is the NaN of diff()
        out[n] = avg
        for i in range(n + 1, len(values)):
            avg = (avg * (n - 1) + values[i]) / n
            out[i] = avg
    return pd.Series(out, index=x.index)


def cci(high: pd.Series, low: pd.Series, close: pd.Series, n: int = 14) -> pd.Series:
    """Commodity Channel Index on the typical price: (TP - SMA) / (0.015 * mean |TP - SMA|)."""
    tp = (high + low + close) / 3.0
    sma = tp.rolling(n).mean()
    windows = np.lib.stride_tricks.sliding_window_view(tp.to_numpy(), n) if len(tp) >= n else None
    md = np.full(len(tp), np.nan)
    if windows is not None:
        md[n - 1:] = np.abs(windows - sma.to_numpy()[n - 1:, None]).mean(axis=1)
    md = pd.Series(md, index=tp.index)
    out = (tp - sma) / (0.015 * md)
    return out.where(md > 0, 0.0).where(sma.notna())


def true_range(high: pd.Series, low: pd.Series, close: pd.Series) -> pd.Series:
    prev = close.shift(1)
    tr = pd.concat([high - low, (high - prev).abs(), (low - prev).abs()], axis=1).max(axis=1)
    tr.iloc[0] = high.iloc[0] - low.iloc[0]
    return tr


def atr(high: pd.Series, low: pd.Series, close: pd.Series, n: int = 14) -> pd.Series:
    """ATR as MT5's iATR: a simple moving average of the true range."""
    return true_range(high, low, close).rolling(n).mean()


def ema(x: pd.Series, n: int) -> pd.Series:
    """Exponential average seeded with the first value (MT5's iMA MODE_EMA)."""
    return x.ewm(span=n, adjust=False).mean()


def macd(close: pd.Series, fast: int = 12, slow: int = 26, signal: int = 9):
    """MT5's iMACD: main = EMA(fast) - EMA(slow); signal = SMA(signal) of main (not an EMA)."""
    main = ema(close, fast) - ema(close, slow)
    main = main.where(np.arange(len(close)) >= slow - 1)  # before that the slow EMA is still a seed
    return main, main.rolling(signal).mean()


def compute_features(candles: pd.DataFrame, feature_set: str = "article") -> pd.DataFrame:
    """The named feature set for every bar; rows inside the warm-up hold NaN."""
    if feature_set not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {feature_set!r}; choose {', '.join(FEATURE_SETS)}")
    o, h, lo, c, v = (candles[k].astype("float64") for k in ("open", "high", "low", "close", "volume"))
    idx = candles.index
    a = atr(h, lo, c, 14)
    main, signal = macd(c)
    r = rsi(c, 14)
    cc = cci(h, lo, c, 14)
    if feature_set == "article":
        out = pd.DataFrame({
            "close_open": c - o, "high_open": h - o, "low_open": lo - o, "volume_k": v / 1000.0,
            "month": idx.month.astype("float64"), "hour": idx.hour.astype("float64"),
            "weekday": ((idx.day_of_week + 1) % 7).astype("float64"),  # MT5: Sunday = 0
            "rsi14": r, "cci14": cc, "atr14": a, "macd": main, "macd_signal": signal,
        }, index=idx)
    else:
        safe_atr = np.maximum(a, 1e-6 * c)
        hi20, lo20 = h.rolling(20).max(), lo.rolling(20).min()
        width = np.maximum(hi20 - lo20, 1e-6 * c)
        logv = np.log1p(v)
        tau = 2 * np.pi
        hour = idx.hour + idx.minute / 60.0
        out = pd.DataFrame({
            "body_atr": (c - o) / safe_atr,
            "upper_wick_atr": (h - np.maximum(o, c)) / safe_atr,
            "lower_wick_atr": (np.minimum(o, c) - lo) / safe_atr,
            "range_atr": (h - lo) / safe_atr,
            "ret1_atr": c.diff(1) / safe_atr,
            "ret5_atr": c.diff(5) / safe_atr,
            "pos_in_range20": (c - lo20) / width - 0.5,
            "log_volume_rel": logv - logv.rolling(20).mean(),
            "rsi14_c": r / 100.0 - 0.5,
            "cci14_s": np.tanh(cc / 200.0),
            "macd_atr": main / safe_atr,
            "macd_hist_atr": (main - signal) / safe_atr,
            "log_atr_rel": np.log(safe_atr / c),
            "hour_sin": np.sin(tau * hour / 24), "hour_cos": np.cos(tau * hour / 24),
            "weekday_sin": np.sin(tau * idx.day_of_week / 7), "weekday_cos": np.cos(tau * idx.day_of_week / 7),
            "month_sin": np.sin(tau * (idx.month - 1) / 12), "month_cos": np.cos(tau * (idx.month - 1) / 12),
        }, index=idx)
    out.iloc[:WARMUP] = np.nan
    return out.astype("float64")
