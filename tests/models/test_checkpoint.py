import math
import os
import pickle
import re

import pandas as pd
import pytest
import torch

from data import DatasetSpec
from models.checkpoint import check_compatible, load_model, load_state
from models.errors import ModelError
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


@pytest.mark.parametrize("labels", ["swing", "swing:2", "swing:0.5:12", "triple:1:1:24"])
def test_model_json_reads_swing_label_kinds_and_refuses_a_misspelt_one(tmp_path, labels):
    """model.json is read without a trained model: a spec with a swing kind loads as written;
    a kind that is not the rule's one name is a ModelError (no DatasetSpec field was added, so
    older model.json files read as before)."""
    import json

    import numpy as np

    from data import Normaliser
    from models.checkpoint import model_meta, read_meta
    from models.networks import make_config

    spec = DatasetSpec(window=20, features="scaled", labels=labels)
    meta = model_meta(kind="attention", config=make_config("attention", "article", 19, 20),
                      spec=spec, normaliser=Normaliser(np.zeros(19), np.ones(19)), fold=None,
                      extra={})
    assert set(meta["spec"]) == {"window", "features", "labels", "feature_names", "classes"}
    (tmp_path / "model.json").write_text(json.dumps(meta))
    assert read_meta(tmp_path).spec == spec
    meta["spec"]["labels"] = {"swing": "swing:1.0", "swing:2": "swing:2.0",
                              "swing:0.5:12": "swing:0.50:12",
                              "triple:1:1:24": "triple:1.0:1:24"}[labels]
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
    from backtests.scoring import experiment_of

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


# --- the integrity check cannot be switched off (issue 16 §5) ------------------------------------
def _tamper(folder, meta_change=None, weights_change=None, rehash=True):
    """Edit model.json and/or the weights, then (``rehash``) record the hash the edited files
    give, as someone who knows the hashing would: only the content checks can refuse them."""
    import json

    from safetensors.torch import load_file, save_file

    from models.checkpoint import model_hash

    meta = json.loads((folder / "model.json").read_text())
    state = load_file(str(folder / "model.safetensors"))
    if meta_change:
        meta_change(meta)
    if weights_change:
        weights_change(state)
        save_file(state, str(folder / "model.safetensors"))
    if rehash:
        meta["model_hash"] = model_hash(state, meta)
    (folder / "model.json").write_text(json.dumps(meta))


def _first_weight(state):
    return next(k for k in sorted(state) if k.endswith("weight"))


@pytest.mark.parametrize("how", ["deleted", "null", "empty"])
def test_a_model_without_a_hash_is_refused_unless_trusted(trained_run, tmp_path, how):
    folder = _copy_run(trained_run, tmp_path)
    digest = load_model(folder).model_hash
    edit = {"deleted": lambda m: m.pop("model_hash"),
            "null": lambda m: m.__setitem__("model_hash", None),
            "empty": lambda m: m.__setitem__("model_hash", "")}[how]
    _tamper(folder, edit, rehash=False)
    with pytest.raises(ModelError, match="records no model_hash.*`trust_unhashed`"):
        load_model(folder)
    assert load_model(folder, trust_unhashed=True).model_hash == digest


def test_trusting_an_unhashed_model_still_checks_its_contents(trained_run, tmp_path):
    folder = _copy_run(trained_run, tmp_path)

    def edit(meta):
        meta.pop("model_hash")
        meta["normaliser"]["std"][0] = 0.0
    _tamper(folder, edit, rehash=False)
    with pytest.raises(ModelError, match=re.escape("normaliser.std[0]")):
        load_model(folder, trust_unhashed=True)


@pytest.mark.parametrize("field,value", [
    ("std", 0.0), ("std", 1e-300), ("std", -1.0), ("std", float("nan")), ("std", 1e300),
    ("mean", 1e308), ("mean", float("-inf")), ("mean", float("nan")),
])
def test_a_normaliser_that_makes_inputs_infinite_is_refused_despite_a_valid_hash(
        trained_run, tmp_path, field, value):
    folder = _copy_run(trained_run, tmp_path)
    _tamper(folder, lambda m: m["normaliser"][field].__setitem__(3, value))
    name = load_model(trained_run.path).spec.feature_names[3]
    with pytest.raises(ModelError, match=re.escape(f"normaliser.{field}[3] ({name}) is ")):
        load_model(folder)


def _to(dtype):
    def change(state):
        name = _first_weight(state)
        state[name] = state[name].to(dtype)
    return change


def _set(value):
    def change(state):
        state[_first_weight(state)][..., 0] = value
    return change


