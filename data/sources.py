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
from collections import Counter
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


_NEWLINE = re.compile(r"\r\n|\r|\n")  # what pandas' parser ends a line on


class _Table:
    """Data rows of a CSV as stripped strings (empty cells NaN) and the file line of each row."""

    def __init__(self, frame: pd.DataFrame, lines: np.ndarray, header_line: int) -> None:
        self.frame, self.lines, self.header_line = frame, lines, header_line


def _parse_table(text: str, source: str, sep: str, header_lines: int = 1,
                 names: list[str] | None = None) -> _Table:
    """Read ``text`` whose header takes ``header_lines`` lines (the last one names the columns,
    unless ``names`` are given), keeping the file line number of every data row.

    Blank lines are skipped; every other line is a row, so an empty-looking row is reported,
    not dropped. Rows with more fields than the header are an error, never shifted.
    """
    physical = _NEWLINE.split(text)
    if physical and physical[-1] == "":
        physical.pop()
    first = next((i for i, line in enumerate(physical) if line.strip()), None)
    if first is None:
        raise DataError("the file is empty", source=source, rule="empty")
    header = first + header_lines - 1  # 0-based index of the line that names the columns
    if header >= len(physical):
        raise DataError("no rows of data", source=source, rule="empty")
    try:
        raw = pd.read_csv(io.StringIO("\n".join(physical[header:])), sep=sep, header=None,
                          dtype=str, keep_default_na=False, skipinitialspace=True,
                          skip_blank_lines=False, engine="c")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error, ValueError,
            UnicodeError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = re.search(r"line (\d+)", message)
        rows = [header + int(where.group(1))] if where else None
        raise DataError(f"could not read as CSV ({message})", source=source, rows=rows,
                        rule="malformed CSV") from None
    raw = raw.apply(lambda col: col.str.strip())
    columns = [str(c).strip() for c in (names if names is not None else raw.iloc[0].fillna(""))]
    if len(columns) != raw.shape[1]:
        raise DataError(f"the header names {len(columns)} columns, the rows have {raw.shape[1]}",
                        source=source, rows=[header + 2], rule="malformed CSV")
    body = raw.iloc[1:].set_axis(columns, axis=1)
    rest = physical[header + 1:]
    if len(body) == len(rest):
        lines = np.arange(header + 2, header + 2 + len(body))
        keep = np.array([bool(line.strip()) for line in rest], dtype=bool)
        body, lines = body[keep], lines[keep]
    else:  # a quoted field spans lines: number the rows as best we can
        body = body[body.notna().any(axis=1).to_numpy()]
        lines = np.arange(header + 2, header + 2 + len(body))
    if body.empty:
        raise DataError("no rows of data", source=source, rule="empty")
    _check_unique_columns(columns, source, header + 1)
    body = body.replace("", np.nan).reset_index(drop=True)
    return _Table(body, lines, header + 1)


def _check_unique_columns(columns: list[str], source: str, line: int) -> None:
    seen: dict[str, str] = {}
    for name in columns:
        key = name.lower().strip("<>")
        if key in seen and key in (*TIME_NAMES[:-1], "open", "high", "low", "close", "volume",
                                   "tick_volume", "tickvol", "spread"):
            raise DataError(f"column {name!r} appears twice (also as {seen[key]!r})",
                            source=source, rows=[line], rule="duplicate columns")
        seen[key] = name


def _read_generic(text: str, source: str, *, tz: str, sort: bool, point: float | None):
    table = _parse_table(text, source, sep=_sniff_sep(text))
    frame = table.frame
    lower = {c.lower(): c for c in frame.columns}
    time_col = next((lower[n] for n in TIME_NAMES if n in lower), None)
    if time_col is None and frame.columns[0].lower().startswith("unnamed"):
        time_col = frame.columns[0]
    if time_col is None:
        raise DataError(
            "no time column: name one Date, Datetime, Time or Timestamp (any case)",
            source=source, rows=[table.header_line], rule="missing columns",
        )
    if list(frame.columns).count(time_col) > 1:
        name = repr(time_col) if time_col else "without a name"
        raise DataError(f"more than one column {name}: which one is the time?",
                        source=source, rows=[table.header_line],
                        rule="duplicate columns")
    rename = {lower[k]: k for k in ("open", "high", "low", "close", "volume", "spread") if k in lower}
    if "volume" not in rename and "tick_volume" in lower:
        rename[lower["tick_volume"]] = "volume"
    body = frame.rename(columns=rename)
    index = parse_times(body[time_col], source, table.lines, tz=tz)
    body = body.drop(columns=[time_col]).set_axis(index, axis=0)
    return validate_frame(body, source=source, line_numbers=table.lines, sort=sort)


