"""Fractal labels: 0 none, 1 buy (a low fractal, a local low), 2 sell (a high fractal).

``3bar`` (the article's target): bar j is a low fractal when Low[j] < Low[j-1] and Low[j] < Low[j+1];
a high fractal when High[j] > High[j-1] and High[j] > High[j+1]. Known once bar j+1 closes.
``5bar`` (Bill Williams): the same against two bars each side; known once bar j+2 closes.
``swing`` (a fractal worth trading): a 3-bar fractal whose move follows through within H bars;
see :func:`swing_labels`. ``swing:M`` and ``swing:M:H`` name other targets and horizons.
``triple:K_UP:K_DN:H`` (triple barrier, López de Prado, AFML ch. 3): 1 when a long entered at the
next bar's ask nets positive at a barrier K_UP ATRs up before K_DN ATRs down, 2 the same for a short,
0 otherwise (the vertical barrier after H bars, or a losing first barrier); see
:func:`triple_labels`. ``horizon:H`` (fixed horizon, AFML ch. 3.2, with costs): 1 when a long
entered at the next bar's ask and closed at the bid open H bars later nets positive, 2 the same
for a short, 0 otherwise; see :func:`horizon_labels`. These are trade outcomes, not fractals.

Inequalities are strict, so equal lows (or highs) make no fractal. A bar that is both a low and a
high fractal (an outside bar) gets label 0: it points both ways and is no signal to trade; its count
is reported by ``label_summary``. Bars whose neighbours are not all known get -1 (unknown).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from data.features import atr

NONE, BUY, SELL, UNKNOWN = 0, 1, 2, -1
CLASS_NAMES = ("none", "buy", "sell")
SWING_M, SWING_H, SWING_ATR = 1.0, 24, 14  # target in ATRs, bars to reach it, ATR period
LABEL_KINDS = {"3bar": 1, "5bar": 2, "swing": SWING_H}  # the horizon: bars after t a label needs
_SIDES = {"3bar": 1, "5bar": 2}  # bars each side of a fractal
KIND_CHOICES = ("3bar, 5bar, swing, swing:M or swing:M:H (a swing of M ATRs within H bars), "
                "triple:K_UP:K_DN:H (triple barrier: K_UP ATRs up, K_DN down, H bars), or "
                "horizon:H (the sign of a trade held H bars, after costs)")
DEFAULT_SPREAD = 0.0001  # price units, when the candles have no spread: the engine's default (1 pip)
HORIZON_TIE = 1e-9       # horizon: a net within this × the entry price of 0 is 0 (float residue)


def horizon(kind: str) -> int:
    """How many bars after bar t its label needs (ValueError for an unknown kind)."""
    if is_swing(kind):
        return swing_params(kind)[1]
    if is_triple(kind):
        return triple_params(kind)[2] + 1   # the entry bar t+1 and the H bars after it
    if is_horizon(kind):
        return horizon_params(kind) + 1     # the exit at the open of bar t+1+H
    if not isinstance(kind, str) or kind not in LABEL_KINDS:
        raise ValueError(f"unknown label kind {kind!r}; choose {KIND_CHOICES}")
    return LABEL_KINDS[kind]


def is_swing(kind: object) -> bool:
    """Whether ``kind`` names a swing label (``swing`` or ``swing:...``; not yet validated)."""
    return isinstance(kind, str) and (kind == "swing" or kind.startswith("swing:"))


def swing_kind(m: float = SWING_M, h: int = SWING_H) -> str:
    """The one name of the swing rule (m, h): defaults left out, so each rule has one name
    (and one config id): ``swing``, ``swing:2``, ``swing:1.5:48``."""
    m_text = repr(float(m)).removesuffix(".0")
    if h != SWING_H:
        return f"swing:{m_text}:{h}"
    return "swing" if m == SWING_M else f"swing:{m_text}"


def swing_params(kind: str) -> tuple[float, int]:
    """(m, h) of a swing kind: ``swing`` is (1.0, 24), ``swing:M`` (M, 24), ``swing:M:H`` (M, H).
    ValueError unless 0 < M <= 100, 1 <= H <= 1000 and ``kind`` is the rule's one name."""
    base, *args = kind.split(":") if isinstance(kind, str) else ("",)
    if base != "swing" or len(args) > 2:
        raise ValueError(f"unknown label kind {kind!r}; choose {KIND_CHOICES}")
    try:
        m = float(args[0]) if args else SWING_M
        h = int(args[1]) if len(args) > 1 else SWING_H
    except ValueError:
        raise ValueError(f"label kind {kind!r}: M must be a number and H a whole number of "
                         "bars, e.g. swing:1.5 or swing:1.5:48") from None
    if not (math.isfinite(m) and 0 < m <= 100):
        raise ValueError(f"label kind {kind!r}: the target M must be in (0, 100] ATRs")
    if not 1 <= h <= 1000:
        raise ValueError(f"label kind {kind!r}: the horizon H must be 1 to 1000 bars")
    name = swing_kind(m, h)
    if kind != name:
        raise ValueError(f"write label kind {kind!r} as {name!r} (one name per rule)")
    return m, h


