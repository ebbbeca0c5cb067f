"""Where a paper account's bars come from, and when it must wait.

- a CSV file another program appends to: at init, a snapshot pins its reading options; at each
  step only the new tail is read (from the byte offset after the last consumed line, complete
  lines only), after checking that the part already read was not rewritten (its header and a
  hash of the ``GUARD`` bytes before the offset);
- ``yahoo:SYMBOL:INTERVAL``: the yfinance cache, topped up at each step (a replaceable fetcher);
- gaps: the pause between two bars with weekends not counted, against the allowance learned from
  the source's history (or given at init as ``paper.max_gap``).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from backtests.paper.account import AccountSettings, PaperError
from data.errors import AttnbtError, DataError

GUARD = 1 << 16   # bytes before the offset whose hash each step checks (a rewrite shows there)
_NEWLINES = re.compile(rb"\r\n|\r|\n")
_BLANK = b" \t\r\n\x0b\x0c,;"

Fetcher = Callable[[str, str], pd.DataFrame]


# --- CSV -----------------------------------------------------------------------------------------
def _line_spans(raw: bytes) -> list[tuple[int, int]]:
    """(start, end) byte offsets of each complete line of ``raw`` (end after its newline)."""
    spans, start = [], 0
    for m in _NEWLINES.finditer(raw):
        spans.append((start, m.end()))
        start = m.end()
    return spans


def _data_spans(raw: bytes, n_rows: int, where: str) -> list[tuple[int, int]]:
    """The spans of the last ``n_rows`` non-blank lines: the data rows."""
    filled = [s for s in _line_spans(raw) if raw[s[0]:s[1]].strip(_BLANK)]
    if len(filled) < n_rows:
        raise DataError(f"cannot match {n_rows} rows to the lines of the file", source=where,
                        rule="unreadable tail")
    return filled[len(filled) - n_rows:]


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def guard_of(before: bytes) -> str:
    """'n:sha256' of the last GUARD bytes of ``before`` (everything read so far)."""
    window = before[-GUARD:]
    return f"{len(window)}:{_digest(window)}"


def file_guard(path: Path, offset: int) -> str:
    """``guard_of`` the file's bytes before ``offset``."""
    n = min(offset, GUARD)
    with path.open("rb") as fh:
        fh.seek(offset - n)
        return guard_of(fh.read(n))


def _complete(raw: bytes) -> bytes:
    """``raw`` up to its last newline (a line still being written is not read)."""
    last = raw.rfind(b"\n")
    if last < 0 and b"\r" in raw:   # old Mac line ends
        last = raw.rfind(b"\r")
    return raw[:last + 1]


@dataclass(frozen=True)
class Snapshot:
    """A source as init found it: its candles, the reading options pinned for every later step
    (the ``kind`` … ``head`` settings) and, for a CSV, its bytes (complete lines) and the byte
    spans of its data rows."""

    source: str
    candles: pd.DataFrame
    reading: dict
    raw: bytes = b""
    spans: list[tuple[int, int]] | None = None

    def cursor_at(self, first: int) -> tuple[int | None, str | None]:
        """(offset, guard) of a CSV cursor whose next row is ``first`` (Yahoo: None, None)."""
        if self.spans is None:
            return None, None
        offset = self.spans[first][0] if first < len(self.candles) else len(self.raw)
        return offset, guard_of(self.raw[:offset])


def snapshot(source: str, tz: str, point: float | None, dayfirst: bool | None) -> Snapshot:
    """Read ``source`` (a CSV path or yahoo:SYMBOL:INTERVAL) at init."""
    if source.startswith("yahoo:"):
        body = source.removeprefix("yahoo:")
        if body.count(":") != 1:
            raise DataError("a Yahoo source is yahoo:SYMBOL:INTERVAL, e.g. yahoo:EURUSD=X:1h",
                            source=source, rule="unknown source")
        from data.yahoo import load_cached

        symbol, interval = body.rsplit(":", 1)
        return Snapshot(source, load_cached(symbol, interval), {
            "kind": "yahoo", "tz": "UTC", "point": None, "dayfirst": None, "encoding": None,
            "format": None, "head": ""})
    if source.startswith("sample:"):
        raise DataError("a sample never grows; paper trading needs a CSV file or "
                        "yahoo:SYMBOL:INTERVAL", source=source, rule="unknown source")
    return _snapshot_csv(Path(source).resolve(), tz, point, dayfirst)


