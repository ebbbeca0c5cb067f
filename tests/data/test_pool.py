"""Pooled instruments (``data.pool``): one calendar of folds, windows that never cross
instruments, per-instrument normalisers fitted on training bars only, and causality across
instruments (data after t in any instrument changes nothing at or before t)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data import CandleDataset, DatasetSpec, Normaliser
from data.folds import walk_forward
from data.labels import horizon
from data.pool import PooledDataset, PooledNormaliser, calendar
from data.synth import generate

SPEC = DatasetSpec(window=8, features="scaled", labels="5bar")
H = horizon(SPEC.labels)
PLAN = {"train_bars": 500, "val_bars": 200, "test_bars": 200, "embargo": 3}


def _scaled(frame: pd.DataFrame, k: float) -> pd.DataFrame:
    out = frame.copy()
    for c in ("open", "high", "low", "close", "spread"):
        out[c] = out[c] * k
    return out


@pytest.fixture(scope="module")
def instruments() -> dict[str, pd.DataFrame]:
    """Three instruments on different calendars: A the FX hours; B half an hour later, every
    fifth bar missing and prices ×100 (a JPY-like scale); C starting 400 bars later."""
    a = generate("order", seed=1, bars=1600)
    b = _scaled(generate("regime", seed=2, bars=1600), 100.0)
    b.index = b.index + pd.Timedelta(minutes=30)
    b = b.iloc[np.arange(len(b)) % 5 != 2]
    c = generate("null", seed=3, bars=1600).iloc[400:]
    return {"A": a, "B": b, "C": c}


def _folds(instr):
    return walk_forward(calendar({s: f.index for s, f in instr.items()}), **PLAN)


def _where(ds: PooledDataset, ends: np.ndarray) -> list[tuple[str, int]]:
    """(source, its own bar position) of stacked positions."""
    out = []
    for e in ends:
        s = max((s for s in ds.sources if ds.offsets[s] <= e), key=lambda s: ds.offsets[s])
        assert e - ds.offsets[s] < len(ds.parts[s]), "a position in the gap between instruments"
        out.append((s, int(e - ds.offsets[s])))
    return out


def test_calendar_folds_put_every_training_label_before_every_later_part(instruments):
    folds = _folds(instruments)
    assert len(folds) >= 3
    ds = PooledDataset(instruments, SPEC)
    for fold in folds:
        parts = {}
        for part in ("train", "val", "test"):
            where = _where(ds, ds.ends(part, fold))
            assert where
            # the label of a window ending at t needs bars up to t + H of ITS instrument
            parts[part] = {"first": min(ds.parts[s].index[p] for s, p in where),
                           "label_end": max(ds.parts[s].index[p + H] for s, p in where),
                           "sources": {s for s, _ in where}}
            for s, p in where:       # purged at the instrument's own last bar of the part
                first, last = fold.bounds(ds.parts[s].index, part)
                assert first <= p and p + H <= last
                assert p - SPEC.window + 1 >= 0         # the window is the instrument's own
        # across instruments: every training label ends before any validation or test bar
        assert parts["train"]["label_end"] < parts["val"]["first"]
        assert parts["train"]["label_end"] < parts["test"]["first"]
        assert parts["val"]["label_end"] < parts["test"]["first"]
        # and every test bar of every instrument comes after every training bar of every one
        last_train = max(ds.parts[s].index[fold.bounds(ds.parts[s].index, "train")[1]]
                         for s in parts["train"]["sources"])
        assert all(last_train < ds.parts[s].index[fold.bounds(ds.parts[s].index, "test")[0]]
                   for s in parts["test"]["sources"])
    # C has no bars in the first fold's training part: it takes no part there, only later
    assert "C" not in {s for s, _ in _where(ds, ds.ends("train", folds[0]))}
    assert "C" in {s for s, _ in _where(ds, ds.ends("train", folds[-1]))}


def test_embargo_is_counted_in_each_instruments_own_bars(instruments):
    ds = PooledDataset(instruments, SPEC)
    fold = _folds(instruments)[1]
    for s, part in ds.parts.items():
        if s not in ds.used("test", fold):
            continue
        first_own = fold.test.positions(part.index)[0]
        assert fold.bounds(part.index, "test")[0] == first_own + PLAN["embargo"]
        own = _where(ds, ds.ends("test", fold))
        assert min(p for src, p in own if src == s) >= first_own + PLAN["embargo"]


def test_windows_are_each_instruments_own_normalised_bars(instruments):
    ds = PooledDataset(instruments, SPEC)
    fold = _folds(instruments)[2]
    norm = ds.fit_normaliser(fold)
    m = ds.matrix(norm)
    ends = ds.ends("train", fold)
    for (s, p), e in zip(_where(ds, ends), ends, strict=True):
        own = ds.parts[s].matrix(norm.of(s))
        np.testing.assert_array_equal(m[e - SPEC.window + 1:e + 1], own[p - SPEC.window + 1:p + 1])
    # no label and no complete window in the gaps between instruments
    for s in ds.sources[1:]:
        gap = np.arange(ds.offsets[s] - ds.gap, ds.offsets[s])
        assert (ds.labels[gap] == -1).all() and (m[gap] == 0).all()
        assert ds.gap >= max(SPEC.window, H + 1)


def test_normalisers_are_fitted_per_instrument_on_its_training_bars_only(instruments):
    fold = _folds(instruments)[2]
    norm = PooledDataset(instruments, SPEC).fit_normaliser(fold)
    assert set(norm.by_source) == {"A", "B", "C"}
    for s, frame in instruments.items():
        own = CandleDataset(frame, SPEC)
        first, last = fold.bounds(own.index, "train")
        want = Normaliser.fit(own.raw[first:last + 1])
        np.testing.assert_array_equal(norm.of(s).mean, want.mean)
        np.testing.assert_array_equal(norm.of(s).std, want.std)
    # the ×100 instrument's raw price-level features are not scaled by the others' statistics
    assert not np.allclose(norm.of("A").mean, norm.of("B").mean)
    # bars after the training part (any instrument) do not move any normaliser
    later = {s: f.copy() for s, f in instruments.items()}
    for f in later.values():
        cut = fold.train.end
        f.loc[f.index > cut, ["open", "high", "low", "close"]] *= 1.5
    again = PooledDataset(later, SPEC).fit_normaliser(fold)
    for s in instruments:
        np.testing.assert_array_equal(again.of(s).mean, norm.of(s).mean)
    assert PooledNormaliser.from_dict(norm.to_dict()).to_dict() == norm.to_dict()


@pytest.mark.parametrize("victim", ["A", "B", "C"])
def test_data_after_t_in_any_instrument_changes_nothing_at_or_before_t(instruments, victim):
    folds = _folds(instruments)
    t = folds[1].test.end                  # everything of folds 1 and 2 lies at or before t
    cut = dict(instruments)
    cut[victim] = instruments[victim][instruments[victim].index <= t]
    again = _folds(cut)
    assert again[:2] == folds[:2]          # the same calendar plan up to t
    full, short = PooledDataset(instruments, SPEC), PooledDataset(cut, SPEC)
    for fold in folds[:2]:
        nf, ns = full.fit_normaliser(fold), short.fit_normaliser(fold)
        for part in ("train", "val", "test"):
            a, b = full.ends(part, fold), short.ends(part, fold)
            assert _where(full, a) == _where(short, b)
            np.testing.assert_array_equal(full.labels[a], short.labels[b])
            offsets = np.arange(-SPEC.window + 1, 1)
            np.testing.assert_array_equal(full.matrix(nf)[a[:, None] + offsets],
                                          short.matrix(ns)[b[:, None] + offsets])


def test_one_instrument_is_the_single_source_dataset(instruments):
    a = instruments["A"]
    fold = _folds({"A": a})[0]
    pooled, single = PooledDataset({"A": a}, SPEC), CandleDataset(a, SPEC)
    for part in ("train", "val", "test"):
        np.testing.assert_array_equal(pooled.ends(part, fold), single.ends(part, fold))
    np.testing.assert_array_equal(pooled.labels, single.labels)
    norm = pooled.fit_normaliser(fold)
    np.testing.assert_array_equal(pooled.matrix(norm), single.matrix(single.fit_normaliser(fold)))
    assert pooled.fingerprint() == single.fingerprint()
