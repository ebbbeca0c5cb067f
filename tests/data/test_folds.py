"""Folds: plain split, rolling and expanding walk-forward, embargo and purge in one place."""

import numpy as np
import pandas as pd
import pytest

from data import CandleDataset, DataError, DatasetSpec, Fold, plain_split, purge, walk_forward
from data.folds import Period


@pytest.fixture
def index():
    return pd.date_range("2024-01-01", periods=1000, freq="h", tz="UTC")


def test_rolling_folds_have_bounded_non_overlapping_test_parts(index):
    folds = walk_forward(index, train_bars=400, val_bars=100, test_bars=100)
    assert len(folds) == 5
    tests = [f.bounds(index, "test") for f in folds]
    assert tests == [(500, 599), (600, 699), (700, 799), (800, 899), (900, 999)]
    for f in folds:
        t0, t1 = f.bounds(index, "train")
        v0, v1 = f.bounds(index, "val")
        x0, x1 = f.bounds(index, "test")
        assert t1 - t0 + 1 == 400 and v0 == t1 + 1 and v1 - v0 + 1 == 100 and x0 == v1 + 1
    # rolling: the training window moves with the fold
    assert folds[1].bounds(index, "train") == (100, 499)


def test_expanding_folds_start_training_at_the_first_bar(index):
    folds = walk_forward(index, train_bars=400, val_bars=100, test_bars=100, expanding=True)
    assert [f.bounds(index, "train")[0] for f in folds] == [0] * 5
    assert folds[-1].bounds(index, "train") == (0, 799)


def test_step_is_at_least_the_test_length_and_sizes_are_checked(index):
    with pytest.raises(ValueError, match="at least test_bars"):
        walk_forward(index, train_bars=400, val_bars=100, test_bars=100, step_bars=50)
    with pytest.raises(ValueError, match="val_bars must be at least 1"):
        walk_forward(index, train_bars=400, val_bars=0, test_bars=100)
    with pytest.raises(DataError, match="too few"):
        walk_forward(index, train_bars=900, val_bars=100, test_bars=100)
    wide = walk_forward(index, train_bars=400, val_bars=100, test_bars=100, step_bars=200)
    assert [f.bounds(index, "test")[0] for f in wide] == [500, 700, 900]


def test_embargo_drops_bars_after_each_boundary(index):
    fold = plain_split(index, 0.6, 0.2, embargo=5)
    assert fold.bounds(index, "train") == (0, 599)
    assert fold.bounds(index, "val") == (605, 799)
    assert fold.bounds(index, "test") == (805, 999)
    assert Fold.from_dict(fold.to_dict()) == fold


def test_purge_drops_samples_whose_label_crosses_the_boundary():
    np.testing.assert_array_equal(purge(np.arange(10, 21), 20, 2), np.arange(10, 19))


def test_dataset_windows_follow_the_fold(index):
    rng = np.random.default_rng(0)
    close = 100 + np.cumsum(rng.normal(0, 0.1, len(index)))
    frame = pd.DataFrame({"open": close, "high": close + 0.2, "low": close - 0.2,
                          "close": close, "volume": 1.0}, index=index)
    ds = CandleDataset(frame, DatasetSpec(window=10))
    fold = walk_forward(index, train_bars=400, val_bars=100, test_bars=100, embargo=3)[2]
    for part in ("train", "val", "test"):
        first, last = fold.bounds(index, part)
        ends = ds.ends(part, fold)
        assert ends.min() >= first and ends.max() + 1 <= last   # 3-bar labels: horizon 1
    assert ds.ends("val", fold).min() >= fold.bounds(index, "train")[1] + 1 + 3


def test_a_period_outside_the_data_is_a_clear_error(index):
    with pytest.raises(DataError, match="holds no bars"):
        Period.between("2030-01-01", None).positions(index, "the period")
