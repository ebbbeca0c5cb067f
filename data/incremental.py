"""Per-bar features one bar at a time, carrying the indicators' state (paper trading).

``compute_features`` recomputes every indicator over the whole frame; scoring one new bar that way
costs time proportional to the history. ``FeatureState`` instead carries what the next bar needs:

- the recursions, exactly as the batch computes them: the two MACD EMAs (pandas' ``adjust=False``
  update, bit for bit) and Wilder's RSI averages (``features.wilder``'s update);
- the last ``TAIL`` bars (every rolling window is at most 24 bars: ATR/CCI 14, range/volume 20,
  the ``atr`` part's 24-bar returns and range, ``volz``'s 24 bars) and the last 9 MACD values
  (the signal line); the last bar's spread (the ``spread`` part);
- for ``mtf``: the bar length so far and, per period, the forming bucket's open/high/low/close
  and the last finished bucket's candle (``data.context``'s rules, bar by bar);
- the last ``keep`` feature rows (a model's window).

So a new bar costs a constant few microseconds whatever the history, and its features equal the
batch computation over the full history: the recursions bit for bit, the rolling means to a few
ulps (pandas keeps running sums, we sum the window again), ≤ 1e-9 everywhere
(``tests/data/test_incremental.py``). The state round-trips through JSON exactly.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import pandas as pd

from data import context
from data.features import (
    FEATURE_SETS,
    WARMUP,
    compute_features,
    ema,
    feature_names,
    macd,
    parse_feature_set,
    wilder,
)

TAIL = 25            # bars kept: 24-bar windows and the close before the first of them
RSI_N, ATR_N, CCI_N, RANGE_N, SIGNAL_N = 14, 14, 14, 20, 9
FAST, SLOW = 12, 26
_TAU = 2 * math.pi
NAN = float("nan")


def _f(x) -> float | None:
    """A float for JSON: NaN → None (JSON keeps every finite float exactly)."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _nan(x) -> float:
    return NAN if x is None else float(x)


