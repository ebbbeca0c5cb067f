"""Lines appended to a CSV file, read fast: what ``data.sources.read_text`` gives for them.

Paper trading reads one new line per step from a file it has read before (its header pinned).
The full loader costs tens of milliseconds for that line (pandas set-up, not parsing); most
appended lines are plain. ``read_appended`` reads plain lines itself, applying the loader's rules
(field count, numbers, OHLC consistency, volume, spread, time order, time zone) and hands
anything else — quotes, control characters, other stamp styles, a failed rule, a dialect it does
not read (``mt5_api``, ``yfinance_multi``), many lines — to ``read_text``, so the frame is the
loader's and a refused line raises the loader's error. ``tests/data/test_tail.py`` compares both
on tricky lines.

Plain, here: a generic or MetaTrader 5 terminal file separated by ``,`` ``;`` tab or whitespace,
no ``"``, printable text, stamps ``YYYY-MM-DD[ HH:MM[:SS]]`` (MT5: ``YYYY.MM.DD`` and a time
column), numbers that ``pd.to_numeric`` reads as finite, and no spread to convert without a
known point.
"""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd

from data.errors import DataError
from data.sources import TIME_NAMES, normalise_name, read_text, sniff_separator, split_line
from data.timestamps import localize
from data.validate import FIRST_TIME, LAST_TIME, MAX_SPREAD_SHARE, row_rules

MAX_LIGHT_ROWS = 256   # more lines than this: the full loader (vectorised) is as fast
_LINES = re.compile(r"\r\n|\r|\n")
_STAMP = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?")
_MT5_DATE = re.compile(r"(\d{4})\.(\d{2})\.(\d{2})")
_FEED_BLANK = " \t\r\n\x0b\x0c,;"   # what the paper feed counts as a blank line


def read_appended(head: str, body: str, source: str, *, tz: str, point: float | None,
                  dayfirst: bool | None, dialect: str | None) -> pd.DataFrame:
    """``read_text(head + body, source, tz=tz, sort=False, point=point, dayfirst=dayfirst)``:
    the candles of the complete lines ``body`` under the header ``head`` of a file whose
    dialect is ``dialect`` (the same frame, or the same ``DataError``)."""
    frame = light_rows(head, body, source, tz=tz, point=point, dialect=dialect)
    if frame is None:
        frame = read_text(head + body, source, tz=tz, sort=False, point=point,
                          dayfirst=dayfirst)
    return frame


def light_rows(head: str, body: str, source: str, *, tz: str, point: float | None,
               dialect: str | None) -> pd.DataFrame | None:
    """The candles of plain lines (see the module docstring), or None where the full loader
    must read them. Columns, dtypes and index are the loader's; ``attrs`` are not filled."""
    if dialect not in ("generic", "mt5_terminal"):
        return None
    header = [line for line in _LINES.split(head) if line.strip()]
    lines = _LINES.split(body)
    if len(header) != 1 or len(lines) > MAX_LIGHT_ROWS + 1 or lines[-1] != "":
        return None   # header of several lines, too many lines, or a line without its end
    sep = sniff_separator(header[0])
    names = [normalise_name(n) for n in split_line(header[0], sep, source)]
    blank = " \t\x0b\x0c" + ("" if sep == " " else sep)
    rows = []
    for line in lines[:-1]:
        if not line.strip(blank):
            if line.strip(_FEED_BLANK):   # blank to the loader, not to the feed: let both say
                return None
            continue
        if '"' in line or not line.replace("\t", "").isprintable():
            return None
        fields = line.split() if sep == " " else [f.strip() for f in line.split(sep)]
        if len(fields) != len(names) or "" in fields:
            return None
        rows.append(fields)
    if not rows:
        return None
    columns = dict(zip(names, zip(*rows, strict=True), strict=True))
    if dialect == "generic":
        stamps, volume = _generic(names, columns)
    else:
        stamps, volume = _mt5_terminal(names, columns)
    if stamps is None:
        return None
    index = _index(stamps, tz, source)
    if index is None:
        return None
    out = {name: _numbers(columns[name]) for name in ("open", "high", "low", "close")
           if name in columns}
    if len(out) < 4:
        return None
    out["volume"] = _numbers(columns[volume]) if volume else np.zeros(len(rows))
    if "spread" in columns:
        spread = _numbers(columns["spread"])
        if spread is None:
            return None
        if dialect == "mt5_terminal" or point is not None:   # points → price units
            if point is None:
                if (spread != 0).any():
                    return None   # the loader infers the point from these few prices
            else:
                spread = spread * point
        out["spread"] = spread
    if any(v is None for v in out.values()) or not _valid(out):
        return None
    return pd.DataFrame(np.column_stack(list(out.values())), index=index,
                        columns=pd.Index(list(out), dtype="str"))


