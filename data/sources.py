"""Load candles from any source into the canonical frame (see ``data.validate``).

Sources:
- ``sample:EURUSD_H1`` / ``sample:GOOG_D1``: real candles shipped by the ``backtesting`` package;
- a CSV path: generic OHLCV, MetaTrader 5 terminal export, MetaTrader 5 Python-API dump, or a CSV
  saved from yfinance (one- or multi-row header); the format is detected;
- ``yahoo:SYMBOL[:INTERVAL]``: the local yfinance cache filled by ``attnbt data fetch`` (offline).

Reading a CSV, nothing is dropped or guessed silently:
- text is UTF-8 (any number of leading BOMs), UTF-16 with a BOM, or else Windows-1252 if that
  decodes (``attrs["encoding"]``); control characters other than tab/CR/LF are an error;
- header names are normalised (BOMs, quotes, whitespace and ``<>`` stripped, case-folded) and the
  separator (``,`` ``;`` tab, else whitespace) is sniffed from the header; more than
  ``MAX_COLUMNS`` names is an error before the body is read;
- every row must have as many fields as the header names; lines of only separators/whitespace
  between rows are skipped and counted (``attrs["skipped_blank_lines"]``), blank lines at the end
  are not data;
- a column a MetaTrader 5 file does not define is an error (a misspelt ``<SPREAD>`` must not
  vanish); a generic file may carry other columns, listed in ``attrs["ignored_columns"]``;
- ``attrs["volume_from"]`` names the column volume came from (None: absent, zeros).
"""

from __future__ import annotations

import codecs
import csv
import importlib.util
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
MAX_COLUMNS = 64  # a candle file has a handful; more means a wrong separator or not candles
MT5_TERMINAL_COLUMNS = ("date", "time", "open", "high", "low", "close", "tickvol", "vol", "spread")
MT5_API_COLUMNS = ("time", "open", "high", "low", "close", "tick_volume", "spread", "real_volume")
_AWARE = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")
_NEWLINE = re.compile(r"\r\n|\r|\n")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
_WHITESPACE = " "  # the separator value meaning "runs of whitespace"


def load(source: str | Path, *, tz: str = "UTC", sort: bool = False,
         cache_dir: Path | None = None, point: float | None = None,
         dayfirst: bool | None = None) -> pd.DataFrame:
    """Load ``source`` into the canonical candle frame or raise ``DataError``.

    ``tz``: zone of naive timestamps in a CSV (converted to UTC). ``sort``: sort unsorted rows
    instead of refusing them. ``cache_dir``: where ``yahoo:`` sources are cached. ``point``: size
    of one price point; the spread of an MT5 file is in points and is converted with it (inferred
    from the price grid when omitted); in a generic CSV, giving it says the spread is in points.
    ``dayfirst``: order of day and month in dates like ``02.01.2023`` (None: decided from the
    whole column, refused when the column cannot tell and the order matters).
    An option that does not apply to the kind of source is refused, never ignored.
    """
    text = str(source)
    if point is not None and not (isinstance(point, int | float) and np.isfinite(point)
                                  and point > 0):
        raise DataError(f"point must be a positive number, not {point!r}", source=text,
                        rule="bad option")
    kind = next((k for k in ("sample", "yahoo") if text.startswith(f"{k}:")), None)
    if kind is not None:
        given = {"tz": tz if tz != "UTC" else None, "point": point, "dayfirst": dayfirst,
                 "cache_dir": cache_dir if kind == "sample" else None}
        _refuse_options(text, f"{kind}:", given)
    elif cache_dir is not None:
        _refuse_options(text, "CSV", {"cache_dir": cache_dir})
    if kind == "sample":
        return load_sample(text.removeprefix("sample:"), sort=sort)
    if kind == "yahoo":
        from data.yahoo import load_cached

        symbol, _, interval = text.removeprefix("yahoo:").partition(":")
        return load_cached(symbol, interval or "1h", cache_dir=cache_dir)
    return load_csv(Path(text), tz=tz, sort=sort, point=point, dayfirst=dayfirst)


