"""Planted worlds: synthetic H1 FX candles whose truth is known.

A research loop that finds an edge should find it where one was planted, and find none where
none was. Each world is a EURUSD-like H1 series (5-decimal prices from 1.10000, a per-bar spread
in price units, tick-like volume) on the FX calendar: the week opens Sunday 22:00 UTC and closes
Friday 22:00 UTC, no bars on 25 December or 1 January. Every world shares the same noise:

- log returns ``drift + sigma_t * z_t``: ``z`` Student-t (``T_DF`` degrees of freedom, unit
  variance), ``sigma_t = SIGMA * HOUR_VOL[hour] * sqrt(h_t)`` with GARCH(1,1) clustering
  ``h_t = (1 - a - b) + a h_{t-1} z_{t-1}^2 + b h_{t-1}`` (``GARCH_ALPHA``, ``GARCH_BETA``) and
  the sessions' volatility by hour (quiet Asian hours, busy London/New York overlap);
- open = the previous close; wicks beyond the body exponential, ``WICK`` sigmas on average;
- spread ``SPREAD_POINTS[hour] + U{0,1,2}`` points (wide at the 21-23 UTC rollover);
- the same seed draws the same shocks in every kind: worlds differ only by their planted drift.

Kinds (``planted`` = the gross expected log return each planted trade collects, in mean spreads):

- ``null``: no drift at all.
- ``order``: after three bars shaped bear, small, bull in that order (``shape_codes``: a body
  under ``SMALL_BODY`` of the range is small), the next bar drifts up by the whole gross amount;
  after the mirror bull, small, bear it drifts down as much (so the world does not trend, which
  buy-and-hold would find). The same three shapes in the four other orders are followed by no
  drift, and the shapes as a set (any order) predict nothing: only their order does.
- ``regime``: when the mean absolute return of the last ``REGIME_FAST`` bars is under
  ``REGIME_SQUEEZE`` × that of the last ``REGIME_SLOW`` bars (volatility compression) and a bar
  moves more than ``REGIME_BREAK`` × the fast mean, the next ``REGIME_HOLD`` bars drift in that
  bar's direction (the gross amount spread evenly over them; no new event while one runs).
- ``session``: the European morning (07:00-10:59 UTC) drifts down and the New York morning
  (13:00-16:59 UTC) up, the gross amount over each four-bar session: a few basis points a session,
  the order of the intraday patterns reported for FX.

What each world plants per trade at the default ``planted = 3`` (``truth(kind)``; bps of price;
one spread per round trip, at the price level of the start):

| kind    | trade                                        | gross | spread | net  |
|---------|----------------------------------------------|-------|--------|------|
| null    | none                                         | 0     | 1.04   | -    |
| order   | 1 bar, long after bear, small, bull (short   | 3.11  | 1.04   | 2.08 |
|         | after bull, small, bear)                     |       |        |      |
| regime  | 6 bars in the breakout's direction           | 3.11  | 1.04   | 2.08 |
| session | short 07-11 UTC, long 13-17 UTC (4 bars)     | 3.11  | 0.82   | 2.30 |

Against the noise (an H1 bar moves about 9 bps) the order trade's net is a t-statistic of about
0.23 × sqrt(trades), and about one bar in 14 is a planted trade: findable in a few thousand
bars, not at a glance. ``realised(frame, kind)`` measures the figures on a generated series.
"""

from __future__ import annotations

import math
from itertools import permutations
from pathlib import Path

import numpy as np
import pandas as pd

from data.atomic import atomic_write
from data.errors import DataError
from data.validate import validate_frame

KINDS = ("null", "order", "regime", "session")
DEFAULT_SEED = 0
DEFAULT_BARS = 20_000
DEFAULT_PLANTED = 3.0
MIN_BARS, MAX_BARS = 200, 1_000_000
MAX_PLANTED = 100.0
START = pd.Timestamp("2019-01-06 22:00", tz="UTC")  # a Sunday evening: the FX week opens
PRICE0 = 1.10000
POINT = 1e-5
DIGITS = 5
SIGMA = 0.0009                     # H1 log-return std (the EURUSD sample: 0.00093)
GARCH_ALPHA, GARCH_BETA = 0.05, 0.93
T_DF = 5.0
WICK = 0.5                         # mean wick beyond the body, in bar sigmas
# Volatility by UTC hour, shaped like the EURUSD sample's (RMS 1 over the day).
_HOUR_SHAPE = np.array([0.7, 0.75, 0.6, 0.5, 0.5, 0.6, 0.9, 1.15, 1.15, 1.05, 1.0, 1.0,
                        1.45, 1.5, 1.45, 1.15, 1.0, 0.9, 0.9, 0.8, 0.6, 0.55, 0.6, 0.65])