@dataclass
class FeatureState:
    """What the features of the next bar depend on, after ``n`` bars (see the module docstring)."""

    feature_set: str
    keep: int
    n: int = 0
    ema_fast: float = NAN
    ema_slow: float = NAN
    avg_gain: float = NAN
    avg_loss: float = NAN
    last_time: pd.Timestamp | None = None
    spread: float = NAN
    bar_ns: int = 0                                  # the bar length Δ (``context.bar_length``)

    def __post_init__(self) -> None:
        self.parts = parse_feature_set(self.feature_set)   # ValueError for a bad set
        self.names = feature_names(self.feature_set)
        self.bars: deque = deque(maxlen=TAIL)        # (open, high, low, close, volume)
        self.mains: deque = deque(maxlen=SIGNAL_N)   # MACD main line (NaN in its warm-up)
        self.rows: deque = deque(maxlen=max(1, self.keep))
        self.width = len(self.names)
        mtf = [p for p in self.parts if p.startswith("mtf:")]
        self.periods = tuple(mtf[0].split(":")[1:]) if mtf else ()
        self.sizes = {p: context.period_ns(p) for p in self.periods}
        self.mtf_cols = context.mtf_names(self.periods)
        # per period: the forming bucket [start, open, high, low, close, complete] and the last
        # finished one [open, high, low, close, complete] (None before it)
        self.buckets: dict[str, list] = {p: [None, NAN, NAN, NAN, NAN, False] for p in self.periods}
        self.finished: dict[str, list | None] = {p: None for p in self.periods}

    # --- construction -----------------------------------------------------------------------
    @classmethod
    def from_history(cls, candles: pd.DataFrame, feature_set: str, keep: int) -> FeatureState:
        """The state after ``candles`` (any length, 0 included), from the batch computation."""
        s = cls(feature_set, keep)
        n = len(candles)
        if n == 0:
            return s
        c = candles["close"].astype("float64")
        s.n = n
        s.last_time = candles.index[-1]
        s.ema_fast = float(ema(c, FAST).iloc[-1])
        s.ema_slow = float(ema(c, SLOW).iloc[-1])
        delta = c.diff()
        s.avg_gain = float(wilder(delta.clip(lower=0.0), RSI_N).iloc[-1])
        s.avg_loss = float(wilder((-delta).clip(lower=0.0), RSI_N).iloc[-1])
        main, _ = macd(c)
        s.mains.extend(float(v) for v in main.to_numpy()[-SIGNAL_N:])
        s.bars.extend(map(tuple, candles[["open", "high", "low", "close", "volume"]]
                          .to_numpy("float64")[-TAIL:]))
        s.rows.extend(compute_features(candles, feature_set).to_numpy()[-s.rows.maxlen:])
        if "spread" in candles:
            s.spread = float(candles["spread"].iloc[-1])
        if s.periods:   # the higher-timeframe buckets: the forming one and the one before
            t = candles.index.as_unit("ns").asi8
            s.bar_ns = int(context.bar_length(t)[-1])
            ohlc = candles[["open", "high", "low", "close"]].to_numpy("float64")
            for p in s.periods:
                size = context.period_ns(p)
                start = t // size * size
                firsts = np.flatnonzero(np.r_[True, start[1:] != start[:-1]])
                bounds = list(zip(firsts, [*firsts[1:], len(t)], strict=True))[-2:]
                for f, end in bounds:
                    seg = ohlc[f:end]
                    cand = [float(seg[0, 0]), float(seg[:, 1].max()), float(seg[:, 2].min()),
                            float(seg[-1, 3]), bool(f > 0 or t[0] == start[0])]
                    if end == len(t):
                        s.buckets[p] = [int(start[f]), *cand]
                    else:
                        s.finished[p] = cand
        return s

    # --- one bar ------------------------------------------------------------------------------
    def update(self, time: pd.Timestamp, o: float, h: float, lo: float, c: float,
               v: float, spread: float = NAN) -> np.ndarray:
        """Take the next bar; return its feature row (NaN inside the warm-up)."""
        if self.last_time is not None and time <= self.last_time:
            raise ValueError(f"bar {time} is not after the last bar {self.last_time}")
        i = self.n
        o, h, lo, c, v = float(o), float(h), float(lo), float(c), float(v)
        prev = self.bars[-1][3] if self.bars else NAN
        self.bars.append((o, h, lo, c, v))
        self.spread = float(spread)
        t = pd.Timestamp(time).value                     # nanoseconds whatever the unit
        if self.last_time is not None:
            gap = t - pd.Timestamp(self.last_time).value
            self.bar_ns = gap if i == 1 else min(self.bar_ns, gap)
        for p in self.periods:
            self._bucket(p, t, i == 0, o, h, lo, c)
        self.n, self.last_time = i + 1, time
        # EMAs: pandas' ewm(adjust=False) update, bit for bit
        if i == 0:
            self.ema_fast = self.ema_slow = c
        else:
            self.ema_fast = _ewm_step(self.ema_fast, c, 2.0 / (FAST + 1))
            self.ema_slow = _ewm_step(self.ema_slow, c, 2.0 / (SLOW + 1))
        main = self.ema_fast - self.ema_slow if i >= SLOW - 1 else NAN
        self.mains.append(main)
        # Wilder's averages: the mean of the first n changes, then the recursion
        if i == RSI_N:
            closes = np.array([b[3] for b in self.bars])[-(RSI_N + 1):]
            d = np.diff(closes)
            self.avg_gain = float(np.clip(d, 0.0, None).mean())
            self.avg_loss = float(np.clip(-d, 0.0, None).mean())
        elif i > RSI_N:
            d = c - prev
            self.avg_gain = (self.avg_gain * (RSI_N - 1) + max(d, 0.0)) / RSI_N
            self.avg_loss = (self.avg_loss * (RSI_N - 1) + max(-d, 0.0)) / RSI_N
        row = self._row(t, time) if i >= WARMUP else np.full(self.width, NAN)
        self.rows.append(row)
        return row

    def extend(self, candles: pd.DataFrame) -> np.ndarray:
        """``update`` each bar of ``candles``; their feature rows (len(candles), F)."""
        if "spread" in self.parts:
            context.require_spread(candles)
        cols = candles[["open", "high", "low", "close", "volume"]].to_numpy("float64")
        spreads = (candles["spread"].to_numpy("float64") if "spread" in candles
                   else np.full(len(candles), NAN))
        out = np.empty((len(candles), self.width))
        for k, (t, row) in enumerate(zip(candles.index, cols, strict=True)):
            out[k] = self.update(t, *row, spread=spreads[k])
        return out

    def _bucket(self, p: str, t: int, first_bar: bool, o: float, h: float, lo: float,
                c: float) -> None:
        size = self.sizes[p]
        start = t // size * size
        cur = self.buckets[p]
        if cur[0] != start:
            if cur[0] is not None:
                self.finished[p] = cur[1:]
            self.buckets[p] = [start, o, h, lo, c, (t == start) if first_bar else True]
        else:
            cur[2], cur[3], cur[4] = max(cur[2], h), min(cur[3], lo), c

    def window(self) -> np.ndarray:
        """The last ``keep`` feature rows (fewer at the very start)."""
        return np.array(self.rows, dtype="float64").reshape(-1, self.width)

    def _row(self, t: int, time: pd.Timestamp) -> np.ndarray:
        b = np.array(self.bars, dtype="float64")
        o, h, lo, c, v = b[-1]
        highs, lows, closes = b[:, 1], b[:, 2], b[:, 3]
        prev = closes[:-1]
        tr = np.maximum.reduce([highs[1:] - lows[1:], np.abs(highs[1:] - prev),
                                np.abs(lows[1:] - prev)])
        a = tr[-ATR_N:].mean()
        safe = max(a, 1e-6 * c)
        values: dict[str, float] = {}
        for part in self.parts:
            name = part.partition(":")[0]
            if name in ("article", "scaled"):
                cols = FEATURE_SETS[name]
                vals = self._price_row(name, b, a, time)
            elif name == "time":
                cols, vals = context.TIME_FEATURES, _time_row(time)
            elif name == "spread":
                cols, vals = context.SPREAD_FEATURES, [self.spread / safe]
            elif name == "atr":
                cols = context.ATR_FEATURES
                vals = [(c - o) / safe, (h - lo) / safe,
                        *((c - closes[-1 - k]) / safe for k in context.RET_LAGS),
                        *((highs[-k:].max() - lows[-k:].min()) / safe
                          for k in context.RANGE_SPANS)]
            elif name == "shape":
                cols, vals = context.SHAPE_FEATURES, context.shape_row(o, h, lo, c)
            elif name == "volz":
                logv = np.log1p(b[-context.VOLZ_N:, 4])
                std = logv.std(ddof=1)
                cols = context.VOLZ_FEATURES
                vals = [(logv[-1] - logv.mean()) / std if std > context.VOLZ_FLOOR else 0.0]
            else:
                cols, vals = self.mtf_cols, self._mtf_row(t, c, safe)
            for col, val in zip(cols, vals, strict=True):
                values.setdefault(col, float(val))
        return np.array([values[n] for n in self.names])

    def _mtf_row(self, t: int, c: float, safe: float) -> list[float]:
        out = []
        for p in self.periods:
            start, co, ch, cl, cc, complete = self.buckets[p]
            if t + self.bar_ns >= start + self.sizes[p]:   # bar t closes its bucket
                candle = [co, ch, cl, cc, complete]
            else:
                candle = self.finished[p] or [NAN, NAN, NAN, NAN, False]
            ho, hh, hl, hc, ok = candle
            rng = hh - hl
            width = max(rng, 1e-6 * c)
            cols = [(hc - ho) / width, (hc - hl) / width - 0.5, rng / safe, (c - hc) / safe,
                    (c - hl) / width - 0.5]
            out += [x if ok else NAN for x in cols]
            out.append((c - co) / safe if complete else NAN)
        return out

    def _price_row(self, name: str, b: np.ndarray, a: float, time: pd.Timestamp) -> list[float]:
        o, h, lo, c, v = b[-1]
        highs, lows, closes = b[:, 1], b[:, 2], b[:, 3]
        tp = (highs + lows + closes)[-CCI_N:] / 3.0
        sma = tp.mean()
        md = np.abs(tp - sma).mean()
        cci = (tp[-1] - sma) / (0.015 * md) if md > 0 else 0.0
        ag, al = self.avg_gain, self.avg_loss
        if ag == 0 and al == 0:
            rsi = 50.0
        elif al > 0:
            rsi = 100.0 - 100.0 / (1.0 + ag / al)
        else:
            rsi = 100.0
        mains = np.array(self.mains)
        main = mains[-1]
        signal = mains.mean()
        if name == "article":
            return [c - o, h - o, lo - o, v / 1000.0, float(time.month),
                    float(time.hour), float((time.day_of_week + 1) % 7), rsi, cci, a,
                    main, signal]
        safe = max(a, 1e-6 * c)
        hi20, lo20 = highs[-RANGE_N:].max(), lows[-RANGE_N:].min()
        width = max(hi20 - lo20, 1e-6 * c)
        logv = np.log1p(b[-RANGE_N:, 4])
        month = time.month
        return [
            (c - o) / safe, (h - max(o, c)) / safe, (min(o, c) - lo) / safe, (h - lo) / safe,
            (c - closes[-2]) / safe, (c - closes[-6]) / safe, (c - lo20) / width - 0.5,
            logv[-1] - logv.mean(), rsi / 100.0 - 0.5, math.tanh(cci / 200.0), main / safe,
            (main - signal) / safe, math.log(safe / c), *_time_row(time),
            math.sin(_TAU * (month - 1) / 12), math.cos(_TAU * (month - 1) / 12)]

    # --- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"version": 2, "feature_set": self.feature_set, "keep": self.keep, "n": self.n,
                "spread": _f(self.spread), "bar_ns": self.bar_ns,
                "buckets": {p: [b[0], *(_f(x) for x in b[1:5]), b[5]]
                            for p, b in self.buckets.items()},
                "finished": {p: None if f is None else [*(_f(x) for x in f[:4]), f[4]]
                             for p, f in self.finished.items()},
                "ema_fast": _f(self.ema_fast), "ema_slow": _f(self.ema_slow),
                "avg_gain": _f(self.avg_gain), "avg_loss": _f(self.avg_loss),
                "last_time": None if self.last_time is None else self.last_time.isoformat(),
                "bars": [list(b) for b in self.bars], "mains": [_f(m) for m in self.mains],
                "rows": [[_f(x) for x in r] for r in self.rows]}

    @classmethod
    def from_dict(cls, d: dict) -> FeatureState:
        if d.get("version") not in (1, 2):   # 1: before the context parts (no bucket state)
            raise ValueError(f"unknown feature state version {d.get('version')!r}")
        s = cls(d["feature_set"], int(d["keep"]), int(d["n"]), _nan(d["ema_fast"]),
                _nan(d["ema_slow"]), _nan(d["avg_gain"]), _nan(d["avg_loss"]),
                None if d["last_time"] is None else pd.Timestamp(d["last_time"]))
        s.bars.extend(tuple(float(x) for x in b) for b in d["bars"])
        s.mains.extend(_nan(m) for m in d["mains"])
        s.rows.extend(np.array([_nan(x) for x in r]) for r in d["rows"])
        s.spread, s.bar_ns = _nan(d.get("spread")), int(d.get("bar_ns", 0))
        for p, b in d.get("buckets", {}).items():
            s.buckets[p] = [b[0], *(_nan(x) for x in b[1:5]), bool(b[5])]
        for p, f in d.get("finished", {}).items():
            s.finished[p] = None if f is None else [*(_nan(x) for x in f[:4]), bool(f[4])]
        return s


def _time_row(time: pd.Timestamp) -> list[float]:
    hour = time.hour + time.minute / 60.0
    wd = time.day_of_week
    return [math.sin(_TAU * hour / 24), math.cos(_TAU * hour / 24),
            math.sin(_TAU * wd / 7), math.cos(_TAU * wd / 7)]


def _ewm_step(avg: float, x: float, alpha: float) -> float:
    """pandas' ``ewm(adjust=False).mean()`` update for one value (the same float operations)."""
    old = 1.0 - alpha
    if avg != x:
        avg = (old * avg + alpha * x) / (old + alpha)
    return avg


__all__ = ["TAIL", "FeatureState"]
