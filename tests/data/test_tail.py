"""data.tail: appended lines read fast give what the full loader gives (frame or error)."""

from __future__ import annotations

import pandas as pd
import pytest

from data.errors import DataError
from data.sources import read_text
from data.tail import light_rows, read_appended

GENERIC = "time,open,high,low,close,volume\n"
MT5 = "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n"
ROW = "2024-01-05 10:00:00,1.1,1.2,1.0,1.15,100\n"
ROW2 = "2024-01-05 11:00:00,1.15,1.25,1.05,1.2,7\n"
MT5_ROW = "2024.01.05\t10:00:00\t1.10000\t1.20000\t1.00000\t1.15000\t100\t0\t{}\n"

# (head, appended lines, options, read by the light path?)
CASES = {
    "plain": (GENERIC, ROW, {}, True),
    "two lines, CRLF": (GENERIC.replace("\n", "\r\n"), (ROW + ROW2).replace("\n", "\r\n"), {},
                        True),
    "old Mac line ends": (GENERIC.replace("\n", "\r"), (ROW + ROW2).replace("\n", "\r"), {},
                          True),
    "blank line between": (GENERIC, ROW + " ,,, \n\n" + ROW2, {}, True),
    "blank lines before the header": ("\n\n" + GENERIC, ROW, {}, True),
    "spaces around fields": (GENERIC, " 2024-01-05 10:00 , 1.1 ,1.2, 1.0,1.15 , 100 \n", {}, True),
    "T, exponent, integer volume": (GENERIC, "2024-01-05T10:00,1.1e0,12e-1,1,1.15,+3\n", {}, True),
    "semicolons, extra column": ("Date;Open;High;Low;Close;Foo\n",
                                 "2024-01-05;1.1;1.2;1.0;1.15;x\n", {}, True),
    "tabs, no volume": ("date\topen\thigh\tlow\tclose\n", "2024-01-05\t1.1\t1.2\t1.0\t1.15\n", {},
                        True),
    "whitespace": ("date open high low close\n", "2024-01-05   1.1 1.2 1.0  1.15\n", {}, True),
    "offset zone": (GENERIC, ROW + ROW2, {"tz": "+02:00"}, True),
    "IANA zone": (GENERIC, ROW, {"tz": "Europe/Berlin"}, True),
    "generic spread in points": ("time,open,high,low,close,spread\n",
                                 "2024-01-05 10:00,1.1,1.2,1.0,1.15,12\n", {"point": 1e-5}, True),
    "mt5 point given": (MT5, MT5_ROW.format(12), {"point": 1e-5, "dialect": "mt5_terminal"},
                        True),
    "mt5 spread zero, no point": (MT5, MT5_ROW.format(0), {"dialect": "mt5_terminal"}, True),
    "mt5 point inferred from the line": (MT5, MT5_ROW.format(12), {"dialect": "mt5_terminal"},
                                         False),
    "quoted": (GENERIC, '"2024-01-05 10:00:00","1.1",1.2,1.0,1.15,100\n', {}, False),
    "quoted separator": (GENERIC, '2024-01-05 10:00,"1,1",1.2,1.0,1.15,100\n', {}, False),
    "stamp with an offset": (GENERIC, "2024-01-05 10:00:00+01:00,1.1,1.2,1.0,1.15,1\n", {},
                             False),
    "day first": (GENERIC, "05.01.2024 10:00,1.1,1.2,1.0,1.15,1\n", {"dayfirst": True}, False),
    "epoch seconds": (GENERIC, "1704448800,1.1,1.2,1.0,1.15,1\n", {}, False),
    "mt5 api dump": ("time,open,high,low,close,tick_volume,spread,real_volume\n",
                     "1704448800,1.1,1.2,1.0,1.15,5,0,0\n", {"dialect": "mt5_api"}, False),
    # refused: the same error as the loader
    "high below close": (GENERIC, "2024-01-05 10:00,1.1,1.1,1.0,1.15,1\n", {}, False),
    "not a number": (GENERIC, "2024-01-05 10:00,1.1,abc,1.0,1.15,1\n", {}, False),
    "nan": (GENERIC, "2024-01-05 10:00,1.1,nan,1.0,1.15,1\n", {}, False),
    "infinite": (GENERIC, "2024-01-05 10:00,1.1,inf,1.0,1.15,1\n", {}, False),
    "empty cell": (GENERIC, "2024-01-05 10:00,1.1,,1.0,1.15,1\n", {}, False),
    "missing field": (GENERIC, "2024-01-05 10:00,1.1,1.2,1.0,1.15\n", {}, False),
    "extra field": (GENERIC, ROW.replace("\n", ",3\n"), {}, False),
    "negative volume": (GENERIC, "2024-01-05 10:00,1.1,1.2,1.0,1.15,-1\n", {}, False),
    "zero price": (GENERIC, "2024-01-05 10:00,0,1.2,1.0,1.15,1\n", {}, False),
    "backwards": (GENERIC, ROW2 + ROW, {}, False),
    "duplicate": (GENERIC, ROW + ROW, {}, False),
    "impossible date": (GENERIC, "2024-02-30 10:00,1.1,1.2,1.0,1.15,1\n", {}, False),
    "hour 24": (GENERIC, "2024-01-05 24:00,1.1,1.2,1.0,1.15,1\n", {}, False),
    "DST gap": (GENERIC, "2024-03-31 02:30,1.1,1.2,1.0,1.15,1\n", {"tz": "Europe/Berlin"},
                False),
    "year out of range": (GENERIC, "2300-01-05 10:00,1.1,1.2,1.0,1.15,1\n", {}, False),
    "NUL in an ignored column": ("Date;Open;High;Low;Close;Foo\n",
                                 "2024-01-05;1.1;1.2;1.0;1.15;x\x00\n", {}, False),
    "word for a stamp": (GENERIC, "now,1.1,1.2,1.0,1.15,1\n", {}, False),
    "mt5 absurd spread": (MT5, MT5_ROW.format(99999), {"point": 1e-5,
                                                      "dialect": "mt5_terminal"}, False),
    "mt5 negative spread": (MT5, MT5_ROW.format(-1), {"point": 1e-5, "dialect": "mt5_terminal"},
                            False),
}


def _full(head: str, body: str, opts: dict):
    try:
        return read_text(head + body, "f.csv", tz=opts.get("tz", "UTC"), sort=False,
                         point=opts.get("point"), dayfirst=opts.get("dayfirst"))
    except DataError as exc:
        return exc


@pytest.mark.parametrize("name", list(CASES))
def test_appended_lines_read_as_the_loader_reads_them(name):
    head, body, opts, light = CASES[name]
    kwargs = {"tz": opts.get("tz", "UTC"), "point": opts.get("point")}
    dialect = opts.get("dialect", "generic")
    expected = _full(head, body, opts)
    fast = light_rows(head, body, "f.csv", dialect=dialect, **kwargs)
    assert (fast is not None) == light, "which path reads these lines"
    try:
        got = read_appended(head, body, "f.csv", dayfirst=opts.get("dayfirst"),
                            dialect=dialect, **kwargs)
    except DataError as exc:
        got = exc
    if isinstance(expected, DataError):
        assert isinstance(got, DataError), f"the loader refuses: {expected}"
        assert (str(got), got.rows, got.rule) == (str(expected), expected.rows, expected.rule)
    else:
        assert not isinstance(got, DataError), got
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
        assert list(got.columns) == list(expected.columns)
        assert got.columns.dtype == expected.columns.dtype
        assert got.index.dtype == expected.index.dtype and got.index.name == "time"
