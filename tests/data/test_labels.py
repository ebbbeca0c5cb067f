"""Fractal labels on hand-made highs and lows: 0 none, 1 buy (low fractal), 2 sell (high fractal)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data import CLASS_NAMES, fractal_labels, label_summary
from data.labels import fractal_flags, horizon


def bars(highs: list[float], lows: list[float]) -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=len(highs), freq="h", tz="UTC")
    return pd.DataFrame({"open": lows, "high": highs, "low": lows, "close": lows,
                         "volume": 0.0}, index=index)


def test_class_names():
    assert CLASS_NAMES == ("none", "buy", "sell")
    assert (horizon("3bar"), horizon("5bar")) == (1, 2)
    with pytest.raises(ValueError):
        horizon("7bar")


def test_3bar_fractals():
    #          0    1    2    3    4    5    6    7
    highs = [5.0, 6.0, 9.0, 7.0, 8.0, 7.5, 7.6, 7.0]
    lows = [4.0, 3.0, 5.0, 2.0, 6.0, 5.5, 5.0, 6.0]
    labels = fractal_labels(bars(highs, lows), "3bar")
    # 1: low 3 < 4 and < 5 → buy; 2: high 9 → sell; 3: low 2 → buy; 4: high 8 > 7, > 7.5 → sell
    # 5: nothing; 6: high 7.6 > 7.5 and > 7.0 → sell, low 5.0 < 5.5 and < 6.0 → buy → both → 0
    assert labels.tolist() == [-1, 1, 2, 1, 2, 0, 0, -1]
    assert labels.dtype == np.int8
    assert labels.name == "fractal_3bar"
    assert (labels.index == bars(highs, lows).index).all()


def test_3bar_needs_strict_inequalities():
    highs = [5.0, 7.0, 7.0, 5.0, 6.0, 6.0]  # equal neighbour highs: no sell fractal
    lows = [3.0, 2.0, 2.0, 3.0, 4.0, 4.0]  # equal neighbour lows: no buy fractal
    assert fractal_labels(bars(highs, lows)).tolist() == [-1, 0, 0, 0, 0, -1]
    is_low, is_high = fractal_flags(bars(highs, lows))
    assert not is_low.any() and not is_high.any()


def test_5bar_fractals():
    #          0    1    2    3    4    5    6    7    8
    highs = [5.0, 6.0, 7.0, 6.5, 6.0, 6.8, 6.9, 6.1, 6.0]
    lows = [4.0, 3.5, 4.5, 3.0, 3.9, 3.2, 3.6, 3.7, 3.8]
    labels = fractal_labels(bars(highs, lows), "5bar")
    # 2: high 7 above two either side → sell; 3: low 3.0 below 3.5, 4.5, 3.9, 3.2 → buy;
    # 4: nothing; 5: low 3.2 > 3.0 two bars back → none; 6: high 6.9 > 6.5? two back is 6.0,
    # one back 6.8, next 6.1, 6.0 → sell
    assert labels.tolist() == [-1, -1, 2, 1, 0, 0, 2, -1, -1]
    assert labels.name == "fractal_5bar"
    # the same data as 3-bar fractals: bar 5 is a low fractal there (3.2 < 3.9 and < 3.6)
    assert fractal_labels(bars(highs, lows), "3bar").tolist()[5] == 1


def test_5bar_strict_against_the_outer_neighbour():
    highs = [7.0, 6.0, 7.0, 6.0, 5.0]  # equal to the bar two before: not a fractal
    lows = [1.0] * 5
    assert fractal_labels(bars(highs, lows), "5bar").tolist() == [-1, -1, 0, -1, -1]


def test_outside_bar_is_none_and_counted():
    highs = [5.0, 9.0, 5.0, 4.8, 5.5, 9.5, 5.0]
    lows = [4.0, 1.0, 4.0, 3.0, 3.5, 0.5, 4.0]
    frame = bars(highs, lows)
    labels = fractal_labels(frame)
    assert labels.tolist() == [-1, 0, 0, 1, 0, 0, -1]  # bars 1 and 5 point both ways
    is_low, is_high = fractal_flags(frame)
    assert (is_low & is_high).tolist() == [False, True, False, False, False, True, False]
    summary = label_summary(frame)
    assert summary == {"none": 4, "buy": 1, "sell": 0, "both_as_none": 2, "unknown": 2}


def test_first_and_last_bars_are_unknown():
    frame = bars([1.0, 2.0, 1.0, 3.0, 1.0], [0.5, 0.1, 0.5, 0.2, 0.6])
    assert fractal_labels(frame, "3bar").tolist()[0] == -1
    assert fractal_labels(frame, "3bar").tolist()[-1] == -1
    five = fractal_labels(frame, "5bar").tolist()
    assert five[:2] == [-1, -1] and five[-2:] == [-1, -1]


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4])
def test_too_short_frames_are_all_unknown_for_5bar(n):
    frame = bars([1.0 + (i % 2) for i in range(n)], [0.5] * n)
    labels = fractal_labels(frame, "5bar")
    assert len(labels) == n
    assert (labels == -1).all()


def test_summary_adds_up_on_the_sample(eurusd):
    summary = label_summary(eurusd)
    assert sum(summary[k] for k in ("none", "buy", "sell", "unknown")) == len(eurusd)
    assert summary["unknown"] == 2
    assert summary["buy"] > 500 and summary["sell"] > 500 and summary["both_as_none"] > 0
    labels = fractal_labels(eurusd).to_numpy()
    high, low = eurusd["high"].to_numpy(), eurusd["low"].to_numpy()
    # a loop-by-loop check of the whole sample
    for j in range(1, len(eurusd) - 1):
        up = high[j] > high[j - 1] and high[j] > high[j + 1]
        down = low[j] < low[j - 1] and low[j] < low[j + 1]
        want = 0 if up == down else (2 if up else 1)
        assert labels[j] == want, j