@pytest.mark.parametrize("change,message", [
    (_to(torch.float16), "is stored as F16"), (_to(torch.int64), "is stored as I64"),
    (_to(torch.bfloat16), "is stored as BF16"), (_to(torch.float64), "is stored as F64"),
    (_set(1e38), "holds a weight of 1e+38"), (_set(-2e6), "holds a weight of 2e+06"),
    (_set(float("nan")), "non-finite weights"), (_set(float("inf")), "non-finite weights"),
])
def test_weights_of_another_type_or_out_of_range_are_refused_despite_a_valid_hash(
        trained_run, tmp_path, change, message):
    from safetensors.torch import load_file

    folder = _copy_run(trained_run, tmp_path)
    _tamper(folder, weights_change=change)
    name = _first_weight(load_file(str(folder / "model.safetensors")))
    with pytest.raises(ModelError) as err:
        load_model(folder)
    assert message in str(err.value) and name in str(err.value), str(err.value)


def test_trained_weights_are_far_inside_the_weight_bound(trained_run):
    """The bound refuses no trained model: the fixture's largest weight (about 1, a LayerNorm
    scale) is six orders of magnitude under MAX_ABS_WEIGHT; this asserts four."""
    from models.checkpoint import MAX_ABS_WEIGHT

    state = load_model(trained_run.path).model.state_dict()
    largest = max(v.abs().max().item() for v in state.values())
    assert largest < MAX_ABS_WEIGHT / 1e4, f"largest trained |weight| {largest:.3g}"


@pytest.mark.parametrize("prior", [[float("nan")] * 3, [0.5, 0.5], [0.5, 0.7, -0.2],
                                   [0.2, 0.2, 0.2], "balanced", [True, False, False]])
def test_a_train_prior_that_is_not_class_shares_is_refused(trained_run, tmp_path, prior):
    folder = _copy_run(trained_run, tmp_path)
    _tamper(folder, lambda m: m.__setitem__("train_prior", prior))
    with pytest.raises(ModelError, match="train_prior must be the 3 classes' shares"):
        load_model(folder)


def _spy_builds(monkeypatch):
    """Record the default device of every model build loading makes (the checkpoint module's own
    and the meta-device shape reading in models.networks)."""
    import models.checkpoint as ckpt
    import models.networks as networks

    devices = []
    real = networks.build

    def build(kind, config):
        devices.append(torch.empty(0).device.type)
        return real(kind, config)
    monkeypatch.setattr(ckpt, "build", build)
    monkeypatch.setattr(networks, "build", build)
    return devices


def test_a_deep_config_is_refused_before_any_model_is_built(trained_run, tmp_path, monkeypatch):
    """n_layers is within the size of any field but a million blocks would take minutes to
    build: the depth is bounded before anything is built, even on the meta device."""
    from models.checkpoint import MAX_LAYERS

    folder = _copy_run(trained_run, tmp_path)
    _tamper(folder, lambda m: m["config"].__setitem__("n_layers", 1_000_000))
    devices = _spy_builds(monkeypatch)
    with pytest.raises(ModelError, match=re.escape(f"config.n_layers must be a whole number in "
                                                   f"1..{MAX_LAYERS}")):
        load_model(folder)
    assert devices == []


def test_a_config_over_the_parameter_budget_is_counted_on_the_meta_device(
        trained_run, tmp_path, monkeypatch):
    from models.checkpoint import MAX_LAYERS

    folder = _copy_run(trained_run, tmp_path)

    def edit(meta):
        meta["config"].update(n_layers=MAX_LAYERS, d_model=100_000, d_ff=100_000)
    _tamper(folder, edit)
    devices = _spy_builds(monkeypatch)
    with pytest.raises(ModelError, match=r"describes [\d,]+ parameters \([\d,.]+ GB as float32"
                                         r"\), over the budget of 200,000,000"):
        load_model(folder)
    assert devices == ["meta"]


def test_the_parameter_budget_fits_the_largest_preset_at_the_longest_window():
    """MAX_PARAMETERS is derived from the largest sensible model: every preset at the longest
    window a config allows, over the widest feature set, fits; the largest nearly fills it."""
    from backtests.config import RANGES
    from data.features import FEATURE_SETS
    from models.checkpoint import MAX_PARAMETERS, expected_tensors
    from models.networks import KINDS, make_config

    window = int(RANGES["dataset.window"][1])
    n_features = max(len(v) for v in FEATURE_SETS.values())
    sizes = {f"{kind}/{preset}": sum(math.prod(s) for s in expected_tensors(
        kind, make_config(kind, preset, n_features, window)).values())
        for kind, (_, _, presets) in KINDS.items() for preset in presets}
    largest = max(sizes.values())
    assert largest <= MAX_PARAMETERS < 1.1 * largest, sizes


