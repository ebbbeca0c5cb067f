"""Load candles from any source into the canonical frame (see ``data.validate``).

Sources:
- ``sample:EURUSD_H1`` / ``sample:GOOG_D1``: real candles shipped by the ``backtesting`` package;
- a CSV path: generic OHLCV, MetaTrader 5 terminal export, MetaTrader 5 Python-API dump, or a CSV
  saved from yfinance (one- or multi-row header); the format is detected;
- ``yahoo:SYMBOL[:INTERVAL]``: the local yfinance cache filled by ``attnbt data fetch`` (offline).
"""

from __future__ import annotations

import csv
import importlib.util
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from data.errors import DataError
from data.validate import validate_frame

# Real candles shipped by the PyPI package `backtesting` (AGPL-3.0), read as data files.
SAMPLES = {
    "EURUSD_H1": ("backtesting.test", "EURUSD.csv"),
    "GOOG_D1": ("backtesting.test", "GOOG.csv"),
}
TIME_NAMES = ("time", "date", "datetime", "timestamp", "date_time", "gmt time", "local time", "")
_AWARE = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")


def load(source: str | Path, *, tz: str = "UTC", sort: bool = False,
         cache_dir: Path | None = None, point: float | None = None) -> pd.DataFrame:
    """Load ``source`` into the canonical candle frame or raise ``DataError``.

    ``tz`` is the zone of naive timestamps in the file (converted to UTC); ``point`` converts an
    MT5 spread given in points to price units (inferred from the price digits when omitted).
    """
    text = str(source)
    if text.startswith("sample:"):
        return load_sample(text.removeprefix("sample:"))
    if text.startswith("yahoo:"):
        from data.yahoo import load_cached

        symbol, _, interval = text.removeprefix("yahoo:").partition(":")
        return load_cached(symbol, interval or "1h", cache_dir=cache_dir)
    return load_csv(Path(text), tz=tz, sort=sort, point=point)


def load_sample(name: str) -> pd.DataFrame:
    """One of the embedded samples, by name (``EURUSD_H1``, ``GOOG_D1``)."""
    if name not in SAMPLES:
        raise DataError(f"unknown sample {name!r}; choose one of {', '.join(SAMPLES)}",
                        source=f"sample:{name}", rule="unknown source")
    raw = sample_path(name).read_text()
    # The package's files are naive UTC-like broker time; we read them as UTC and say so in README.
    frame = _read_generic(raw, f"sample:{name}", tz="UTC", sort=False, point=None)
    frame.attrs["source"] = f"sample:{name}"
    return frame


def sample_path(name: str) -> Path:
    """Where the ``backtesting`` package keeps a sample file (found without importing it)."""
    package, filename = SAMPLES[name]
    spec = importlib.util.find_spec(package.split(".")[0])
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the backtesting package (which ships the sample) is not installed",
                        source=f"sample:{name}", rule="missing file")
    return Path(list(spec.submodule_search_locations)[0], *package.split(".")[1:], filename)


def load_csv(path: Path, *, tz: str = "UTC", sort: bool = False,
             point: float | None = None) -> pd.DataFrame:
    """Load a CSV file of candles, detecting its format."""
    _check_tz(tz, str(path))
    if not path.exists():
        raise DataError("no such file", source=str(path), rule="missing file")
    if path.is_dir():
        raise DataError("is a directory, not a CSV file", source=str(path), rule="missing file")
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "utf-16"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise DataError("file is not UTF-8 or UTF-16 text", source=str(path), rule="encoding")
    if "\x00" in text:
        raise DataError("file holds NUL bytes; is it a CSV?", source=str(path), rule="encoding")
    frame = _read_text(text, str(path), tz=tz, sort=sort, point=point)
    frame.attrs["source"] = str(path)
    return frame


def detect_format(text: str) -> str:
    """Name the CSV dialect: ``mt5_terminal``, ``mt5_api``, ``yfinance_multi`` or ``generic``."""
    head = text.lstrip().splitlines()[:3] or [""]
    first = head[0].strip().lower()
    if "<date>" in first and "<open>" in first:
        return "mt5_terminal"
    cells = [c.strip() for c in first.split(",")]
    if len(head) >= 2 and cells[:1] == ["price"] and head[1].lower().startswith("ticker"):
        return "yfinance_multi"
    if "tick_volume" in cells and "time" in cells:
        return "mt5_api"
    return "generic"