def _refuse_options(source: str, kind: str, given: dict[str, object]) -> None:
    for name, value in given.items():
        if value is not None:
            raise DataError(f"{name}={value!r} does not apply to {kind} sources",
                            source=source, rule="bad option")


def load_sample(name: str, *, sort: bool = False) -> pd.DataFrame:
    """One of the embedded samples, by name (``EURUSD_H1``, ``GOOG_D1``)."""
    if name not in SAMPLES:
        raise DataError(f"unknown sample {name!r}; choose one of {', '.join(SAMPLES)}",
                        source=f"sample:{name}", rule="unknown source")
    raw = sample_path(name).read_text()
    # The package's files are naive UTC-like broker time; we read them as UTC and say so in README.
    frame = _read_text(raw, f"sample:{name}", tz="UTC", sort=sort, point=None, dayfirst=None)
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


def load_csv(path: Path, *, tz: str = "UTC", sort: bool = False, point: float | None = None,
             dayfirst: bool | None = None) -> pd.DataFrame:
    """Load a CSV file of candles, detecting its format."""
    source = str(path)
    _check_tz(tz, source)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError("no such file", source=source, rule="missing file") from None
    except IsADirectoryError:
        raise DataError("is a directory, not a CSV file", source=source,
                        rule="missing file") from None
    except OSError as exc:  # name too long, permission, not a directory, …
        reason = exc.strerror or type(exc).__name__
        raise DataError(f"cannot open the file ({reason})", source=source,
                        rule="missing file") from None
    text, encoding = decode(raw, source)
    frame = _read_text(text, source, tz=tz, sort=sort, point=point, dayfirst=dayfirst)
    frame.attrs["source"] = source
    frame.attrs["encoding"] = encoding
    return frame


