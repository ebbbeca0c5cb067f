"""One validator for every source: turns a raw frame into the canonical candle frame.

Canonical frame: tz-aware UTC ``DatetimeIndex`` (ns) named ``time``, strictly increasing, float columns
``open high low close volume`` (+ ``spread`` in price units when the source has it).
``attrs["volume_from"]`` names the column volume came from (None: absent, zeros and
``attrs["volume_missing"]``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from data.errors import DataError

PRICE_COLUMNS = ("open", "high", "low", "close")
MAX_SPREAD_SHARE = 0.05  # a spread over 5 % of the close is a unit mistake (points for price)
CANONICAL_COLUMNS = (*PRICE_COLUMNS, "volume")
# the range of timestamps a frame may hold (nanosecond stamps, with a margin)
FIRST_TIME, LAST_TIME = pd.Timestamp("1678-01-01", tz="UTC"), pd.Timestamp("2261-12-31", tz="UTC")


def validate_frame(
    frame: pd.DataFrame,
    *,
    source: str = "<frame>",
    line_numbers: Sequence[int] | None = None,
    sort: bool = False,
) -> pd.DataFrame:
    """Check ``frame`` (time index, OHLC[V][spread] columns) and return the canonical frame.

    ``line_numbers[i]`` is the file line of row ``i`` so errors can point into the file; without it
    rows are numbered from 1. Unsorted input is an error unless ``sort`` is true.
    """
    n = len(frame)
    lines = np.asarray(line_numbers if line_numbers is not None else np.arange(1, n + 1))
    if n == 0:
        raise DataError("no rows of data", source=source, rule="empty")

    cols: dict[str, object] = {}
    for c in frame.columns:
        key = str(c).strip().lower()
        if key in cols and key in (*CANONICAL_COLUMNS, "spread"):
            raise DataError(f"column {key} appears twice ({cols[key]!r} and {c!r})",
                            source=source, rule="duplicate columns")
        cols[key] = c
    missing = [c for c in PRICE_COLUMNS if c not in cols]
    if missing:
        raise DataError(
            f"missing column(s) {', '.join(missing)}; found {', '.join(map(str, frame.columns))}",
            source=source,
            rule="missing columns",
        )

    index = frame.index
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError("the index must be timestamps", source=source, rule="unparsable timestamps")
    bad_time = np.flatnonzero(index.isna())
    if len(bad_time):
        raise DataError(
            "timestamp is missing or could not be parsed",
            source=source, rows=lines[bad_time], rule="unparsable timestamps",
        )
    if index.tz is None:
        raise DataError("timestamps carry no timezone", source=source, rule="unknown timezone")
    index = index.tz_convert("UTC")
    # One resolution for every source, so frames (and their fingerprints) compare as equal.
    too_far = np.flatnonzero((index < FIRST_TIME) | (index > LAST_TIME))
    if len(too_far):
        raise DataError(f"timestamp {index[too_far[0]]} is outside the years 1678-2261",
                        source=source, rows=lines[too_far], rule="unparsable timestamps")
    index = index.as_unit("ns")

    out = pd.DataFrame(index=pd.DatetimeIndex(index, name="time"))
    out.attrs.update(frame.attrs)  # e.g. the MT5 point the spread was converted with
    wanted = list(CANONICAL_COLUMNS) + (["spread"] if "spread" in cols else [])
    if "volume" in cols:
        out.attrs["volume_from"] = frame.attrs.get("volume_from") or str(cols["volume"]).lower()
    else:
        out.attrs["volume_from"] = None
    for name in wanted:
        if name not in cols:  # volume absent: zeros, and the frame says so
            out[name] = 0.0
            out.attrs["volume_missing"] = True
            continue
        raw = frame[cols[name]]
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        if pd.api.types.is_numeric_dtype(raw.dtype):  # numbers already: no text to misread
            not_number = np.array([], dtype=int)
        else:
            spelled_nan = raw.astype("string").str.strip().str.lower().isin(["nan", "-nan",
                                                                              "+nan"])
            not_number = np.flatnonzero(np.isnan(values) & raw.notna().to_numpy()
                                        & ~spelled_nan.to_numpy(dtype=bool, na_value=False))
        if len(not_number):
            raise DataError(
                f"column {name} holds a value that is not a number ({raw.iloc[not_number[0]]!r})",
                source=source, rows=lines[not_number], rule="not a number",
            )
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise DataError(
                f"column {name} is empty, NaN or infinite",
                source=source, rows=lines[bad], rule="NaN/inf",
            )
        out[name] = values

    o, h, lo, c = (out[k].to_numpy() for k in PRICE_COLUMNS)
    spread = out["spread"].to_numpy() if "spread" in out else None
    for bad, message, rule in row_rules(o, h, lo, c, out["volume"].to_numpy(), spread):
        _check(np.flatnonzero(bad), message, rule, source, lines)
    if spread is not None:
        absurd = np.flatnonzero(spread > MAX_SPREAD_SHARE * c)
        if len(absurd):
            i = absurd[0]
            used = out.attrs.get("point")
            how = f" (converted from points with point={used:g})" if used else ""
            raise DataError(
                f"spread {spread[i]:g}{how} is over {MAX_SPREAD_SHARE:.0%} of the close {c[i]:g}: "
                "is it in points rather than price units? Give the size of one point with point= "
                "(data.point), e.g. 0.00001 for EURUSD",
                source=source, rows=lines[absurd], rule="spread units")

    stamps = out.index.asi8
    dup = pd.Index(stamps).duplicated(keep=False)
    if dup.any():
        raise DataError(
            f"duplicate timestamp {out.index[np.flatnonzero(dup)[0]]}",
            source=source, rows=lines[np.flatnonzero(dup)], rule="duplicate timestamps",
        )
    backwards = np.flatnonzero(np.diff(stamps) < 0) + 1
    if len(backwards):
        if not sort:
            raise DataError(
                "timestamps are not in increasing order (sort=True, data.sort, sorts them)",
                source=source, rows=lines[backwards], rule="unsorted",
            )
        out = out.iloc[np.argsort(stamps, kind="stable")]
    return out


def row_rules(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, volume: np.ndarray,
              spread: np.ndarray | None = None) -> list[tuple[np.ndarray, str, str]]:
    """The rules each row's numbers must keep, as (rows that break it, message, rule name) in
    the order they are reported; the spread's cap (``MAX_SPREAD_SHARE`` of the close) comes
    after them, with its own advice."""
    rules = [((o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0), "a price is zero or negative",
              "non-positive price"),
             (h < np.maximum(o, c), "high is below max(open, close)", "high below open/close"),
             (lo > np.minimum(o, c), "low is above min(open, close)", "low above open/close"),
             (volume < 0, "volume is negative", "negative volume")]
    if spread is not None:
        rules.append((spread < 0, "spread is negative", "negative spread"))
    return rules


def _check(bad: np.ndarray, message: str, rule: str, source: str, lines: np.ndarray) -> None:
    if len(bad):
        raise DataError(message, source=source, rows=lines[bad], rule=rule)


def to_utc(value, what: str = "time") -> pd.Timestamp:
    """A user-given time (string or timestamp) as a UTC timestamp; naive means UTC."""
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        raise DataError(f"cannot read {what} {value!r} as a date/time (use e.g. 2018-01-10 12:00)",
                        rule="bad time") from None
    if ts is pd.NaT:
        raise DataError(f"{what} is empty", rule="bad time")
    try:
        ts = ts.as_unit("ns")   # bars are nanosecond-indexed: 1677-09-21 … 2262-04-11
    except (ValueError, OverflowError):
        raise DataError(f"{what} {value!r} is out of the range of dates candles can have "
                        "(1677 … 2262)", rule="bad time") from None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
