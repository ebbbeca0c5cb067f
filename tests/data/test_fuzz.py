"""Fuzz: whatever bytes a CSV file holds, ``data.load`` raises ``DataError`` or returns the frame."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data import DataError, load

HEADERS = [
    "time,open,high,low,close,volume",
    "Date,Open,High,Low,Close",
    "Datetime;Open;High;Low;Close;Volume",
    "timestamp\topen\thigh\tlow\tclose",
    "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>",
    "time,open,high,low,close,tick_volume,spread,real_volume",
    "Price,Adj Close,Close,High,Low,Open,Volume\nTicker,EURUSD=X,EURUSD=X,EURUSD=X,EURUSD=X,"
    "EURUSD=X,EURUSD=X\nDatetime,,,,,,",
    "Price,Close,High,Low,Open,Volume\nTicker,X,X,X,X,X",
    ",Open,High,Low,Close,Volume",
    "open,high,low,close",
    "",
]
CELLS = st.one_of(
    st.sampled_from([
        "", " ", "1.1", "1.2", "1.0", "0", "-1", "nan", "NaN", "inf", "-inf", "1e308", "1e400",
        "9" * 40, "2020-01-01", "2020-01-01 10:00:00", "2025.06.23", "10:00:00",
        "2020-01-01T00:00:00+00:00", "2020-01-01 00:00:00+02:00", "1700000000", "1700000000000",
        "-5", "0x10", "1j", "now", "today", "NaT", "None", "True", "\"", "\"a,b\"", "€", "日本",
        "\ufeff", "2262-05-01", "0000-01-01", "99999-12-31", "1e20", "abc", ";", "\t", ",",
        "Ticker", "Price", "<DATE>",
    ]),
    st.text(max_size=12),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
)


@st.composite
def malformed_csv(draw) -> bytes:
    kind = draw(st.sampled_from(["bytes", "table", "table", "table", "text"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "text":
        return draw(st.text(max_size=300)).encode(draw(st.sampled_from(["utf-8", "utf-16"])))
    header = draw(st.sampled_from(HEADERS))
    sep = draw(st.sampled_from([",", ";", "\t", " ", "|"]))
    n_cols = draw(st.integers(0, 10))
    rows = draw(st.lists(st.lists(CELLS, min_size=0, max_size=n_cols + 2), max_size=8))
    lines = [header] + [sep.join(r) for r in rows]
    text = "\n".join(lines)
    if draw(st.booleans()):
        text += "\n"
    if draw(st.booleans()) and text:  # truncate anywhere
        text = text[: draw(st.integers(0, len(text)))]
    return text.encode("utf-8")


@st.composite
def nearly_valid_csv(draw) -> bytes:
    """A valid generic/MT5 file with a few cells replaced: exercises the validator's rules."""
    n = draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    close = 1.1 + np.cumsum(rng.normal(0, 0.001, n))
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) + 0.0005
    low = np.minimum(open_, close) - 0.0005
    times = pd.date_range(draw(st.sampled_from(["2024-01-01", "2024-03-31", "2024-10-27"])),
                          periods=n, freq="h")
    prices = list(zip(times, open_, high, low, close, strict=True))
    kind = draw(st.sampled_from(["generic", "mt5_terminal", "mt5_api", "yfinance"]))
    sep = ","
    prefix = ""
    if kind == "mt5_terminal":
        header = ["<DATE>", "<TIME>", "<OPEN>", "<HIGH>", "<LOW>", "<CLOSE>", "<TICKVOL>",
                  "<VOL>", "<SPREAD>"]
        rows = [[t.strftime("%Y.%m.%d"), t.strftime("%H:%M:%S"), f"{o:.5f}", f"{h:.5f}",
                 f"{lo:.5f}", f"{c:.5f}", "100", "0", "12"] for t, o, h, lo, c in prices]
        sep = "\t"
    elif kind == "mt5_api":
        header = ["time", "open", "high", "low", "close", "tick_volume", "spread", "real_volume"]
        rows = [[str(int(t.timestamp())), repr(o), repr(h), repr(lo), repr(c), "100", "7", "0"]
                for t, o, h, lo, c in prices]
    elif kind == "yfinance":
        prefix = "Price,Adj Close,Close,High,Low,Open,Volume\nTicker,X,X,X,X,X,X\n"
        header = ["Datetime", "", "", "", "", "", ""]
        rows = [[f"{t}+00:00", repr(c), repr(c), repr(h), repr(lo), repr(o), "0"]
                for t, o, h, lo, c in prices]
    else:
        header = ["time", "open", "high", "low", "close", "volume"]
        rows = [[str(t), f"{o:.5f}", f"{h:.5f}", f"{lo:.5f}", f"{c:.5f}", "100"]
                for t, o, h, lo, c in prices]
        sep = draw(st.sampled_from([",", ";", "\t"]))
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(0, n - 1))
        j = draw(st.integers(0, len(header) - 1))
        rows[i][j] = draw(CELLS)
    if draw(st.booleans()):
        i = draw(st.integers(0, n - 1))
        rows[i] = rows[i][: draw(st.integers(0, len(header)))] + draw(st.lists(CELLS, max_size=2))
    return (prefix + "\n".join(sep.join(r) for r in [header, *rows])).encode("utf-8")


def _check_only_data_error(raw: bytes, **kwargs) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.csv"
        path.write_bytes(raw)
        try:
            frame = load(path, **kwargs)
        except DataError as exc:
            assert str(path) in str(exc)
            return
        # Whatever loads must be the canonical frame.
        assert isinstance(frame.index, pd.DatetimeIndex) and str(frame.index.tz) == "UTC"
        assert frame.index.is_monotonic_increasing and frame.index.is_unique
        assert list(frame.columns[:5]) == ["open", "high", "low", "close", "volume"]
        assert np.isfinite(frame.to_numpy()).all()


FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@FUZZ
@given(malformed_csv())
def test_malformed_csv_raises_only_data_error(raw: bytes) -> None:
    _check_only_data_error(raw)


@FUZZ
@given(nearly_valid_csv(), st.sampled_from(["UTC", "Europe/Athens", "America/New_York"]),
       st.booleans())
def test_nearly_valid_csv_raises_only_data_error(raw: bytes, tz: str, sort: bool) -> None:
    _check_only_data_error(raw, tz=tz, sort=sort)