def fractal_flags(candles: pd.DataFrame, kind: str = "3bar") -> tuple[np.ndarray, np.ndarray]:
    """Boolean arrays (is_low_fractal, is_high_fractal); False where unknown. Swing kinds give
    their 3-bar fractals (whether or not they follow through)."""
    horizon(kind)
    if is_trade_outcome(kind):
        raise ValueError(f"label kind {kind!r} has no fractals (its labels are trade outcomes)")
    k = 1 if is_swing(kind) else _SIDES[kind]
    high, low = candles["high"].to_numpy(), candles["low"].to_numpy()
    n = len(high)
    is_low, is_high = np.zeros(n, bool), np.zeros(n, bool)
    if n > 2 * k:
        mid = slice(k, n - k)
        low_ok = np.ones(n - 2 * k, bool)
        high_ok = np.ones(n - 2 * k, bool)
        for s in [*range(-k, 0), *range(1, k + 1)]:
            other = slice(k + s, n - k + s)
            low_ok &= low[mid] < low[other]
            high_ok &= high[mid] > high[other]
        is_low[mid], is_high[mid] = low_ok, high_ok
    return is_low, is_high


def fractal_labels(candles: pd.DataFrame, kind: str = "3bar") -> pd.Series:
    """Label of every bar (int8): 0/1/2, or -1 where the bars it needs are missing."""
    if is_swing(kind):
        m, h = swing_params(kind)
        labels = swing_labels(candles, m, h)
    elif is_triple(kind):
        labels = triple_labels(candles, *triple_params(kind))
    elif is_horizon(kind):
        labels = horizon_labels(candles, horizon_params(kind))
    else:
        k = horizon(kind)
        is_low, is_high = fractal_flags(candles, kind)
        labels = np.full(len(candles), NONE, dtype=np.int8)
        labels[is_low & ~is_high] = BUY
        labels[is_high & ~is_low] = SELL
        labels[:k] = UNKNOWN
        labels[max(len(labels) - k, 0):] = UNKNOWN
    return pd.Series(labels, index=candles.index, name=f"fractal_{kind}")


def swing_labels(candles: pd.DataFrame, m: float = SWING_M, h: int = SWING_H) -> np.ndarray:
    """Swing labels (int8): bar j is a buy when it is a 3-bar low fractal (not an outside bar)
    and, over bars s = j+1 … j+h, some High[s] >= Low[j] + m·ATR[j] before any Low[s] < Low[j];
    a bar that does both counts as the break (no swing: the stop is assumed first, as in the
    backtest). Sell mirrors it: a high fractal with some Low[s] <= High[j] − m·ATR[j] before any
    High[s] > High[j]. Other bars are 0.

    ATR[j] is MT5's iATR(14) (``data.features.atr``: bars <= j). Bars whose ATR is still warming
    up, the first bar and the last h bars are -1 (unknown): they are never trained on. The label
    of bar j thus reads bars j-14 … j+h only, and ``horizon`` says h.
    """
    high = candles["high"].to_numpy(np.float64)
    low = candles["low"].to_numpy(np.float64)
    n = len(high)
    if n == 0:
        return np.empty(0, dtype=np.int8)
    is_low, is_high = fractal_flags(candles, "3bar")
    a = atr(candles["high"].astype("float64"), candles["low"].astype("float64"),
            candles["close"].astype("float64"), SWING_ATR).to_numpy()
    up, down = low + m * a, high - m * a          # the targets (NaN in the ATR warm-up)
    pad = np.full(h, np.nan)                      # bars past the end: neither hit nor break
    later_high, later_low = np.r_[high, pad], np.r_[low, pad]
    buy_done, buy_ok = np.zeros(n, bool), np.zeros(n, bool)
    sell_done, sell_ok = np.zeros(n, bool), np.zeros(n, bool)
    for d in range(1, h + 1):                     # bar s = j + d, earliest first
        hs, ls = later_high[d:d + n], later_low[d:d + n]
        hit, broken = hs >= up, ls < low
        buy_ok |= ~buy_done & hit & ~broken
        buy_done |= hit | broken
        hit, broken = ls <= down, hs > high
        sell_ok |= ~sell_done & hit & ~broken
        sell_done |= hit | broken
    labels = np.full(n, NONE, dtype=np.int8)
    labels[is_low & ~is_high & buy_ok] = BUY
    labels[is_high & ~is_low & sell_ok] = SELL
    labels[np.isnan(a)] = UNKNOWN
    labels[:1] = UNKNOWN
    labels[max(n - h, 0):] = UNKNOWN
    return labels


