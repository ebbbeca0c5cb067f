"""Synthetic candles for the walk-forward tests: a random walk, or one with a planted pattern."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def synthetic(n: int, seed: int = 0, planted: bool = False, every: int = 12) -> pd.DataFrame:
    """Hourly candles. Random walk; with ``planted``, about one bar in ``every`` is a hammer
    (long lower wick, close near the high) that is a low fractal and is followed by a run of
    higher lows (a buy the models can learn and the strategy can trade), or its mirror image."""
    rng = np.random.default_rng(seed)
    a = 0.001                                  # typical bar range
    o, h, lo, c = (np.empty(n) for _ in range(4))
    price, drift, left = 1.1, 0.0, 0
    next_event = rng.integers(every // 2, every)
    for i in range(n):
        op = price
        if planted and i == next_event and left == 0:
            side = rng.choice((1, -1))
            cl = op + side * 0.2 * a
            ext = op - side * 1.5 * a                               # the wick
            hi, low_ = (max(op, cl) + 0.1 * a, ext) if side == 1 else (ext, min(op, cl) - 0.1 * a)
            drift, left = side * 0.9 * a, 8                         # the run that follows
            next_event = i + 8 + rng.integers(every // 2, every)
        else:
            step = drift + rng.normal(0, 0.5 * a)
            cl = op + step
            wick = np.abs(rng.normal(0, 0.3 * a, 2))
            if left:
                wick *= 0.3                          # small wicks: the run's lows keep rising
                left -= 1
                if left == 0:
                    drift = 0.0
            hi, low_ = max(op, cl) + wick[0], min(op, cl) - wick[1]
        o[i], h[i], lo[i], c[i] = op, hi, low_, cl
        price = cl
    index = pd.date_range("2020-01-06", periods=n, freq="h", tz="UTC", name="time")
    return pd.DataFrame({"open": o, "high": h, "low": lo, "close": c,
                         "volume": rng.integers(100, 1000, n).astype(float)}, index=index)


def write_csv(frame: pd.DataFrame, path: Path) -> str:
    out = frame.copy()
    out.index = out.index.strftime("%Y-%m-%d %H:%M:%S")
    out.to_csv(path, index_label="time", float_format="%.6f")
    return str(path)


def assert_readable_interactive_page(html: str) -> None:
    """A study page (walk-forward, sweep) is interactive offline and reads as a table of words
    and plain numbers: Bokeh inlined (no script from a server), a settings table instead of a
    Python dict, no number in scientific notation, no interval below zero for a count."""
    import re

    assert "Bokeh" in html and not re.search(r"<script[^>]+src=['\"]https?:", html)
    body = re.sub(r"<script.*?</script>", "", html, flags=re.S)
    assert "<h2>Settings</h2>" in body and "{'" not in body
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", body)
    assert cells and not [c for c in cells if re.fullmatch(r"-?[0-9.]+e[+-][0-9]+", c.strip())]
