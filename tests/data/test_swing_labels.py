"""Swing labels: a 3-bar fractal whose move follows through (m × ATR within H bars) before the
fractal's own extreme is broken; the rest none, the bars it cannot know -1."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from candle_helpers import candles

from data import CandleDataset, DatasetSpec, fractal_labels, label_summary
from data.features import atr
from data.labels import SWING_H, fractal_flags, horizon, swing_kind, swing_params

J = 20  # the fractal bar of the hand-made frames
H = SWING_H


def quiet(n: int = 60) -> pd.DataFrame:
    """Bars of range 1 around 10 up to J-1; bar J a low fractal at 9.0; then narrow bars
    (9.1 … 9.5) that neither break 9.0 nor rise far: no swing until a test adds one."""
    high, low, close = np.full(n, 10.5), np.full(n, 9.5), np.full(n, 10.0)
    high[J], low[J], close[J] = 10.2, 9.0, 9.5
    high[J + 1:], low[J + 1:], close[J + 1:] = 9.5, 9.1, 9.3
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC", name="time")
    return pd.DataFrame({"open": close, "high": high, "low": low, "close": close,
                         "volume": 0.0}, index=index)


def target(frame: pd.DataFrame, m: float = 1.0) -> float:
    """Low[J] + m·ATR[J]: the price the buy swing must reach."""
    a = atr(frame["high"], frame["low"], frame["close"], 14).iloc[J]
    return frame["low"].iloc[J] + m * a


def put(frame: pd.DataFrame, bar: int, **values: float) -> pd.DataFrame:
    out = frame.copy()
    for col, v in values.items():
        out.iloc[bar, out.columns.get_loc(col)] = v
    return out


def mirror(frame: pd.DataFrame, c: float = 20.0) -> pd.DataFrame:
    """Prices reflected (p → c − p): lows become highs, a buy swing a sell swing; ATR is unchanged."""
    out = frame.copy()
    out["open"], out["close"] = c - frame["open"], c - frame["close"]
    out["high"], out["low"] = c - frame["low"], c - frame["high"]
    return out


def swapped(labels: np.ndarray) -> np.ndarray:
    return np.where(labels == 1, 2, np.where(labels == 2, 1, labels))


def label_at_j(frame: pd.DataFrame, kind: str = "swing") -> int:
    """The swing label of bar J, checked to be the mirror image of the reflected frame's."""
    labels = fractal_labels(frame, kind).to_numpy()
    np.testing.assert_array_equal(fractal_labels(mirror(frame), kind).to_numpy(), swapped(labels))
    return int(labels[J])


def test_the_quiet_frame_has_one_fractal_and_no_swing():
    frame = quiet()
    is_low, is_high = fractal_flags(frame, "swing")
    assert np.flatnonzero(is_low).tolist() == [J] and not is_high.any()
    assert fractal_labels(frame, "3bar").iloc[J] == 1
    assert label_at_j(frame) == 0
    assert target(frame) == pytest.approx(9.0 + (13 * 1.0 + 1.2) / 14)  # ATR of bars ≤ J


def test_a_rise_of_1_2_atr_is_a_buy():
    assert label_at_j(put(quiet(), J + 5, high=target(quiet(), 1.2))) == 1


def test_reaching_the_target_exactly_counts():
    assert label_at_j(put(quiet(), J + 5, high=target(quiet(), 1.0))) == 1


def test_a_rise_of_0_8_atr_then_a_broken_low_is_none():
    frame = put(quiet(), J + 3, high=target(quiet(), 0.8))
    frame = put(frame, J + 6, low=8.9)
    assert label_at_j(frame) == 0
    # … even when the target is reached later: the low broke first
    assert label_at_j(put(frame, J + 8, high=target(quiet(), 1.2))) == 0


def test_the_low_broken_in_the_bar_that_reaches_the_target_is_none():
    assert label_at_j(put(quiet(), J + 4, high=target(quiet(), 1.2), low=8.9)) == 0
    # a break one bar after the target is too late to matter
    frame = put(quiet(), J + 4, high=target(quiet(), 1.2))
    assert label_at_j(put(frame, J + 5, low=8.9)) == 1


def test_an_equal_low_is_not_a_break():
    frame = put(quiet(), J + 2, low=9.0)   # touches the fractal's low, does not go below
    assert label_at_j(put(frame, J + 5, high=target(quiet(), 1.2))) == 1