def _snapshot_csv(path: Path, tz: str, point: float | None, dayfirst: bool | None) -> Snapshot:
    """Read the complete lines of a CSV and pin how it is read (tz, point, day order, encoding,
    dialect)."""
    from data.sources import decode, read_text

    try:
        raw = _complete(path.read_bytes())
    except OSError as exc:
        raise DataError(f"cannot read the file ({exc.strerror or exc})", source=str(path),
                        rule="missing file") from None
    text, encoding = decode(raw, str(path))
    if encoding == "utf-16":
        raise DataError("paper trading reads UTF-8 or Windows-1252 files; save it as UTF-8",
                        source=str(path), rule="encoding")
    candles = read_text(text, str(path), tz=tz, sort=False, point=point, dayfirst=dayfirst)
    first_line = text[len(text) - len(text.lstrip()):].splitlines()[1:2]
    year_first = bool(first_line) and re.match(r'^\s*"?\d{4}[-./]', first_line[0]) is not None
    if dayfirst is None and not year_first:   # pin the order the whole file showed
        for choice in (True, False):
            try:
                other = read_text(text, str(path), tz=tz, sort=False, point=point,
                                  dayfirst=choice)
            except DataError:
                continue
            if other.index.equals(candles.index):
                dayfirst = choice
                break
    spans = _data_spans(raw, len(candles), str(path))
    pinned = {"tz": tz, "point": candles.attrs.get("point", point), "dayfirst": dayfirst,
              "encoding": encoding, "format": candles.attrs.get("format")}
    reading = {"kind": "csv", **pinned, "head": raw[:spans[0][0]].hex()}
    return Snapshot(str(path), candles, reading, raw, spans)


@dataclass
class Tail:
    """The rows a step read: candles, and for a CSV each row's line and the offset after it."""

    candles: pd.DataFrame
    ends: list[int] | None = None      # CSV: byte offset after each row's line
    lines: list[bytes] | None = None   # CSV: each row's line


def read_csv_tail(settings: AccountSettings, offset: int, guard: str | None) -> Tail:
    """The complete lines after ``offset``, once the part before it is shown unchanged."""
    from data.tail import read_appended

    path = Path(settings.source)
    where = str(path)
    head = bytes.fromhex(settings.head)
    size_guard, _, digest = (guard or "0:").partition(":")
    try:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < offset:
                raise DataError(f"the file is shorter ({size} bytes) than what was already read "
                                f"({offset} bytes): it was rewritten; init a new account",
                                source=where, rule="source rewritten")
            start = fh.read(len(head))
            fh.seek(offset - int(size_guard))
            before = fh.read(int(size_guard))
            tail = fh.read()
    except OSError as exc:
        raise DataError(f"cannot read the file ({exc.strerror or exc})", source=where,
                        rule="missing file") from None
    if start != head or _digest(before) != digest:
        raise DataError("the file changed before the part already read (its header or the last "
                        "line read differ): it was rewritten; init a new account", source=where,
                        rule="source rewritten")
    complete = _complete(tail)
    if not complete.strip(_BLANK):
        empty = pd.DataFrame(columns=["open", "high", "low", "close", "volume"],
                             index=pd.DatetimeIndex([], tz="UTC", name="time"), dtype=float)
        return Tail(empty, [], [])
    try:
        top = head.decode(settings.encoding).lstrip("\ufeff")
        text = complete.decode(settings.encoding)
    except UnicodeDecodeError:
        raise DataError(f"the new lines are not {settings.encoding} text like the rest",
                        source=where, rule="encoding") from None
    candles = read_appended(top, text, where, tz=settings.tz, point=settings.point,
                            dayfirst=settings.dayfirst, dialect=settings.format)
    spans = _data_spans(complete, len(candles), where)
    return Tail(candles, [offset + e for _, e in spans], [complete[a:b] for a, b in spans])