HOUR_VOL = _HOUR_SHAPE / np.sqrt(np.mean(_HOUR_SHAPE ** 2))
# Spread in points by UTC hour (before the 0-2 point jitter): Asia, London/NY, rollover.
SPREAD_POINTS = np.array([12] * 6 + [10] + [8] * 10 + [9] * 4 + [20, 18, 14])
SPREAD_JITTER = 2                  # uniform 0..2 extra points, mean 1
SMALL_BODY = 0.3
SHAPES = ("bear", "small", "bull")
ORDER_PATTERN = ("bear", "small", "bull")   # → the next bar drifts up
ORDER_MIRROR = ("bull", "small", "bear")    # → the next bar drifts down (no trend overall)
REGIME_FAST, REGIME_SLOW, REGIME_SQUEEZE, REGIME_BREAK, REGIME_HOLD = 8, 120, 0.6, 2.0, 6
SESSIONS = ((7, 4, -1), (13, 4, +1))  # (first UTC hour, bars, direction)
HOLD = {"null": 1, "order": 1, "regime": REGIME_HOLD, "session": 4}


def mean_spread_bps(hours: tuple[int, ...] = tuple(range(24))) -> float:
    """The expected spread at these UTC hours, in bps of the starting price (every hour has
    the same number of bars in the FX week)."""
    points = float(np.mean(SPREAD_POINTS[list(hours)])) + SPREAD_JITTER / 2
    return points * POINT / PRICE0 * 1e4


def truth(kind: str, planted: float = DEFAULT_PLANTED) -> dict:
    """What world ``kind`` plants per trade: the trade, gross, spread and net in bps."""
    check_kind(kind)
    if kind == "null":
        return {"kind": kind, "trade": "none", "hold": 0, "gross_bps": 0.0,
                "spread_bps": mean_spread_bps(), "net_bps": float("nan")}
    gross = planted * mean_spread_bps()
    hours = tuple(first for first, _, _ in SESSIONS) if kind == "session" else tuple(range(24))
    spread = mean_spread_bps(hours)
    trade = {"order": (f"1 bar, long after {', '.join(ORDER_PATTERN)} (short after "
                       f"{', '.join(ORDER_MIRROR)})"),
             "regime": f"{REGIME_HOLD} bars in the breakout's direction",
             "session": "short 07-11 UTC, long 13-17 UTC (4 bars)"}[kind]
    return {"kind": kind, "trade": trade, "hold": HOLD[kind], "gross_bps": gross,
            "spread_bps": spread, "net_bps": gross - spread}


def check_kind(kind: str, source: str | None = None) -> None:
    """Refuse a kind of world that is not one of ``KINDS``, naming them."""
    if kind not in KINDS:
        raise DataError(f"unknown planted world {kind!r}; choose one of {', '.join(KINDS)}",
                        source=source)


def calendar(bars: int) -> pd.DatetimeIndex:
    """``bars`` H1 bar times of the FX week from ``START`` (no weekend, Christmas, New Year)."""
    hours = int(bars / 118 * 168) + 24 * 21
    times = pd.date_range(START, periods=hours, freq="h")
    day, hour = times.day_of_week, times.hour
    open_ = (day <= 3) | ((day == 4) & (hour < 22)) | ((day == 6) & (hour >= 22))
    holiday = ((times.month == 12) & (times.day == 25)) | ((times.month == 1) & (times.day == 1))
    return pd.DatetimeIndex(times[open_ & ~holiday][:bars], name="time")


def shape_code(o: float, h: float, low: float, c: float) -> int:
    """0 bear, 1 small, 2 bull (``SHAPES``); the same arithmetic as ``shape_codes``."""
    body = abs(c - o)
    if body > SMALL_BODY * (h - low):
        return 2 if c > o else 0
    return 1


def codes(shapes: tuple[str, ...]) -> tuple[int, ...]:
    """Shape names (``SHAPES``) → their codes."""
    return tuple(SHAPES.index(s) for s in shapes)