def _read_mt5_terminal(text, source, *, tz, sort, point):
    table = _parse_table(text, source, sep=_sniff_sep(text))
    frame = table.frame
    frame.columns = [c.strip("<>").lower() for c in frame.columns]
    if "date" not in frame.columns:
        raise DataError("MT5 export without a <DATE> column", source=source,
                        rows=[table.header_line], rule="missing columns")
    stamp = frame["date"]
    if "time" in frame:
        stamp = stamp + " " + frame["time"].fillna("")
    stamp = stamp.str.replace(r"^(\d{4})\.(\d{1,2})\.(\d{1,2})", r"\1-\2-\3", regex=True)
    index = parse_times(stamp, source, table.lines, tz=tz)
    body = frame.rename(columns={"tickvol": "volume", "vol": "real_volume"})
    body = body.drop(columns=[c for c in ("date", "time") if c in body]).set_axis(index, axis=0)
    body = _spread_to_price(body, point)
    return validate_frame(body, source=source, line_numbers=table.lines, sort=sort)


def _read_mt5_api(text, source, *, tz, sort, point):
    table = _parse_table(text, source, sep=",")
    frame = table.frame
    frame.columns = [c.lower() for c in frame.columns]
    index = parse_times(frame["time"], source, table.lines, tz=tz, epoch_wall_clock=True)
    body = frame.drop(columns=["time"]).rename(columns={"tick_volume": "volume"})
    body = _spread_to_price(body.set_axis(index, axis=0), point)
    return validate_frame(body, source=source, line_numbers=table.lines, sort=sort)


def _read_yfinance_multi(text, source, *, tz, sort):
    head = [line for line in _NEWLINE.split(text) if line.strip()][:3]
    names = [c.strip().lower() for c in head[0].split(",")]
    third = head[2].split(",")[0].strip().lower() if len(head) > 2 else None
    header_lines = 3 if third in TIME_NAMES[:4] else 2
    table = _parse_table(text, source, sep=",", header_lines=header_lines,
                         names=["time", *names[1:]])
    frame = table.frame
    index = parse_times(frame["time"], source, table.lines, tz=tz)
    body = frame.drop(columns=["time"]).set_axis(index, axis=0)
    return validate_frame(body, source=source, line_numbers=table.lines, sort=sort)


def _sniff_sep(text: str) -> str:
    first = next((line for line in _NEWLINE.split(text) if line.strip()), "")
    counts = {sep: first.count(sep) for sep in (",", ";", "\t")}
    best = max(counts, key=counts.get)
    if counts[best] == 0 and len(first.split()) > 1:
        return r"\s+"
    return best


def parse_times(values: pd.Series, source: str, lines: np.ndarray, *, tz: str,
                epoch_wall_clock: bool = False) -> pd.DatetimeIndex:
    """Parse a column of timestamps (text, YYYYMMDD or epoch seconds) into a UTC index.

    Naive stamps are read in ``tz``; stamps with an offset are converted; a mix of the two is an
    error, as is any stamp that does not parse. Epoch seconds are UTC, except where
    ``epoch_wall_clock`` says they count the server's wall clock (MetaTrader 5): then they are
    read in ``tz`` like naive stamps.
    """
    text = values.astype("string").str.strip()
    lines = np.asarray(lines)
    missing = np.flatnonzero(text.isna().to_numpy())
    if len(missing):
        raise DataError("timestamp is missing", source=source, rows=lines[missing],
                        rule="unparsable timestamps")
    if text.str.fullmatch(r"\d{8}").all():  # 20240105
        parsed = pd.to_datetime(text, format="%Y%m%d", errors="coerce")
        bad = np.flatnonzero(parsed.isna().to_numpy())
        if len(bad):
            raise DataError(f"cannot parse timestamp {text.iloc[bad[0]]!r} as YYYYMMDD",
                            source=source, rows=lines[bad], rule="unparsable timestamps")
        return _localize(pd.DatetimeIndex(parsed), tz, source, lines).tz_convert("UTC")
    numeric = pd.to_numeric(text, errors="coerce")
    if numeric.notna().all():
        values_ = numeric.to_numpy(dtype="float64")
        unit = "ms" if np.nanmax(np.abs(values_)) > 1e11 else "s"
        low, high = (1e11, 1e14) if unit == "ms" else (1e8, 1e11)  # 1973 … 5138
        bad = np.flatnonzero(~((values_ >= low) & (values_ < high)))
        if len(bad):
            raise DataError(f"numeric timestamp {text.iloc[bad[0]]!r} is not epoch seconds or "
                            "milliseconds after 1973", source=source, rows=lines[bad],
                            rule="unparsable timestamps")
        index = pd.DatetimeIndex(pd.to_datetime(values_.astype("int64"), unit=unit))
        if epoch_wall_clock:
            return _localize(index, tz, source, lines).tz_convert("UTC")
        return index.tz_localize("UTC")
    aware = text.str.contains(_AWARE, regex=True).to_numpy(dtype=bool)
    if aware.any() and not aware.all():
        odd = np.flatnonzero(aware != aware[0])
        raise DataError("some timestamps carry a UTC offset and some do not",
                        source=source, rows=lines[odd], rule="mixed timezones")
    try:
        parsed = pd.Series(pd.to_datetime(text, errors="coerce", utc=bool(aware.all()),
                                          format="ISO8601"))
        retry = parsed.isna().to_numpy() & text.map(_dateish).to_numpy(dtype=bool)
        if retry.any():  # not ISO: let pandas infer each one, where it looks like a date
            again = pd.to_datetime(text[retry], errors="coerce", utc=bool(aware.all()),
                                   format="mixed")
            parsed = pd.Series(pd.DatetimeIndex([*parsed[~retry], *again]),
                               index=[*parsed.index[~retry], *again.index]).sort_index()
        parsed[~text.map(_dateish).to_numpy(dtype=bool)] = pd.NaT  # "now", "today", "5"
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(f"timestamps could not be parsed ({exc})", source=source,
                        rule="unparsable timestamps") from None
    bad = np.flatnonzero(pd.isna(parsed).to_numpy())
    if len(bad):
        raise DataError(f"cannot parse timestamp {text.iloc[bad[0]]!r}", source=source,
                        rows=lines[bad], rule="unparsable timestamps")
    index = pd.DatetimeIndex(parsed)
    if index.tz is None:
        index = _localize(index, tz, source, lines)
    return index.tz_convert("UTC")


