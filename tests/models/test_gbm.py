"""The gradient-boosting baseline (``models.gbm``, ``model.kind = gbm``): deterministic, causal,
fitted on the training bars only, ranking an obvious planted pattern first, and never stacked
or saved."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from backtests.config import ConfigError, Experiment
from backtests.walkforward.tasks import predictor_of
from data import synth
from data.dataset import CandleDataset, DatasetSpec
from data.folds import walk_forward
from models.config import TrainConfig
from models.gbm import GbmConfig, is_gbm
from models.train import fit

# Small: 900 training, 300 validation and 300 test bars of a planted world (the order world's
# pattern is planted, so the labels are not noise alone and the trees have something to fit).
SPEC = DatasetSpec(window=5, features="scaled+shape", labels="triple:0.5:0.5:1")
CFG = TrainConfig(seed=0)


@pytest.fixture(scope="module")
def world() -> pd.DataFrame:
    return synth.generate("order", seed=7, bars=1600, planted=8)


@pytest.fixture(scope="module")
def fold(world):
    return walk_forward(world.index, train_bars=900, val_bars=300, test_bars=300)[0]


@pytest.fixture(scope="module")
def trained(world, fold):
    return fit(world, SPEC, fold, kind="gbm", preset="hgb", cfg=CFG)


def probs_of(result, candles: pd.DataFrame) -> np.ndarray:
    return predictor_of(result).predict_frame(candles).to_numpy()


def test_it_trains_deterministically(world, fold, trained):
    again = fit(world, SPEC, fold, kind="gbm", preset="hgb", cfg=CFG)
    a, b = probs_of(trained, world), probs_of(again, world)
    np.testing.assert_array_equal(a, b)       # bit-identical: nothing in the fit is random
    assert trained.metrics["best_epoch"] == again.metrics["best_epoch"]
    assert trained.model.clf.n_iter_ == trained.metrics["best_epoch"] >= 1
    ok = np.isfinite(a).all(axis=1)
    np.testing.assert_allclose(a[ok].sum(axis=1), 1.0, atol=1e-6)
    assert trained.meta["n_parameters"] == 0 and trained.kind == "gbm"


def test_bar_t_does_not_see_later_bars(world, trained):
    """Truncation: the probabilities at bars <= t are the same when every bar after t is
    removed, or altered (the model and its normalisation fixed, as a trained model is)."""
    full = probs_of(trained, world)
    t = 1300
    cut = probs_of(trained, world.iloc[:t + 1])
    np.testing.assert_array_equal(cut, full[:t + 1])
    changed = world.copy()
    later = changed.index[t + 1:]
    changed.loc[later, ["open", "high", "low", "close"]] *= 1.05
    np.testing.assert_array_equal(probs_of(trained, changed)[:t + 1], full[:t + 1])
    one = predictor_of(trained).predict_at(world, t)
    np.testing.assert_allclose(one, full[t], atol=1e-6)    # float32 windows in both paths


@pytest.mark.slow   # three more fits (about 2 s)
def test_the_test_part_is_never_read_and_the_validation_part_only_early_stops(world, fold,
                                                                            trained):
    """Altering every test bar changes nothing in the fit; altering the validation bars leaves
    the normalisation and the quantile bins (training bars only) as they were."""
    first_test, _ = fold.bounds(world.index, "test")
    first_val, last_val = fold.bounds(world.index, "val")
    scale = np.ones(len(world))
    scale[first_test:] = 1.3
    other = world.copy()
    other[["open", "high", "low", "close"]] = other[["open", "high", "low", "close"]].mul(
        scale, axis=0)
    moved = fit(other, SPEC, fold, kind="gbm", preset="hgb", cfg=CFG)
    np.testing.assert_array_equal(moved.normaliser.mean, trained.normaliser.mean)
    assert moved.metrics["best_epoch"] == trained.metrics["best_epoch"]
    np.testing.assert_array_equal(probs_of(moved, world)[:first_test],
                                  probs_of(trained, world)[:first_test])
    rng = np.random.default_rng(3)
    noisy = world.copy()
    rows = noisy.index[first_val:last_val + 1]
    for col in ("open", "close"):
        noisy.loc[rows, col] *= 1 + rng.normal(0, 2e-3, len(rows))
    noisy["high"] = noisy[["open", "high", "close"]].max(axis=1)
    noisy["low"] = noisy[["open", "low", "close"]].min(axis=1)
    refit = fit(noisy, SPEC, fold, kind="gbm", preset="hgb", cfg=CFG)
    np.testing.assert_array_equal(refit.normaliser.mean, trained.normaliser.mean)
    np.testing.assert_array_equal(refit.normaliser.std, trained.normaliser.std)
    for a, b in zip(refit.model.binner.bin_edges_, trained.model.binner.bin_edges_,
                    strict=True):
        np.testing.assert_array_equal(a, b)


def test_it_ranks_an_obvious_planted_pattern_first():
    """On an order world with a large planted drift, the bars that complete the pattern get a
    higher P(its direction) − P(the other) than the other test bars: AUC well above the 0.5
    of any constant model."""
    from sklearn.metrics import roc_auc_score

    world = synth.generate("order", seed=11, bars=3000, planted=30)
    fold = walk_forward(world.index, train_bars=2000, val_bars=400, test_bars=600)[0]
    spec = DatasetSpec(window=3, features="scaled+shape", labels="triple:0.5:0.5:1")
    result = fit(world, spec, fold, kind="gbm", preset="hgb", cfg=CFG)
    p = probs_of(result, world)
    first, last = fold.bounds(world.index, "test")
    trades = synth.planted_trades(world, "order")
    side = np.zeros(len(world), dtype=int)
    side[trades["entry"].to_numpy() - 1] = trades["direction"].to_numpy()   # the pattern's bar
    bars = np.arange(first, last + 1)
    assert (side[bars] == 1).sum() >= 10 and (side[bars] == -1).sum() >= 10
    score_long = p[bars, 1] - p[bars, 2]
    auc_long = roc_auc_score(side[bars] == 1, score_long)
    auc_short = roc_auc_score(side[bars] == -1, -score_long)
    assert auc_long > 0.75 and auc_short > 0.75, (auc_long, auc_short)


def test_it_is_never_stacked_on_a_gpu_and_never_saved(world, fold, monkeypatch):
    """``--device cuda``: gbm tasks train one by one on the CPU (the stacked-ensemble trainer
    is never called for them); ``attnbt train model.kind=gbm`` is refused naming what to use."""
    import models.ensemble
    from backtests.walkforward.tasks import Task, train_in_ensembles
    from backtests.workflows import train_model

    def no_stacking(*a, **k):
        raise AssertionError("gbm must not be stacked")

    monkeypatch.setattr(models.ensemble, "train_ensemble", no_stacking)
    exp = Experiment().override({"model.kind": "gbm", "model.preset": "hgb",
                                 "train.device": "cuda", "dataset.window": 5,
                                 "dataset.features": "scaled+shape",
                                 "dataset.labels": "triple:0.5:0.5:1"})
    task = Task("w", "gbm", "hgb", 0, 1, fold, exp, "fp")
    out = list(train_in_ensembles([task], lambda t: world, lambda t: ("g",), lambda s: None))
    assert len(out) == 1 and out[0][1].kind == "gbm", out
    with pytest.raises(ConfigError, match="walk-forward"):
        train_model(exp, world)
    assert is_gbm("gbm/hgb") and not is_gbm("dense/matched")
    with pytest.raises(ValueError, match="hgb"):
        GbmConfig.preset_config("big")
    assert dataclasses.asdict(GbmConfig())["preset"] == "hgb"


def test_dataset_features_are_the_networks(world, fold, trained):
    """The trees see the networks' normalised windows: the flattened window of the dataset."""
    from models.gbm import flat_windows

    ds = CandleDataset(world, SPEC)
    ends = ds.ends("test", fold)[:7]
    m = ds.matrix(trained.normaliser)
    np.testing.assert_array_equal(flat_windows(m, ends, SPEC.window),
                                  ds.windows(m, ends).reshape(len(ends), -1))
