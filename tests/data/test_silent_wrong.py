"""Files that once loaded with wrong numbers and no word (issue 16 §2), each written by the test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from candle_helpers import HEADER, csv_text, good_rows

from data import DataError, load
from data.summary import describe_frame

UTC = "UTC"
MT5_HEADER = "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>"


def error_of(path, **kwargs) -> DataError:
    with pytest.raises(DataError) as info:
        load(path, **kwargs)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    return info.value


def mt5_rows(n: int, seed: int = 0) -> tuple[list[list[str]], np.ndarray, np.ndarray]:
    """``n`` MT5-terminal rows on the 0.00001 grid: (cells, ticks of o/h/l/c, spread points)."""
    rng = np.random.default_rng(seed)
    close = 117_000 + np.cumsum(rng.integers(-40, 41, n))
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) + rng.integers(1, 20, n)
    low = np.minimum(open_, close) - rng.integers(1, 20, n)
    spread = rng.integers(10, 40, n)  # two digits on every row
    times = pd.date_range("2025-06-02", periods=n, freq="h")
    ticks = np.column_stack([open_, high, low, close])
    rows = [[t.strftime("%Y.%m.%d"), t.strftime("%H:%M:%S"), *(f"{p / 1e5:.5f}" for p in tk),
             "100", "0", str(s)] for t, tk, s in zip(times, ticks, spread, strict=True)]
    return rows, ticks, spread


def mt5_text(rows: list[list[str]], end: str = "\n") -> str:
    return "\n".join(["\t".join(r) for r in [MT5_HEADER.split("\t"), *rows]]) + end


# --- 1. the point from the precision most prices use -------------------------------------------

def test_one_price_with_an_extra_decimal_does_not_shrink_the_point(write):
    rows, _, spread = mt5_rows(200)
    rows[15][5] += "6"  # a close written with six decimals in a five-digit file (line 17)
    frame = load(write(mt5_text(rows)))
    assert frame.attrs["point"] == pytest.approx(1e-5), frame.attrs.get("point_evidence")
    np.testing.assert_allclose(frame["spread"], spread * 1e-5, rtol=1e-12)
    assert frame["close"].iloc[15] == pytest.approx(float(rows[15][5]), rel=1e-15)
    evidence = frame.attrs["point_evidence"]
    assert "1e-05" in evidence and "line 17" in evidence and "6 decimals" in evidence, evidence
    assert "99.9% of prices" in evidence, evidence
    assert any("line 17" in w for w in frame.attrs["warnings"]), frame.attrs["warnings"]
    info = describe_frame(frame)
    assert info["point_evidence"] == evidence and info["warnings"] == frame.attrs["warnings"]


def test_more_than_a_few_prices_off_the_point_are_refused_naming_them(write):
    rows, _, _ = mt5_rows(30)
    for i in (3, 9):  # 2 of 120 prices (1.7 %): too many to call a slip, too few to be the grid
        rows[i][3] += "5"
    err = error_of(write(mt5_text(rows)))
    assert err.rule == "spread units" and err.rows == [5, 11], str(err)
    assert "point=" in str(err) and "6 decimals" in str(err)
    # saying the point settles it
    assert load(write(mt5_text(rows)), point=1e-5).attrs["point_evidence"].endswith("(given)")


def test_dropped_zeros_do_not_coarsen_the_point(write):
    rows, _, spread = mt5_rows(3)
    for row in rows:  # a short file whose prices mostly end in zeros, written without them
        row[2:6] = [f"{float(v):.17g}" for v in row[2:6]]
    rows[0][2:6] = ["1.1702", "1.1705", "1.17", "1.17016"]
    frame = load(write(mt5_text(rows)))
    assert frame.attrs["point"] == pytest.approx(1e-5), frame.attrs["point_evidence"]
    np.testing.assert_allclose(frame["spread"], spread * 1e-5, rtol=1e-12)
    assert "warnings" not in frame.attrs or not frame.attrs["warnings"]


# --- 2. GMT±N means UTC±N in a trading file ----------------------------------------------------

@pytest.mark.parametrize(("suffix", "hours"), [
    ("GMT+2", 2), (" GMT+2", 2), (" GMT-3", -3), (" GMT+02:00", 2), (" UTC+2", 2),
    (" GMT+0200", 2), (" utc-03:30", -3.5), ("+02:00", 2), ("-0300", -3), ("Z", 0), (" GMT", 0),
    (" UTC", 0),
])
def test_offset_suffixes_keep_their_trading_sign(write, suffix, hours):
    rows = good_rows(3)
    for row in rows:
        row[0] += suffix
    frame = load(write(csv_text(rows)))
    wall = pd.DatetimeIndex([r[0][:19] for r in good_rows(3)])
    expected = (wall - pd.Timedelta(hours=hours)).tz_localize(UTC)
    assert frame.index.equals(expected), (frame.index[0], expected[0])


@pytest.mark.parametrize(("tz", "hours"), [
    ("GMT+2", 2), ("GMT-3", -3), ("GMT+02:00", 2), ("UTC+2", 2), ("utc+05:30", 5.5),
    ("+02:00", 2), ("-03:00", -3), ("UTC", 0), ("GMT", 0),
])
def test_offset_options_keep_their_trading_sign(write, tz, hours):
    rows, _, _ = mt5_rows(3)
    frame = load(write(mt5_text(rows)), tz=tz)
    assert frame.index[0] == pd.Timestamp("2025-06-02 00:00", tz=UTC) - pd.Timedelta(hours=hours)


def test_posix_etc_gmt_names_are_refused_as_a_sign_trap(write):
    rows, _, _ = mt5_rows(3)
    err = error_of(write(mt5_text(rows)), tz="Etc/GMT+2")
    assert err.rule == "unknown timezone" and "UTC-2" in str(err) and "+02:00" in str(err)


# --- 3. a file cut inside its last field -------------------------------------------------------

def test_a_last_field_cut_short_is_refused(write):
    rows, _, _ = mt5_rows(5)
    rows[-1][-1] = rows[-1][-1][:1]  # a two-digit spread cut to its first digit, no line end
    err = error_of(write(mt5_text(rows, end="")))
    assert err.rule == "truncated file" and err.rows == [6], str(err)
    assert "line break" in str(err)
    # the same digit on a finished line is a one-digit spread
    points = int(rows[-1][-1])
    assert load(write(mt5_text(rows)))["spread"].iloc[-1] == pytest.approx(points * 1e-5)


@pytest.mark.parametrize("cut", ["1.", "1.1", "1", ""])
def test_a_cut_price_in_the_last_column_is_refused(write, cut):
    rows = [r[:5] for r in good_rows(4)]
    rows[-1][4] = cut
    err = error_of(write(csv_text(rows, HEADER[:5]).rstrip("\n")))
    assert err.rule in ("truncated file", "NaN/inf") and err.rows == [5], str(err)


def test_a_complete_last_line_without_a_line_end_loads_and_says_so(write):
    rows = good_rows(4)
    frame = load(write(csv_text(rows).rstrip("\n")))
    assert len(frame) == 4 and frame["volume"].iloc[-1] == 103
    assert any("line 5" in w and "line end" in w for w in frame.attrs["warnings"])
    assert not load(write(csv_text(rows))).attrs.get("warnings")


# --- 4. two-digit years: YY.MM.DD against DD.MM.YY ---------------------------------------------

def _dated(stamps: list[str]) -> str:
    rows = good_rows(len(stamps))
    for row, stamp in zip(rows, stamps, strict=True):
        row[0] = stamp
    return csv_text(rows)


def test_year_first_or_day_first_two_digit_dates_are_refused_naming_both(write):
    path = write(_dated(["25.12.12 10:00", "25.12.12 11:00", "25.12.12 12:00"]))
    err = error_of(path)
    assert err.rule == "ambiguous dates" and err.rows == [2], str(err)
    assert "2025-12-12" in str(err) and "2012-12-25" in str(err)
    assert "YY.MM.DD" in str(err) and "DD.MM.YY" in str(err)
    assert load(path, dayfirst=False).index[0] == pd.Timestamp("2025-12-12 10:00", tz=UTC)
    assert load(path, dayfirst=True).index[0] == pd.Timestamp("2012-12-25 10:00", tz=UTC)


def test_the_order_of_the_rows_settles_two_digit_years(write):
    year_first = load(write(_dated(["25.11.30 22:00", "25.11.30 23:00", "25.12.01 00:00"])))
    assert year_first.index[-1] == pd.Timestamp("2025-12-01", tz=UTC)
    day_first = load(write(_dated(["30.01.23 23:00", "31.01.23 00:00", "01.02.23 00:00"])))
    assert day_first.index.tolist() == [pd.Timestamp("2023-01-30 23:00", tz=UTC),
                                        pd.Timestamp("2023-01-31 00:00", tz=UTC),
                                        pd.Timestamp("2023-02-01 00:00", tz=UTC)]


def test_month_first_two_digit_years_against_year_first_cannot_be_settled(write):
    path = write(_dated(["12.01.05 10:00", "12.01.05 11:00"]))
    err = error_of(path, dayfirst=False)
    assert err.rule == "ambiguous dates" and "2005-12-01" in str(err) and "2012-01-05" in str(err)
    assert "four-digit years" in str(err)


# --- 5/6. an enormous header field; a block of blank lines --------------------------------------

def test_a_header_field_over_the_csv_limit_is_one_data_error(write):
    header = ["time", "x" * 140_000, "open", "high", "low", "close"]
    err = error_of(write(csv_text([r[:1] + ["1"] + r[1:5] for r in good_rows(2)], header)))
    assert err.rule == "malformed CSV" and err.rows == [1], str(err)


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_a_block_of_blank_lines_between_rows_is_skipped_and_counted(write, newline):
    rows = good_rows(4)
    lines = [",".join(HEADER), *(",".join(r) for r in rows[:2]), *([""] * 200_000),
             *(",".join(r) for r in rows[2:])]
    frame = load(write(newline.join(lines) + newline))
    truth = load(write(csv_text(rows)))
    pd.testing.assert_frame_equal(frame, truth, check_exact=True)
    assert frame.attrs["skipped_blank_lines"] == 200_000
    assert frame.attrs["skipped_blank_line_numbers"] == list(range(4, 14))


def test_the_point_and_its_evidence_reach_the_backtest_report(write):
    from backtests.analysis.performance import costs_charged
    from backtests.reports.backtest import costs_rows
    from strategy.fractal import Costs

    rows, _, _ = mt5_rows(200)
    rows[15][5] += "6"
    frame = load(write(mt5_text(rows)))
    trades = pd.DataFrame({"spread_cost": [1.0], "commission": [0.0], "slippage_cost": [0.0],
                           "costs": [1.0]})
    period = frame.iloc[20:120]  # a backtest's bars are a slice of the loaded frame
    charged = costs_charged(period, Costs(), trades)
    assert charged["spread_point"] == frame.attrs["point_evidence"]
    shown = {r["setting"]: r["value"] for r in costs_rows(charged)}
    assert shown["spread point"].startswith("point 1e-05: 99.9% of prices"), shown
