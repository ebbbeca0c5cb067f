import numpy as np
import pytest
import torch

from data import DatasetSpec, plain_split
from models.checkpoint import (
    load_model,
    load_training_state,
    model_hash,
    model_meta,
    read_meta,
    save_model,
    save_training_state,
)
from models.train import TrainConfig, fit

pytestmark = pytest.mark.slow   # every test here trains


@pytest.fixture(scope="module")
def small(eurusd):
    candles = eurusd.iloc[:1500]
    return candles, plain_split(candles.index, 0.6, 0.2)


def _fit(small, **kw):
    candles, fold = small
    extra = {k: kw.pop(k) for k in ("checkpoint", "resume") if k in kw}
    cfg = TrainConfig(**{"epochs": 2, "batch_size": 128, "seed": 3, "device": "cpu", **kw})
    return fit(candles, DatasetSpec(features="scaled"), fold, kind="attention",
               preset="article", cfg=cfg, **extra)


def _weights(result):
    return {k: v.detach().cpu() for k, v in result.model.state_dict().items()}


def _save(result, folder):
    folder.mkdir(parents=True, exist_ok=True)
    meta = model_meta(kind=result.kind, config=result.config, spec=result.spec,
                      normaliser=result.normaliser, fold=result.fold, extra=result.meta)
    return save_model(folder, _weights(result), meta)


def test_fit_writes_nothing_and_same_seed_gives_bit_identical_weights(small, tmp_path,
                                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    a, b, c = _fit(small), _fit(small), _fit(small, seed=4)
    assert list(tmp_path.iterdir()) == []           # computing wrote no file
    meta = {"kind": "attention", "config": {}, "spec": {}, "normaliser": {}}
    assert model_hash(_weights(a), meta) == model_hash(_weights(b), meta)
    assert model_hash(_weights(a), meta) != model_hash(_weights(c), meta)


def test_interrupted_then_resumed_ends_where_an_uninterrupted_run_ends(small, tmp_path):
    full = _fit(small, epochs=4, patience=100)

    def interrupt_after_two(state, partial):
        save_training_state(tmp_path, state)
        _save_partial(partial, state, tmp_path)
        if state.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _fit(small, epochs=4, patience=100, checkpoint=interrupt_after_two)
    state = load_training_state(tmp_path)         # through the files, as `--resume` does
    assert state.epoch == 1 and len(state.history) == 2
    resumed = _fit(small, epochs=4, patience=100, resume=state)
    assert resumed.resumed_from == 2 and len(resumed.history) == 4
    for k, v in full.state.last_weights.items():
        assert torch.equal(v, resumed.state.last_weights[k]), k
    assert torch.equal(next(iter(_weights(full).values())), next(iter(_weights(resumed).values())))
    np.testing.assert_array_equal(full.history.val_loss.to_numpy(),
                                  resumed.history.val_loss.to_numpy())


def _save_partial(partial, state, folder):
    meta = model_meta(kind=partial.kind, config=partial.config, spec=partial.spec,
                      normaliser=partial.normaliser, fold=partial.fold, extra=partial.meta)
    save_model(folder, state.best_weights, meta)


def test_a_saved_model_describes_itself_and_carries_its_hash(small, tmp_path):
    result = _fit(small)
    digest = _save(result, tmp_path)
    info = read_meta(tmp_path)
    assert info.spec == DatasetSpec(features="scaled") and info.kind == "attention"
    assert len(info.normaliser.mean) == DatasetSpec(features="scaled").n_features
    assert info.fold == result.fold and info.raw["fingerprint"] and info.raw["versions"]["torch"]
    assert info.raw["model_hash"] == digest
    loaded = load_model(tmp_path)
    assert loaded.model_hash == digest
    assert 0 <= result.metrics["accuracy"] <= 1 and result.metrics["epochs_run"] == 2


def test_normaliser_is_fitted_on_training_bars_only(small):
    candles, fold = small
    a = _fit(small, epochs=1)
    changed = candles.copy()
    after = changed.index > fold.train_end
    changed.loc[after, ["open", "high", "low", "close"]] *= 1.5
    changed.loc[after, "volume"] *= 7
    b = fit(changed, DatasetSpec(features="scaled"), fold, kind="attention", preset="article",
            cfg=TrainConfig(epochs=1, batch_size=128, seed=3, device="cpu"))
    np.testing.assert_array_equal(a.normaliser.mean, b.normaliser.mean)
    np.testing.assert_array_equal(a.normaliser.std, b.normaliser.std)


def test_early_stopping_stops_before_max_epochs(small):
    result = _fit(small, epochs=200, patience=2, lr=3e-3)
    m = result.metrics
    assert m["epochs_run"] < 200
    assert m["epochs_run"] - m["best_epoch"] == 2   # both count from 1
    assert result.history.epoch.tolist() == list(range(1, m["epochs_run"] + 1))


def test_asking_for_cuda_without_a_gpu_is_a_clear_error(small):
    from models.errors import ModelError

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ModelError, match="no CUDA GPU"):
        _fit(small, device="cuda")


def test_a_diverging_training_is_an_error_not_nan_weights(small):
    from models.errors import ModelError

    with pytest.raises(ModelError, match="diverged"):
        _fit(small, lr=1e9, epochs=3, max_grad_norm=0.0)


def test_training_leaves_global_torch_settings_as_they_were(small):
    before_det = torch.are_deterministic_algorithms_enabled()
    before_threads = torch.get_num_threads()
    seen = []
    _fit(small, epochs=1, threads=1, checkpoint=lambda s, p: seen.append(
        (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())))
    assert seen == [(1, True)]          # trained with the configured threads, deterministically
    assert torch.are_deterministic_algorithms_enabled() == before_det
    assert torch.get_num_threads() == before_threads