def is_triple(kind: object) -> bool:
    """Whether ``kind`` names a triple-barrier label (``triple``/``triple:...``; not yet validated)."""
    return isinstance(kind, str) and (kind == "triple" or kind.startswith("triple:"))


def _number(x: float) -> str:
    return repr(float(x)).removesuffix(".0")


def triple_kind(k_up: float, k_dn: float, h: int) -> str:
    """The one name of the triple-barrier rule: ``triple:1:1:24``, ``triple:1.5:0.75:48``."""
    return f"triple:{_number(k_up)}:{_number(k_dn)}:{int(h)}"


def triple_params(kind: str) -> tuple[float, float, int]:
    """(k_up, k_dn, h) of ``triple:K_UP:K_DN:H``. ValueError unless 0 < K <= 100 ATRs,
    1 <= H <= 1000 bars and ``kind`` is the rule's one name."""
    base, *args = kind.split(":") if isinstance(kind, str) else ("",)
    if base != "triple":
        raise ValueError(f"unknown label kind {kind!r}; choose {KIND_CHOICES}")
    if len(args) != 3:
        raise ValueError(f"label kind {kind!r}: write triple:K_UP:K_DN:H (barriers in ATRs, "
                         "horizon in bars), e.g. triple:1:1:24")
    try:
        k_up, k_dn, h = float(args[0]), float(args[1]), int(args[2])
    except ValueError:
        raise ValueError(f"label kind {kind!r}: K_UP and K_DN must be numbers and H a whole "
                         "number of bars, e.g. triple:1.5:1:24") from None
    for name, k in (("K_UP", k_up), ("K_DN", k_dn)):
        if not (math.isfinite(k) and 0 < k <= 100):
            raise ValueError(f"label kind {kind!r}: the barrier {name} must be in (0, 100] ATRs")
    if not 1 <= h <= 1000:
        raise ValueError(f"label kind {kind!r}: the horizon H must be 1 to 1000 bars")
    name = triple_kind(k_up, k_dn, h)
    if kind != name:
        raise ValueError(f"write label kind {kind!r} as {name!r} (one name per rule)")
    return k_up, k_dn, h


def bar_spreads(candles: pd.DataFrame, default_spread: float = DEFAULT_SPREAD) -> np.ndarray:
    """Each bar's spread in price units as the engine charges it: the ``spread`` column, with
    ``default_spread`` where it is NaN or where there is no such column."""
    if "spread" not in candles:
        return np.full(len(candles), float(default_spread))
    sp = candles["spread"].to_numpy(np.float64, na_value=np.nan)
    return np.where(np.isnan(sp), default_spread, sp)


