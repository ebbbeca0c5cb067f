"""The context feature parts (time, spread, atr, shape, volz, mtf): causal at every bar, including at the
higher-timeframe boundaries and across a weekend gap; composed with + in one canonical order."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from candle_helpers import candles

from data import DataError, DatasetSpec
from data.context import shape_part as context_shape
from data.features import WARMUP, canonical_feature_set, compute_features, feature_names
from data.incremental import FeatureState

PARTS = ["time", "spread", "atr", "shape", "volz", "mtf:1h:4h:1d"]   # mtf = mtf:4h:1d, a subset
ALL = "scaled+time+spread+atr+shape+volz+mtf"


def fx_week(n: int = 330, seed: int = 7, start: str = "2024-01-03 13:00") -> pd.DataFrame:
    """H1 bars as an FX broker has them: from mid-day (a partial first day and H4 bucket), no bars
    from Friday 21:00 to Sunday 22:00, one missing hour, and a spread column."""
    frame = candles(n, seed=seed, start=start)
    t = frame.index
    closed = ((t.day_of_week == 4) & (t.hour >= 21)) | (t.day_of_week == 5) | (
        (t.day_of_week == 6) & (t.hour < 22))
    frame = frame[~closed & (t != pd.Timestamp("2024-01-10 06:00", tz="UTC"))].copy()
    frame["spread"] = np.random.default_rng(seed).uniform(0.00005, 0.0003, len(frame))
    return frame


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return fx_week()


def boundaries(frame: pd.DataFrame) -> list[int]:
    """Positions at the edges: the end of the warm-up, last/first bars of H4 buckets and days,
    Friday's last bar, the first bar after the weekend, the bar after the missing hour."""
    t = frame.index
    pos = lambda stamp: int(t.get_loc(pd.Timestamp(stamp, tz="UTC")))  # noqa: E731
    return [0, WARMUP - 1, WARMUP, pos("2024-01-04 23:00"), pos("2024-01-05 00:00"),
            pos("2024-01-05 03:00"), pos("2024-01-05 04:00"), pos("2024-01-05 20:00"),
            pos("2024-01-07 22:00"), pos("2024-01-07 23:00"), pos("2024-01-10 07:00"),
            len(t) - 2]


OTHER = fx_week(seed=99).to_numpy() * [1.03, 1.03, 1.03, 1.03, 2, 3]


def replace_after(frame: pd.DataFrame, t: int) -> pd.DataFrame:
    """The same frame with every bar after position ``t`` replaced by different bars."""
    out = frame.copy()
    out.iloc[t + 1:] = OTHER[t + 1:len(frame)]
    return out


@pytest.mark.parametrize("feature_set", PARTS)
def test_context_parts_ignore_later_bars(frame, feature_set):
    full = compute_features(frame, feature_set)
    assert np.isfinite(full.iloc[60:].to_numpy()).all()    # complete after the first day
    for t in boundaries(frame):
        cut = compute_features(frame.iloc[:t + 1], feature_set)
        pd.testing.assert_frame_equal(cut, full.iloc[:t + 1])
        changed = compute_features(replace_after(frame, t), feature_set)
        pd.testing.assert_frame_equal(changed.iloc[:t + 1], full.iloc[:t + 1])
    if feature_set != "time":   # the change does show after t (the test can fail)
        assert not changed.iloc[t + 1:].equals(full.iloc[t + 1:])


def test_the_last_closed_day_and_h4_candles_are_the_right_ones(frame):
    f = compute_features(frame, "mtf")
    a = compute_features(frame, "atr")
    safe = (frame["high"] - frame["low"]) / a["range_atr"]          # scaled's ATR, recovered
    at = lambda stamp: pd.Timestamp(stamp, tz="UTC")  # noqa: E731
    day = frame.loc["2024-01-04"]
    # at 22:00 the day is not over: the candle would be the day before's, which is partial (the
    # data start at 13:00); at 23:00 (closing at midnight) it is this day's, ending at this bar
    assert np.isnan(f.loc[:at("2024-01-04 22:00"), "d1_body"]).all()
    assert f.loc[at("2024-01-04 23:00"), "d1_from_close_atr"] == 0.0
    monday = at("2024-01-08 22:00")   # sees Sunday's two bars (22:00, 23:00) as its last day
    assert f.loc[monday, "d1_from_close_atr"] == pytest.approx(
        (frame.loc[monday, "close"] - frame.loc["2024-01-07", "close"].iloc[-1]) / safe[monday])
    width = day["high"].max() - day["low"].min()
    assert f.loc[at("2024-01-05 05:00"), "d1_body"] == pytest.approx(
        (day["close"].iloc[-1] - day["open"].iloc[0]) / width)
    assert f.loc[at("2024-01-05 05:00"), "d1_range_atr"] == pytest.approx(
        width / safe[at("2024-01-05 05:00")])
    # across the weekend the last closed day is Friday's (ending at 20:00), also on Sunday
    friday = frame.loc["2024-01-05"]
    sunday = at("2024-01-07 22:00")
    assert f.loc[sunday, "d1_from_close_atr"] == pytest.approx(
        (frame.loc[sunday, "close"] - friday["close"].iloc[-1]) / safe[sunday])
    # H4 at 03:00 (closing at 04:00) sees its own bucket 00:00-03:00
    h4 = frame.loc[at("2024-01-05 00:00"):at("2024-01-05 03:00")]
    assert f.loc[at("2024-01-05 03:00"), "h4_close_pos"] == pytest.approx(
        (h4["close"].iloc[-1] - h4["low"].min()) / (h4["high"].max() - h4["low"].min()) - 0.5)