_DIGITS = re.compile(r"\d+")
_MONTH_NAME = re.compile(r"(?i)(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)")


def _dateish(stamp: str) -> bool:
    """Whether a stamp names a whole date (year, month and day), so that no part of it would be
    filled from today's date ("now", "5", "2020" are not)."""
    groups = _DIGITS.findall(stamp)
    if any(len(g) >= 8 for g in groups):
        return True
    if not any(len(g) == 4 for g in groups):
        return False
    return len(groups) >= 3 or (len(groups) == 2 and bool(_MONTH_NAME.search(stamp)))


def _localize(index: pd.DatetimeIndex, tz: str, source: str, lines: np.ndarray):
    """Naive wall-clock stamps in ``tz`` → aware; a repeated DST hour is resolved from the order."""
    try:
        return index.tz_localize(tz, ambiguous="infer", nonexistent="raise")
    except Exception:  # pytz/zoneinfo raise several types for DST gaps and repeats
        pass
    probe = index.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    bad = np.flatnonzero(probe.isna())
    raise DataError(f"timestamp {index[bad[0]] if len(bad) else ''} does not exist or is "
                    f"ambiguous in {tz} (a daylight-saving change)", source=source,
                    rows=lines[bad] if len(bad) else None, rule="unknown timezone")


def _check_tz(tz: str, source: str) -> None:
    try:
        pd.Timestamp("2020-01-01").tz_localize(tz)
    except Exception:
        raise DataError(f"unknown timezone {tz!r} (use an IANA name such as UTC or Europe/Athens)",
                        source=source, rule="unknown timezone") from None


def _spread_to_price(body: pd.DataFrame, point: float | None) -> pd.DataFrame:
    """MT5 gives spread in points; the canonical frame holds it in price units.

    Cells that are not numbers are left as they are, for the validator to report.
    """
    if "spread" not in body:
        return body
    if point is None:
        point = infer_point(body)
    body = body.copy()
    spread = body["spread"].astype(object)
    number = pd.to_numeric(spread, errors="coerce")
    body["spread"] = spread.where(number.isna(), number * point)
    body.attrs["point"] = point
    return body


def infer_point(body: pd.DataFrame) -> float:
    """Price step from the decimals printed in the price columns (5 → 0.00001).

    The most common count wins (ties to the larger), so neither prices that end in zeros
    ("1.072" written for 1.07200) nor float noise ("1.0721900000000001") decide it.
    """
    counts: Counter[int] = Counter()
    for col in ("open", "high", "low", "close"):
        if col in body:
            for cell in body[col].dropna().astype(str):
                mantissa = cell.strip().lower().partition("e")[0]
                counts[min(len(mantissa.partition(".")[2]), 12)] += 1
    if not counts:
        return 1.0
    top = max(counts.values())
    return 10.0 ** -max(d for d, k in counts.items() if k == top)
