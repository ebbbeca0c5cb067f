"""Per-bar features. Every value at bar t is computed from bars <= t only.

A feature set is one part or several joined by ``+`` (``scaled+time+mtf``):
- ``article``: the 12 inputs of the MQL5 series, computed as MetaTrader 5 defines them;
- ``scaled``: scale-free price features (divided by ATR), bounded oscillators and cyclic time,
  so that one model can read any instrument and any price level;
- ``time``, ``spread``, ``atr``, ``shape``, ``volz``, ``mtf[:P...]``: context parts (``data.context``).

Parts are put in one canonical order (``PARTS``), so ``mtf+scaled`` is ``scaled+mtf``; a part given
twice is refused. A column name means one computation whichever part holds it, so a column two
parts share (``scaled`` and ``time`` both hold ``hour_sin``) appears once, where it first comes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from data import context

ARTICLE_FEATURES = (
    "close_open", "high_open", "low_open", "volume_k", "month", "hour", "weekday",
    "rsi14", "cci14", "atr14", "macd", "macd_signal",
)
SCALED_FEATURES = (
    "body_atr", "upper_wick_atr", "lower_wick_atr", "range_atr", "ret1_atr", "ret5_atr",
    "pos_in_range20", "log_volume_rel", "rsi14_c", "cci14_s", "macd_atr", "macd_hist_atr",
    "log_atr_rel", "hour_sin", "hour_cos", "weekday_sin", "weekday_cos", "month_sin", "month_cos",
)
# Every part, alone; ``mtf`` with its default periods (``mtf:1h:4h`` picks others).
FEATURE_SETS = {"article": ARTICLE_FEATURES, "scaled": SCALED_FEATURES,
                "time": context.TIME_FEATURES, "spread": context.SPREAD_FEATURES,
                "atr": context.ATR_FEATURES, "shape": context.SHAPE_FEATURES,
                "volz": context.VOLZ_FEATURES,
                "mtf": context.mtf_names(context.MTF_DEFAULT)}
PARTS = tuple(FEATURE_SETS)
PARTS_HELP = ("article, scaled, time, spread, atr, shape, volz, mtf or mtf:P[:P...] "
              "(periods such as 1h, 4h, 1d), joined by + (e.g. scaled+time+mtf)")
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


def parse_feature_set(text: str) -> tuple[str, ...]:
    """The parts of a feature set in canonical order (``mtf`` with its periods spelled out:
    ``mtf:4h:1d``). ValueError naming the bad part and the parts there are."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"feature set is empty; give {PARTS_HELP}")
    seen: dict[str, str] = {}
    for raw in text.split("+"):
        part = raw.strip()
        name, _, args = part.partition(":")
        if name not in FEATURE_SETS or (":" in part and (name != "mtf" or not args)):
            raise ValueError(f"unknown feature set part {part!r} in {text!r}; parts are {PARTS_HELP}")
        if name in seen:
            raise ValueError(f"feature part {name!r} is given twice in {text!r}; give each once")
        if name == "mtf":
            periods = tuple(args.split(":")) if args else context.MTF_DEFAULT
            sizes = [context.period_ns(p) for p in periods]
            if len(set(sizes)) != len(sizes):
                raise ValueError(f"mtf periods repeat in {part!r}; give each period once")
            order = sorted(range(len(sizes)), key=sizes.__getitem__)
            part = "mtf:" + ":".join(context.period_spelling(periods[i]) for i in order)
        seen[name] = part
    return tuple(seen[name] for name in PARTS if name in seen)


def _part_columns(part: str) -> tuple[str, ...]:
    name, _, args = part.partition(":")
    return context.mtf_names(tuple(args.split(":"))) if name == "mtf" else FEATURE_SETS[name]


def canonical_feature_set(text: str) -> str:
    """The one spelling of a feature set: canonical part order, ``mtf`` with its default
    periods written as plain ``mtf``, and no part whose columns the other parts already hold
    (``scaled+time`` is ``scaled``: the same columns, so the same model and the same config id,
    and a search over both is one trial, not two)."""
    default = "mtf:" + ":".join(context.MTF_DEFAULT)
    parts = list(parse_feature_set(text))
    for part in list(parts):
        others = {c for p in parts if p != part for c in _part_columns(p)}
        if len(parts) > 1 and set(_part_columns(part)) <= others:
            parts.remove(part)
    return "+".join("mtf" if p == default else p for p in parts)


def feature_names(feature_set: str) -> tuple[str, ...]:
    """The columns of a feature set: its parts' columns in order, each name once."""
    names: dict[str, None] = {}
    for part in parse_feature_set(feature_set):
        names.update(dict.fromkeys(_part_columns(part)))
    return tuple(names)


def compute_features(candles: pd.DataFrame, feature_set: str = "article") -> pd.DataFrame:
    """The feature set's columns for every bar; rows inside the warm-up hold NaN (and ``mtf``
    columns until a higher-timeframe candle has closed)."""
    parts = parse_feature_set(feature_set)
    frames = []
    for part in parts:
        name, _, args = part.partition(":")
        frames.append(_part(candles, name, args))
    out = pd.concat(frames, axis=1)
    out = out.loc[:, ~out.columns.duplicated()]
    out.iloc[:WARMUP] = np.nan
    return out.astype("float64")


def _part(candles: pd.DataFrame, part: str, args: str) -> pd.DataFrame:
    if part in ("article", "scaled"):
        return _price_part(candles, part)
    c = candles["close"].astype("float64")
    safe_atr = np.maximum(atr(candles["high"].astype("float64"), candles["low"].astype("float64"),
                              c, 14), 1e-6 * c).to_numpy()
    if part == "time":
        cols = context.time_part(candles.index)
    elif part == "spread":
        cols = context.spread_part(candles, safe_atr)
    elif part == "atr":
        cols = context.atr_part(candles, safe_atr)
    elif part == "shape":
        cols = context.shape_part(candles)
    elif part == "volz":
        cols = context.volz_part(candles)
    else:
        cols = context.mtf_part(candles, safe_atr, tuple(args.split(":")))
    return pd.DataFrame(cols, index=candles.index)


def _price_part(candles: pd.DataFrame, feature_set: str) -> pd.DataFrame:
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
    return out
