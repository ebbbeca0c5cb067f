"""Files that once loaded silently wrong, were refused, or raised a traceback (fuzzer and users)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from candle_helpers import HEADER, assert_canonical, csv_text, good_rows

from data import DataError, load
from data.sources import detect_format
from data.summary import describe_frame

UTC = "UTC"
MT5_HEADER = "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>"
MT5_ROWS = [
    "2017.04.21\t10:00:00\t1.07254\t1.07270\t1.07225\t1.07250\t1392\t0\t15",
    "2017.04.21\t11:00:00\t1.07250\t1.07300\t1.07225\t1.07260\t1296\t0\t11",
    "2017.04.21\t12:00:00\t1.07260\t1.07310\t1.07240\t1.07300\t1429\t0\t12",
]
API_NAMES = ["time", "open", "high", "low", "close", "tick_volume", "spread", "real_volume"]
API_ROWS = [["2025-06-23 10:00:00", "1.14820", "1.14951", "1.14790", "1.14905", "2310", "75", "0"],
            ["2025-06-23 11:00:00", "1.14905", "1.15012", "1.14861", "1.14990", "2045", "60", "0"]]


def error_of(path, **kwargs) -> DataError:
    with pytest.raises(DataError) as info:
        load(path, **kwargs)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    return info.value


# --- 1. MT5 API dialect in any spelling; a spread absurd for the price ------------------------

def _api_text(sep=",", quote=False, bom="", drop=None):
    names = [n for n in API_NAMES if n != drop]
    keep = [i for i, n in enumerate(API_NAMES) if n != drop]
    header = sep.join(f'"{n}"' if quote else n for n in names)
    rows = [sep.join(r[i] for i in keep) for r in API_ROWS]
    return bom + "\r\n".join([header, *rows]) + "\r\n"


@pytest.mark.parametrize("variant", [
    {"quote": True}, {"sep": ";"}, {"sep": "\t"}, {"bom": "\ufeff\ufeff"},
    {"drop": "tick_volume"}, {"sep": ";", "quote": True, "bom": "\ufeff"},
])
def test_mt5_api_dialect_is_recognised_in_any_spelling(write, variant):
    path = write(_api_text(**variant))
    assert detect_format(path.read_text(encoding="utf-8")) == "mt5_api"
    frame = load(path)
    assert_canonical(frame)
    np.testing.assert_allclose(frame["spread"], [75e-5, 60e-5], rtol=1e-12)
    assert frame.attrs["point"] == pytest.approx(1e-5)
    dropped = variant.get("drop") == "tick_volume"
    assert frame.attrs["volume_from"] == ("real_volume" if dropped else "tick_volume")


def test_spread_absurd_for_the_price_is_refused_with_units_hint(write):
    rows = [r + ["75"] for r in good_rows(4)]  # spread in points, in a generic file
    err = error_of(write(csv_text(rows, [*HEADER, "spread"])))
    assert err.rule == "spread units" and err.rows == [2, 3, 4, 5]
    assert "points" in str(err) and "point=" in str(err) and "data.point" in str(err)
    # saying the spread is in points converts it
    frame = load(write(csv_text(rows, [*HEADER, "spread"])), point=1e-5)
    np.testing.assert_allclose(frame["spread"], 75e-5, rtol=1e-12)


# --- 2. the point from the price grid, float noise ignored ------------------------------------

def test_point_inference_ignores_float_noise_on_every_price(write):
    text = "\n".join(["time,open,high,low,close,tick_volume,spread,real_volume",
                      "1750672800,1.1456500000000001,1.1460500000000001,1.1452500000000001,"
                      "1.1458500000000001,2310,7,0",
                      "1750676400,1.1458500000000001,1.1466500000000001,1.1455500000000001,"
                      "1.1461500000000001,2045,8,0"]) + "\n"
    frame = load(write(text))
    assert frame.attrs["point"] == pytest.approx(1e-5)
    np.testing.assert_allclose(frame["spread"], [7e-5, 8e-5], rtol=1e-12)


def test_point_is_refused_when_prices_are_off_any_grid(write):
    text = ("time,open,high,low,close,tick_volume,spread,real_volume\n"
            "1750672800,1.1490500211715698,1.1495100259780884,1.1479099988937378,"
            "1.1482000350952148,2310,7,0\n")
    err = error_of(write(text))
    assert err.rule == "spread units" and "point=" in str(err)
    assert load(write(text), point=1e-5)["spread"].iloc[0] == pytest.approx(7e-5)


# --- 3. day/month order from the whole column -------------------------------------------------

def _dated(stamps: list[str]) -> str:
    rows = good_rows(len(stamps))
    for row, stamp in zip(rows, stamps, strict=True):
        row[0] = stamp
    return csv_text(rows)


def test_day_first_dates_are_decided_from_the_whole_column(write):
    frame = load(write(_dated(["02.01.2023 00:00:00", "03.01.2023 00:00:00",
                               "13.01.2023 00:00:00"])))
    assert frame.index[0] == pd.Timestamp("2023-01-02", tz=UTC)
    frame = load(write(_dated(["01/02/2023 10:00", "01/13/2023 10:00"])))
    assert frame.index.tolist() == [pd.Timestamp("2023-01-02 10:00", tz=UTC),
                                    pd.Timestamp("2023-01-13 10:00", tz=UTC)]


def test_ambiguous_dates_are_refused_unless_the_caller_says(write):
    path = write(_dated(["02.01.2023 00:00:00", "03.01.2023 00:00:00"]))
    err = error_of(path)
    assert err.rule == "ambiguous dates" and err.rows == [2]
    assert "dayfirst=True" in str(err) and "data.dayfirst" in str(err)
    assert load(path, dayfirst=True).index[0] == pd.Timestamp("2023-01-02", tz=UTC)
    assert load(path, dayfirst=False).index[0] == pd.Timestamp("2023-02-01", tz=UTC)
    # where day == month everywhere the order does not matter
    assert len(load(write(_dated(["01.01.2023 00:00", "01.01.2023 01:00"])))) == 2


def test_both_date_orders_in_one_column_or_against_the_caller_are_refused(write):
    err = error_of(write(_dated(["13.01.2023 00:00", "01.14.2023 00:00"])))
    assert err.rule == "ambiguous dates" and err.rows == [2, 3]
    err = error_of(write(_dated(["02.01.2023 00:00", "13.01.2023 00:00"])), dayfirst=False)
    assert err.rule == "ambiguous dates" and err.rows == [3]


# --- 4. field counts --------------------------------------------------------------------------

@pytest.mark.parametrize(("how", "lines"), [("one_short", [4]), ("all_short", [2, 3, 4, 5]),
                                            ("extra_name", [2, 3, 4, 5])])
def test_rows_whose_field_count_differs_from_the_header_never_load(write, how, lines):
    rows, header = good_rows(4), list(HEADER)
    if how == "one_short":
        del rows[2][5]
    elif how == "all_short":
        for row in rows:
            del row[1]
    else:
        header.insert(1, "note")
    err = error_of(write(csv_text(rows, header)))
    assert err.rule == "malformed CSV" and err.rows == lines


# --- 5. control bytes, unknown MT5 columns, encodings -----------------------------------------

def test_control_byte_in_a_number_is_an_error_naming_the_line(write):
    rows = [MT5_ROWS[0], MT5_ROWS[1].replace("\t1.07225", "\t\x1c.07225")]
    err = error_of(write("\n".join([MT5_HEADER, *rows]) + "\n"))
    assert err.rule == "control character" and err.rows == [3] and "U+001C" in str(err)


def test_misspelt_mt5_column_is_an_error(write):
    err = error_of(write("\n".join([MT5_HEADER.replace("SPREAD", "SPRAED"), *MT5_ROWS]) + "\n"))
    assert err.rule == "unknown columns" and err.rows == [1] and "<SPRAED>" in str(err)


def test_cp1252_text_is_read_and_undecodable_bytes_are_an_encoding_error(write, tmp_path):
    rows = [r + ["5 €"] for r in good_rows(3)]
    frame = load(write(csv_text(rows, [*HEADER, "note"]), encoding="cp1252"))
    assert len(frame) == 3 and frame.attrs["encoding"] == "cp1252"
    assert frame.attrs["ignored_columns"] == ["note"]
    path = tmp_path / "odd.csv"
    path.write_bytes(csv_text(good_rows(3)).encode() + b"x\x81\n")
    err = error_of(path)
    assert err.rule == "encoding" and "UTF-8" in str(err) and err.rows == [5]


# --- 6/7/8. blank lines counted, trailing ones not data; where volume came from ----------------

def test_separator_only_lines_are_skipped_and_counted(write):
    text = "\r\n".join([MT5_HEADER, MT5_ROWS[0], "\t" * 8, MT5_ROWS[1], " \t ", "",
                        MT5_ROWS[2]]) + "\r\n"
    frame = load(write(text))
    assert len(frame) == 3
    assert frame.attrs["skipped_blank_lines"] == 3
    assert frame.attrs["skipped_blank_line_numbers"] == [3, 5, 6]
    info = describe_frame(frame)
    assert info["skipped_blank_lines"] == 3 and info["skipped_blank_line_numbers"] == [3, 5, 6]


@pytest.mark.parametrize(("header", "volume_from"), [
    (MT5_HEADER, "tick_volume"),
    (MT5_HEADER.replace("<TICKVOL>\t", ""), "real_volume"),
    (MT5_HEADER.replace("<TICKVOL>\t<VOL>\t", ""), None),
])
def test_the_column_volume_came_from_is_recorded(write, header, volume_from):
    drop = 6 if "TICKVOL" not in header else None
    rows = MT5_ROWS
    if drop is not None:
        cut = 2 if "<VOL>" not in header else 1
        rows = ["\t".join(r.split("\t")[:6] + r.split("\t")[6 + cut:]) for r in MT5_ROWS]
    frame = load(write("\n".join([header, *rows]) + "\n"))
    assert frame.attrs["volume_from"] == volume_from
    assert describe_frame(frame)["volume_from"] == volume_from
    if volume_from == "real_volume":
        assert (frame["volume"] == 0).all()


def test_trailing_blank_lines_are_not_data(write):
    text = "\r\n".join([MT5_HEADER, *MT5_ROWS]) + "\r\n\r\n\r\n  \r\n\t\t\r\n"
    frame = load(write(text, encoding="utf-16"))
    assert len(frame) == 3 and frame.attrs["skipped_blank_lines"] == 0
    assert len(load(write(csv_text(good_rows(3)) + "\n \n\n"))) == 3


# --- 9/10. paths that cannot be opened; files too wide or too empty fail fast -----------------

def test_a_path_that_cannot_be_opened_is_one_data_error(tmp_path, write):
    long = tmp_path / ("x" * 300 + ".csv")
    assert error_of(long).rule == "missing file"
    under_a_file = write("x") / "candles.csv"
    assert error_of(under_a_file).rule == "missing file"


def test_a_header_of_200000_columns_fails_at_once(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(200_000)) + "\n" + ",".join("1" * 200_000))
    err = error_of(path)   # refused from the header, before the body is parsed
    assert err.rule == "too many columns" and err.rows == [1]


@pytest.mark.parametrize("content", [b"\n" * 50_000_000,
                                     ",".join(HEADER).encode() + b"\n" + b",,,,,\r\n" * 5_000_000])
def test_megabytes_of_blank_lines_are_empty_at_once(tmp_path, content):
    path = tmp_path / "blank.csv"
    path.write_bytes(content)
    assert error_of(path).rule == "empty"   # speed and memory: benchmarks/load_odd_files.py


# --- options: passed where they apply, refused where they do not ------------------------------

def test_options_that_do_not_apply_are_refused_not_ignored(write, tmp_path):
    for source, option in [("sample:EURUSD_H1", {"point": 1e-5}),
                           ("sample:EURUSD_H1", {"dayfirst": True}),
                           ("sample:EURUSD_H1", {"tz": "Europe/Athens"}),
                           ("yahoo:EURUSD=X:1h", {"point": 1e-5}),
                           (write(csv_text(good_rows(3))), {"cache_dir": tmp_path}),
                           (write(csv_text(good_rows(3))), {"point": 1e-5}),
                           (write(csv_text(good_rows(3))), {"point": -1.0})]:
        with pytest.raises(DataError, match="bad option") as info:
            load(source, **option)
        assert next(iter(option)) in str(info.value)