def triple_labels(candles: pd.DataFrame, k_up: float, k_dn: float, h: int,
                  default_spread: float = DEFAULT_SPREAD, commission: float = 0.0) -> np.ndarray:
    """Triple-barrier labels (int8) with the trade's costs charged.

    Bar t's trade enters at the open of bar t+1 (O). Its barriers: upper U = O + k_up·ATR[t],
    lower L = O − k_dn·ATR[t] (ATR: MT5's iATR(14) of bars <= t); they are watched over the entry
    bar and the h bars after it (t+1 … t+1+h), then the vertical barrier ends the trade. Prices
    are bids; the ask is bid + that bar's spread (the ``spread`` column, price units; NaN or no
    column: ``default_spread``), as in the engine:

    - **buy (1)**: a long bought at the ask O + spread[t+1] sells at U when a bar's high reaches
      U before any low reaches L, and nets U − (O + spread[t+1]) − 2·commission > 0;
    - **sell (2)**: a short sold at the bid O buys back at L when a bar's ask low (low + spread)
      reaches L before its ask high reaches U, and nets O − L − 2·commission > 0 (its spread is
      paid in the touch: the ask must come down to L);
    - **none (0)**: otherwise — the vertical barrier came first, the stop (the other barrier) came
      first, or the first barrier touched nets <= 0.

    A bar that reaches both barriers is a stop, as the engine tries the stop first: for a long the
    lower barrier, for a short the upper one; so such a bar ends either trade without a label.
    ``commission``: price units per unit traded, per side. Bars in the ATR warm-up and the last
    h+1 bars are -1 (unknown); the label of bar t reads bars t-13 … t+1+h (``horizon``: h+1).
    """
    if not (default_spread >= 0 and commission >= 0):
        raise ValueError("default_spread and commission must be >= 0 (price units)")
    o = candles["open"].to_numpy(np.float64)
    high = candles["high"].to_numpy(np.float64)
    low = candles["low"].to_numpy(np.float64)
    n = len(o)
    if n == 0:
        return np.empty(0, dtype=np.int8)
    sp = bar_spreads(candles, default_spread)
    a = atr(candles["high"].astype("float64"), candles["low"].astype("float64"),
            candles["close"].astype("float64"), SWING_ATR).to_numpy()
    pad = np.full(h + 1, np.nan)                  # bars past the end: no touch (unknown anyway)
    o_next = np.r_[o, pad][1:n + 1]
    up, dn = o_next + k_up * a, o_next - k_dn * a
    bid_high, bid_low = np.r_[high, pad], np.r_[low, pad]
    ask_high, ask_low = bid_high + np.r_[sp, pad], bid_low + np.r_[sp, pad]
    long_done, long_up = np.zeros(n, bool), np.zeros(n, bool)
    short_done, short_dn = np.zeros(n, bool), np.zeros(n, bool)
    for d in range(1, h + 2):                     # bar s = t + d, the entry bar first
        take, stop = bid_high[d:d + n] >= up, bid_low[d:d + n] <= dn
        long_up |= ~long_done & take & ~stop      # both in one bar: the stop
        long_done |= take | stop
        take, stop = ask_low[d:d + n] <= dn, ask_high[d:d + n] >= up
        short_dn |= ~short_done & take & ~stop
        short_done |= take | stop
    long_net = k_up * a - np.r_[sp, pad][1:n + 1] - 2 * commission
    short_net = k_dn * a - 2 * commission
    buy, sell = long_up & (long_net > 0), short_dn & (short_net > 0)
    labels = np.full(n, NONE, dtype=np.int8)    # both cannot happen with spreads >= 0; if they
    labels[buy & ~sell] = BUY                   # did (a negative spread), the bar would be none
    labels[sell & ~buy] = SELL
    labels[np.isnan(a)] = UNKNOWN
    labels[max(n - h - 1, 0):] = UNKNOWN
    return labels


def is_horizon(kind: object) -> bool:
    """Whether ``kind`` names a fixed-horizon label (``horizon``/``horizon:...``; not yet
    validated)."""
    return isinstance(kind, str) and (kind == "horizon" or kind.startswith("horizon:"))


def is_trade_outcome(kind: object) -> bool:
    """Whether ``kind`` labels trade outcomes (``triple:``, ``horizon:``), not fractals: such
    labels have no fractals to show and their own exits (``strategy.rules.label_exits``)."""
    return is_triple(kind) or is_horizon(kind)


def horizon_kind(h: int) -> str:
    """The one name of the fixed-horizon rule: ``horizon:6``."""
    return f"horizon:{int(h)}"


def horizon_params(kind: str) -> int:
    """H of ``horizon:H``. ValueError unless 1 <= H <= 1000 bars and ``kind`` is the rule's one
    name (``horizon:6``, not ``horizon:06`` or ``horizon:6.0``)."""
    base, *args = kind.split(":") if isinstance(kind, str) else ("",)
    if base != "horizon":
        raise ValueError(f"unknown label kind {kind!r}; choose {KIND_CHOICES}")
    if len(args) != 1:
        raise ValueError(f"label kind {kind!r}: write horizon:H (bars held), e.g. horizon:6")
    try:
        h = int(args[0])
    except ValueError:
        raise ValueError(f"label kind {kind!r}: H must be a whole number of bars, e.g. "
                         "horizon:6") from None
    if not 1 <= h <= 1000:
        raise ValueError(f"label kind {kind!r}: the horizon H must be 1 to 1000 bars")
    name = horizon_kind(h)
    if kind != name:
        raise ValueError(f"write label kind {kind!r} as {name!r} (one name per rule)")
    return h


