"""Sources: the embedded samples and every CSV dialect load into the canonical frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from candle_helpers import FIXTURES, HEADER, assert_canonical, csv_text, good_rows

from data import DataError, load
from data.sources import detect_format

UTC = "UTC"


# --- embedded samples -------------------------------------------------------------------------

def test_eurusd_sample_is_5000_h1_bars(eurusd):
    assert_canonical(eurusd)
    assert len(eurusd) == 5000
    assert list(eurusd.columns) == ["open", "high", "low", "close", "volume"]
    assert eurusd.index[0] == pd.Timestamp("2017-04-19 09:00", tz=UTC)
    assert eurusd.index[-1] == pd.Timestamp("2018-02-07 15:00", tz=UTC)
    assert pd.Series(np.diff(eurusd.index.asi8)).mode()[0] == 3600 * 10**9
    assert eurusd.iloc[0].tolist() == [1.0716, 1.0722, 1.07083, 1.07219, 1413.0]
    assert eurusd.attrs["source"] == "sample:EURUSD_H1"


def test_goog_sample_is_daily():
    goog = load("sample:GOOG_D1")
    assert_canonical(goog)
    assert len(goog) > 2000
    assert goog.index[0] == pd.Timestamp("2004-08-19", tz=UTC)
    assert (goog.index.hour == 0).all()
    assert goog["volume"].iloc[0] == 22351900.0


def test_unknown_sample_is_a_data_error():
    with pytest.raises(DataError, match="unknown sample"):
        load("sample:NOPE")


def test_a_saved_canonical_frame_loads_back_unchanged(eurusd, tmp_path):
    path = tmp_path / "saved.csv"
    eurusd.iloc[:300].to_csv(path)  # pandas writes the index as the first column, named "time"
    back = load(path)
    assert_canonical(back)
    pd.testing.assert_frame_equal(back, eurusd.iloc[:300], check_freq=False)


# --- generic CSV ------------------------------------------------------------------------------

@pytest.mark.parametrize("time_name", ["time", "Date", "Datetime", "TIMESTAMP", "DateTime", ""])
@pytest.mark.parametrize("case", [str.lower, str.upper, str.title])
def test_generic_any_case_and_time_column_name(write, time_name, case):
    header = [time_name] + [case(c) for c in HEADER[1:]]
    frame = load(write(csv_text(good_rows(6), header)))
    assert_canonical(frame)
    assert len(frame) == 6
    assert frame.index[0] == pd.Timestamp("2024-01-04 18:00", tz=UTC)
    assert frame["open"].iloc[0] == 1.1
    assert frame["volume"].tolist() == [100.0, 101.0, 102.0, 103.0, 104.0, 105.0]
    assert "volume_missing" not in frame.attrs


@pytest.mark.parametrize("sep", [";", "\t"])
def test_generic_semicolon_and_tab_separated(write, sep):
    rows = good_rows(5)
    frame = load(write(csv_text(rows, sep=sep)))
    assert_canonical(frame)
    assert frame["close"].tolist() == [float(r[4]) for r in rows]


def test_generic_without_volume_gets_zeros_and_says_so(write):
    rows = [r[:5] for r in good_rows(5)]
    frame = load(write(csv_text(rows, ["Date", "Open", "High", "Low", "Close"])))
    assert_canonical(frame)
    assert (frame["volume"] == 0.0).all()
    assert frame.attrs["volume_missing"] is True


def test_generic_offsets_are_converted_to_utc(write):
    rows = good_rows(3)
    for r, stamp in zip(rows, ["2024-01-04T20:00:00+02:00", "2024-01-04T19:00:00Z",
                               "2024-01-04T15:00:00-05:00"], strict=True):
        r[0] = stamp
    frame = load(write(csv_text(rows)))
    assert frame.index.tolist() == [pd.Timestamp("2024-01-04 18:00", tz=UTC),
                                    pd.Timestamp("2024-01-04 19:00", tz=UTC),
                                    pd.Timestamp("2024-01-04 20:00", tz=UTC)]


def test_blank_lines_and_crlf_are_fine(write):
    rows = good_rows(4)
    text = "\r\n".join([",".join(HEADER), ",".join(rows[0]), "", ",".join(rows[1]), "  ",
                        ",".join(rows[2]), ",".join(rows[3])]) + "\r\n"
    assert len(load(write(text))) == 4


def test_utf16_with_bom_is_read(write):
    frame = load(write(csv_text(good_rows(4)), encoding="utf-16"))
    assert len(frame) == 4


# --- MetaTrader 5 terminal export -------------------------------------------------------------

MT5_HEADER = "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>"
MT5_ROWS = [
    "2025.06.23\t10:00:00\t1.14820\t1.14951\t1.14790\t1.14905\t2310\t0\t7",
    "2025.06.23\t11:00:00\t1.14905\t1.15012\t1.14861\t1.14990\t2045\t0\t6",
    "2025.06.23\t12:00:00\t1.14991\t1.15020\t1.14902\t1.14933\t1988\t0\t12",
]


def test_mt5_terminal_export(write):
    path = write("\r\n".join([MT5_HEADER, *MT5_ROWS]) + "\r\n", encoding="utf-16")
    assert detect_format(path.read_text(encoding="utf-16")) == "mt5_terminal"
    frame = load(path)
    assert_canonical(frame)
    assert list(frame.columns) == ["open", "high", "low", "close", "volume", "spread"]
    assert frame.index[0] == pd.Timestamp("2025-06-23 10:00", tz=UTC)
    assert frame.index[2] == pd.Timestamp("2025-06-23 12:00", tz=UTC)
    assert frame["volume"].tolist() == [2310.0, 2045.0, 1988.0]  # TICKVOL, not VOL
    # spread in points → price units with the point inferred from 5 decimals
    np.testing.assert_allclose(frame["spread"], [0.00007, 0.00006, 0.00012], rtol=1e-12)
    assert frame.attrs["point"] == pytest.approx(1e-5)


def test_mt5_spread_point_for_three_digit_prices_and_override(write):
    rows = ["2025.06.23\t10:00:00\t144.820\t144.951\t144.790\t144.905\t2310\t0\t15",
            "2025.06.23\t11:00:00\t144.905\t145.012\t144.861\t144.990\t2045\t0\t20"]
    path = write("\n".join([MT5_HEADER, *rows]) + "\n")
    np.testing.assert_allclose(load(path)["spread"], [0.015, 0.020], rtol=1e-12)
    np.testing.assert_allclose(load(path, point=0.01)["spread"], [0.15, 0.20], rtol=1e-12)


def test_mt5_daily_export_without_time_column(write):
    text = "<DATE>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\n" \
           "2025.06.20\t1.1\t1.2\t1.0\t1.15\t10\n2025.06.23\t1.15\t1.2\t1.1\t1.12\t12\n"
    frame = load(write(text))
    assert frame.index.tolist() == [pd.Timestamp("2025-06-20", tz=UTC),
                                    pd.Timestamp("2025-06-23", tz=UTC)]
    assert "spread" not in frame


def test_committed_mt5_fixture():
    path = FIXTURES / "EURUSD_H1_mt5_export.csv"
    frame = load(path)
    assert_canonical(frame)
    assert len(frame) == 60
    assert frame.index[0] == pd.Timestamp("2017-04-21 10:00", tz=UTC)
    assert frame.iloc[0][["open", "high", "low", "close", "volume"]].tolist() == [
        1.07054, 1.0707, 1.0688, 1.0701, 1392.0]
    assert frame["spread"].iloc[0] == pytest.approx(15e-5)
    assert frame["spread"].between(4.9e-5, 15.1e-5).all()
    gaps = np.diff(frame.index.asi8) // 3600 // 10**9
    assert gaps.max() > 24  # the weekend is in it, and a weekend gap is no error


def test_mt5_fixture_matches_the_sample(eurusd):
    frame = load(FIXTURES / "EURUSD_H1_mt5_export.csv")
    same = eurusd.loc[frame.index, ["open", "high", "low", "close", "volume"]]
    pd.testing.assert_frame_equal(frame[same.columns], same, check_freq=False)


# --- MetaTrader 5 Python API dump -------------------------------------------------------------

API_HEADER = "time,open,high,low,close,tick_volume,spread,real_volume"


def test_mt5_api_dump_with_epoch_seconds(write):
    t0 = int(pd.Timestamp("2025-06-23 10:00", tz=UTC).timestamp())
    text = "\n".join([API_HEADER, f"{t0},1.1482,1.14951,1.1479,1.14905,2310,7,0",
                      f"{t0 + 3600},1.14905,1.15012,1.14861,1.1499,2045,6,0"]) + "\n"
    frame = load(write(text))
    assert_canonical(frame)
    assert frame.index.tolist() == [pd.Timestamp("2025-06-23 10:00", tz=UTC),
                                    pd.Timestamp("2025-06-23 11:00", tz=UTC)]
    assert frame["volume"].tolist() == [2310.0, 2045.0]
    np.testing.assert_allclose(frame["spread"], [7e-5, 6e-5], rtol=1e-12)


def test_mt5_api_dump_with_datetime_strings(write):
    text = "\n".join([API_HEADER, "2025-06-23 10:00:00,1.1482,1.14951,1.1479,1.14905,2310,7,0",
                      "2025-06-23 11:00:00,1.14905,1.15012,1.14861,1.1499,2045,6,0"]) + "\n"
    frame = load(write(text), point=1e-4)
    assert frame.index[1] == pd.Timestamp("2025-06-23 11:00", tz=UTC)
    np.testing.assert_allclose(frame["spread"], [7e-4, 6e-4], rtol=1e-12)


def test_mt5_api_dump_as_pandas_writes_it(write):
    """``pd.DataFrame(mt5.copy_rates_range(...)).to_csv()`` keeps an unnamed index column."""
    text = "\n".join(["," + API_HEADER, "0,1750672800,1.1482,1.14951,1.1479,1.14905,2310,7,0",
                      "1,1750676400,1.14905,1.15012,1.14861,1.1499,2045,6,0"]) + "\n"
    frame = load(write(text))
    assert frame.index[0] == pd.Timestamp("2025-06-23 10:00", tz=UTC)


def test_mt5_api_point_ignores_float_noise_and_dropped_zeros(write):
    text = "\n".join([API_HEADER, "1750672800,1.1482,1.14951,1.1479,1.14905,2310,7,0",
                      "1750676400,1.14905,1.1501200000000001,1.14861,1.1499,2045,6,0",
                      "1750680000,1.1499,1.15,1.14902,1.14933,1988,12,0"]) + "\n"
    frame = load(write(text))
    assert frame.attrs["point"] == pytest.approx(1e-5)
    np.testing.assert_allclose(frame["spread"], [7e-5, 6e-5, 12e-5], rtol=1e-12)


def test_mt5_api_epoch_counts_the_server_clock(write):
    """MT5 stores bar times as the server's wall clock written as epoch seconds."""
    t0 = int(pd.Timestamp("2025-06-23 10:00", tz=UTC).timestamp())
    text = f"{API_HEADER}\n{t0},1.1482,1.14951,1.1479,1.14905,2310,7,0\n"
    assert load(write(text), tz="Europe/Athens").index[0] == pd.Timestamp("2025-06-23 07:00",
                                                                          tz=UTC)


