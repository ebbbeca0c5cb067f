"""Timestamps of candle files: date styles, two-digit years, day/month order, GMT suffixes, timezones.

Every reading either agrees with itself or is refused naming rows (rules: docs/data.md)."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd

from data.errors import DataError

_AWARE = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")

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
        return localize(pd.DatetimeIndex(parsed), tz, source, lines).tz_convert("UTC")
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
            return localize(index, tz, source, lines).tz_convert("UTC")
        return index.tz_localize("UTC")
    text = resolve_day_month(_iso_offsets(text), source, lines, dayfirst)
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
        index = localize(index, tz, source, lines)
    return index.tz_convert("UTC")


_GMT_SUFFIX = re.compile(r"(?i)(?<=\d)\s*(?:GMT|UTC)(?:\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?)?$")


def _iso_offsets(text: pd.Series) -> pd.Series:
    """``… GMT+2`` / ``… UTC-03:30`` / ``… GMT`` suffixes as ISO offsets (``+02:00``): in a
    trading file GMT+2 is UTC+2, not the POSIX reading (UTC-2) that dateutil gives it."""
    if not text.str.contains(r"(?i)GMT|UTC", regex=True).any():
        return text

    def iso(match: re.Match) -> str:
        sign, hours, minutes = match.group(1), match.group(2), match.group(3)
        return f"{sign}{int(hours):02d}:{minutes or '00'}" if sign else "+00:00"

    return text.str.replace(_GMT_SUFFIX, iso, regex=True)


_READINGS = {"DMY": "DD.MM.YY", "MDY": "MM.DD.YY", "YMD": "YY.MM.DD"}
_MONTH_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def _full_year(two_or_four: np.ndarray, digits: np.ndarray) -> np.ndarray:
    return np.where(digits == 2, np.where(two_or_four < 69, 2000, 1900) + two_or_four,
                    two_or_four)


def _is_date(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> bool:
    if ((month < 1) | (month > 12)).any():
        return False
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    last = _MONTH_DAYS[month - 1] + ((month == 2) & leap)
    return bool(((day >= 1) & (day <= last)).all())


def resolve_day_month(text: pd.Series, source: str, lines: np.ndarray,
                      dayfirst: bool | None) -> pd.Series:
    """Rewrite ``D.M.YYYY``/``M/D/YYYY``/``YY.MM.DD``-style stamps (any of ``. / -``) as ISO.

    The order comes from the whole column: a first field over 12 means day-first, a second field
    over 12 month-first, both kinds are an error. With two-digit years the column may also be
    year-first (``25.12.12``: 2025-12-12 or 2012-12-25): a reading is ruled out where some date
    is impossible under it or, when another reading runs forward in time, where the dates run
    backwards. ``dayfirst=True`` means day before month (DD.MM.YY), ``False`` month before day
    (MM.DD.YY or YY.MM.DD). Readings left that give different dates are refused, naming them.
    ISO ``YYYY-MM-DD`` and MT5 ``YYYY.MM.DD`` stamps do not match and are left alone.
    """
    parts = text.str.extract(_DMY)
    hit = parts[0].notna().to_numpy()
    if not hit.any():
        return text
    first = parts[0][hit].astype(int).to_numpy()
    second = parts[1][hit].astype(int).to_numpy()
    third = parts[2][hit].astype(int).to_numpy()
    first_digits = parts[0][hit].str.len().to_numpy()
    third_digits = parts[2][hit].str.len().to_numpy()
    at = np.asarray(lines)[hit]
    shown = text[hit].to_numpy()
    day_first = np.flatnonzero(first > 12)
    month_first = np.flatnonzero(second > 12)
    if len(day_first) and len(month_first):
        i, j = day_first[0], month_first[0]
        raise DataError(f"dates are written both day-first ({shown[i]!r}) and month-first "
                        f"({shown[j]!r})", source=source, rows=sorted({at[i], at[j]}),
                        rule="ambiguous dates")
    year = _full_year(third, third_digits)
    dates = {"DMY": (year, second, first), "MDY": (year, first, second)}
    if (first_digits == 2).all() and (third_digits == 2).all():
        ymd = (_full_year(first, first_digits), second, third)
        if _is_date(*ymd):
            dates["YMD"] = ymd
    readings = [r for r in dates if not (r == "DMY" and len(month_first))
                and not (r == "MDY" and len(day_first))]
    allowed = {None: set(_READINGS), True: {"DMY"}, False: {"MDY", "YMD"}}
    possible = [r for r in readings if r in allowed[dayfirst]]
    if not possible:  # the column shows one order and the caller said the other
        found = bool(len(day_first))
        i = (day_first if found else month_first)[0]
        raise DataError(f"{shown[i]!r} can only be {'day' if found else 'month'}-first, but "
                        f"dayfirst={dayfirst} was given", source=source, rows=[at[i]],
                        rule="ambiguous dates")
    keys = {r: y * 10_000 + m * 100 + d for r, (y, m, d) in dates.items()}
    if len(possible) > 1 and "YMD" in possible:  # which reading runs forward in time
        forward = [r for r in possible if (np.diff(keys[r]) >= 0).all()]
        possible = forward or possible
    differ = np.flatnonzero(np.any([keys[r] != keys[possible[0]] for r in possible], axis=0))
    if len(differ):
        i = differ[0]
        if set(possible) == {"DMY", "MDY"}:
            hint = "pass dayfirst=True or dayfirst=False (data.dayfirst)"
            raise DataError(f"dates such as {shown[i]!r} read as day-first or month-first and no "
                            f"date in the column settles it; {hint}", source=source,
                            rows=[at[i]], rule="ambiguous dates")
        named = " or ".join(
            f"{dates[r][0][i]:04d}-{dates[r][1][i]:02d}-{dates[r][2][i]:02d} ({_READINGS[r]})"
            for r in possible)
        settle = [f"dayfirst={choice} for {_READINGS[left[0]]}" for choice in (True, False)
                  if dayfirst is None
                  and len(left := [r for r in possible if r in allowed[choice]]) == 1]
        hint = (f"pass {' or '.join(settle)} (data.dayfirst), or write four-digit years"
                if settle else "write the dates with four-digit years")
        raise DataError(f"dates such as {shown[i]!r} read as {named}, and no date in the column "
                        f"settles it; {hint}", source=source, rows=[at[i]],
                        rule="ambiguous dates")
    y, m, d = dates[possible[0]]
    rest = parts[3][hit].fillna("").to_numpy()
    out = text.copy()
    # an array, not a list: pandas 3.0's Arrow-backed strings cannot mask a list (seen: 3.0.6)
    out[hit] = np.array([f"{yy:04d}-{mm:02d}-{dd:02d}{r}" for yy, mm, dd, r in
                         zip(y, m, d, rest, strict=True)], dtype=object)
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


def localize(index: pd.DatetimeIndex, tz: str, source: str, lines: np.ndarray):
    """Naive wall-clock stamps in ``tz`` → aware; a repeated DST hour is resolved from the order."""
    zone_ = zone(tz, source)
    try:
        return index.tz_localize(zone_, ambiguous="infer", nonexistent="raise")
    except Exception:  # pytz/zoneinfo raise several types for DST gaps and repeats
        pass
    probe = index.tz_localize(zone_, ambiguous="NaT", nonexistent="NaT")
    bad = np.flatnonzero(probe.isna())
    raise DataError(f"timestamp {index[bad[0]] if len(bad) else ''} does not exist or is "
                    f"ambiguous in {tz} (a daylight-saving change)", source=source,
                    rows=lines[bad] if len(bad) else None, rule="unknown timezone")


_OFFSET_NAME = re.compile(r"(?i)^(?:GMT|UTC)?\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?$")
_POSIX_GMT = re.compile(r"(?i)^etc/(?:gmt|utc)\s*([+-])\s*(\d{1,2})$")


def zone(tz: str, source: str = "<option>") -> str | dt.tzinfo:
    """The zone a ``tz`` option names, as pandas takes it.

    ``GMT+2``, ``UTC+2``, ``GMT+02:00`` and ``+02:00`` mean UTC+2, as brokers write them. The tz
    database's ``Etc/GMT+2`` means the opposite (POSIX sign: UTC-2), so it is refused rather than
    read either way; anything else is an IANA name.
    """
    text = str(tz).strip()
    if text.upper() in ("GMT", "UTC", "Z"):
        return "UTC"
    offset = _OFFSET_NAME.match(text)
    if offset:
        sign, hours, minutes = offset.group(1), int(offset.group(2)), int(offset.group(3) or 0)
        if hours > 14 or minutes >= 60:
            raise DataError(f"timezone {tz!r} is not a UTC offset (at most ±14:00)",
                            source=source, rule="unknown timezone")
        delta = dt.timedelta(hours=hours, minutes=minutes)
        return dt.timezone(-delta if sign == "-" else delta) if delta else "UTC"
    posix = _POSIX_GMT.match(text)
    if posix and int(posix.group(2)):
        sign, hours = posix.group(1), int(posix.group(2))
        other = "-" if sign == "+" else "+"
        raise DataError(f"{tz!r} is UTC{other}{hours} in the tz database (POSIX sign), the "
                        f"opposite of what a broker's GMT{sign}{hours} means; write "
                        f"{other}{hours:02d}:00 for UTC{other}{hours}, or {sign}{hours:02d}:00 "
                        f"(GMT{sign}{hours}) for UTC{sign}{hours}", source=source,
                        rule="unknown timezone")
    return text


def check_tz(tz: str, source: str) -> None:
    zone_ = zone(tz, source)
    try:
        pd.Timestamp("2020-01-01").tz_localize(zone_)
    except Exception:
        raise DataError(f"unknown timezone {tz!r} (use an IANA name such as Europe/Athens, or a "
                        "UTC offset such as +02:00 or GMT+2, meaning UTC+2)",
                        source=source, rule="unknown timezone") from None