def _read_text(text: str, source: str, *, tz: str, sort: bool, point: float | None):
    fmt = detect_format(text)
    if fmt == "mt5_terminal":
        return _read_mt5_terminal(text, source, tz=tz, sort=sort, point=point)
    if fmt == "yfinance_multi":
        return _read_yfinance_multi(text, source, tz=tz, sort=sort)
    if fmt == "mt5_api":
        return _read_mt5_api(text, source, tz=tz, sort=sort, point=point)
    return _read_generic(text, source, tz=tz, sort=sort, point=point)


def _parse_table(text: str, source: str, sep: str | None = ",", skiprows: int = 0,
                 header: int | None = 0) -> pd.DataFrame:
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, skiprows=skiprows, header=header,
                            dtype=str, keep_default_na=False, skipinitialspace=True,
                            engine="python" if sep is None else "c", skip_blank_lines=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error, ValueError) as exc:
        raise DataError(f"could not read as CSV ({str(exc).strip().splitlines()[0]})",
                        source=source, rule="malformed CSV") from None
    if frame.empty:
        raise DataError("no rows of data", source=source, rule="empty")
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame.replace("", np.nan)


def _file_lines(text: str, n_rows: int, header_lines: int) -> np.ndarray:
    """File line number (1-based) of each data row, skipping blank lines as pandas does."""
    lines = [i + 1 for i, line in enumerate(text.splitlines()) if line.strip()]
    rows = lines[header_lines:header_lines + n_rows]
    if len(rows) < n_rows:  # quoted newlines: fall back to a row count past the header
        rows = list(range(header_lines + 1, header_lines + 1 + n_rows))
    return np.asarray(rows)


def _read_generic(text: str, source: str, *, tz: str, sort: bool, point: float | None):
    frame = _parse_table(text, source, sep=_sniff_sep(text))
    lower = {c.lower(): c for c in frame.columns}
    time_col = next((lower[n] for n in TIME_NAMES if n in lower), None)
    if time_col is None and frame.columns[0].lower().startswith("unnamed"):
        time_col = frame.columns[0]
    if time_col is None:
        raise DataError(
            "no time column: name one Date, Datetime, Time or Timestamp (any case)",
            source=source, rule="missing columns",
        )
    rename = {lower[k]: k for k in ("open", "high", "low", "close", "volume", "spread") if k in lower}
    if "volume" not in rename and "tick_volume" in lower:
        rename[lower["tick_volume"]] = "volume"
    body = frame.rename(columns=rename)
    lines = _file_lines(text, len(frame), 1)
    index = parse_times(body[time_col], source, lines, tz=tz)
    body = body.drop(columns=[time_col]).set_axis(index, axis=0)
    return validate_frame(body, source=source, line_numbers=lines, sort=sort)


def _read_mt5_terminal(text, source, *, tz, sort, point):
    frame = _parse_table(text, source, sep=None)
    frame.columns = [c.strip("<>").lower() for c in frame.columns]
    if "date" not in frame.columns:
        raise DataError("MT5 export without a <DATE> column", source=source, rule="missing columns")
    stamp = frame["date"] if "time" not in frame else frame["date"] + " " + frame["time"].fillna("")
    lines = _file_lines(text, len(frame), 1)
    index = parse_times(stamp.str.replace(".", "-", regex=False), source, lines, tz=tz)
    body = frame.rename(columns={"tickvol": "volume", "vol": "real_volume"})
    body = body.drop(columns=[c for c in ("date", "time") if c in body]).set_axis(index, axis=0)
    body = _spread_to_price(body, text, point, source)
    return validate_frame(body, source=source, line_numbers=lines, sort=sort)


def _read_mt5_api(text, source, *, tz, sort, point):
    frame = _parse_table(text, source, sep=",")
    frame.columns = [c.lower() for c in frame.columns]
    lines = _file_lines(text, len(frame), 1)
    index = parse_times(frame["time"], source, lines, tz=tz)
    body = frame.drop(columns=["time"]).rename(columns={"tick_volume": "volume"}).set_axis(index, axis=0)
    body = _spread_to_price(body, text, point, source)
    return validate_frame(body, source=source, line_numbers=lines, sort=sort)