def test_generic_epoch_seconds_and_milliseconds_are_utc(write):
    rows = good_rows(2)
    rows[0][0], rows[1][0] = "1750672800", "1750676400"
    frame = load(write(csv_text(rows)), tz="Europe/Athens")  # a Unix epoch has no zone to apply
    assert frame.index[0] == pd.Timestamp("2025-06-23 10:00", tz=UTC)
    rows[0][0], rows[1][0] = "1750672800000", "1750676400000"
    assert load(write(csv_text(rows))).index[1] == pd.Timestamp("2025-06-23 11:00", tz=UTC)


def test_yyyymmdd_dates(write):
    rows = [r[:] for r in good_rows(2)]
    rows[0][0], rows[1][0] = "20240105", "20240108"
    frame = load(write(csv_text(rows)))
    assert frame.index.tolist() == [pd.Timestamp("2024-01-05", tz=UTC),
                                    pd.Timestamp("2024-01-08", tz=UTC)]


@pytest.mark.parametrize("stamps", [("2020", "2021"), ("1", "2"), ("20241305", "20240106")])
def test_numbers_that_are_not_times_are_refused(write, stamps):
    rows = good_rows(2)
    rows[0][0], rows[1][0] = stamps
    with pytest.raises(DataError, match=r"lines? 2(, 3)?: unparsable timestamps"):
        load(write(csv_text(rows)))