def shape_codes(frame: pd.DataFrame) -> np.ndarray:
    """Each bar's shape: 0 bear, 1 small (body ≤ ``SMALL_BODY`` of the range), 2 bull."""
    o, h, low, c = (frame[k].to_numpy() for k in ("open", "high", "low", "close"))
    big = np.abs(c - o) > SMALL_BODY * (h - low)
    return np.where(big, np.where(c > o, 2, 0), 1)


class Squeeze:
    """The regime world's causal trigger, fed one bar at a time: ``observe`` returns the
    breakout direction (+1/-1) of a bar that leaves a volatility compression, else 0."""

    def __init__(self) -> None:
        self.moves: list[float] = []
        self.fast = self.slow = 0.0   # running sums of the last FAST / SLOW absolute returns

    def observe(self, prev_close: float, close: float) -> int:
        r = math.log(close / prev_close)
        moves, n = self.moves, len(self.moves)
        out = 0
        if n >= REGIME_SLOW:
            fast = self.fast / REGIME_FAST
            if fast < REGIME_SQUEEZE * self.slow / REGIME_SLOW and abs(r) > REGIME_BREAK * fast:
                out = 1 if r > 0 else -1
        move = abs(r)
        self.fast += move - (moves[n - REGIME_FAST] if n >= REGIME_FAST else 0.0)
        self.slow += move - (moves[n - REGIME_SLOW] if n >= REGIME_SLOW else 0.0)
        moves.append(move)
        if n + 1 > 2 * REGIME_SLOW:
            del moves[:REGIME_SLOW]
        return out


def generate(kind: str, *, seed: int = DEFAULT_SEED, bars: int = DEFAULT_BARS,
             planted: float = DEFAULT_PLANTED, source: str | None = None) -> pd.DataFrame:
    """The candles of planted world ``kind`` (``KINDS``): canonical, validated, deterministic
    in (kind, seed, bars, planted)."""
    check_kind(kind, source)
    if not MIN_BARS <= bars <= MAX_BARS:
        raise DataError(f"`bars` must be {MIN_BARS:,} to {MAX_BARS:,}, not {bars:,}",
                        source=source)
    if seed < 0:
        raise DataError(f"`seed` must be 0 or more, not {seed}", source=source)
    if not (math.isfinite(planted) and 0 <= planted <= MAX_PLANTED):
        raise DataError(f"`planted` must be 0 to {MAX_PLANTED:g} spreads, not {planted!r}",
                        source=source)
    source = source or f"sample:planted-{kind}:{seed}:{bars}"
    times = calendar(bars)
    hours = times.hour.to_numpy()
    rng = np.random.default_rng(seed)
    z = (rng.standard_t(T_DF, bars) / math.sqrt(T_DF / (T_DF - 2))).tolist()
    wicks = (rng.exponential(WICK, (2, bars))).tolist()
    jitter = rng.integers(0, SPREAD_JITTER + 1, bars)
    volume_noise = rng.standard_normal(bars)
    unit = planted * mean_spread_bps() / 1e4
    season = np.zeros(bars)
    if kind == "session":
        for first, n, sign in SESSIONS:
            season[(hours >= first) & (hours < first + n)] = sign * unit / n
    hour_vol = (SIGMA * HOUR_VOL[hours]).tolist()
    season_l = season.tolist()
    signs = {codes(ORDER_PATTERN): 1, codes(ORDER_MIRROR): -1}
    omega = 1.0 - GARCH_ALPHA - GARCH_BETA
    rows: list[tuple[float, float, float, float]] = []
    scale: list[float] = []
    h, prev = 1.0, PRICE0
    last3: tuple[int, ...] = ()
    squeeze, run, run_sign = Squeeze(), 0, 0
    wick_up, wick_down = wicks
    sqrt, exp = math.sqrt, math.exp
    for i in range(bars):
        root = sqrt(h)
        sig = hour_vol[i] * root
        drift = season_l[i]
        if kind == "order" and last3 in signs:
            drift = signs[last3] * unit
        elif kind == "regime" and run > 0:
            drift, run = run_sign * unit / REGIME_HOLD, run - 1
        o = prev
        c = round(o * exp(drift + sig * z[i]), DIGITS)
        hi = round((c if c > o else o) + o * sig * wick_up[i], DIGITS)
        lo = round((o if c > o else c) - o * sig * wick_down[i], DIGITS)
        rows.append((o, hi, lo, c))
        scale.append(root)
        if kind == "order":
            last3 = (*last3[-2:], shape_code(o, hi, lo, c))
        elif kind == "regime":
            sign = squeeze.observe(o, c)
            if sign and run == 0:
                run, run_sign = REGIME_HOLD, sign
        h = omega + (GARCH_ALPHA * z[i] * z[i] + GARCH_BETA) * h
        prev = c
    frame = pd.DataFrame(rows, index=times, columns=["open", "high", "low", "close"])
    frame["volume"] = np.round(1000 * HOUR_VOL[hours] * np.array(scale) * np.exp(0.25 * volume_noise))
    frame["spread"] = np.round((SPREAD_POINTS[hours] + jitter) * POINT, DIGITS)
    frame.attrs.update({"source": source, "planted": {"kind": kind, "seed": seed, "bars": bars,
                                                      "planted": planted}})
    return validate_frame(frame, source=source)


