"""Load candles from any source into the canonical frame (see ``data.validate``).

Sources:
- ``sample:EURUSD_H1`` / ``sample:GOOG_D1``: real candles shipped by the ``backtesting`` package;
- ``sample:planted-KIND[:SEED[:BARS[:PLANTED]]]``: a synthetic world with a known planted effect
  (``data.synth``: null, order, regime, session);
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
- ``attrs["volume_from"]`` names the column volume came from (None: absent, zeros);
- a spread in points (MT5) is converted with the point: given, or the finest price precision at
  least ``POINT_GRID_SHARE`` of the prices need; a few prices with more decimals (at most
  ``POINT_SLIP_SHARE``) are named in a warning, more are refused; ``attrs["point_evidence"]``
  says which, e.g. "point 1e-05: 99.9% of prices have 5 decimals or fewer; line 17 has 6 …";
- ``GMT+2`` / ``UTC+2`` / ``GMT+02:00`` (a stamp's suffix or the ``tz`` option) mean UTC+2, as in
  a trading file; the tz database's ``Etc/GMT+2`` (UTC-2) is refused as a sign trap;
- dates with two-digit years may be ``DD.MM.YY``, ``MM.DD.YY`` or ``YY.MM.DD``: readings the
  column rules out (impossible dates, dates running backwards) are dropped; more than one left is
  an error naming them;
- a last line without a line end whose last field is cut short (empty, ending in ``.``, or
  narrower than the column's other values) is refused as a truncated file; a complete-looking
  one loads with a warning. ``attrs["warnings"]`` lists what the reader noticed.
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
from data.points import (
    spread_to_price,
)
from data.timestamps import check_tz, parse_times
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
_NEWLINE = re.compile(r"\r\n|\r|\n")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
_WHITESPACE = " "  # the separator value meaning "runs of whitespace"


def load(source: str | Path, *, tz: str = "UTC", sort: bool = False,
         cache_dir: Path | None = None, point: float | None = None,
         dayfirst: bool | None = None) -> pd.DataFrame:
    """Load ``source`` into the canonical candle frame or raise ``DataError``.

    ``tz``: zone of naive timestamps in a CSV (converted to UTC): an IANA name or a UTC offset
    (``+02:00``, ``GMT+2`` and ``UTC+2`` all mean UTC+2). ``sort``: sort unsorted rows
    instead of refusing them. ``cache_dir``: where ``yahoo:`` sources are cached. ``point``: size
    of one price point; the spread of an MT5 file is in points and is converted with it (inferred
    from the precision most prices use when omitted; ``attrs["point_evidence"]``); in a generic
    CSV, giving it says the spread is in points. ``dayfirst``: order of day and month in dates
    like ``02.01.2023`` (True: day before month; False: month before day, which includes
    ``YY.MM.DD``; None: decided from the whole column, refused when it cannot tell and the
    order matters).
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
    """One of the embedded samples, by name (``EURUSD_H1``, ``GOOG_D1``), or a planted world
    (``planted-order``, ``planted-null:7:5000``, ``planted-order:1:49000:8``: ``data.synth``)."""
    if name.startswith("planted-"):
        from data.synth import load_planted

        return load_planted(name)
    if name not in SAMPLES:
        raise DataError(f"unknown sample {name!r}; choose one of {', '.join(SAMPLES)}, or a "
                        "planted world planted-KIND[:SEED[:BARS[:PLANTED]]]",
                        source=f"sample:{name}", rule="unknown source")
    raw = sample_path(name).read_text()
    # The package's files are naive UTC-like broker time; we read them as UTC and say so in README.
    frame = read_text(raw, f"sample:{name}", tz="UTC", sort=sort, point=None, dayfirst=None)
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
    check_tz(tz, source)
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
    del raw  # the text is all that is needed now: hold one copy of a large file, not two
    frame = read_text(text, source, tz=tz, sort=sort, point=point, dayfirst=dayfirst)
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
    if not text or text.isspace():  # (no stripped copy of a large file)
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
        content = re.compile(r"\S").search(text)
        if content is None:
            raise DataError("the file is empty", source=source, rule="empty")
        start = content.start()
        line_start = max(text.rfind("\n", 0, start), text.rfind("\r", 0, start)) + 1
        self.line = len(_NEWLINE.findall(text, 0, line_start)) + 1  # 1-based line of the names
        end = _NEWLINE.search(text, start)
        first = text[line_start: end.start() if end else len(text)]
        self.sep = sniff_separator(first)
        if _count_outside_quotes(first, self.sep) + 1 > MAX_COLUMNS:
            raise DataError(f"the header names more than {MAX_COLUMNS} columns; is this a file of "
                            "candles, and is the separator , ; or tab?", source=source,
                            rows=[self.line], rule="too many columns")
        self.raw_names = split_line(first, self.sep, source, self.line)
        self.names = [normalise_name(n) for n in self.raw_names]
        self.header_lines = 1
        self.body_offset = end.end() if end else len(text)  # where the line after the names starts
        self.dialect = self._dialect(text, end, source)

    def _dialect(self, text: str, end: re.Match | None, source: str) -> str:
        names = set(self.names)
        bracketed = any(re.fullmatch(r"\s*<[^<>]*>\s*", n.replace("\ufeff", "").strip("\"' "))
                        for n in self.raw_names)
        if bracketed and {"date", "open"} <= names:
            return "mt5_terminal"
        if self.names[:1] == ["price"] and end is not None:
            after = [line for line in _NEWLINE.split(text[end.end(): end.end() + 10_000])
                     if line.strip()][:2]
            fields = [split_line(line, self.sep, source) or [""] for line in after]
            if fields and normalise_name(fields[0][0]) == "ticker":
                third = normalise_name(fields[1][0]) if len(fields) > 1 else ""
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