def test_a_model_over_the_budget_is_refused_before_training_so_every_trained_model_loads():
    """Composed feature sets are wider than any base set: dense/article over 31 columns
    (scaled+time+mtf) at the longest window would not load, so it is refused when its config is
    made (before training), naming the settings to change; at a shorter window it is made."""
    from backtests.config import RANGES
    from data.dataset import DatasetSpec
    from models.checkpoint import MAX_PARAMETERS
    from models.networks import count_parameters, make_config

    window = int(RANGES["dataset.window"][1])
    n_features = DatasetSpec(features="scaled+time+mtf").n_features
    assert n_features == 31
    with pytest.raises(ModelError, match="dataset.window shorter, dataset.features narrower"):
        make_config("dense", "article", n_features, window)
    config = make_config("dense", "article", n_features, window // 2)
    assert count_parameters("dense", config) <= MAX_PARAMETERS


def test_a_config_that_does_not_match_the_weights_file_is_refused_before_building(
        trained_run, tmp_path, monkeypatch):
    """A rehashed config with wider layers than the file's tensors: the file's header is read
    against the config's shapes (from a meta build) before any weight is read or model built."""
    folder = _copy_run(trained_run, tmp_path)
    _tamper(folder, lambda m: m["config"].__setitem__("d_ff", 4096))
    devices = _spy_builds(monkeypatch)
    with pytest.raises(ModelError, match=r"does not fit its config \(blocks\.0\.ff\.0\.bias is "
                                         r"\[72\], the config makes \[4096\]\)"):
        load_model(folder)
    assert devices == ["meta"]


def test_an_extra_tensor_in_the_weights_file_is_refused(trained_run, tmp_path):
    folder = _copy_run(trained_run, tmp_path)
    _tamper(folder, weights_change=lambda s: s.__setitem__("payload", torch.zeros(1000)))
    with pytest.raises(ModelError, match="does not fit its config .an unknown tensor payload"):
        load_model(folder)


def test_a_model_that_gives_nan_probabilities_is_refused_not_read_as_no_signal(
        trained_run, eurusd):
    predictor = Predictor.from_run(trained_run.path)

    class Broken(torch.nn.Module):
        def forward(self, x):
            return torch.full((len(x), 3), float("nan"))
    predictor.model = Broken()
    with pytest.raises(ModelError, match="gives NaN or inf probabilities"):
        predictor.predict_frame(eurusd.iloc[:300])


def test_a_model_whose_normaliser_could_not_be_loaded_is_not_saved(tmp_path):
    import numpy as np

    from data import Normaliser
    from models.checkpoint import model_meta, save_model
    from models.networks import build, make_config

    spec = DatasetSpec(features="scaled")
    config = make_config("attention", "article", spec.n_features, spec.window)
    std = np.ones(spec.n_features)
    std[2] = 1e-300
    meta = model_meta(kind="attention", config=config, spec=spec,
                      normaliser=Normaliser(np.zeros(spec.n_features), std), fold=None, extra={})
    with pytest.raises(ModelError, match=re.escape("cannot be saved: normaliser.std[2]")):
        save_model(tmp_path, build("attention", config).state_dict(), meta)
    assert list(tmp_path.iterdir()) == []


def _one_error_line(res, text):
    assert res.returncode == 2, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.slow
def test_the_cli_refuses_tampered_models_in_one_line(cli, trained_run, tmp_path):
    """evaluate and backtest through attnbt's entry point (in this process; test_backtest runs
    one refusal through `python -m backtests`): each tampering is one error line, exit 2."""
    runs = tmp_path / "runs"
    prior = _copy_run(trained_run, tmp_path / "prior")
    _tamper(prior, lambda m: m.__setitem__("train_prior", [float("nan")] * 3))
    _one_error_line(cli("evaluate", "--run", str(prior), runs_dir=runs), "train_prior")
    _one_error_line(cli("backtest", "--run", str(prior), "--random-draws", "5",
                        runs_dir=runs), "train_prior")
    deep = _copy_run(trained_run, tmp_path / "deep")
    _tamper(deep, lambda m: m["config"].__setitem__("n_layers", 1_000_000))
    _one_error_line(cli("backtest", "--run", str(deep), "--random-draws", "5",
                        runs_dir=runs), "config.n_layers")
    unhashed = _copy_run(trained_run, tmp_path / "unhashed")
    _tamper(unhashed, lambda m: m.pop("model_hash"), rehash=False)
    _one_error_line(cli("evaluate", "--run", str(unhashed), runs_dir=runs),
                    "--trust-unhashed")
    trusted = cli("evaluate", "--run", str(unhashed), "--trust-unhashed", runs_dir=runs)
    assert trusted.returncode == 0, trusted.stderr
    assert load_model(trained_run.path).model_hash in trusted.stdout


def test_resuming_checks_the_training_weights_as_loading_does(trained_run, tmp_path):
    from safetensors.torch import load_file, save_file

    from models.checkpoint import load_training_state

    folder = _copy_run(trained_run, tmp_path)
    load_training_state(folder)
    state = load_file(str(folder / "last.safetensors"))
    name = _first_weight(state)
    state[name] = state[name].half()
    save_file(state, str(folder / "last.safetensors"))
    with pytest.raises(ModelError, match=re.escape(f"last.safetensors: {name} is stored as F16")):
        load_training_state(folder)