def _generic(names: list[str], columns: dict) -> tuple[list[str] | None, str | None]:
    time_col = next((c for c in TIME_NAMES if c in names), None)
    if time_col is None and names[0].startswith("unnamed"):
        time_col = names[0]
    if time_col is None or names.count(time_col) > 1:
        return None, None
    volume = next((c for c in ("volume", "tick_volume", "tickvol", "real_volume", "vol")
                   if c in names), None)
    return list(columns[time_col]), volume


def _mt5_terminal(names: list[str], columns: dict) -> tuple[list[str] | None, str | None]:
    if "date" not in names or "time" not in names:
        return None, None
    stamps = []
    for day, clock in zip(columns["date"], columns["time"], strict=True):
        m = _MT5_DATE.fullmatch(day)
        if m is None:
            return None, None
        stamps.append(f"{m[1]}-{m[2]}-{m[3]} {clock}")
    return stamps, next((c for c in ("tickvol", "vol") if c in names), None)


def _index(stamps: list[str], tz: str, source: str) -> pd.DatetimeIndex | None:
    """Naive ``YYYY-MM-DD[ HH:MM[:SS]]`` stamps read in ``tz``, as UTC nanoseconds."""
    moments = []
    for stamp in stamps:
        m = _STAMP.fullmatch(stamp)
        if m is None:
            return None
        try:
            moments.append(dt.datetime(*(int(g) for g in m.groups() if g is not None)))
        except ValueError:
            return None
    try:
        naive = pd.DatetimeIndex(moments).as_unit("ns")
    except (ValueError, OverflowError, pd.errors.OutOfBoundsDatetime):
        return None
    try:
        index = localize(naive, tz, source, np.arange(len(stamps))).tz_convert("UTC")
    except DataError:   # e.g. a DST gap: the loader says it, naming the line
        return None
    stamps = index.asi8
    if stamps.min() < FIRST_TIME.value or stamps.max() > LAST_TIME.value:
        return None
    if len(index) > 1 and not (np.diff(stamps) > 0).all():
        return None   # duplicates or backwards: the loader names them
    return pd.DatetimeIndex(index.as_unit("ns"), name="time")


def _numbers(cells: tuple[str, ...]) -> np.ndarray | None:
    """The loader's numbers (``pd.to_numeric``), or None where one is not a finite number."""
    values = np.asarray(pd.to_numeric(np.array(cells, dtype=object), errors="coerce"),
                        dtype="float64")
    return values if np.isfinite(values).all() else None


def _valid(out: dict[str, np.ndarray]) -> bool:
    """Whether the rows keep the loader's rules (``data.validate.row_rules`` and the spread cap)."""
    spread = out.get("spread")
    if any(bad.any() for bad, _, _ in row_rules(out["open"], out["high"], out["low"],
                                                  out["close"], out["volume"], spread)):
        return False
    return spread is None or bool((spread <= MAX_SPREAD_SHARE * out["close"]).all())


__all__ = ["MAX_LIGHT_ROWS", "light_rows", "read_appended"]