def split_line(line: str, sep: str, source: str = "<text>", row: int | None = None) -> list[str]:
    """The fields of one line (quotes honoured unless whitespace-separated)."""
    if sep == _WHITESPACE:
        return line.split()
    try:
        return next(csv.reader([line], delimiter=sep, skipinitialspace=True), [])
    except csv.Error as exc:
        raise _csv_error(exc, source, row) from None


def _csv_error(exc: csv.Error, source: str, row: int | None) -> DataError:
    if "field limit" in str(exc):
        return DataError(f"a field is longer than {csv.field_size_limit():,} characters; is this a "
                         "CSV file of candles?", source=source, rows=[row] if row else None,
                         rule="malformed CSV")
    return DataError(f"could not read as CSV ({exc})", source=source,
                     rows=[row] if row else None, rule="malformed CSV")


def detect_format(text: str) -> str:
    """Name the CSV dialect: ``mt5_terminal``, ``mt5_api``, ``yfinance_multi`` or ``generic``."""
    return _Head(text.lstrip("\ufeff"), "<text>").dialect


# --- body ---------------------------------------------------------------------------------------

class _Table:
    """Data rows of a CSV as stripped strings (empty cells NaN), the file line of each row, how
    many lines were skipped as blank (and the first ten of them), and what the reader noticed."""

    def __init__(self, frame: pd.DataFrame, lines: np.ndarray, header_line: int,
                 raw_names: list[str], skipped: int, skipped_first: list[int],
                 warnings: list[str]) -> None:
        self.frame, self.lines, self.header_line = frame, lines, header_line
        self.raw_names, self.skipped, self.skipped_first = raw_names, skipped, skipped_first
        self.warnings = warnings


def _filled_lines(text: str, start: int, line: int, blank: str):
    """(file line, start, end) of each line of ``text[start:]`` (which begins file line ``line``)
    holding a character not in ``blank``. Runs of blank lines are crossed by the regex engine
    and counted with ``str.count``: megabytes of them cost no Python objects."""
    pattern = re.compile(f"[^{re.escape(blank + chr(13) + chr(10))}][^\r\n]*")
    crlf = "\r" in text

    def newlines(a: int, b: int) -> int:
        n = text.count("\n", a, b)
        return n + text.count("\r", a, b) - text.count("\r\n", a, b) if crlf else n

    at = start
    for match in pattern.finditer(text, start):  # from a line's first filled character to its end
        begin = max(text.rfind("\n", at, match.start()), text.rfind("\r", at, match.start()))
        begin = at if begin < 0 else begin + 1
        line += newlines(at, begin)
        at = begin
        yield line, begin, match.end()


