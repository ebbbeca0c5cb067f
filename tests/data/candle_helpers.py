"""Hand-made candles and the canonical-frame check, shared by the data-layer tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

FIXTURES = Path(__file__).parent / "fixtures"
HEADER = ["time", "open", "high", "low", "close", "volume"]


def good_rows(n: int = 8, start: str = "2024-01-04 18:00") -> list[list[str]]:
    """``n`` valid hourly candles as CSV cells (time, open, high, low, close, volume)."""
    times = pd.date_range(start, periods=n, freq="h")
    rows = []
    for i, t in enumerate(times):
        o = 1.1000 + 0.0010 * (i % 5)
        c = o + (0.0004 if i % 2 else -0.0003)
        rows.append([t.strftime("%Y-%m-%d %H:%M:%S"), f"{o:.5f}", f"{max(o, c) + 0.0005:.5f}",
                     f"{min(o, c) - 0.0006:.5f}", f"{c:.5f}", str(100 + i)])
    return rows


def csv_text(rows: list[list[str]], header: list[str] | None = None, sep: str = ",") -> str:
    return "\n".join(sep.join(r) for r in [header or HEADER, *rows]) + "\n"


def assert_canonical(frame: pd.DataFrame) -> None:
    """The contract of every loaded frame (DESIGN.md, data flow 1)."""
    assert isinstance(frame.index, pd.DatetimeIndex)
    assert str(frame.index.tz) == "UTC"
    assert frame.index.is_unique and frame.index.is_monotonic_increasing
    assert (np.diff(frame.index.asi8) > 0).all()
    assert list(frame.columns[:5]) == ["open", "high", "low", "close", "volume"]
    assert set(frame.columns) <= {"open", "high", "low", "close", "volume", "spread"}
    assert all(dtype == np.float64 for dtype in frame.dtypes)
    assert np.isfinite(frame.to_numpy()).all()


def candles(n: int = 120, seed: int = 0, start: str = "2024-01-01 00:00",
            freq: str = "h") -> pd.DataFrame:
    """A random-walk canonical frame of ``n`` bars (valid OHLC)."""
    rng = np.random.default_rng(seed)
    close = 1.1 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    open_ = np.r_[1.1, close[:-1]] * np.exp(rng.normal(0, 0.0005, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.001, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.001, n)))
    volume = rng.integers(50, 5000, n).astype("float64")
    index = pd.date_range(start, periods=n, freq=freq, tz="UTC", name="time")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                         "volume": volume}, index=index)