def test_the_rise_must_come_within_h_bars():
    assert label_at_j(put(quiet(), J + H, high=target(quiet(), 1.2))) == 1
    assert label_at_j(put(quiet(), J + H + 1, high=target(quiet(), 1.2))) == 0
    # the fractal's own bar does not count
    assert label_at_j(put(quiet(), J, high=target(quiet(), 1.2))) == 0


def test_an_outside_bar_stays_none():
    frame = put(quiet(), J, high=11.0)  # now also a high fractal (10.5 either side)
    frame = put(frame, J + 5, high=target(frame, 1.5))
    is_low, is_high = fractal_flags(frame, "swing")
    assert is_low[J] and is_high[J]
    assert label_at_j(frame) == 0
    assert label_summary(frame, "swing")["both_as_none"] == 1


def test_the_target_in_atrs_and_the_horizon_come_from_the_name():
    frame = put(quiet(), J + 5, high=target(quiet(), 1.5))
    assert label_at_j(frame, "swing") == 1 and label_at_j(frame, "swing:2") == 0
    assert label_at_j(put(quiet(), J + 5, high=target(quiet(), 2.1)), "swing:2") == 1
    late = put(quiet(), J + 30, high=target(quiet(), 1.2))
    assert label_at_j(late, "swing") == 0 and label_at_j(late, "swing:1:30") == 1
    assert label_at_j(late, "swing:1:29") == 0


def test_unknown_bars_the_atr_warm_up_and_the_last_h():
    frame = quiet(80)
    labels = fractal_labels(frame, "swing").to_numpy()
    assert labels.dtype == np.int8 and fractal_labels(frame, "swing").name == "fractal_swing"
    a = atr(frame["high"], frame["low"], frame["close"], 14).to_numpy()
    assert np.isnan(a[:13]).all() and not np.isnan(a[13:]).any()
    assert (labels[:13] == -1).all() and (labels[-H:] == -1).all()
    assert (labels[13:-H] >= 0).all()
    summary = label_summary(frame, "swing")
    assert summary["unknown"] == 13 + H
    assert summary == {"none": 80 - 13 - H, "buy": 0, "sell": 0, "both_as_none": 0,
                       "unknown": 13 + H, "fractal_not_swing": 1}


def test_a_fractal_inside_the_atr_warm_up_is_unknown():
    frame = quiet()
    frame = put(frame, 8, low=9.0)      # a low fractal at bar 8, ATR not yet known there
    frame = put(frame, 12, high=12.0)   # a rise of 3 (far above any ATR)
    assert fractal_flags(frame, "swing")[0][8]
    assert fractal_labels(frame, "swing").iloc[8] == -1
    assert fractal_labels(frame, "3bar").iloc[8] == 1


@pytest.mark.parametrize("n", [0, 1, 2, 13, 14, H, H + 1, H + 14, H + 15])
def test_short_frames(n):
    labels = fractal_labels(candles(n, seed=2) if n else candles(1).iloc[:0], "swing").to_numpy()
    assert len(labels) == n
    known = max(n - H - 13, 0)   # bars 13 … n-H-1
    assert (labels >= 0).sum() == known


# --- the rule, written out bar by bar ---------------------------------------------------------

def slow_swing_labels(frame: pd.DataFrame, m: float = 1.0, h: int = H) -> list[int]:
    """The definition as a plain loop, ATR included (simple mean of 14 true ranges)."""
    hi, lo, cl = (frame[c].tolist() for c in ("high", "low", "close"))
    n = len(hi)
    tr = [hi[0] - lo[0]] + [max(hi[i] - lo[i], abs(hi[i] - cl[i - 1]), abs(lo[i] - cl[i - 1]))
                            for i in range(1, n)]
    out = []
    for j in range(n):
        if j < 13 or j < 1 or j + h > n - 1:
            out.append(-1)
            continue
        a = sum(tr[j - 13:j + 1]) / 14
        low_f = lo[j] < lo[j - 1] and lo[j] < lo[j + 1]
        high_f = hi[j] > hi[j - 1] and hi[j] > hi[j + 1]
        label = 0
        if low_f and not high_f:
            for s in range(j + 1, j + h + 1):
                if lo[s] < lo[j]:
                    break
                if hi[s] >= lo[j] + m * a:
                    label = 1
                    break
        elif high_f and not low_f:
            for s in range(j + 1, j + h + 1):
                if hi[s] > hi[j]:
                    break
                if lo[s] <= hi[j] - m * a:
                    label = 2
                    break
        out.append(label)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
@pytest.mark.parametrize(("kind", "m", "h"), [("swing", 1.0, H), ("swing:2", 2.0, H),
                                              ("swing:0.5:6", 0.5, 6)])