def planted_trades(frame: pd.DataFrame, kind: str,
                   pattern: tuple[str, ...] | None = None) -> pd.DataFrame:
    """The trades that collect world ``kind``'s drift, found from the candles alone (bars before
    the entry): ``entry`` (bar position), ``direction``, ``hold`` bars. For ``order``: long after
    ``ORDER_PATTERN``, short after ``ORDER_MIRROR``; given a ``pattern``, long after it alone.
    On another world, or after another order of the shapes, the same rule should earn nothing."""
    check_kind(kind)
    n = len(frame)
    if kind == "order":
        shapes = shape_codes(frame)
        wanted = [(pattern, 1)] if pattern else [(ORDER_PATTERN, 1), (ORDER_MIRROR, -1)]
        parts = []
        for shapes_wanted, sign in wanted:
            want = codes(tuple(shapes_wanted))
            hit = np.ones(max(n - len(want), 0), dtype=bool)
            for k, code in enumerate(want):
                hit &= shapes[k: n - len(want) + k] == code
            parts.append(pd.DataFrame({"entry": np.flatnonzero(hit) + len(want),
                                       "direction": sign, "hold": 1}))
        return pd.concat(parts).sort_values("entry", ignore_index=True)
    if kind == "session":
        hours = frame.index.hour.to_numpy()
        parts = []
        for first, bars, sign in SESSIONS:
            entries = np.flatnonzero(hours == first)
            entries = entries[entries + bars <= n]
            parts.append(pd.DataFrame({"entry": entries, "direction": sign, "hold": bars}))
        return pd.concat(parts).sort_values("entry", ignore_index=True)
    if kind == "regime":
        closes = frame["close"].tolist()
        squeeze, entries, signs, busy_until = Squeeze(), [], [], 0
        for i in range(1, n):
            sign = squeeze.observe(closes[i - 1], closes[i])
            if sign and i + 1 >= busy_until and i + REGIME_HOLD < n:
                entries.append(i + 1)
                signs.append(sign)
                busy_until = i + 1 + REGIME_HOLD
        return pd.DataFrame({"entry": np.array(entries, dtype=int), "direction": signs,
                             "hold": REGIME_HOLD})
    return pd.DataFrame({"entry": np.array([], dtype=int), "direction": 1, "hold": 1})


def trade_gross(frame: pd.DataFrame, trades: pd.DataFrame) -> np.ndarray:
    """Each trade's gross log return in bps: in its direction, from the entry bar's open to
    the close of its last bar."""
    o, c = frame["open"].to_numpy(), frame["close"].to_numpy()
    first = trades["entry"].to_numpy(dtype=int)
    last = first + trades["hold"].to_numpy(dtype=int) - 1
    return trades["direction"].to_numpy() * np.log(c[last] / o[first]) * 1e4


