"""Leakage: no feature, training label or normalisation statistic may see a later bar.

These are the checks that keep every backtest honest (DESIGN.md, data flow 2).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from candle_helpers import candles

from data import CandleDataset, DatasetSpec, compute_features, plain_split
from data.features import WARMUP
from data.labels import horizon

N = 600
CUTS = [0, 5, WARMUP - 1, WARMUP, 60, 217, 400, N - 2]


@pytest.fixture(scope="module")
def frame(eurusd) -> pd.DataFrame:
    return eurusd.iloc[1000:1000 + N]


def replace_after(frame: pd.DataFrame, t: int, seed: int = 0) -> pd.DataFrame:
    """The same frame with every bar after position ``t`` replaced by different, random bars."""
    other = candles(len(frame), seed=seed + 1)
    other[["open", "high", "low", "close"]] *= frame["close"].iloc[0] / 1.1 * 1.01
    out = frame.copy()
    out.iloc[t + 1:] = other.iloc[t + 1:].to_numpy()
    return out


def extreme_after(frame: pd.DataFrame, t: int) -> pd.DataFrame:
    """Bars after ``t`` far above and below everything before: any label at or before ``t``
    that looked ahead would change (bar t can then be no fractal at all)."""
    out = frame.copy()
    top, bottom = frame["high"].max() * 2, frame["low"].min() / 2
    out.iloc[t + 1:, :4] = [(top + bottom) / 2, top, bottom, (top + bottom) / 2]
    return out


@pytest.mark.slow   # a few seconds: runs in `make test`, not in the fast subset
@pytest.mark.parametrize("feature_set", ["article", "scaled"])
@pytest.mark.parametrize("t", CUTS)
def test_features_ignore_later_bars(frame, feature_set, t):
    base = compute_features(frame, feature_set).to_numpy()
    for changed in (replace_after(frame, t), extreme_after(frame, t)):
        assert not np.array_equal(changed.iloc[t + 1:].to_numpy(), frame.iloc[t + 1:].to_numpy())
        after = compute_features(changed, feature_set).to_numpy()
        np.testing.assert_array_equal(after[:t + 1], base[:t + 1])
    if t + 1 >= WARMUP + 14:  # and the change does show after t (the test can fail)
        assert not np.array_equal(after[t + 1:], base[t + 1:])


@pytest.mark.parametrize("feature_set", ["article", "scaled"])
@pytest.mark.parametrize("t", CUTS)
def test_features_of_a_truncated_frame_are_the_same(frame, feature_set, t):
    full = compute_features(frame, feature_set)
    cut = compute_features(frame.iloc[:t + 1], feature_set)
    pd.testing.assert_frame_equal(cut, full.iloc[:t + 1])


def test_each_feature_ignores_a_one_bar_change_after_t(frame):
    """A single later bar nudged: each column separately, so the failing one is named."""
    t = 300
    changed = frame.copy()
    changed.iloc[t + 1, :5] = changed.iloc[t + 1, :5] * [1.0, 1.01, 0.99, 1.005, 3.0]
    for feature_set in ("article", "scaled"):
        a = compute_features(frame, feature_set).iloc[:t + 1]
        b = compute_features(changed, feature_set).iloc[:t + 1]
        for name in a.columns:
            np.testing.assert_array_equal(b[name], a[name], err_msg=name)


# --- labels, splits and the normaliser ----------------------------------------------------------

SPECS = [DatasetSpec(window=20, features="article", labels="3bar"),
         DatasetSpec(window=8, features="scaled", labels="5bar"),
         DatasetSpec(window=20, features="scaled", labels="swing")]


def _position(index: pd.DatetimeIndex, stamp: pd.Timestamp) -> int:
    return int(index.get_loc(stamp))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.features}-{s.labels}")
def test_training_labels_do_not_depend_on_validation_or_test_bars(frame, spec):
    split = plain_split(frame.index, 0.6, 0.2)
    ds = CandleDataset(frame, spec)
    t_end = _position(frame.index, split.train_end)
    ends = ds.ends("train", split)
    assert len(ends) > 200
    assert ends.max() + horizon(spec.labels) <= t_end  # purged at the boundary
    for changed in (replace_after(frame, t_end, seed=4), extreme_after(frame, t_end)):
        other = CandleDataset(changed, spec)
        np.testing.assert_array_equal(other.labels[ends], ds.labels[ends])
        np.testing.assert_array_equal(other.ends("train", split), ends)
        np.testing.assert_array_equal(other.raw[: t_end + 1], ds.raw[: t_end + 1])


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.features}-{s.labels}")
def test_validation_labels_do_not_depend_on_test_bars(frame, spec):
    split = plain_split(frame.index, 0.6, 0.2)
    ds = CandleDataset(frame, spec)
    v_end = _position(frame.index, split.val_end)
    ends = ds.ends("val", split)
    assert len(ends) > 50
    assert ends.min() > _position(frame.index, split.train_end)
    assert ends.max() + horizon(spec.labels) <= v_end
    for changed in (replace_after(frame, v_end, seed=5), extreme_after(frame, v_end)):
        other = CandleDataset(changed, spec)
        np.testing.assert_array_equal(other.labels[ends], ds.labels[ends])
        np.testing.assert_array_equal(other.ends("val", split), ends)


def test_the_unpurged_boundary_bar_would_leak(frame):
    """Why the purge matters: the last training bar's label does change with the next bar."""
    split = plain_split(frame.index, 0.6, 0.2)
    t_end = _position(frame.index, split.train_end)
    ds = CandleDataset(frame, DatasetSpec())
    changed = CandleDataset(extreme_after(frame, t_end), DatasetSpec())
    moved = np.flatnonzero(changed.labels[: t_end + 1] != ds.labels[: t_end + 1])
    assert moved.tolist() in ([], [t_end])  # only the boundary bar can move …
    assert t_end not in ds.ends("train", split)  # … and it is never a training sample
    assert t_end in ds.ends("train", split, labelled=False)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.features}-{s.labels}")
def test_normaliser_is_fitted_on_training_bars_only(frame, spec):
    split = plain_split(frame.index, 0.6, 0.2)
    t_end = _position(frame.index, split.train_end)
    norm = CandleDataset(frame, spec).fit_normaliser(split)
    for changed in (replace_after(frame, t_end, seed=6), extreme_after(frame, t_end)):
        other = CandleDataset(changed, spec).fit_normaliser(split)
        np.testing.assert_array_equal(other.mean, norm.mean)
        np.testing.assert_array_equal(other.std, norm.std)
    # and it is fitted on those bars: the statistics of the complete training rows
    raw = CandleDataset(frame, spec).raw[: t_end + 1]
    rows = raw[np.isfinite(raw).all(axis=1)]
    np.testing.assert_allclose(norm.mean, rows.mean(axis=0))
    assert len(rows) == t_end + 1 - WARMUP


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.features}-{s.labels}")
def test_windows_are_the_rows_ending_at_each_end(frame, spec):
    split = plain_split(frame.index, 0.6, 0.2)
    ds = CandleDataset(frame, spec)
    matrix = ds.matrix(ds.fit_normaliser(split))
    W = spec.window
    for period in ("train", "val", "test"):
        ends = ds.ends(period, split)
        windows = ds.windows(matrix, ends)
        assert windows.shape == (len(ends), W, spec.n_features)
        for i, end in enumerate(ends):
            np.testing.assert_array_equal(windows[i], matrix[end - W + 1:end + 1])
        assert ends.min() - W + 1 >= WARMUP  # no warm-up row in any window
        assert np.isfinite(windows).all()