def _read_yfinance_multi(text, source, *, tz, sort):
    head = text.lstrip().splitlines()
    names = [c.strip().lower() for c in head[0].split(",")]
    header_lines = 3 if len(head) > 2 and head[2].split(",")[0].strip().lower() in TIME_NAMES[:4] else 2
    frame = _parse_table(text.lstrip(), source, sep=",", skiprows=header_lines, header=None)
    if frame.shape[1] != len(names):
        raise DataError(f"rows have {frame.shape[1]} fields, the header {len(names)}",
                        source=source, rule="malformed CSV")
    frame.columns = ["time", *names[1:]]
    lines = _file_lines(text.lstrip(), len(frame), header_lines)
    index = parse_times(frame["time"], source, lines, tz=tz)
    body = frame.drop(columns=["time"]).set_axis(index, axis=0)
    return validate_frame(body, source=source, line_numbers=lines, sort=sort)


def _sniff_sep(text: str) -> str:
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    return max((",", ";", "\t"), key=first.count)


def parse_times(values: pd.Series, source: str, lines: np.ndarray, *, tz: str) -> pd.DatetimeIndex:
    """Parse a column of timestamps (text or epoch seconds) into a UTC index.

    Naive stamps are read in ``tz``; stamps with an offset are converted; a mix of the two is an
    error, as is any stamp that does not parse.
    """
    text = values.astype("string").str.strip()
    present = text.notna().to_numpy()
    missing = np.flatnonzero(~present)
    if len(missing):
        raise DataError("timestamp is missing", source=source, rows=lines[missing],
                        rule="unparsable timestamps")
    numeric = pd.to_numeric(text, errors="coerce")
    if numeric.notna().all():
        unit = "ms" if numeric.abs().max() > 1e11 else "s"
        if not ((numeric > 0).all() and numeric.max() < 1e14):
            raise DataError("numeric timestamps are not epoch seconds", source=source,
                            rows=lines[np.flatnonzero(numeric <= 0)] if (numeric <= 0).any() else None,
                            rule="unparsable timestamps")
        return pd.DatetimeIndex(pd.to_datetime(numeric.astype("int64"), unit=unit, utc=True))
    aware = text.str.contains(_AWARE, regex=True).to_numpy(dtype=bool)
    if aware.any() and not aware.all():
        odd = np.flatnonzero(aware != aware[0])
        raise DataError("some timestamps carry a UTC offset and some do not",
                        source=source, rows=lines[odd], rule="mixed timezones")
    try:
        parsed = pd.to_datetime(text, errors="coerce", utc=bool(aware.all()), format="ISO8601")
        if pd.isna(parsed).any():  # not ISO: let pandas infer per element
            parsed = pd.to_datetime(text, errors="coerce", utc=bool(aware.all()), format="mixed")
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(f"timestamps could not be parsed ({exc})", source=source,
                        rule="unparsable timestamps") from None
    bad = np.flatnonzero(pd.isna(parsed).to_numpy())
    if len(bad):
        raise DataError(f"cannot parse timestamp {text.iloc[bad[0]]!r}", source=source,
                        rows=lines[bad], rule="unparsable timestamps")
    index = pd.DatetimeIndex(parsed)
    if index.tz is None:
        try:
            index = index.tz_localize(tz, ambiguous="raise", nonexistent="raise")
        except Exception as exc:  # pytz/zoneinfo raise several types for DST gaps
            raise DataError(f"timestamps do not exist or are ambiguous in {tz} ({exc})",
                            source=source, rule="unknown timezone") from None
    return index.tz_convert("UTC")


def _check_tz(tz: str, source: str) -> None:
    try:
        pd.Timestamp("2020-01-01").tz_localize(tz)
    except Exception:
        raise DataError(f"unknown timezone {tz!r} (use an IANA name such as UTC or Europe/Athens)",
                        source=source, rule="unknown timezone") from None


def _spread_to_price(body: pd.DataFrame, text: str, point: float | None, source: str):
    """MT5 gives spread in points; the canonical frame holds it in price units."""
    if "spread" not in body:
        return body
    if point is None:
        point = infer_point(body, source)
    body = body.copy()
    body["spread"] = pd.to_numeric(body["spread"], errors="coerce") * point
    body.attrs["point"] = point
    return body


def infer_point(body: pd.DataFrame, source: str) -> float:
    """Price step from the most decimals printed in the price columns (5 → 0.00001)."""
    digits = 0
    for col in ("open", "high", "low", "close"):
        if col in body:
            decimals = body[col].dropna().astype(str).str.partition(".")[2].str.len()
            digits = max(digits, int(decimals.max()) if len(decimals) else 0)
    return 10.0 ** -digits