def test_the_vectorised_labels_equal_the_loop(seed, kind, m, h):
    frame = candles(400, seed=seed)
    labels = fractal_labels(frame, kind).to_numpy()
    assert labels.tolist() == slow_swing_labels(frame, m, h)
    assert (labels == 1).sum() > 5 and (labels == 2).sum() > 5   # the test can fail
    np.testing.assert_array_equal(fractal_labels(mirror(frame, 2.0), kind).to_numpy(),
                                  swapped(labels))


def test_swing_labels_are_a_subset_of_the_3bar_fractals(eurusd):
    swing = fractal_labels(eurusd, "swing").to_numpy()
    three = fractal_labels(eurusd, "3bar").to_numpy()
    known = swing >= 0
    assert ((swing[known] == 0) | (swing[known] == three[known])).all()
    summary = label_summary(eurusd, "swing")
    assert sum(summary[k] for k in ("none", "buy", "sell", "unknown")) == len(eurusd)
    assert summary["unknown"] == 13 + H
    fractals = ((three == 1) | (three == 2)) & known
    assert summary["buy"] + summary["sell"] + summary["fractal_not_swing"] == fractals.sum()
    assert summary["fractal_not_swing"] > 100 and summary["buy"] > 300 and summary["sell"] > 300
    assert "fractal_not_swing" not in label_summary(eurusd, "3bar")


# --- the horizon is honest: bar j reads no bar after j + H -------------------------------------

@pytest.mark.parametrize("kind", ["swing", "swing:2", "swing:1:6"])
@pytest.mark.parametrize("j", [13, 40, 150, 299])
def test_labels_up_to_j_ignore_bars_after_j_plus_horizon(eurusd, kind, j):
    frame = eurusd.iloc[2000:2400]
    h = horizon(kind)
    full = fractal_labels(frame, kind).to_numpy()
    cut = fractal_labels(frame.iloc[:j + h + 1], kind).to_numpy()
    np.testing.assert_array_equal(cut[:j + 1], full[:j + 1])
    assert cut[j] >= 0   # bar j is already known with its horizon
    other = candles(len(frame), seed=j)
    other[["open", "high", "low", "close"]] *= frame["close"].iloc[0] / 1.1
    changed = frame.copy()
    changed.iloc[j + h + 1:] = other.iloc[j + h + 1:].to_numpy()
    np.testing.assert_array_equal(fractal_labels(changed, kind).to_numpy()[:j + 1], full[:j + 1])
    extreme = frame.copy()   # far above and below everything: any look past j + H would show
    top, bottom = frame["high"].max() * 2, frame["low"].min() / 2
    extreme.iloc[j + h + 1:, :4] = [(top + bottom) / 2, top, bottom, (top + bottom) / 2]
    np.testing.assert_array_equal(fractal_labels(extreme, kind).to_numpy()[:j + 1], full[:j + 1])


def test_the_horizon_is_tight_bar_j_plus_h_can_change_the_label():
    """Why the purge needs all H bars: the rise in the H-th bar decides bar J."""
    frame = put(quiet(), J + H, high=target(quiet(), 1.2))
    assert fractal_labels(frame, "swing").iloc[J] == 1
    assert fractal_labels(quiet(), "swing").iloc[J] == 0


# --- names -------------------------------------------------------------------------------------

def test_names_and_horizons():
    assert horizon("swing") == H == 24 and horizon("swing:2") == 24
    assert horizon("swing:1.5:48") == 48
    assert swing_params("swing") == (1.0, 24) and swing_params("swing:0.5:6") == (0.5, 6)
    assert swing_kind() == "swing" and swing_kind(2.0) == "swing:2"
    assert swing_kind(1.0, 48) == "swing:1:48" and swing_kind(1.25) == "swing:1.25"


def test_a_swing_dataset_builds_and_purges_its_horizon():
    frame = candles(300, seed=5)
    for kind in ("swing", "swing:2"):
        spec = DatasetSpec(window=10, labels=kind)
        assert DatasetSpec.from_dict(spec.to_dict()) == spec
        ds = CandleDataset(frame, spec)
        np.testing.assert_array_equal(ds.labels, fractal_labels(frame, kind).to_numpy())
        ends = ds.ends("all")
        assert ends.max() == len(frame) - 1 - H and (ds.labels[ends] >= 0).all()
        assert set(np.unique(ds.labels[ends])) == {0, 1, 2}
    assert CandleDataset(frame, DatasetSpec(labels="swing")).fingerprint() != \
        CandleDataset(frame, DatasetSpec(labels="swing:2")).fingerprint()
