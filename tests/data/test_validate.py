"""Validation: every broken rule is a DataError naming the file, the line(s) and the rule."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from candle_helpers import HEADER, assert_canonical, csv_text, good_rows

from data import DataError, load, validate_frame


def broken(write, row: int, col: int, value: str, n: int = 8):
    """A file of ``n`` good rows where data row ``row`` (0-based; file line row + 2) has
    ``value`` in column ``col``."""
    rows = good_rows(n)
    rows[row][col] = value
    return write(csv_text(rows))


def error_of(path, **kwargs) -> DataError:
    with pytest.raises(DataError) as info:
        load(path, **kwargs)
    message = str(info.value)
    assert str(path) in message, message
    return info.value


# (row, column, value, rule): the file line is row + 2 (line 1 is the header)
CELL_RULES = [
    (3, 0, "2024-13-45 10:00:00", "unparsable timestamps"),
    (3, 0, "yesterday-ish", "unparsable timestamps"),
    (3, 0, "now", "unparsable timestamps"),
    (2, 1, "nan", "NaN/inf"),
    (2, 1, "NaN", "NaN/inf"),
    (2, 4, "", "NaN/inf"),
    (5, 2, "inf", "NaN/inf"),
    (1, 3, "-inf", "NaN/inf"),
    (4, 4, "1.1.1", "not a number"),
    (4, 5, "lots", "not a number"),
    (6, 1, "0", "non-positive price"),
    (6, 3, "-1.1", "non-positive price"),
    (2, 2, "1.09000", "high below open/close"),
    (2, 3, "1.20000", "low above open/close"),
    (7, 5, "-5", "negative volume"),
]


@pytest.mark.parametrize(("row", "col", "value", "rule"), CELL_RULES)
def test_each_rule_names_file_line_and_rule(write, row, col, value, rule):
    err = error_of(broken(write, row, col, value))
    assert err.rule == rule
    assert err.rows == [row + 2]
    assert f"line {row + 2}: {rule}:" in str(err)


def test_exact_line_numbers_past_blank_lines_and_crlf(write):
    rows = good_rows(6)
    rows[4][2] = "1.0"  # high below open: data row 4
    lines = ["", ",".join(HEADER), ",".join(rows[0]), "", "", ",".join(rows[1]),
             ",".join(rows[2]), "   ", ",".join(rows[3]), ",".join(rows[4]), ",".join(rows[5])]
    err = error_of(write("\r\n".join(lines) + "\r\n"))
    assert err.rule == "high below open/close"
    assert err.rows == [10]  # the 10th line of the file, counting the blank ones


def test_several_bad_lines_are_all_named(write):
    rows = good_rows(10)
    for i in (1, 4, 8):
        rows[i][3] = "9.9"  # low above open/close
    err = error_of(write(csv_text(rows)))
    assert err.rows == [3, 6, 10]
    assert "lines 3, 6, 10: low above open/close" in str(err)


def test_missing_price_column(write):
    rows = [[r[0], r[1], r[2], r[4]] for r in good_rows(3)]
    err = error_of(write(csv_text(rows, ["time", "open", "high", "close"])))
    assert err.rule == "missing columns"
    assert "low" in str(err)


def test_missing_time_column(write):
    rows = [r[1:] for r in good_rows(3)]
    err = error_of(write(csv_text(rows, HEADER[1:])))
    assert err.rule == "missing columns"
    assert "time column" in str(err)


def test_duplicate_timestamps_name_both_lines(write):
    rows = good_rows(8)
    rows[5][0] = rows[2][0]
    err = error_of(write(csv_text(rows)))
    assert err.rule == "duplicate timestamps"
    assert err.rows == [4, 7]


def test_duplicate_after_utc_conversion(write):
    rows = good_rows(3)
    rows[0][0], rows[1][0] = "2024-01-04T18:00:00+00:00", "2024-01-04T20:00:00+02:00"
    rows[2][0] = "2024-01-04T19:00:00+00:00"
    assert error_of(write(csv_text(rows))).rule == "duplicate timestamps"


def test_mixed_timezones(write):
    rows = good_rows(6)
    for r in rows[:4]:
        r[0] = r[0].replace(" ", "T") + "+00:00"
    err = error_of(write(csv_text(rows)))
    assert err.rule == "mixed timezones"
    assert err.rows == [6, 7]


def test_unsorted_is_an_error_unless_sort(write):
    rows = good_rows(8)
    rows[3], rows[6] = rows[6], rows[3]
    path = write(csv_text(rows))
    err = error_of(path)
    assert err.rule == "unsorted"
    assert err.rows == [6, 8]  # the rows that step back in time
    assert "data.sort" in str(err)
    frame = load(path, sort=True)
    assert_canonical(frame)
    assert frame.index.tolist() == sorted(pd.Timestamp(r[0], tz="UTC") for r in rows)
    assert frame["volume"].tolist() == [100.0 + i for i in range(8)]  # rows moved whole


def test_weekend_gap_is_no_error(write):
    rows = good_rows(4, start="2024-01-05 20:00")  # Friday evening
    rows += good_rows(3, start="2024-01-07 22:00")  # Sunday night
    frame = load(write(csv_text(rows)))
    assert len(frame) == 7
    assert (frame.index[4] - frame.index[3]) > pd.Timedelta(days=1)


def test_rows_with_extra_fields_are_not_shifted(write):
    rows = good_rows(4)
    for r in rows:
        r.insert(1, "9")  # one more field than the header on every row
    err = error_of(write(csv_text(rows)))
    assert err.rule == "malformed CSV"
    assert err.rows == [2, 3, 4, 5]
    assert "every row" in str(err)


def test_one_row_with_extra_fields(write):
    rows = good_rows(6)
    rows[3].append("7")
    err = error_of(write(csv_text(rows)))
    assert err.rule == "malformed CSV"
    assert err.rows == [5]


def test_short_row_is_reported_not_dropped(write):
    rows = good_rows(5)
    rows[2] = rows[2][:3]
    err = error_of(write(csv_text(rows)))
    assert err.rule == "malformed CSV"
    assert err.rows == [4]
    assert "6 columns but the row has 3 fields" in str(err)


def test_row_of_only_separators_is_skipped_and_counted(write):
    rows = good_rows(5)
    rows[2] = [""] * 6
    frame = load(write(csv_text(rows)))
    assert len(frame) == 4
    assert frame.attrs["skipped_blank_lines"] == 1
    assert frame.attrs["skipped_blank_line_numbers"] == [4]


def test_duplicate_columns(write):
    rows = [r + [r[4]] for r in good_rows(3)]
    err = error_of(write(csv_text(rows, [*HEADER, "Close"])))
    assert err.rule == "duplicate columns"
    assert err.rows == [1]


@pytest.mark.parametrize("header", ["Date,date,open,high,low,close", ",,open,high,low,close",
                                    "time,open,high,low,close,Volume,volume"])
def test_duplicate_time_or_volume_columns(write, header):
    row = "2024-01-01 00:00,2024-01-01 00:00,1.1,1.2,1.0,1.1"
    if header.startswith("time"):
        row = "2024-01-01 00:00,1.1,1.2,1.0,1.1,5,6"
    err = error_of(write(f"{header}\n{row}\n"))
    assert err.rule == "duplicate columns"
    assert err.rows == [1]


@pytest.mark.parametrize("text", ["", "\n\n  \n", ",".join(HEADER) + "\n"])
def test_empty_and_header_only(write, text):
    assert error_of(write(text)).rule == "empty"


def test_not_text(write, tmp_path):
    path = tmp_path / "binary.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xd8")
    assert error_of(path).rule == "encoding"


@pytest.mark.parametrize("stamp", ["0000-01-01 00:00:00", "2300-01-01 00:00:00"])
def test_years_outside_the_representable_range(write, stamp):
    rows = good_rows(3)
    rows[1][0] = stamp
    err = error_of(write(csv_text(rows)))
    assert err.rule == "unparsable timestamps"
    assert err.rows == [3]


def test_negative_spread(write):
    text = ("<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n"
            "2025.06.23\t10:00:00\t1.14820\t1.14951\t1.14790\t1.14905\t2310\t0\t7\n"
            "2025.06.23\t11:00:00\t1.14905\t1.15012\t1.14861\t1.14990\t2045\t0\t-6\n")
    err = error_of(write(text))
    assert err.rule == "negative spread"
    assert err.rows == [3]


def test_message_shape(write):
    path = broken(write, 0, 2, "1.0")
    message = str(error_of(path))
    assert re.fullmatch(re.escape(str(path)) + r": line 2: high below open/close: .+", message)
    assert "\n" not in message


# --- validate_frame on frames (the path Yahoo and user code take) -----------------------------

def frame_of(n: int = 4) -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="Europe/Athens")
    return pd.DataFrame({"Open": 1.0, "High": 1.2, "Low": 0.9, "Close": 1.1}, index=index)


def test_validate_frame_canonicalises():
    out = validate_frame(frame_of(), source="mine")
    assert_canonical(out)
    assert out.index.name == "time"
    assert out.index.dtype == "datetime64[ns, UTC]"
    assert out.index[0] == pd.Timestamp("2023-12-31 22:00", tz="UTC")
    assert out.attrs["volume_missing"] is True


def test_validate_frame_rows_are_numbered_from_one():
    frame = frame_of()
    frame.iloc[2, 1] = 0.5
    with pytest.raises(DataError, match=r"^mine: line 3: high below open/close"):
        validate_frame(frame, source="mine")


def test_validate_frame_rejects_naive_index_and_duplicate_names():
    with pytest.raises(DataError, match="no timezone"):
        validate_frame(frame_of().tz_localize(None))
    frame = frame_of()
    frame["open"] = 1.0
    with pytest.raises(DataError, match="appears twice"):
        validate_frame(frame)


def test_validate_frame_does_not_modify_its_input():
    frame = frame_of()
    before = frame.copy()
    validate_frame(frame)
    pd.testing.assert_frame_equal(frame, before)
    assert np.isfinite(before.to_numpy()).all()