# --- Yahoo ---------------------------------------------------------------------------------------
def default_fetcher(symbol: str, interval: str) -> pd.DataFrame:
    """Top the yfinance cache up (only the bars it lacks) and return it."""
    from data import yahoo

    path = yahoo.cache_path(symbol, interval)
    start = None
    if path.exists():
        start = yahoo.load_cached(symbol, interval).index[0]
    return yahoo.fetch(symbol, interval, start=start)


def read_yahoo(settings: AccountSettings, fetcher: Fetcher | None) -> pd.DataFrame:
    """The source's bars as ``fetcher`` (default: ``default_fetcher``) returns them."""
    symbol, interval = settings.source.removeprefix("yahoo:").rsplit(":", 1)
    try:
        frame = (fetcher or default_fetcher)(symbol, interval)
    except AttnbtError:
        raise
    except Exception as exc:   # a replaceable fetcher may raise anything
        raise DataError(f"the fetch failed ({type(exc).__name__}: {exc})",
                        source=settings.source, rule="network") from None
    if frame is None or len(frame) == 0:
        raise DataError("the source returned no bars", source=settings.source,
                        rule="empty answer")
    return frame


# --- gaps ----------------------------------------------------------------------------------------
def weekday_gap(prev: pd.Timestamp, nxt: pd.Timestamp, tf: pd.Timedelta) -> pd.Timedelta:
    """How long the market was silent between two bars, Saturdays and Sundays (UTC) not counted:
    the time from the end of ``prev`` to the start of ``nxt`` that falls on a weekday."""
    start, end = prev + tf, nxt
    if end <= start:
        return pd.Timedelta(0)
    if end - start > pd.Timedelta(days=60):
        return end - start
    total, day = pd.Timedelta(0), start.normalize()
    while day < end:
        nxt_day = day + pd.Timedelta(days=1)
        if day.day_of_week < 5:
            total += min(end, nxt_day) - max(start, day)
        day = nxt_day
    return total


def gap_allowance(index: pd.DatetimeIndex, tf: pd.Timedelta) -> pd.Timedelta:
    """Normal closures learned from the history: its longest weekday pause (nights, holidays),
    at least one day, at most four."""
    longest = pd.Timedelta(0)
    if len(index) > 1:
        deltas = np.diff(index.asi8)
        big = np.flatnonzero(deltas > tf.value)
        for i in big:
            longest = max(longest, weekday_gap(index[i], index[i + 1], tf))
    return min(max(longest, pd.Timedelta(days=1)), pd.Timedelta(days=4))


def parse_max_gap(text: str | None) -> pd.Timedelta | None:
    """``paper.max_gap`` (init's ``max_gap``) as a positive duration (None: learn it from the
    source's history)."""
    if text is None:
        return None
    try:   # "2d" as users write it: pandas 3 deprecates the lower-case day unit, so say "2D"
        gap = pd.Timedelta(re.sub(r"(?<=\d)d(?![a-z])", "D", text))
    except (ValueError, OverflowError):
        raise PaperError(f"paper.max_gap {text!r} is not a duration (e.g. 2d, 6h)") from None
    if gap is pd.NaT or gap <= pd.Timedelta(0):
        raise PaperError(f"paper.max_gap {text!r}: give a positive duration, e.g. 2d or 6h")
    return gap


__all__ = ["GUARD", "Fetcher", "Snapshot", "Tail", "default_fetcher", "file_guard", "gap_allowance",
           "guard_of", "parse_max_gap", "read_csv_tail", "read_yahoo", "snapshot", "weekday_gap"]