def horizon_labels(candles: pd.DataFrame, h: int, default_spread: float = DEFAULT_SPREAD,
                   commission: float = 0.0) -> np.ndarray:
    """Fixed-horizon labels (int8) with the trade's costs charged: the sign of a trade held h bars.

    Bar t's trade enters at the open of bar t+1 and is closed at the open of bar t+1+h (held over
    bars t+1 … t+h: the strategy's time exit with ``max_hold = h``). Prices are bids; the ask is
    bid + that bar's spread (the ``spread`` column, price units; NaN or no column:
    ``default_spread``), as in the engine:

    - **buy (1)**: a long bought at the ask open[t+1] + spread[t+1] and sold at the bid
      open[t+1+h] nets open[t+1+h] − open[t+1] − spread[t+1] − 2·commission > 0;
    - **sell (2)**: a short sold at the bid open[t+1] and bought back at the ask open[t+1+h] +
      spread[t+1+h] nets open[t+1] − open[t+1+h] − spread[t+1+h] − 2·commission > 0;
    - **none (0)**: neither. A net of 0 is none, and so is one within 10⁻⁹ × the entry price of
      0: prices and spreads on a decimal grid (5-digit EURUSD) give such floating-point residue
      where the decimal net is exactly 0. Both cannot be positive: the two nets add up to
      −spread[t+1] − spread[t+1+h] − 4·commission <= 0.

    No barrier is watched: the label keeps the sign of the move however far it went. Bars in the
    ATR warm-up (the first 13: the strategy's protective ``atr`` stop cannot be priced there, so
    it would not enter) and the last h+1 bars are -1 (unknown); the label of bar t reads bars
    t+1 and t+1+h (``horizon``: h+1).
    """
    if not (default_spread >= 0 and commission >= 0):
        raise ValueError("default_spread and commission must be >= 0 (price units)")
    n = len(candles)
    if n == 0:
        return np.empty(0, dtype=np.int8)
    o = candles["open"].to_numpy(np.float64)
    sp = bar_spreads(candles, default_spread)
    pad = np.full(h + 1, np.nan)                  # bars past the end (unknown anyway)
    o_pad, sp_pad = np.r_[o, pad], np.r_[sp, pad]
    entry, exit_ = o_pad[1:n + 1], o_pad[1 + h:n + 1 + h]
    long_net = exit_ - entry - sp_pad[1:n + 1] - 2 * commission
    short_net = entry - exit_ - sp_pad[1 + h:n + 1 + h] - 2 * commission
    tie = HORIZON_TIE * np.abs(entry)             # floating residue of a decimal net of 0
    labels = np.full(n, NONE, dtype=np.int8)
    labels[long_net > tie] = BUY                  # NaN compares False
    labels[short_net > tie] = SELL
    labels[(long_net > 0) & (short_net > 0)] = NONE   # only with a negative spread
    a = atr(candles["high"].astype("float64"), candles["low"].astype("float64"),
            candles["close"].astype("float64"), SWING_ATR).to_numpy()
    labels[np.isnan(a)] = UNKNOWN
    labels[max(n - h - 1, 0):] = UNKNOWN
    return labels


def label_summary(candles: pd.DataFrame, kind: str = "3bar") -> dict[str, int]:
    """Counts per class, plus outside bars (both fractals, labelled none) and unknown bars; for
    swing kinds also ``fractal_not_swing``: one-way 3-bar fractals that did not follow through."""
    labels = fractal_labels(candles, kind).to_numpy()
    known = labels != UNKNOWN
    if is_trade_outcome(kind):   # no fractals, so no outside bars
        return {"none": int((labels == NONE).sum()), "buy": int((labels == BUY).sum()),
                "sell": int((labels == SELL).sum()), "unknown": int((~known).sum())}
    is_low, is_high = fractal_flags(candles, kind)
    summary = {
        "none": int((labels == NONE).sum()), "buy": int((labels == BUY).sum()),
        "sell": int((labels == SELL).sum()), "both_as_none": int((is_low & is_high & known).sum()),
        "unknown": int((~known).sum()),
    }
    if is_swing(kind):
        summary["fractal_not_swing"] = int(((is_low ^ is_high) & (labels == NONE)).sum())
    return summary
