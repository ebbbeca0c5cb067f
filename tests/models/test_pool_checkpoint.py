"""A pooled model (``data.pool``) in its folder: every instrument's normaliser saved, checked
and covered by the model hash; loaded for ONE instrument with that instrument's normaliser;
an instrument it was not trained on refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from data import DatasetSpec
from data.folds import walk_forward
from data.pool import PooledNormaliser, calendar
from data.synth import generate
from models.checkpoint import load_model, model_meta, save_model
from models.config import TrainConfig
from models.errors import ModelError
from models.predict import Predictor
from models.train import fit

SPEC = DatasetSpec(window=8, features="scaled", labels="3bar")


@pytest.fixture(scope="module")
def trained():
    a = generate("order", seed=1, bars=900)
    b = generate("session", seed=2, bars=900).iloc[::2]        # another calendar: H2-like gaps
    frames = {"data/EURUSD_H1.csv": a, "data/GBPUSD_H1.csv": b}
    fold = walk_forward(calendar({s: f.index for s, f in frames.items()}), train_bars=400,
                        val_bars=200, test_bars=200)[0]
    result = fit(frames, SPEC, fold, kind="dense", preset="matched",
                 cfg=TrainConfig(epochs=1, batch_size=64, device="cpu", threads=1))
    return frames, result


def _save(folder, result) -> str:
    meta = model_meta(kind=result.kind, config=result.config, spec=result.spec,
                      normaliser=result.normaliser, fold=result.fold, extra={})
    return save_model(folder, result.model.state_dict(), meta)


def test_round_trip_per_instrument(trained, tmp_path):
    frames, result = trained
    assert isinstance(result.normaliser, PooledNormaliser)
    digest = _save(tmp_path, result)
    for source, frame in frames.items():
        loaded = load_model(tmp_path, instrument=source)
        assert loaded.model_hash == digest
        own = result.normaliser.of(source)
        np.testing.assert_array_equal(loaded.normaliser.mean, own.mean)
        np.testing.assert_array_equal(loaded.normaliser.std, own.std)
        for k, v in result.model.state_dict().items():
            assert torch.equal(loaded.model.state_dict()[k], v)
        probs = Predictor(loaded).predict_frame(frame)
        assert probs.notna().all(axis=1).sum() > 0
    # the same file in another folder (a resolved path, a paper account's copy) is that
    # instrument; the two instruments' probabilities differ by their normalisers
    elsewhere = load_model(tmp_path, instrument="/somewhere/else/GBPUSD_H1.csv")
    np.testing.assert_array_equal(elsewhere.normaliser.mean,
                                  result.normaliser.of("data/GBPUSD_H1.csv").mean)
    a = frames["data/EURUSD_H1.csv"]
    pa = Predictor(load_model(tmp_path, instrument="data/EURUSD_H1.csv")).predict_frame(a)
    pb = Predictor(elsewhere).predict_frame(a)
    assert not np.allclose(pa.dropna().to_numpy(), pb.dropna().to_numpy())


def test_an_instrument_it_was_not_trained_on_is_refused(trained, tmp_path):
    _, result = trained
    _save(tmp_path, result)
    with pytest.raises(ModelError, match="pooled from .*not data/USDJPY_H1.csv"):
        load_model(tmp_path, instrument="data/USDJPY_H1.csv")
    with pytest.raises(ModelError, match="give one of them"):
        load_model(tmp_path)


def test_the_hash_covers_every_instruments_normaliser(trained, tmp_path):
    _, result = trained
    _save(tmp_path, result)
    path = tmp_path / "model.json"
    raw = json.loads(path.read_text())
    raw["normaliser"]["pooled"]["data/GBPUSD_H1.csv"]["mean"][0] += 1e-3
    path.write_text(json.dumps(raw))
    # even loading the OTHER instrument is refused: the files changed after saving
    with pytest.raises(ModelError, match="changed after it was saved"):
        load_model(tmp_path, instrument="data/EURUSD_H1.csv")


@pytest.mark.parametrize("damage, words", [
    (lambda n: n["pooled"]["data/GBPUSD_H1.csv"]["std"].__setitem__(0, 0.0),
     "instrument data/GBPUSD_H1.csv"),
    (lambda n: n["pooled"].clear(), "normaliser.pooled"),
    (lambda n: n.__setitem__("mean", [0.0]), "normaliser.pooled"),
])
def test_a_damaged_pooled_normaliser_is_refused_on_save_and_load(trained, tmp_path, damage,
                                                                   words):
    _, result = trained
    _save(tmp_path, result)
    path = tmp_path / "model.json"
    raw = json.loads(path.read_text())
    damage(raw["normaliser"])
    path.write_text(json.dumps(raw))
    with pytest.raises(ModelError, match=words):
        load_model(tmp_path, instrument="data/EURUSD_H1.csv")
    meta = {k: v for k, v in raw.items() if k != "model_hash"}
    with pytest.raises(ModelError, match=words):
        save_model(tmp_path / "again", result.model.state_dict(), meta)
    assert not (tmp_path / "again").exists()


def test_a_single_instrument_model_ignores_the_instrument(tmp_path):
    a = generate("order", seed=1, bars=900)
    fold = walk_forward(a.index, train_bars=400, val_bars=200, test_bars=200)[0]
    r = fit(a, SPEC, fold, kind="dense", preset="matched",
            cfg=TrainConfig(epochs=1, batch_size=64, device="cpu", threads=1))
    _save(tmp_path, r)
    loaded = load_model(tmp_path, instrument="anything.csv")
    np.testing.assert_array_equal(loaded.normaliser.mean, r.normaliser.mean)