# --- CSVs saved from yfinance -----------------------------------------------------------------

YF_ROWS = [
    "2025-06-23 10:00:00+00:00,1.1490500211715698,1.1490500211715698,1.1495100259780884,"
    "1.1479099988937378,1.1482000350952148,0",
    "2025-06-23 11:00:00+00:00,1.1499000787734985,1.1499000787734985,1.1501200199127197,"
    "1.1486099958419800,1.1490500211715698,0",
]


def test_yfinance_multi_row_header(write):
    text = "\n".join(["Price,Adj Close,Close,High,Low,Open,Volume",
                      "Ticker,EURUSD=X,EURUSD=X,EURUSD=X,EURUSD=X,EURUSD=X,EURUSD=X",
                      "Datetime,,,,,,", *YF_ROWS]) + "\n"
    assert detect_format(text) == "yfinance_multi"
    frame = load(write(text))
    assert_canonical(frame)
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert frame.index.tolist() == [pd.Timestamp("2025-06-23 10:00", tz=UTC),
                                    pd.Timestamp("2025-06-23 11:00", tz=UTC)]
    assert frame["open"].iloc[0] == 1.1482000350952148
    assert frame["high"].iloc[1] == 1.1501200199127197


def test_yfinance_multi_row_header_without_datetime_line(write):
    text = "\n".join(["Price,Close,High,Low,Open,Volume",
                      "Ticker,GOOG,GOOG,GOOG,GOOG,GOOG",
                      "2025-06-23,166.0,167.5,164.1,165.0,1200",
                      "2025-06-24,168.0,168.9,165.5,166.0,1300"]) + "\n"
    frame = load(write(text))
    assert frame["close"].tolist() == [166.0, 168.0]
    assert frame.index[1] == pd.Timestamp("2025-06-24", tz=UTC)


