"""Fractal labels: 0 none, 1 buy (a low fractal, a local low), 2 sell (a high fractal).

``3bar`` (the article's target): bar j is a low fractal when Low[j] < Low[j-1] and Low[j] < Low[j+1];
a high fractal when High[j] > High[j-1] and High[j] > High[j+1]. Known once bar j+1 closes.
``5bar`` (Bill Williams): the same against two bars each side; known once bar j+2 closes.

Inequalities are strict, so equal lows (or highs) make no fractal. A bar that is both a low and a
high fractal (an outside bar) gets label 0: it points both ways and is no signal to trade; its count
is reported by ``label_summary``. Bars whose neighbours are not all known get -1 (unknown).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NONE, BUY, SELL, UNKNOWN = 0, 1, 2, -1
CLASS_NAMES = ("none", "buy", "sell")
LABEL_KINDS = {"3bar": 1, "5bar": 2}  # bars needed on each side


def horizon(kind: str) -> int:
    """How many bars after bar t its label needs."""
    if kind not in LABEL_KINDS:
        raise ValueError(f"unknown label kind {kind!r}; choose {', '.join(LABEL_KINDS)}")
    return LABEL_KINDS[kind]


def fractal_flags(candles: pd.DataFrame, kind: str = "3bar") -> tuple[np.ndarray, np.ndarray]:
    """Boolean arrays (is_low_fractal, is_high_fractal); False where unknown."""
    k = horizon(kind)
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
    """Label of every bar (int8): 0/1/2, or -1 where the neighbours it needs are missing."""
    k = horizon(kind)
    is_low, is_high = fractal_flags(candles, kind)
    labels = np.full(len(candles), NONE, dtype=np.int8)
    labels[is_low & ~is_high] = BUY
    labels[is_high & ~is_low] = SELL
    labels[:k] = UNKNOWN
    labels[max(len(labels) - k, 0):] = UNKNOWN
    return pd.Series(labels, index=candles.index, name=f"fractal_{kind}")


def label_summary(candles: pd.DataFrame, kind: str = "3bar") -> dict[str, int]:
    """Counts per class, plus outside bars (both fractals, labelled none) and unknown bars."""
    labels = fractal_labels(candles, kind).to_numpy()
    is_low, is_high = fractal_flags(candles, kind)
    return {
        "none": int((labels == NONE).sum()), "buy": int((labels == BUY).sum()),
        "sell": int((labels == SELL).sum()), "both_as_none": int((is_low & is_high).sum()),
        "unknown": int((labels == UNKNOWN).sum()),
    }
