"""describe_frame: a short timeframe label and what loading did (volume source, skipped lines)."""

from __future__ import annotations

import pandas as pd
import pytest
from candle_helpers import candles

from data.summary import describe_frame, timeframe, timeframe_label


@pytest.mark.parametrize(("step", "label"), [
    ("1min", "1min"), ("5min", "5min"), ("15min", "15min"), ("1h", "1h"), ("4h", "4h"),
    ("1D", "1d"), ("7D", "1w"), ("90min", "90min"), ("30s", "30s"), ("2D", "2d"),
])
def test_timeframe_label(step, label):
    assert timeframe_label(pd.Timedelta(step)) == label


def test_timeframe_label_of_nothing():
    assert timeframe_label(None) == "?"


def test_describe_frame_gives_a_short_timeframe_and_loading_notes(eurusd):
    info = describe_frame(eurusd)
    assert info["timeframe"] == "1h"
    assert timeframe(eurusd.index) == pd.Timedelta("1h")  # unchanged for other callers
    assert info["volume_from"] == "volume"
    assert info["skipped_blank_lines"] == 0 and info["skipped_blank_line_numbers"] == []
    assert info["ignored_columns"] == []


def test_describe_frame_of_a_frame_built_in_code():
    info = describe_frame(candles(50, freq="4h"))
    assert info["timeframe"] == "4h"
    assert info["volume_from"] is None and info["skipped_blank_lines"] == 0