def _after_line_end(text: str, end: int) -> int:
    return end + (2 if text.startswith("\r\n", end) else 1 if text[end:end + 1] in "\r\n" else 0)


def _parse_table(text: str, head: _Head, source: str, names: list[str] | None = None) -> _Table:
    """Read the rows under ``head``. A row whose field count differs from the header's is an
    error naming its line; lines of only separators/whitespace between rows are skipped and
    counted; blank lines at the end are not data. A last line without a line end whose last
    field is cut short is refused (a truncated file); a complete one is loaded with a warning."""
    names = names if names is not None else head.names
    blank_chars = " \t\r\n\x0b\x0c" + ("" if head.sep == _WHITESPACE else head.sep)
    something = re.compile(f"[^{re.escape(blank_chars)}]")
    if not something.search(text, head.body_offset):  # fast: megabytes of blank lines
        raise DataError("no rows of data", source=source, rule="empty")
    # header_lines counts non-blank lines; the body starts on the line after the last of them
    offset, first_line = head.body_offset, head.line + 1
    extra = _filled_lines(text, offset, first_line, " \t\x0b\x0c")
    for _ in range(head.header_lines - 1):
        found = next(extra, None)
        if found is None:
            offset = len(text)
            break
        offset, first_line = _after_line_end(text, found[2]), found[0] + 1
    filled = list(_filled_lines(text, offset, first_line, blank_chars))
    filled_text = [text[a:b] for _, a, b in filled]
    filled_line = np.array([n for n, _, _ in filled], dtype=int)
    records: list[list[str]] = []
    starts: list[int] = []  # index in filled of each record's first line
    if head.sep == _WHITESPACE:
        records, starts = [line.split() for line in filled_text], list(range(len(filled)))
    else:
        reader = csv.reader(filled_text, delimiter=head.sep, skipinitialspace=True)
        consumed = 0
        try:
            for record in reader:
                records.append(record)
                starts.append(consumed)
                consumed = reader.line_num
        except csv.Error as exc:
            at = min(reader.line_num, len(filled)) - 1 if filled else 0
            raise _csv_error(exc, source, filled_line[at] if filled else first_line) from None
    data = [i for i, record in enumerate(records) if any(cell.strip() for cell in record)]
    if not data:
        raise DataError("no rows of data", source=source, rule="empty")
    rows = [records[i] for i in data]
    row_lines = filled_line[[starts[i] for i in data]]
    skipped, skipped_first = _skipped(filled_line, records, starts, set(data), first_line,
                                      int(row_lines[-1]))
    width = len(names)
    wrong = [i for i, r in enumerate(rows) if len(r) != width]
    if wrong:
        got = len(rows[wrong[0]])
        everywhere = " on every row" if len(wrong) == len(rows) else ""
        raise DataError(f"the header names {width} columns but the row has {got} fields"
                        f"{everywhere}; columns would shift", source=source,
                        rows=row_lines[wrong], rule="malformed CSV")
    _check_unique_columns(names, head.raw_names, source, head.line)
    warnings = []
    if data[-1] == len(records) - 1 and filled and filled[-1][2] == len(text):
        warnings = _unterminated(rows, filled_text[-1], int(filled_line[-1]), head.raw_names,
                                 source)
    frame = pd.DataFrame(rows, columns=pd.RangeIndex(width), dtype=object)
    frame = frame.apply(lambda col: col.str.strip()).replace("", np.nan)
    frame.columns = names
    return _Table(frame, row_lines, head.line, head.raw_names, skipped, skipped_first, warnings)


