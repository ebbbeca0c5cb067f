import os
import pickle

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


def test_model_is_rebuilt_from_its_folder_alone(trained_run, eurusd):
    a = Predictor.from_run(trained_run.path).predict_frame(eurusd.iloc[:300])
    b = Predictor.from_run(trained_run.path).predict_frame(eurusd.iloc[:300])
    pd.testing.assert_frame_equal(a, b)