def decode(raw: bytes, source: str) -> tuple[str, str]:
    """Bytes → (text, encoding name): UTF-16 by its BOM, else UTF-8, else Windows-1252 if that
    decodes; leading BOMs are dropped; NUL and other control characters are an error."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text, encoding = raw.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            raise DataError("starts like UTF-16 text (its BOM) but is not valid UTF-16",
                            source=source, rule="encoding") from None
    else:
        try:
            text, encoding = raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError as exc:
            if b"\x00" in raw:
                raise DataError("file holds NUL bytes; is it a CSV?", source=source,
                                rule="encoding") from None
            try:
                text, encoding = raw.decode("cp1252"), "cp1252"
            except UnicodeDecodeError:
                line = raw[: exc.start].count(b"\n") + 1
                raise DataError(f"byte 0x{raw[exc.start]:02x} is neither UTF-8 nor Windows-1252 "
                                "text; save the file as UTF-8", source=source, rows=[line],
                                rule="encoding") from None
    text = text.lstrip("\ufeff")
    if "\x00" in text:
        raise DataError("file holds NUL bytes; is it a CSV?", source=source, rule="encoding")
    if not text.strip():
        raise DataError("the file is empty", source=source, rule="empty")
    bad = _CONTROL.search(text)
    if bad:
        lines = []
        for match in _CONTROL.finditer(text):
            line = len(_NEWLINE.findall(text, 0, match.start())) + 1
            if line not in lines:
                lines.append(line)
            if len(lines) == 5:
                break
        raise DataError(f"control character U+{ord(bad.group()):04X} in the text (damaged file?)",
                        source=source, rows=lines, rule="control character")
    return text, encoding


# --- header: separator, names, dialect ----------------------------------------------------------

def normalise_name(name: str) -> str:
    """A header name as compared: BOMs, quotes, whitespace and ``<>`` stripped, case-folded."""
    return name.replace("\ufeff", "").strip().strip("\"'").strip().strip("<>").strip().casefold()


class _Head:
    """The header of a CSV text: separator, names, dialect and where the body starts."""

    def __init__(self, text: str, source: str) -> None:
        stripped = text.lstrip()
        if not stripped:
            raise DataError("the file is empty", source=source, rule="empty")
        start = len(text) - len(stripped)
        line_start = max(text.rfind("\n", 0, start), text.rfind("\r", 0, start)) + 1
        self.line = len(_NEWLINE.findall(text, 0, line_start)) + 1  # 1-based line of the names
        end = _NEWLINE.search(text, start)
        first = text[line_start: end.start() if end else len(text)]
        self.sep = sniff_separator(first)
        if _count_outside_quotes(first, self.sep) + 1 > MAX_COLUMNS:
            raise DataError(f"the header names more than {MAX_COLUMNS} columns; is this a file of "
                            "candles, and is the separator , ; or tab?", source=source,
                            rows=[self.line], rule="too many columns")
        self.raw_names = split_line(first, self.sep)
        self.names = [normalise_name(n) for n in self.raw_names]
        self.header_lines = 1
        self.body_offset = end.end() if end else len(text)  # where the line after the names starts
        self.dialect = self._dialect(text, end)

    def _dialect(self, text: str, end: re.Match | None) -> str:
        names = set(self.names)
        bracketed = any(re.fullmatch(r"\s*<[^<>]*>\s*", n.replace("\ufeff", "").strip("\"' "))
                        for n in self.raw_names)
        if bracketed and {"date", "open"} <= names:
            return "mt5_terminal"
        if self.names[:1] == ["price"] and end is not None:
            after = [line for line in _NEWLINE.split(text[end.end(): end.end() + 10_000])
                     if line.strip()][:2]
            if after and normalise_name(split_line(after[0], self.sep)[0]) == "ticker":
                third = normalise_name(split_line(after[1], self.sep)[0]) if len(after) > 1 else ""
                self.header_lines = 3 if third in TIME_NAMES[:4] else 2
                return "yfinance_multi"
        if "time" in names and names & {"tick_volume", "real_volume"}:
            return "mt5_api"
        return "generic"


def sniff_separator(header: str) -> str:
    """``,`` ``;`` or tab, whichever the header line holds most of (outside quotes); runs of
    whitespace (``" "``) when it holds none but several words."""
    counts = {sep: _count_outside_quotes(header, sep) for sep in (",", ";", "\t")}
    best = max(counts, key=lambda sep: counts[sep])
    if counts[best] == 0 and len(header.split()) > 1:
        return _WHITESPACE
    return best


def _count_outside_quotes(line: str, sep: str) -> int:
    if sep == _WHITESPACE:
        return len(line.split()) - 1
    return re.sub(r'"[^"]*"', "", line).count(sep)


def split_line(line: str, sep: str) -> list[str]:
    """The fields of one line (quotes honoured unless whitespace-separated)."""
    if sep == _WHITESPACE:
        return line.split()
    return next(csv.reader([line], delimiter=sep, skipinitialspace=True), [])


def detect_format(text: str) -> str:
    """Name the CSV dialect: ``mt5_terminal``, ``mt5_api``, ``yfinance_multi`` or ``generic``."""
    return _Head(text.lstrip("\ufeff"), "<text>").dialect


# --- body ---------------------------------------------------------------------------------------

class _Table:
    """Data rows of a CSV as stripped strings (empty cells NaN), the file line of each row, and
    the lines skipped as blank."""

    def __init__(self, frame: pd.DataFrame, lines: np.ndarray, header_line: int,
                 raw_names: list[str], skipped: list[int]) -> None:
        self.frame, self.lines, self.header_line = frame, lines, header_line
        self.raw_names, self.skipped = raw_names, skipped


def _parse_table(text: str, head: _Head, source: str, names: list[str] | None = None) -> _Table:
    """Read the rows under ``head``. A row whose field count differs from the header's is an
    error naming its line; lines of only separators/whitespace between rows are skipped and
    counted; blank lines at the end are not data."""
    names = names if names is not None else head.names
    blank_chars = " \t\r\n\x0b\x0c" + ("" if head.sep == _WHITESPACE else head.sep)
    if not text[head.body_offset:].strip(blank_chars):  # fast: megabytes of blank lines
        raise DataError("no rows of data", source=source, rule="empty")
    physical = _NEWLINE.split(text)
    # header_lines counts non-blank lines; find the physical line after the last of them
    index, seen = head.line - 1, 0
    while seen < head.header_lines and index < len(physical):
        if physical[index].strip():
            seen += 1
        index += 1
    body = physical[index:]
    first_line = index + 1  # 1-based file line of body[0]
    filled = [i for i, line in enumerate(body) if line.strip(blank_chars)]
    records: list[list[str]] = []
    starts: list[int] = []  # index in body of each record's first line
    if head.sep == _WHITESPACE:
        records, starts = [body[i].split() for i in filled], filled
    else:
        reader = csv.reader((body[i] for i in filled), delimiter=head.sep,
                            skipinitialspace=True)
        consumed = 0
        try:
            for record in reader:
                records.append(record)
                starts.append(filled[consumed])
                consumed = reader.line_num
        except csv.Error as exc:
            at = filled[min(reader.line_num, len(filled)) - 1] if filled else 0
            raise DataError(f"could not read as CSV ({exc})", source=source,
                            rows=[first_line + at], rule="malformed CSV") from None
    data = [i for i, record in enumerate(records) if any(cell.strip() for cell in record)]
    if not data:
        raise DataError("no rows of data", source=source, rule="empty")
    rows = [records[i] for i in data]
    row_lines = first_line + np.array([starts[i] for i in data], dtype=int)
    # skipped: every line before the last row that starts no row and continues none
    used = np.zeros(starts[data[-1]] + 1, dtype=bool)
    used[[i for i in filled if i <= starts[data[-1]]]] = True
    is_row = set(data)
    used[[starts[i] for i in range(len(records)) if i not in is_row]] = False
    skipped = (first_line + np.flatnonzero(~used)).tolist()
    width = len(names)
    wrong = [i for i, r in enumerate(rows) if len(r) != width]
    if wrong:
        got = len(rows[wrong[0]])
        everywhere = " on every row" if len(wrong) == len(rows) else ""
        raise DataError(f"the header names {width} columns but the row has {got} fields"
                        f"{everywhere}; columns would shift", source=source,
                        rows=row_lines[wrong], rule="malformed CSV")
    _check_unique_columns(names, head.raw_names, source, head.line)
    frame = pd.DataFrame(rows, columns=pd.RangeIndex(width), dtype=object)
    frame = frame.apply(lambda col: col.str.strip()).replace("", np.nan)
    frame.columns = names
    return _Table(frame, row_lines, head.line, head.raw_names, skipped)


def _check_unique_columns(names: list[str], raw: list[str], source: str, line: int) -> None:
    seen: dict[str, str] = {}
    for name, raw_name in zip(names, raw, strict=False):
        if name in seen and name in (*TIME_NAMES[:-1], "open", "high", "low", "close", "volume",
                                     "tick_volume", "tickvol", "real_volume", "vol", "spread"):
            raise DataError(f"column {raw_name!r} appears twice (also as {seen[name]!r})",
                            source=source, rows=[line], rule="duplicate columns")
        seen[name] = raw_name


# --- dialects -----------------------------------------------------------------------------------

def _read_text(text: str, source: str, *, tz: str, sort: bool, point: float | None,
               dayfirst: bool | None) -> pd.DataFrame:
    head = _Head(text, source)
    reader = {"mt5_terminal": _read_mt5_terminal, "yfinance_multi": _read_yfinance_multi,
              "mt5_api": _read_mt5_api, "generic": _read_generic}[head.dialect]
    frame, table = reader(text, head, source, tz=tz, sort=sort, point=point, dayfirst=dayfirst)
    frame.attrs["format"] = head.dialect
    frame.attrs["skipped_blank_lines"] = len(table.skipped)
    frame.attrs["skipped_blank_line_numbers"] = table.skipped[:10]
    return frame


def _finish(body: pd.DataFrame, table: _Table, source: str, *, used: list[str], volume: str | None,
            sort: bool) -> pd.DataFrame:
    """Name the volume source and the unused columns, then validate."""
    missing = [c for c in ("open", "high", "low", "close") if c not in body]
    if missing:
        raise DataError(f"missing column(s) {', '.join(missing)}; found "
                        f"{', '.join(n.strip() for n in table.raw_names)}", source=source,
                        rows=[table.header_line], rule="missing columns")
    body.attrs["volume_from"] = volume
    body.attrs["ignored_columns"] = [raw for name, raw in zip(table.frame.columns,
                                                              table.raw_names, strict=False)
                                     if name not in used]
    return validate_frame(body, source=source, line_numbers=table.lines, sort=sort)


def _pick(columns: list[str], *candidates: str) -> str | None:
    return next((c for c in candidates if c in columns), None)


def _read_generic(text, head, source, *, tz, sort, point, dayfirst):
    table = _parse_table(text, head, source)
    frame = table.frame
    columns = list(frame.columns)
    time_col = _pick(columns, *TIME_NAMES)
    if time_col is None and columns[0].startswith("unnamed"):
        time_col = columns[0]
    if time_col is None:
        raise DataError("no time column: name one Date, Datetime, Time or Timestamp (any case)",
                        source=source, rows=[table.header_line], rule="missing columns")
    if columns.count(time_col) > 1:
        name = repr(time_col) if time_col else "without a name"
        raise DataError(f"more than one column {name}: which one is the time?", source=source,
                        rows=[table.header_line], rule="duplicate columns")
    volume = _pick(columns, "volume", "tick_volume", "tickvol", "real_volume", "vol")
    prices = [c for c in ("open", "high", "low", "close", "spread") if c in columns]
    index = parse_times(frame[time_col], source, table.lines, tz=tz, dayfirst=dayfirst)
    body = frame[prices + ([volume] if volume else [])].rename(columns={volume: "volume"})
    body = body.set_axis(index, axis=0)
    if point is not None:  # the caller says this spread is in points
        body = _spread_to_price(body, point, source)
    volume_from = _VOLUME_NAMES.get(volume, volume) if volume else None
    return _finish(body, table, source, used=[time_col, *prices, volume], volume=volume_from,
                   sort=sort), table


_VOLUME_NAMES = {"tickvol": "tick_volume", "vol": "real_volume"}


def _check_known(table: _Table, known: tuple[str, ...], what: str, source: str) -> None:
    for i, (name, raw) in enumerate(zip(table.frame.columns, table.raw_names, strict=False)):
        if name in known or (i == 0 and (name == "" or name.startswith("unnamed"))):
            continue
        raise DataError(f"unknown column {raw.strip()!r} in a {what}; it knows "
                        f"{', '.join(known)} (misspelt?)", source=source,
                        rows=[table.header_line], rule="unknown columns")


def _read_mt5_terminal(text, head, source, *, tz, sort, point, dayfirst):
    table = _parse_table(text, head, source)
    _check_known(table, MT5_TERMINAL_COLUMNS, "MetaTrader 5 export", source)
    frame = table.frame
    stamp = frame["date"]
    if "time" in frame:
        stamp = stamp + " " + frame["time"].fillna("")
    stamp = stamp.str.replace(r"^(\d{4})\.(\d{1,2})\.(\d{1,2})", r"\1-\2-\3", regex=True)
    index = parse_times(stamp, source, table.lines, tz=tz, dayfirst=dayfirst)
    volume = _pick(list(frame.columns), "tickvol", "vol")
    prices = [c for c in ("open", "high", "low", "close", "spread") if c in frame]
    body = frame[prices + ([volume] if volume else [])].rename(columns={volume: "volume"})
    body = _spread_to_price(body.set_axis(index, axis=0), point, source)
    return _finish(body, table, source, used=["date", "time", *prices, volume],
                   volume=_VOLUME_NAMES.get(volume) if volume else None, sort=sort), table


def _read_mt5_api(text, head, source, *, tz, sort, point, dayfirst):
    table = _parse_table(text, head, source)
    _check_known(table, MT5_API_COLUMNS, "MetaTrader 5 Python-API dump", source)
    frame = table.frame
    index = parse_times(frame["time"], source, table.lines, tz=tz, epoch_wall_clock=True,
                        dayfirst=dayfirst)
    volume = _pick(list(frame.columns), "tick_volume", "real_volume")
    prices = [c for c in ("open", "high", "low", "close", "spread") if c in frame]
    body = frame[prices + ([volume] if volume else [])].rename(columns={volume: "volume"})
    body = _spread_to_price(body.set_axis(index, axis=0), point, source)
    return _finish(body, table, source, used=["time", *prices, volume], volume=volume,
                   sort=sort), table


def _read_yfinance_multi(text, head, source, *, tz, sort, point, dayfirst):
    if point is not None:
        _refuse_options(source, "yfinance CSV", {"point": point})
    table = _parse_table(text, head, source, names=["time", *head.names[1:]])
    frame = table.frame
    index = parse_times(frame["time"], source, table.lines, tz=tz, dayfirst=dayfirst)
    prices = [c for c in ("open", "high", "low", "close") if c in frame]
    volume = "volume" if "volume" in frame else None
    body = frame[prices + ([volume] if volume else [])].set_axis(index, axis=0)
    return _finish(body, table, source, used=["time", *prices, volume], volume=volume,
                   sort=sort), table


# --- timestamps ---------------------------------------------------------------------------------

_DMY = r"^(\d{1,2})[./-](\d{1,2})[./-](\d{4}|\d{2})((?:[\sT].*)?)$"


def parse_times(values: pd.Series, source: str, lines: np.ndarray, *, tz: str,
                epoch_wall_clock: bool = False, dayfirst: bool | None = None) -> pd.DatetimeIndex:
    """Parse a column of timestamps (text, YYYYMMDD or epoch seconds) into a UTC index.

    Naive stamps are read in ``tz``; stamps with an offset are converted; a mix of the two is an
    error, as is any stamp that does not parse. Epoch seconds are UTC, except where
    ``epoch_wall_clock`` says they count the server's wall clock (MetaTrader 5): then they are
    read in ``tz`` like naive stamps. Dates like ``02.01.2023`` are read in the order
    ``dayfirst`` gives or, when None, the whole column shows (see ``resolve_day_month``).
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
    text = resolve_day_month(text, source, lines, dayfirst)
    aware = text.str.contains(_AWARE, regex=True).to_numpy(dtype=bool)
    if aware.any() and not aware.all():
        odd = np.flatnonzero(aware != aware[0])
        raise DataError("some timestamps carry a UTC offset and some do not",
                        source=source, rows=lines[odd], rule="mixed timezones")
    try:
        parsed = pd.Series(pd.to_datetime(text, errors="coerce", utc=bool(aware.all()),
                                          format="ISO8601"))
        dateish = text.map(_dateish).to_numpy(dtype=bool)
        retry = parsed.isna().to_numpy() & dateish
        if retry.any():  # not ISO: let pandas infer each one, where it looks like a date
            again = pd.to_datetime(text[retry], errors="coerce", utc=bool(aware.all()),
                                   format="mixed")
            parsed = pd.Series(pd.DatetimeIndex([*parsed[~retry], *again]),
                               index=[*parsed.index[~retry], *again.index]).sort_index()
        parsed[~dateish] = pd.NaT  # "now", "today", "5"
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