def realised(frame: pd.DataFrame, kind: str, pattern: tuple[str, ...] | None = None) -> dict:
    """World ``kind``'s planted trades (``planted_trades``) measured on ``frame``: count, mean
    gross log return and its standard error, mean spread at entry and net, in bps."""
    trades = planted_trades(frame, kind, pattern)
    gross = trade_gross(frame, trades)
    first = trades["entry"].to_numpy(dtype=int)
    spread = frame["spread"].to_numpy()[first] if "spread" in frame else np.zeros(len(first))
    cost = spread / frame["open"].to_numpy()[first] * 1e4
    n = len(gross)
    if n == 0:
        return {"trades": 0, "gross_bps": float("nan"), "se_bps": float("nan"),
                "spread_bps": float("nan"), "net_bps": float("nan")}
    se = float(np.std(gross, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return {"trades": n, "gross_bps": float(np.mean(gross)), "se_bps": se,
            "spread_bps": float(np.mean(cost)), "net_bps": float(np.mean(gross - cost))}


def other_orders() -> list[tuple[str, ...]]:
    """The planted shapes in the four orders that plant nothing (neither ``ORDER_PATTERN``
    nor ``ORDER_MIRROR``)."""
    return [p for p in permutations(ORDER_PATTERN) if p not in (ORDER_PATTERN, ORDER_MIRROR)]


def parse_name(name: str) -> tuple[str, int, int, float]:
    """``planted-KIND[:SEED[:BARS[:PLANTED]]]`` → (kind, seed, bars, planted), or a DataError
    naming the form (PLANTED: the effect size in mean spreads, as ``generate``'s ``planted``)."""
    source = f"sample:{name}"
    form = "sample:planted-KIND[:SEED[:BARS[:PLANTED]]]"
    kind, *rest = name.removeprefix("planted-").split(":")
    check_kind(kind, source)
    if len(rest) > 3 or not all(part.isdigit() for part in rest[:2]):
        raise DataError(f"write planted worlds as {form} with whole numbers for SEED and BARS, "
                        "e.g. sample:planted-order:7:20000 or sample:planted-order:7:20000:8",
                        source=source, rule="unknown source")
    seed = int(rest[0]) if rest else DEFAULT_SEED
    bars = int(rest[1]) if len(rest) > 1 else DEFAULT_BARS
    if not MIN_BARS <= bars <= MAX_BARS:
        raise DataError(f"BARS in sample:planted-KIND:SEED:BARS must be {MIN_BARS:,} to "
                        f"{MAX_BARS:,}, not {bars:,}", source=source, rule="unknown source")
    planted = DEFAULT_PLANTED
    if len(rest) > 2:
        try:
            planted = float(rest[2])
        except ValueError:
            planted = math.nan
        if not (math.isfinite(planted) and 0 <= planted <= MAX_PLANTED):
            raise DataError(f"PLANTED in {form} must be a number from 0 to {MAX_PLANTED:g} "
                            f"(mean spreads), not {rest[2]!r}", source=source,
                            rule="unknown source")
    return kind, seed, bars, planted


def load_planted(name: str) -> pd.DataFrame:
    """The world a ``sample:planted-…`` source names (``parse_name``)."""
    kind, seed, bars, planted = parse_name(name)
    return generate(kind, seed=seed, bars=bars, planted=planted, source=f"sample:{name}")


def to_csv_text(frame: pd.DataFrame) -> str:
    """The candles as a generic CSV (UTC times, spread in price units) that ``data.load``
    reads back to the same frame."""
    return frame.to_csv(index_label="time", float_format=f"%.{DIGITS}f",
                        date_format="%Y-%m-%d %H:%M:%S")


def check_out(path: str | Path, force: bool = False) -> Path:
    """Refuse to write to ``path`` when it exists (unless ``force``) or its folder is missing."""
    path = Path(path)
    if path.exists() and not force:
        raise DataError(f"{path} exists; nothing is overwritten without `force`: allow it, or "
                        "choose another `out` file")
    if not path.parent.is_dir():
        raise DataError(f"folder {path.parent} does not exist; create it or choose another "
                        "`out` file")
    return path


def write_csv(frame: pd.DataFrame, path: str | Path, *, force: bool = False) -> Path:
    """Write ``to_csv_text(frame)`` to ``path`` atomically, after ``check_out``."""
    return atomic_write(check_out(path, force), to_csv_text(frame).encode("utf-8"))


__all__ = ["DEFAULT_BARS", "DEFAULT_PLANTED", "DEFAULT_SEED", "KINDS", "ORDER_MIRROR", "ORDER_PATTERN", "Squeeze",
           "codes",
           "calendar", "check_kind", "check_out", "generate", "load_planted", "mean_spread_bps", "other_orders",
           "parse_name", "planted_trades", "realised", "shape_code", "shape_codes",
           "to_csv_text", "trade_gross", "truth", "write_csv"]