def test_yfinance_old_single_row_header(write):
    text = "\n".join(["Datetime,Open,High,Low,Close,Adj Close,Volume",
                      "2025-06-23 10:00:00+00:00,1.1482,1.14951,1.1479,1.14905,1.14905,0",
                      "2025-06-23 11:00:00+00:00,1.14905,1.15012,1.14861,1.1499,1.1499,0"]) + "\n"
    frame = load(write(text))
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert frame["close"].tolist() == [1.14905, 1.1499]


# --- timezones --------------------------------------------------------------------------------

def test_naive_stamps_in_a_named_zone_become_utc(write):
    rows = good_rows(2)
    rows[0][0], rows[1][0] = "2024-01-15 12:00:00", "2024-07-15 12:00:00"  # EET, then EEST
    frame = load(write(csv_text(rows)), tz="Europe/Athens")
    assert frame.index.tolist() == [pd.Timestamp("2024-01-15 10:00", tz=UTC),
                                    pd.Timestamp("2024-07-15 09:00", tz=UTC)]


def test_mt5_export_in_broker_time(write):
    frame = load(write("\n".join([MT5_HEADER, *MT5_ROWS]) + "\n"), tz="Europe/Athens")
    assert frame.index[0] == pd.Timestamp("2025-06-23 07:00", tz=UTC)


def test_tz_does_not_touch_stamps_that_carry_an_offset(write):
    rows = good_rows(1)
    rows[0][0] = "2024-01-15T12:00:00+00:00"
    assert load(write(csv_text(rows)), tz="Europe/Athens").index[0] == pd.Timestamp(
        "2024-01-15 12:00", tz=UTC)


def test_unknown_timezone_is_a_data_error(write):
    with pytest.raises(DataError, match="unknown timezone.*Mars/Olympus"):
        load(write(csv_text(good_rows(2))), tz="Mars/Olympus")


def test_hour_skipped_by_daylight_saving_is_an_error_naming_the_line(write):
    rows = good_rows(3, start="2024-03-31 02:00")  # Athens jumps 03:00 → 04:00 that night
    with pytest.raises(DataError, match=r"line 3: unknown timezone: .*does not exist"):
        load(write(csv_text(rows)), tz="Europe/Athens")


def test_hour_repeated_by_daylight_saving_is_resolved_by_order(write):
    rows = good_rows(4, start="2024-10-27 02:00")
    rows[2][0] = rows[1][0]  # 03:00 twice: first EEST, then EET
    rows[3][0] = "2024-10-27 04:00:00"
    frame = load(write(csv_text(rows)), tz="Europe/Athens")
    assert frame.index.tolist() == [pd.Timestamp(f"2024-10-26 {h}:00", tz=UTC)
                                    for h in (23,)] + [
        pd.Timestamp(f"2024-10-27 0{h}:00", tz=UTC) for h in (0, 1, 2)]


# --- files that are not there -----------------------------------------------------------------

def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="directory"):
        load(tmp_path)