def resolve_day_month(text: pd.Series, source: str, lines: np.ndarray,
                      dayfirst: bool | None) -> pd.Series:
    """Rewrite ``D.M.YYYY``/``M/D/YYYY``-style stamps (any of ``. / -``) as ISO dates.

    The order comes from the whole column: a first field over 12 means day-first, a second field
    over 12 month-first, both kinds are an error. A column that shows neither is read as
    ``dayfirst`` says; when that is None and some date has day != month, it is refused.
    ISO ``YYYY-MM-DD`` and MT5 ``YYYY.MM.DD`` stamps do not match and are left alone.
    """
    parts = text.str.extract(_DMY)
    hit = parts[0].notna().to_numpy()
    if not hit.any():
        return text
    first = parts[0][hit].astype(int).to_numpy()
    second = parts[1][hit].astype(int).to_numpy()
    at = np.asarray(lines)[hit]
    shown = text[hit].to_numpy()
    day_first = np.flatnonzero(first > 12)
    month_first = np.flatnonzero(second > 12)
    hint = "pass dayfirst=True or dayfirst=False (data.dayfirst)"
    if len(day_first) and len(month_first):
        i, j = day_first[0], month_first[0]
        raise DataError(f"dates are written both day-first ({shown[i]!r}) and month-first "
                        f"({shown[j]!r})", source=source, rows=sorted({at[i], at[j]}),
                        rule="ambiguous dates")
    found = True if len(day_first) else False if len(month_first) else None
    if found is not None and dayfirst is not None and found != dayfirst:
        i = (day_first if found else month_first)[0]
        raise DataError(f"{shown[i]!r} can only be {'day' if found else 'month'}-first, but "
                        f"dayfirst={dayfirst} was given", source=source, rows=[at[i]],
                        rule="ambiguous dates")
    order = found if found is not None else dayfirst
    if order is None:
        differ = np.flatnonzero(first != second)
        if len(differ):
            raise DataError(f"dates such as {shown[differ[0]]!r} read as day-first or "
                            f"month-first and no date in the column settles it; {hint}",
                            source=source, rows=at[differ[:1]], rule="ambiguous dates")
        order = True  # day == month everywhere: the order does not matter
    day, month = (first, second) if order else (second, first)
    year = parts[2][hit].astype(int).to_numpy()
    year = np.where(parts[2][hit].str.len().to_numpy() == 2,
                    np.where(year < 69, 2000 + year, 1900 + year), year)
    rest = parts[3][hit].fillna("").to_numpy()
    out = text.copy()
    out[hit] = [f"{y:04d}-{m:02d}-{d:02d}{r}" for y, m, d, r in
                zip(year, month, day, rest, strict=True)]
    return out


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


