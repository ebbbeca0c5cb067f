import json

import numpy as np
import pytest

from data import DatasetSpec, Split
from models.checkpoint import load_model
from models.train import TrainConfig, train


@pytest.fixture(scope="module")
def small(eurusd):
    candles = eurusd.iloc[:1500]
    return candles, Split.by_fraction(candles.index, 0.6, 0.2)


def _train(small, out, **kw):
    candles, split = small
    cfg = TrainConfig(**{"epochs": 2, "batch_size": 128, "seed": 3, "device": "cpu", **kw})
    return train(candles, DatasetSpec(features="scaled"), split, out, kind="attention",
                 preset="article", cfg=cfg)


def test_same_seed_gives_bit_identical_weights(small, tmp_path):
    _train(small, tmp_path / "a")
    _train(small, tmp_path / "b")
    _train(small, tmp_path / "c", seed=4)
    a = (tmp_path / "a" / "model.safetensors").read_bytes()
    assert a == (tmp_path / "b" / "model.safetensors").read_bytes()
    assert a != (tmp_path / "c" / "model.safetensors").read_bytes()


def test_resume_ends_where_an_uninterrupted_run_ends(small, tmp_path):
    _train(small, tmp_path / "full", epochs=4, patience=100)
    # "Interrupt" after 2 epochs, then resume the same folder up to 4.
    _train(small, tmp_path / "cut", epochs=2, patience=100)
    candles, split = small
    cfg = TrainConfig(epochs=4, batch_size=128, seed=3, device="cpu", patience=100)
    train(candles, DatasetSpec(features="scaled"), split, tmp_path / "cut", kind="attention",
          preset="article", cfg=cfg, resume=True)
    full = (tmp_path / "full" / "last.safetensors").read_bytes()
    assert full == (tmp_path / "cut" / "last.safetensors").read_bytes()
    hist = np.loadtxt(tmp_path / "cut" / "history.csv", delimiter=",", skiprows=1)
    assert len(hist) == 4


def test_run_folder_describes_the_model(small, tmp_path):
    metrics = _train(small, tmp_path)
    for name in ("model.safetensors", "model.json", "history.csv", "learning_curves.png",
                 "metrics.json", "state.pt"):
        assert (tmp_path / name).exists(), name
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["spec"]["features"] == "scaled" and meta["spec"]["window"] == 20
    assert len(meta["normaliser"]["mean"]) == DatasetSpec(features="scaled").n_features
    assert meta["fingerprint"] and meta["versions"]["torch"]
    assert meta["split"]["train_end"] < meta["split"]["val_end"]
    assert 0 <= metrics["accuracy"] <= 1 and metrics["epochs_run"] == 2
    loaded = load_model(tmp_path)
    assert loaded.kind == "attention" and loaded.spec == DatasetSpec(features="scaled")
    assert (tmp_path / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_normaliser_is_fitted_on_training_bars_only(small, tmp_path):
    candles, split = small
    _train(small, tmp_path / "a")
    changed = candles.copy()
    after = changed.index > split.train_end
    changed.loc[after, ["open", "high", "low", "close"]] *= 1.5
    changed.loc[after, "volume"] *= 7
    cfg = TrainConfig(epochs=1, batch_size=128, seed=3, device="cpu")
    train(changed, DatasetSpec(features="scaled"), split, tmp_path / "b", kind="attention",
          preset="article", cfg=cfg)
    a = json.loads((tmp_path / "a" / "model.json").read_text())["normaliser"]
    b = json.loads((tmp_path / "b" / "model.json").read_text())["normaliser"]
    assert a == b


def test_early_stopping_stops_before_max_epochs(small, tmp_path):
    metrics = _train(small, tmp_path, epochs=200, patience=2, lr=3e-3)
    assert metrics["epochs_run"] < 200
    assert metrics["epochs_run"] - 1 - metrics["best_epoch"] == 2


def test_asking_for_cuda_without_a_gpu_is_a_clear_error(small, tmp_path):
    import torch

    from models.checkpoint import ModelError

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ModelError, match="no CUDA GPU"):
        _train(small, tmp_path, device="cuda")


def test_training_leaves_the_global_determinism_setting_as_it_was(small, tmp_path):
    import torch

    before = torch.are_deterministic_algorithms_enabled()
    _train(small, tmp_path, epochs=1)
    assert torch.are_deterministic_algorithms_enabled() == before
