"""Context feature parts, composed with ``article``/``scaled`` by ``data.features`` (``scaled+time+mtf``).

Every value at bar t is computed from bars <= t only:

- ``time``: hour of day and day of week on the circle (sin/cos), UTC;
- ``spread``: the bar's spread in ATR units (needs the candles' ``spread`` column);
- ``atr``: returns over 1-24 bars, the bar's body and range, and the 6/24-bar ranges, in ATR units;
- ``shape``: the bar's anatomy as shares of its own range: signed body (close - open) / range,
  upper and lower wick / range (0 for a bar without range): the candle's shape whatever its size;
- ``volz``: the z-score of log volume over the trailing ``VOLZ_N`` bars (bar t included);
- ``mtf[:P...]``: higher-timeframe context (default ``4h`` and ``1d``): the last *closed* candle of
  each period built from the bars themselves (buckets aligned to UTC midnight), and where the
  close stands against it and against the open of the bucket bar t is in.

When is a higher-timeframe candle closed at bar t? When its bucket ends at or before t's close,
t + Δ, with Δ the shortest spacing between bars seen up to t (the bar length; bars <= t only).
So on H1 the D1 candle of a day is seen at that day's 23:00 bar, and across a weekend gap the
Friday candle is seen from the first bar after the gap. The first bucket of a frame counts only
when the frame starts at the bucket's start (otherwise it is a partial candle: NaN until the next
bucket closes). Bars missing inside a bucket are simply not in its candle.

``safe_atr`` is ``scaled``'s ATR (ATR(14) floored at 1e-6 × close), passed in by the caller.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from data.errors import DataError

TIME_FEATURES = ("hour_sin", "hour_cos", "weekday_sin", "weekday_cos")
SPREAD_FEATURES = ("spread_atr",)
RET_LAGS = (1, 3, 6, 12, 24)
RANGE_SPANS = (6, 24)
ATR_FEATURES = ("body_atr", "range_atr", *(f"ret{k}_atr" for k in RET_LAGS),
                *(f"range{k}_atr" for k in RANGE_SPANS))
SHAPE_FEATURES = ("body_share", "upper_share", "lower_share")
VOLZ_N = 24
VOLZ_FEATURES = ("volume_z",)
VOLZ_FLOOR = 1e-9          # a trailing std at or below this gives z = 0 (constant or no volume)
MTF_DEFAULT = ("4h", "1d")
MTF_COLUMNS = ("body", "close_pos", "range_atr", "from_close_atr", "pos_in_range", "from_open_atr")
DAY_NS = 86_400 * 10**9
_UNIT_NS = {"m": 60 * 10**9, "h": 3600 * 10**9, "d": DAY_NS}
_TAU = 2 * np.pi


# --- higher-timeframe periods -------------------------------------------------------------------
def period_ns(text: str) -> int:
    """Nanoseconds of a period such as ``30m``, ``4h`` or ``1d``: it must divide a day or be one
    day, so every bucket is aligned to UTC midnight. ValueError otherwise."""
    m = re.fullmatch(r"([1-9][0-9]*)([mhd])", text)
    ns = int(m.group(1)) * _UNIT_NS[m.group(2)] if m else 0
    if not ns or (ns < DAY_NS and DAY_NS % ns) or ns > DAY_NS:
        raise ValueError(f"mtf period {text!r}: give minutes, hours or 1d that divide a day "
                         "(e.g. 1h, 4h, 1d)")
    return ns


def period_label(text: str) -> str:
    """The column prefix of a period, MetaTrader style: ``4h`` → ``h4``, ``1d`` → ``d1``."""
    ns = period_ns(text)
    if ns == DAY_NS:
        return "d1"
    if ns % _UNIT_NS["h"] == 0:
        return f"h{ns // _UNIT_NS['h']}"
    return f"m{ns // _UNIT_NS['m']}"


def period_spelling(text: str) -> str:
    """The one spelling of a period: ``240m`` → ``4h``, ``24h`` → ``1d``."""
    label = period_label(text)
    return "1d" if label == "d1" else f"{label[1:]}{label[0]}"


def mtf_names(periods: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{period_label(p)}_{c}" for p in periods for c in MTF_COLUMNS)


# --- the parts, batch ---------------------------------------------------------------------------
def time_part(index: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    hour = np.asarray(index.hour + index.minute / 60.0, dtype="float64")
    wd = np.asarray(index.day_of_week, dtype="float64")
    return {"hour_sin": np.sin(_TAU * hour / 24), "hour_cos": np.cos(_TAU * hour / 24),
            "weekday_sin": np.sin(_TAU * wd / 7), "weekday_cos": np.cos(_TAU * wd / 7)}


def require_spread(candles: pd.DataFrame) -> None:
    """DataError unless the candles have the ``spread`` column the ``spread`` part reads."""
    if "spread" not in candles:
        raise DataError(f"feature part 'spread' needs a spread column in the candles; these have "
                        f"only {', '.join(candles.columns)} (use a source with spreads, or leave "
                        "'spread' out of dataset.features)", rule="no spread column")


def spread_part(candles: pd.DataFrame, safe_atr: np.ndarray) -> dict[str, np.ndarray]:
    require_spread(candles)
    return {"spread_atr": candles["spread"].to_numpy("float64") / safe_atr}


def atr_part(candles: pd.DataFrame, safe_atr: np.ndarray) -> dict[str, np.ndarray]:
    o, h, lo, c = (candles[k].astype("float64") for k in ("open", "high", "low", "close"))
    out = {"body_atr": ((c - o) / safe_atr).to_numpy(), "range_atr": ((h - lo) / safe_atr).to_numpy()}
    for k in RET_LAGS:
        out[f"ret{k}_atr"] = (c.diff(k) / safe_atr).to_numpy()
    for k in RANGE_SPANS:
        out[f"range{k}_atr"] = ((h.rolling(k).max() - lo.rolling(k).min()) / safe_atr).to_numpy()
    return out


def shape_part(candles: pd.DataFrame) -> dict[str, np.ndarray]:
    o, h, lo, c = (candles[k].to_numpy("float64") for k in ("open", "high", "low", "close"))
    rng = h - lo
    safe = np.where(rng > 0, rng, 1.0)
    return {"body_share": np.where(rng > 0, (c - o) / safe, 0.0),
            "upper_share": np.where(rng > 0, (h - np.maximum(o, c)) / safe, 0.0),
            "lower_share": np.where(rng > 0, (np.minimum(o, c) - lo) / safe, 0.0)}


def shape_row(o: float, h: float, lo: float, c: float) -> list[float]:
    """``shape_part`` of one bar (the incremental path; the same arithmetic)."""
    rng = h - lo
    if not rng > 0:
        return [0.0, 0.0, 0.0]
    return [(c - o) / rng, (h - max(o, c)) / rng, (min(o, c) - lo) / rng]


def volz_part(candles: pd.DataFrame) -> dict[str, np.ndarray]:
    logv = np.log1p(candles["volume"].astype("float64"))
    mean, std = logv.rolling(VOLZ_N).mean(), logv.rolling(VOLZ_N).std()
    z = ((logv - mean) / std).where(std > VOLZ_FLOOR, 0.0).where(std.notna())
    return {"volume_z": z.to_numpy()}


def bar_length(times_ns: np.ndarray) -> np.ndarray:
    """Δ at each bar: the shortest spacing between bars up to it (0 at the first bar)."""
    if len(times_ns) < 2:
        return np.zeros(len(times_ns), dtype="int64")
    return np.r_[0, np.minimum.accumulate(np.diff(times_ns))].astype("int64")


def mtf_part(candles: pd.DataFrame, safe_atr: np.ndarray,
             periods: tuple[str, ...]) -> dict[str, np.ndarray]:
    t = candles.index.as_unit("ns").asi8
    n = len(t)
    o, h, lo, c = (candles[k].to_numpy("float64") for k in ("open", "high", "low", "close"))
    delta = bar_length(t)
    out: dict[str, np.ndarray] = {}
    for p in periods:
        size = period_ns(p)
        names = [f"{period_label(p)}_{col}" for col in MTF_COLUMNS]
        if n == 0:
            out.update({k: np.empty(0) for k in names})
            continue
        start = t // size * size
        first = np.r_[True, start[1:] != start[:-1]]
        gid = np.cumsum(first) - 1
        first_pos = np.flatnonzero(first)
        last_pos = np.r_[first_pos[1:] - 1, n - 1]
        complete = np.ones(len(first_pos), bool)
        complete[0] = t[0] == start[0]
        cur_high = pd.Series(h).groupby(gid).cummax().to_numpy()
        cur_low = pd.Series(lo).groupby(gid).cummin().to_numpy()
        cur_open = o[first_pos][gid]
        closed_now = t + delta >= start + size        # bar t is its bucket's last
        prev = gid - 1
        has_prev = prev >= 0
        pp = np.where(has_prev, prev, 0)
        ho = np.where(closed_now, cur_open, o[first_pos[pp]])
        hh = np.where(closed_now, cur_high, cur_high[last_pos[pp]])
        hl = np.where(closed_now, cur_low, cur_low[last_pos[pp]])
        hc = np.where(closed_now, c, c[last_pos[pp]])
        ok = np.where(closed_now, complete[gid], has_prev & complete[pp])
        rng = hh - hl
        width = np.maximum(rng, 1e-6 * c)
        cols = [(hc - ho) / width, (hc - hl) / width - 0.5, rng / safe_atr,
                (c - hc) / safe_atr, (c - hl) / width - 0.5,
                np.where(complete[gid], (c - cur_open) / safe_atr, np.nan)]
        for name, col in zip(names, cols, strict=True):
            out[name] = np.where(ok, col, np.nan) if name != names[-1] else col
    return out


__all__ = ["ATR_FEATURES", "MTF_COLUMNS", "MTF_DEFAULT", "SHAPE_FEATURES", "shape_row", "SPREAD_FEATURES", "TIME_FEATURES",
           "VOLZ_FEATURES", "VOLZ_FLOOR", "VOLZ_N", "atr_part", "bar_length", "mtf_names",
           "mtf_part", "period_label", "period_ns", "period_spelling", "require_spread", "spread_part", "time_part", "volz_part"]
