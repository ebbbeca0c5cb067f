import os
import pickle
import re

import pandas as pd
import pytest
import torch

from data import DatasetSpec
from models.checkpoint import ModelError, check_compatible, load_model, load_state
from models.predict import Predictor


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _copy_run(trained_run, tmp_path):
    import shutil

    target = tmp_path / "run"
    shutil.copytree(trained_run.path, target)
    return target


def test_a_pickled_weights_file_is_refused_without_running_it(trained_run, tmp_path):
    folder = _copy_run(trained_run, tmp_path)
    marker = tmp_path / "pwned"
    (folder / "model.safetensors").write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(ModelError, match="not a valid safetensors"):
        load_model(folder)
    assert not marker.exists()


def test_a_crafted_training_state_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "state.pt"
    torch.save({"optimizer": _Exploit(marker)}, path)
    with pytest.raises(ModelError, match="not a plain training state"):
        load_state(path)
    assert not marker.exists()


def test_weights_that_do_not_fit_the_config_are_a_clear_error(trained_run, tmp_path):
    from safetensors.torch import save_file

    folder = _copy_run(trained_run, tmp_path)
    save_file({"embed.weight": torch.zeros(2, 2)}, str(folder / "model.safetensors"))
    with pytest.raises(ModelError, match="does not fit its config"):
        load_model(folder)


def test_missing_or_damaged_metadata(tmp_path, trained_run):
    with pytest.raises(ModelError, match="holds no saved model"):
        load_model(tmp_path)
    folder = _copy_run(trained_run, tmp_path)
    (folder / "model.json").write_text("{not json")
    with pytest.raises(ModelError, match="damaged"):
        load_model(folder)


def test_a_model_refuses_a_different_spec_or_timeframe(trained_run):
    loaded = load_model(trained_run.path)
    check_compatible(loaded, spec=DatasetSpec(features="scaled"), timeframe="0 days 01:00:00")
    for other in (DatasetSpec(features="article"), DatasetSpec(window=30, features="scaled"),
                  DatasetSpec(features="scaled", labels="5bar")):
        with pytest.raises(ModelError, match="reads 20-bar windows"):
            check_compatible(loaded, spec=other)
    with pytest.raises(ModelError, match="trained on 0 days 01:00:00 bars"):
        check_compatible(loaded, timeframe=str(pd.Timedelta("1D")))


@pytest.mark.parametrize("labels", ["swing", "swing:2", "swing:0.5:12"])
def test_model_json_reads_swing_label_kinds_and_refuses_a_misspelt_one(tmp_path, labels):
    """model.json is read without a trained model: a spec with a swing kind loads as written;
    a kind that is not the rule's one name is a ModelError (no DatasetSpec field was added, so
    older model.json files read as before)."""
    import json

    import numpy as np

    from data import Normaliser
    from models.checkpoint import model_meta, read_meta
    from models.registry import make_config

    spec = DatasetSpec(window=20, features="scaled", labels=labels)
    meta = model_meta(kind="attention", config=make_config("attention", "article", 19, 20),
                      spec=spec, normaliser=Normaliser(np.zeros(19), np.ones(19)), fold=None,
                      extra={})
    assert set(meta["spec"]) == {"window", "features", "labels", "feature_names", "classes"}
    (tmp_path / "model.json").write_text(json.dumps(meta))
    assert read_meta(tmp_path).spec == spec
    meta["spec"]["labels"] = {"swing": "swing:1.0", "swing:2": "swing:2.0",
                              "swing:0.5:12": "swing:0.50:12"}[labels]
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="damaged.*write label kind"):
        read_meta(tmp_path)


@pytest.mark.slow
def test_model_is_rebuilt_from_its_folder_alone(trained_run, eurusd, tmp_path):
    """A copy of the model's folder, far from any registry, predicts exactly as the original
    model object that training returned and recorded."""
    import shutil

    from backtests.config import Experiment
    from backtests.workflows import train_model

    alone = tmp_path / "elsewhere" / "model"
    alone.parent.mkdir()
    for name in ("model.safetensors", "model.json"):
        shutil.copy(trained_run.path / name, alone.parent / name)
    alone = alone.parent
    assert not (alone / "registry.sqlite").exists() and not (alone / "run.json").exists()
    copied = Predictor.from_run(alone).predict_frame(eurusd.iloc[:300])
    original = Predictor.from_run(trained_run.path).predict_frame(eurusd.iloc[:300])
    pd.testing.assert_frame_equal(copied, original)
    # and it is the model training computed: retrain the same config (same seed) in memory
    from backtests.workflows import experiment_of

    exp = experiment_of(load_model(alone).meta)
    assert isinstance(exp, Experiment)
    again = train_model(exp, eurusd)
    assert load_model(alone).model_hash == _hash_of(again)


def _hash_of(result):
    from models.checkpoint import model_hash, model_meta

    meta = model_meta(kind=result.kind, config=result.config, spec=result.spec,
                      normaliser=result.normaliser, fold=result.fold, extra={})
    return model_hash(result.model.state_dict(), meta)


def _edit_meta(folder, change):
    import json

    meta = json.loads((folder / "model.json").read_text())
    change(meta)
    (folder / "model.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("field,value,message", [
    ("d_model", 10**9, "must be a whole number in 1..1,000,000"),
    ("d_model", -5, "must be a whole number"), ("d_model", "abc", "must be a whole number"),
    ("d_model", 1.5, "must be a whole number"), ("n_heads", 5, "multiple of n_heads"),
    ("head_hidden", 1_000_000, "over the budget"), ("dropout", float("nan"), "number in [0, 1)"),
    ("surprise", 1, "unknown config field"),
])
def test_absurd_or_mistyped_model_sizes_are_refused_before_anything_is_built(
        trained_run, tmp_path, field, value, message):
    folder = _copy_run(trained_run, tmp_path)
    _edit_meta(folder, lambda m: m["config"].__setitem__(field, value))
    with pytest.raises(ModelError, match=re.escape(message)):
        load_model(folder)


def test_a_damaged_model_json_is_one_clear_error(trained_run, tmp_path):
    folder = _copy_run(trained_run, tmp_path)
    (folder / "model.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ModelError, match="model.json"):
        load_model(folder)
    (folder / "model.json").write_text("[1, 2]")
    with pytest.raises(ModelError, match="expected a JSON object"):
        load_model(folder)
    (folder / "model.json").unlink()
    (folder / "model.json").mkdir()
    with pytest.raises(ModelError, match="missing or not a file"):
        load_model(folder)


def test_weights_that_hold_nan_are_refused(trained_run, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = _copy_run(trained_run, tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    name = next(iter(state))
    state[name][..., 0] = float("nan")
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(ModelError, match="non-finite weights"):
        load_model(folder)


def test_a_model_changed_after_it_was_saved_fails_its_hash(trained_run, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = _copy_run(trained_run, tmp_path)
    digest = load_model(folder).model_hash
    state = load_file(str(folder / "model.safetensors"))
    name = next(iter(state))
    state[name] = state[name] * 1.001
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(ModelError, match=f"changed after it was saved.*recorded {digest}"):
        load_model(folder)


def test_a_damaged_training_state_is_a_clear_error(trained_run, tmp_path):
    from models.checkpoint import load_training_state

    folder = _copy_run(trained_run, tmp_path)
    (folder / "state.pt").write_bytes(b"not a torch file")
    with pytest.raises(ModelError, match="not a plain training state"):
        load_training_state(folder)
    (folder / "last.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelError):
        load_training_state(folder)
