"""Datasets: specs, chronological splits, purged sample ends, normaliser and fingerprints."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from candle_helpers import candles

from data import CandleDataset, DataError, DatasetSpec, Fold, Normaliser, fingerprint, load
from data.features import WARMUP
from data.folds import plain_split


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return candles(300, seed=11)


def test_spec_checks_and_round_trip():
    spec = DatasetSpec(window=12, features="scaled", labels="5bar")
    assert spec.n_features == 19
    assert DatasetSpec.from_dict(spec.to_dict()) == spec
    assert spec.to_dict()["classes"] == ["none", "buy", "sell"]
    with pytest.raises(ValueError):
        DatasetSpec(window=1)
    with pytest.raises(ValueError):
        DatasetSpec(features="nope")
    with pytest.raises(ValueError):
        DatasetSpec(labels="nope")


def test_split_by_fraction(frame):
    split = plain_split(frame.index, 0.6, 0.2)
    assert split.train_end == frame.index[179]  # 180 training bars
    assert split.val_end == frame.index[239]  # 60 validation bars, 60 test bars
    assert split.bounds(frame.index, "train") == (0, 179)
    assert split.bounds(frame.index, "val") == (180, 239)
    assert split.bounds(frame.index, "test") == (240, 299)
    assert split.bounds(frame.index, "all") == (0, 299)
    assert Fold.from_dict(split.to_dict()) == split
    # the first model.json format (train_end / val_end only) reads as the same fold
    old = {"train_end": split.train_end.isoformat(), "val_end": split.val_end.isoformat()}
    assert Fold.from_dict(old) == split
    with pytest.raises(ValueError):
        split.bounds(frame.index, "later")


@pytest.mark.parametrize(("train", "val"), [(0.0, 0.2), (0.8, 0.2), (1.2, 0.1), (0.5, -0.1)])
def test_split_fractions_must_leave_a_test_part(frame, train, val):
    with pytest.raises(ValueError):
        plain_split(frame.index, train, val)


def test_split_of_too_few_bars():
    with pytest.raises(DataError, match="too few"):
        plain_split(candles(3).index, 0.6, 0.2)


def test_split_by_dates(frame):
    split = plain_split(frame.index, train_end="2024-01-05", val_end="2024-01-09 12:00")
    assert split.train_end == pd.Timestamp("2024-01-05", tz="UTC")
    first, last = split.bounds(frame.index, "train")
    assert (first, last) == (0, 96)  # 2024-01-01 00:00 … 2024-01-05 00:00 inclusive
    assert split.bounds(frame.index, "val") == (97, 204)
    # dates with an offset are converted
    other = plain_split(frame.index, train_end="2024-01-05T02:00+02:00", val_end="2024-01-09 12:00")
    assert other == split


@pytest.mark.parametrize(("train_end", "val_end"), [
    ("2024-01-09", "2024-01-05"), ("2023-01-01", "2024-01-05"), ("2024-01-05", "2030-01-01")])
def test_split_dates_must_be_ordered_and_inside(frame, train_end, val_end):
    with pytest.raises(DataError, match="bad split dates"):
        plain_split(frame.index, train_end=train_end, val_end=val_end)


@pytest.mark.parametrize("labels", ["3bar", "5bar", "swing", "swing:2:12"])
def test_ends_are_purged_inside_each_period(frame, labels):
    spec = DatasetSpec(window=10, labels=labels)
    ds = CandleDataset(frame, spec)
    split = plain_split(frame.index, 0.6, 0.2)
    h = {"3bar": 1, "5bar": 2, "swing": 24, "swing:2:12": 12}[labels]
    seen = []
    for period in ("train", "val", "test"):
        first, last = split.bounds(frame.index, period)
        ends = ds.ends(period, split)
        assert ends.min() >= first and ends.max() + h <= last
        assert ends.max() == last - h  # purged exactly h bars, not more
        assert (ds.labels[ends] >= 0).all()
        assert np.all(np.diff(ends) == 1)  # contiguous: nothing else dropped
        seen.append(ends)
    assert seen[0].min() == WARMUP + spec.window - 1  # first window with complete features
    assert seen[1].min() == split.bounds(frame.index, "val")[0]
    everything = ds.ends("all")
    assert everything.max() == len(frame) - 1 - h
    assert not set(seen[0]) & set(seen[1]) and not set(seen[1]) & set(seen[2])
    with pytest.raises(ValueError, match="needs a fold"):
        ds.ends("train")


def test_normaliser_round_trip_and_zero_spread_columns(frame):
    x = np.c_[np.arange(10.0), np.full(10, 3.0), np.r_[np.nan, np.arange(9.0)]]
    norm = Normaliser.fit(x)
    assert norm.std[1] == 1.0  # a constant column is left unscaled, not divided by zero
    np.testing.assert_allclose(norm.mean, [5.0, 3.0, 4.0])  # the NaN row is left out
    back = Normaliser.from_dict(norm.to_dict())
    np.testing.assert_array_equal(back.transform(x[1:]), norm.transform(x[1:]))
    assert norm.transform(x).dtype == np.float32
    with pytest.raises(DataError):
        Normaliser.fit(np.full((5, 2), np.nan))


def test_matrix_has_zeros_for_warm_up_rows(frame):
    ds = CandleDataset(frame, DatasetSpec(features="article"))
    matrix = ds.matrix(ds.fit_normaliser(plain_split(frame.index)))
    assert matrix.shape == (len(frame), 12) and matrix.dtype == np.float32
    assert (matrix[:WARMUP] == 0).all()
    assert np.isfinite(matrix).all()


# --- fingerprints -------------------------------------------------------------------------------

def test_fingerprint_changes_with_one_price(frame):
    spec = DatasetSpec()
    base = fingerprint(frame, spec)
    assert fingerprint(frame.copy(), spec) == base
    for col in ("open", "high", "low", "close", "volume"):
        changed = frame.copy()
        changed.iloc[150, changed.columns.get_loc(col)] += 1e-9
        assert fingerprint(changed, spec) != base, col
    shifted = frame.copy()
    shifted.index = shifted.index + pd.Timedelta(seconds=1)
    assert fingerprint(shifted, spec) != base


def test_fingerprint_changes_with_the_spec(frame):
    prints = {fingerprint(frame, s) for s in (
        DatasetSpec(), DatasetSpec(window=21), DatasetSpec(features="article"),
        DatasetSpec(labels="5bar"), DatasetSpec(labels="swing"), DatasetSpec(labels="swing:2"))}
    assert len(prints) == 6
    assert fingerprint(frame) not in prints
    assert CandleDataset(frame, DatasetSpec()).fingerprint() == fingerprint(frame, DatasetSpec())


def test_fingerprint_does_not_depend_on_index_resolution(frame):
    coarse = frame.copy()
    coarse.index = coarse.index.as_unit("s")
    assert fingerprint(coarse, DatasetSpec()) == fingerprint(frame, DatasetSpec())


def test_loaded_csv_and_sample_fingerprint_alike(eurusd, tmp_path):
    path = tmp_path / "copy.csv"
    eurusd.iloc[:200].to_csv(path)
    assert fingerprint(load(path)) == fingerprint(eurusd.iloc[:200])