def _skipped(filled_line: np.ndarray, records: list[list[str]], starts: list[int],
             is_row: set[int], first_line: int, last_row: int) -> tuple[int, list[int]]:
    """How many lines before the last row start no row and continue none (blank lines, and
    lines of only empty quoted cells), and the first ten of them."""
    blank_records = [int(filled_line[starts[i]]) for i in range(len(records))
                     if i not in is_row and filled_line[starts[i]] < last_row]
    before = int(np.searchsorted(filled_line, last_row))  # filled lines before the last row
    count = (last_row - first_line) - before + len(blank_records)
    first: list[int] = []
    expected, special = first_line, set(blank_records)
    for line in filled_line[:before]:
        first.extend(range(expected, min(line, expected + 10 - len(first))))
        if line in special and len(first) < 10:
            first.append(int(line))
        expected = int(line) + 1
        if len(first) >= 10:
            break
    else:
        first.extend(range(expected, min(last_row, expected + 10 - len(first))))
    return count, first[:10]


def _unterminated(rows: list[list[str]], raw: str, line: int, raw_names: list[str],
                  source: str) -> list[str]:
    """The last line has no line end: the file may have been cut inside its last field. A field
    visibly cut (empty, ending in ``.``, ``e``, a sign, or shorter than the other values of its
    column) is refused; otherwise the row loads and a warning says to check the file."""
    if raw[-1:] in (" ", "\t", '"', "'"):  # a space or closing quote ended the field
        return []
    value = rows[-1][-1].strip()
    widths = [len(row[-1].strip()) for row in rows[:-1]]
    usual = max(widths, default=0)
    if value == "" or value[-1] in ".eE+-" or len(value) < usual:
        name = raw_names[-1].strip() if raw_names else "last"
        why = (f"is shorter than the other values of column {name!r} (up to {usual} characters)"
               if value and len(value) < usual else f"of column {name!r} looks cut off")
        raise DataError(f"the last line has no line end and its last field {value!r} {why}: the "
                        "file looks truncated; export it again, or end the line with a line "
                        "break if it is complete", source=source, rows=[line],
                        rule="truncated file")
    return [f"line {line} (the last) has no line end: check that the file is complete (a file cut "
            "off while it was written loses the end of its last row)"]


def _check_unique_columns(names: list[str], raw: list[str], source: str, line: int) -> None:
    seen: dict[str, str] = {}
    for name, raw_name in zip(names, raw, strict=False):
        if name in seen and name in (*TIME_NAMES[:-1], "open", "high", "low", "close", "volume",
                                     "tick_volume", "tickvol", "real_volume", "vol", "spread"):
            raise DataError(f"column {raw_name!r} appears twice (also as {seen[name]!r})",
                            source=source, rows=[line], rule="duplicate columns")
        seen[name] = raw_name


# --- dialects -----------------------------------------------------------------------------------

def read_text(text: str, source: str, *, tz: str, sort: bool, point: float | None,
              dayfirst: bool | None) -> pd.DataFrame:
    """Candles from the decoded text of a CSV file, its dialect detected (``load_csv`` without
    the file: paper trading reads a file's new tail this way)."""
    head = _Head(text, source)
    reader = {"mt5_terminal": _read_mt5_terminal, "yfinance_multi": _read_yfinance_multi,
              "mt5_api": _read_mt5_api, "generic": _read_generic}[head.dialect]
    frame, table = reader(text, head, source, tz=tz, sort=sort, point=point, dayfirst=dayfirst)
    frame.attrs["format"] = head.dialect
    frame.attrs["skipped_blank_lines"] = table.skipped
    frame.attrs["skipped_blank_line_numbers"] = table.skipped_first
    frame.attrs["warnings"] = [*table.warnings, *frame.attrs.get("warnings", [])]
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
        body = spread_to_price(body, point, source, table.lines)
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
    body = spread_to_price(body.set_axis(index, axis=0), point, source, table.lines)
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
    body = spread_to_price(body.set_axis(index, axis=0), point, source, table.lines)
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