def test_composition_is_canonical_and_shared_columns_appear_once(frame):
    assert canonical_feature_set("mtf+time+article") == "article+time+mtf"
    # a part whose columns the others already hold is dropped: the same columns, one spelling
    assert canonical_feature_set("mtf+time+scaled") == "scaled+mtf"
    assert canonical_feature_set("scaled+atr") == "scaled+atr"        # atr adds columns
    assert canonical_feature_set("time") == "time"
    for fs in ("scaled+time", "scaled+time+mtf", "scaled+time+spread+atr+shape+volz+mtf"):
        assert feature_names(canonical_feature_set(fs)) == feature_names(fs)
    assert canonical_feature_set("mtf:1d:240m") == "mtf"
    assert DatasetSpec(features="mtf+scaled").features == "scaled+mtf"
    names = feature_names("scaled+time+mtf")
    assert len(names) == len(set(names)) == DatasetSpec(features="time+mtf+scaled").n_features
    both = compute_features(frame, "scaled+time")
    assert list(both.columns) == list(feature_names("scaled"))   # time's 4 are scaled's
    alone = compute_features(frame, "time")
    pd.testing.assert_frame_equal(both[list(alone.columns)], alone, check_exact=False, rtol=1e-12)
    shared = compute_features(frame, "atr")[["body_atr", "range_atr", "ret1_atr"]]
    pd.testing.assert_frame_equal(both[list(shared.columns)], shared)


@pytest.mark.parametrize("bad", ["scaled+foo", "scaled+scaled", "mtf:5h", "mtf:", "time:2",
                                 "mtf:4h:240m", "", "scaled+"])
def test_bad_feature_sets_are_refused_naming_the_parts(bad):
    with pytest.raises(ValueError, match="feature|mtf") as err:
        DatasetSpec(features=bad)
    if "unknown" in str(err.value):
        assert "article, scaled, time, spread, atr, shape, volz, mtf" in str(err.value)


def test_spread_needs_the_spread_column(frame):
    with pytest.raises(DataError, match="spread column"):
        compute_features(frame.drop(columns="spread"), "scaled+spread")
    state = FeatureState.from_history(frame.iloc[:50], "spread", keep=5)
    with pytest.raises(DataError, match="spread column"):
        state.extend(frame.iloc[50:60].drop(columns="spread"))


@pytest.mark.parametrize("history", [0, 58, 130])
def test_bar_by_bar_equals_batch_with_spread_and_gaps(frame, history):
    batch = compute_features(frame, ALL).to_numpy()
    state = FeatureState.from_history(frame.iloc[:history], ALL, keep=20)
    state = FeatureState.from_dict(json.loads(json.dumps(state.to_dict(), allow_nan=False)))
    rows = state.extend(frame.iloc[history:])
    assert (np.isnan(rows) == np.isnan(batch[history:])).all()
    assert np.nanmax(np.abs(rows - batch[history:]), initial=0.0) <= 1e-9
    assert len(rows) > 20


def test_the_shape_part_is_the_bars_anatomy_as_shares_of_its_range():
    """body_share = (close - open) / range, the wicks / range (their absolute values add up to 1),
    and 0 for a bar without range: a doji, a hammer and a flat bar."""
    index = pd.date_range("2024-01-01", periods=3, freq="h", tz="UTC")
    bars = pd.DataFrame({"open": [1.0, 1.0, 1.0], "high": [1.2, 1.02, 1.0],
                         "low": [0.8, 0.9, 1.0], "close": [1.0, 1.01, 1.0], "volume": 1.0},
                        index=index)
    f = compute_features(bars, "shape")       # the part alone: no warm-up rows of its own...
    s = context_shape(bars)
    np.testing.assert_allclose(s["body_share"], [0.0, 0.01 / 0.12, 0.0])
    np.testing.assert_allclose(s["upper_share"], [0.2 / 0.4, 0.01 / 0.12, 0.0])
    np.testing.assert_allclose(s["lower_share"], [0.2 / 0.4, 0.1 / 0.12, 0.0])
    assert list(f.columns) == ["body_share", "upper_share", "lower_share"]
    assert np.isnan(f.to_numpy()).all()       # ...but the feature sets' common warm-up (WARMUP)
    assert feature_names("scaled+shape")[-3:] == ("body_share", "upper_share", "lower_share")