# --- spread in points ---------------------------------------------------------------------------

def _spread_to_price(body: pd.DataFrame, point: float | None, source: str) -> pd.DataFrame:
    """MT5 gives spread in points; the canonical frame holds it in price units.

    Without ``point`` it is inferred from the prices, only when some spread is not zero.
    Cells that are not numbers are left as they are, for the validator to report.
    """
    if "spread" not in body:
        if point is not None:
            raise DataError(f"point={point!r} given but the file has no spread column",
                            source=source, rule="bad option")
        return body
    spread = body["spread"].astype(object)
    number = pd.to_numeric(spread, errors="coerce")
    if point is None:
        if not (number.fillna(0) != 0).any():
            return body
        point = infer_point(body, source)
    body = body.copy()
    body["spread"] = spread.where(number.isna(), number * point)
    body.attrs["point"] = point
    return body


def infer_point(body: pd.DataFrame, source: str = "<frame>", max_digits: int = 8) -> float:
    """The price step 10^-d: the smallest d ≤ ``max_digits`` such that every price is within
    1e-10 (relative) of a multiple of it, so float noise ("1.1456500000000001") and dropped
    zeros ("1.072") do not matter. No such d is an error asking for ``point=``."""
    cols = [c for c in ("open", "high", "low", "close") if c in body]
    prices = pd.to_numeric(pd.Series(body[cols].to_numpy().ravel()), errors="coerce")
    prices = np.abs(prices.to_numpy(dtype="float64", na_value=np.nan))
    prices = prices[np.isfinite(prices) & (prices > 0)]
    if not len(prices):
        return 1.0
    for digits in range(max_digits + 1):
        scaled = prices * 10.0**digits
        if (np.abs(scaled - np.round(scaled)) <= 1e-10 * scaled).all():
            return 10.0**-digits
    raise DataError(f"cannot infer the size of one point from the prices (they are not on a grid "
                    f"of 10^-d for d ≤ {max_digits}), so the spread in points cannot be "
                    "converted; pass point= (data.point), e.g. 0.00001 for EURUSD",
                    source=source, rule="spread units")
