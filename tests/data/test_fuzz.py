"""Fuzz: whatever bytes a CSV file holds, ``data.load`` raises ``DataError`` or returns the frame."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
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
    '"time";"open";"high";"low";"close";"tick_volume";"spread";"real_volume"',
    "\ufeff\ufefftime\topen\thigh\tlow\tclose\treal_volume\tspread",
    "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPRAED>",
    ",".join(f"c{i}" for i in range(70)),
]
CELLS = st.one_of(
    st.sampled_from([
        "", " ", "1.1", "1.2", "1.0", "0", "-1", "nan", "NaN", "inf", "-inf", "1e308", "1e400",
        "9" * 40, "2020-01-01", "2020-01-01 10:00:00", "2025.06.23", "10:00:00",
        "2020-01-01T00:00:00+00:00", "2020-01-01 00:00:00+02:00", "1700000000", "1700000000000",
        "-5", "0x10", "1j", "now", "today", "NaT", "None", "True", "\"", "\"a,b\"", "€", "日本",
        "\ufeff", "2262-05-01", "0000-01-01", "99999-12-31", "1e20", "abc", ";", "\t", ",",
        "Ticker", "Price", "<DATE>", "02.01.2023 00:00:00", "13.01.2023", "01/13/2023 10:00",
        "1.1456500000000001", "\x1c.07225", "\r\n", "\t\t\t",
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
    """Whatever loads is canonical; anything else is a DataError naming the file."""
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


def examples(n: int) -> int:
    """n examples under the "thorough" Hypothesis profile, scaled to the profile loaded
    (tests/conftest.py)."""
    return max(1, n * settings.default.max_examples // 100)


FUZZ = settings(max_examples=examples(200), deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@pytest.mark.slow   # a few seconds: runs in `make test`, not in the fast subset
@FUZZ
@given(malformed_csv())
def test_malformed_csv_raises_only_data_error(raw: bytes) -> None:
    _check_only_data_error(raw)


@pytest.mark.slow   # seconds: 25 generated files through every reading option
@FUZZ
@given(nearly_valid_csv(), st.sampled_from(["UTC", "Europe/Athens", "America/New_York"]),
       st.booleans(), st.sampled_from([None, True, False]), st.sampled_from([None, 1e-5]))
def test_nearly_valid_csv_raises_only_data_error(raw: bytes, tz: str, sort: bool,
                                                 dayfirst: bool | None,
                                                 point: float | None) -> None:
    _check_only_data_error(raw, tz=tz, sort=sort, dayfirst=dayfirst, point=point)


# --- the same candles, written every way a user's file may be written, load the same ----------

def _ticks(seed: int, n: int) -> tuple[np.ndarray, ...]:
    """n random candles in ticks of 0.00001 (open, high, low, close) and spreads in points."""
    rng = np.random.default_rng(seed)
    ticks = 114_000 + np.cumsum(rng.integers(-40, 41, n))
    open_, close = np.r_[ticks[0], ticks[:-1]], ticks
    high = np.maximum(open_, close) + rng.integers(0, 20, n)
    low = np.minimum(open_, close) - rng.integers(0, 20, n)
    return open_, high, low, close, rng.integers(0, 30, n)


@st.composite
def rendered_candles(draw) -> dict:
    """Valid candles rendered with a random dialect, BOMs, quoting, separator, date order, float
    noise, blank lines inside and at the end; returns the bytes, load() kwargs and the truth."""
    n = draw(st.integers(2, 10))
    open_, high, low, close, spread = _ticks(draw(st.integers(0, 2**32 - 1)), n)
    times = pd.date_range(draw(st.sampled_from(["2023-01-02 00:00", "2023-03-05 10:00"])),
                          periods=n, freq=draw(st.sampled_from(["h", "D"])))
    dialect = draw(st.sampled_from(["generic", "mt5_api", "mt5_terminal"]))
    noise = draw(st.booleans())

    def price(t: int) -> str:
        return f"{t / 1e5:.17g}" if noise else f"{t / 1e5:.5f}"

    style = draw(st.sampled_from(["iso", "dayfirst", "monthfirst"]))
    stamp_fmt = {"iso": "%Y-%m-%d %H:%M:%S", "dayfirst": "%d.%m.%Y %H:%M",
                 "monthfirst": "%m/%d/%Y %H:%M"}[style]
    if dialect == "mt5_terminal":
        names = ["<DATE>", "<TIME>", "<OPEN>", "<HIGH>", "<LOW>", "<CLOSE>", "<TICKVOL>",
                 "<SPREAD>"]
        rows = [[t.strftime("%Y.%m.%d"), t.strftime("%H:%M:%S"), price(o), price(h), price(lo),
                 price(c), "10", str(s)]
                for t, o, h, lo, c, s in zip(times, open_, high, low, close, spread, strict=True)]
        style = "iso"
    else:
        names = (["time", "open", "high", "low", "close", "tick_volume", "spread", "real_volume"]
                 if dialect == "mt5_api" else ["Date", "Open", "High", "Low", "Close", "Volume"])
        rows = []
        for t, o, h, lo, c, s in zip(times, open_, high, low, close, spread, strict=True):
            row = [t.strftime(stamp_fmt), price(o), price(h), price(lo), price(c), "10"]
            rows.append(row + [str(s), "0"] if dialect == "mt5_api" else row)
    sep = draw(st.sampled_from([",", ";", "\t"]))
    quote = draw(st.booleans())
    header = sep.join(f'"{name}"' if quote else name for name in names)
    lines = [sep.join(r) for r in rows]
    blanks = draw(st.lists(st.integers(1, len(lines) - 1), max_size=3))  # inside, never first
    for at in sorted(blanks, reverse=True):
        lines.insert(at, draw(st.sampled_from(["", "  ", sep * (len(names) - 1)])))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    tail = newline * draw(st.integers(0, 3))
    text = draw(st.sampled_from(["", "\ufeff", "\ufeff\ufeff"])) + newline.join(
        [header, *lines]) + newline + tail
    encoding = draw(st.sampled_from(["utf-8", "utf-16"]))
    kwargs = {} if style == "iso" else {"dayfirst": style == "dayfirst"}
    truth = pd.DataFrame({"open": open_ / 1e5, "high": high / 1e5, "low": low / 1e5,
                          "close": close / 1e5, "volume": 10.0},
                         index=pd.DatetimeIndex(times, name="time").tz_localize("UTC"))
    if dialect != "generic":
        truth["spread"] = spread * 1e-5
    return {"raw": text.encode(encoding), "kwargs": kwargs, "truth": truth,
            "skipped": len(blanks), "rows": rows, "sep": sep, "header": header,
            "newline": newline}


@pytest.mark.slow   # a few seconds: runs in `make test`, not in the fast subset
@settings(FUZZ, max_examples=examples(100))
@given(rendered_candles())
def test_any_rendering_of_the_same_candles_loads_the_same(case: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "candles.csv"
        path.write_bytes(case["raw"])
        frame = load(path, **case["kwargs"])
    truth = case["truth"]
    assert list(frame.columns) == list(truth.columns)
    assert frame.index.equals(truth.index)
    np.testing.assert_allclose(frame.to_numpy(), truth.to_numpy(), rtol=1e-12, atol=1e-15)
    assert frame.attrs["skipped_blank_lines"] == case["skipped"]


@settings(FUZZ, max_examples=examples(100))
@given(rendered_candles(), st.data())
def test_a_row_with_a_field_too_many_or_too_few_never_loads(case: dict, data) -> None:
    rows = [list(r) for r in case["rows"]]
    i = data.draw(st.integers(0, len(rows) - 1))
    if data.draw(st.booleans()):
        del rows[i][data.draw(st.integers(0, len(rows[i]) - 1))]
    else:
        rows[i].insert(data.draw(st.integers(0, len(rows[i]))), "1")
    text = case["newline"].join([case["header"], *(case["sep"].join(r) for r in rows)])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "candles.csv"
        path.write_bytes(text.encode())
        try:
            load(path, **case["kwargs"])
        except DataError as exc:
            assert exc.rule == "malformed CSV" and exc.rows == [i + 2], str(exc)
        else:
            raise AssertionError("a row with a wrong field count loaded")


# --- mutations that once loaded wrong numbers without a word (issue 16 §2) --------------------

OFFSET_SUFFIXES = [("GMT+2", 2), (" GMT+2", 2), (" GMT-3", -3), (" GMT+02:00", 2), (" UTC+2", 2),
                   (" utc-03:30", -3.5), (" GMT+0545", 5.75), ("+02:00", 2), ("-0300", -3),
                   ("Z", 0), (" GMT", 0), (" UTC", 0)]
TZ_OPTIONS = [("GMT+2", 2), ("GMT-3", -3), ("UTC+02:00", 2), ("+05:30", 5.5), ("-04:00", -4),
              ("GMT", 0)]
# date format, and the dayfirst options a user who knows the file may give (None: not given)
DATE_STYLES = {"iso": ("%Y-%m-%d %H:%M:%S", [None]), "dmy4": ("%d.%m.%Y %H:%M", [None, True]),
               "mdy4": ("%m/%d/%Y %H:%M", [None, False]), "dmy2": ("%d.%m.%y %H:%M", [None, True]),
               "mdy2": ("%m/%d/%y %H:%M", [None, False]), "ymd2": ("%y.%m.%d %H:%M", [None, False]),
               "ymd2-": ("%y-%m-%d %H:%M", [None, False])}


@st.composite
def mutated_candles(draw) -> dict:
    """Valid candles in a random dialect and date style, then one mutation of the kind the
    fuzzer of issue 16 found loading wrong: a price with an extra decimal, a GMT±N suffix or
    option, a cut inside the last line. Returns the text, load() kwargs, the truth and what the
    mutation was."""
    n = draw(st.integers(2, 40))
    open_, high, low, close, spread = _ticks(draw(st.integers(0, 2**32 - 1)), n)
    start = draw(st.sampled_from(["2023-01-02 00:00", "2025-12-12 00:00", "2012-12-25 00:00",
                                  "2005-12-01 00:00", "2023-01-30 20:00", "2025-11-30 22:00"]))
    times = pd.date_range(start, periods=n, freq=draw(st.sampled_from(["h", "D"])))
    dialect = draw(st.sampled_from(["generic", "mt5_api", "mt5_terminal"]))
    noise = draw(st.booleans())
    style = "iso" if dialect == "mt5_terminal" else draw(st.sampled_from(sorted(DATE_STYLES)))
    fmt, dayfirsts = DATE_STYLES[style]
    kwargs: dict = {}
    dayfirst = draw(st.sampled_from(dayfirsts))
    if dayfirst is not None:
        kwargs["dayfirst"] = dayfirst
    mutation = draw(st.sampled_from(["none", "decimal", "offset", "tz", "truncate"]))
    hours = 0.0
    suffix = ""
    if mutation == "offset":
        suffix, hours = draw(st.sampled_from(OFFSET_SUFFIXES))
    elif mutation == "tz":
        kwargs["tz"], hours = draw(st.sampled_from(TZ_OPTIONS))
    cells = np.column_stack([open_, high, low, close]).astype(object)
    prices = [[f"{t / 1e5:.17g}" if noise else f"{t / 1e5:.5f}" for t in row] for row in cells]
    truth_prices = cells.astype("float64") / 1e5
    if mutation == "decimal":  # one price written with one decimal more than the others
        i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, 3))
        prices[i][j] += str(draw(st.integers(1, 9)))
        truth_prices[i, j] = float(prices[i][j])
    rows = []
    for t, p, s in zip(times, prices, spread, strict=True):
        if dialect == "mt5_terminal":
            rows.append([t.strftime("%Y.%m.%d"), t.strftime("%H:%M:%S") + suffix, *p, "10",
                         str(s)])
        else:
            row = [t.strftime(fmt) + suffix, *p, "10"]
            rows.append(row + [str(s), "0"] if dialect == "mt5_api" else row)
    names = {"mt5_terminal": ["<DATE>", "<TIME>", "<OPEN>", "<HIGH>", "<LOW>", "<CLOSE>",
                              "<TICKVOL>", "<SPREAD>"],
             "mt5_api": ["time", "open", "high", "low", "close", "tick_volume", "spread",
                         "real_volume"],
             "generic": ["Date", "Open", "High", "Low", "Close", "Volume"]}[dialect]
    sep = draw(st.sampled_from([",", ";", "\t"]))
    quote = draw(st.booleans())
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    lines = [sep.join(f'"{name}"' if quote else name for name in names),
             *(sep.join(r) for r in rows)]
    text = newline.join(lines) + newline
    if mutation == "truncate":  # cut anywhere in the last line (often in its last field)
        last = len(text) - len(lines[-1]) - len(newline)
        field = text.rfind(sep, 0, len(text) - len(newline)) + 1
        text = text[: draw(st.one_of(st.integers(last, len(text) - 1),
                                     st.integers(field, len(text) - 1)))]
    truth = pd.DataFrame(truth_prices, columns=["open", "high", "low", "close"],
                         index=(pd.DatetimeIndex(times, name="time")
                                - pd.Timedelta(hours=hours)).tz_localize("UTC"))
    truth["volume"] = 10.0
    if dialect != "generic":
        truth["spread"] = spread * 1e-5
    return {"text": text, "kwargs": kwargs, "truth": truth, "mutation": mutation,
            "last_line": len(lines), "encoding": draw(st.sampled_from(["utf-8", "utf-16"]))}


# not scaled by the profile: the silent-wrong-load fuzz is cheap (about 6 s) and is the check
# issue 16 asks for; 120 mutated files every run
@pytest.mark.slow   # a few seconds: runs in `make test`, not in the fast subset
@settings(FUZZ, max_examples=120)
@given(mutated_candles())
def test_mutated_files_load_right_or_are_refused(case: dict) -> None:
    """0 silent-wrong loads: a mutated file raises DataError, or loads the numbers the file
    truly holds; a cut last line that cannot be told from a whole one loads with a warning."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "EURUSD.csv"
        path.write_bytes(case["text"].encode(case["encoding"]))
        try:
            frame = load(path, **case["kwargs"])
        except DataError as exc:
            assert str(path) in str(exc)
            return
    truth = case["truth"]
    if case["mutation"] == "truncate" and len(frame) == len(truth) - 1:
        truth = truth.iloc[:-1]  # cut just after the previous row's line end
    assert list(frame.columns) == list(truth.columns)
    assert frame.index.equals(truth.index), (case["mutation"], frame.index[:2], truth.index[:2])
    got, want = frame.to_numpy(), truth.to_numpy()
    same = np.isclose(got, want, rtol=1e-12, atol=1e-15)
    if case["mutation"] == "truncate" and not same.all():
        warned = [w for w in frame.attrs["warnings"] if f"line {case['last_line']}" in w]
        assert warned and same[:-1].all(), (frame.tail(1), truth.tail(1))
        return
    worst = float(np.max(np.abs(got - want)))
    assert same.all(), f"{case['mutation']}: loaded numbers differ (worst by {worst:.3g})"
