"""Saved models: weights in safetensors, everything else in JSON. Loading never unpickles.

This module is the one reader and writer of model folders. A folder holds ``model.safetensors``
(the best weights) and ``model.json`` (kind and config, dataset spec, normalisation statistics,
fold, data fingerprint, versions and the ``model_hash``); while training it also holds
``last.safetensors`` + ``state.pt`` (optimizer state and history, loaded with weights_only=True).

``model_hash`` is a SHA-256 over the weights (names, dtypes, shapes, bytes) and the parts of
model.json that decide what the model computes (kind, config, spec, normaliser, and the
calibration where ``train.calibration`` fitted one); loading checks it,
so a model file changed after it was saved is refused, and so is a model.json without a hash
unless the caller trusts it (``trust_unhashed``: models saved before hashes were recorded).

A valid hash only says the files are unchanged, so loading also checks what they hold, before
anything is built: the config within a depth and parameter budget (counted on the meta device),
the weights file's tensors named, shaped and typed as that config makes them (read from its header
before any tensor is read), float32 weights that are finite and within ``MAX_ABS_WEIGHT``, a
normaliser that maps finite features to finite inputs, a ``train_prior`` of class shares, and a
calibration (if any) of finite monotone maps (``models.calibration.Calibrator.from_dict``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import platform
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from data.atomic import atomic_write
from data.dataset import STD_FLOOR, DatasetSpec, Normaliser
from data.folds import Fold
from data.pool import PooledNormaliser
from models.calibration import Calibrator, calibrator_of
from models.errors import ModelError
from models.networks import (
    KINDS,
    MAX_PARAMETERS,
    build,
    config_from_dict,
    config_to_dict,
    expected_tensors,
)
from models.step import TrainState

WEIGHTS, META, LAST, STATE = "model.safetensors", "model.json", "last.safetensors", "state.pt"
# A file may describe at most models.networks.MAX_PARAMETERS numbers (the budget attnbt trains to).
MAX_SIZE = 1_000_000       # any single size field (width, window ...)
MAX_LAYERS = 64            # depth (config.n_layers, entries of config.hidden); presets use 2-4
MAX_META_BYTES = 50_000_000
# Trained weights are O(1) (3 epochs on the sample: largest 1.03 attention/article, a LayerNorm
# scale; 0.20 dense/article): Adam moves a weight by about lr per step, so 1e6 is out of reach of
# any training, and products of such weights and inputs overflow float32 within a few layers.
MAX_ABS_WEIGHT = 1e6
# The normaliser's mean and std: no feature (price differences, volume / 1000, oscillators) of
# any market comes near 1e15, and Normaliser.fit never leaves a std at or below STD_FLOOR.
MAX_NORM_SCALE = 1e15


@dataclass
class ModelMeta:
    """model.json, read and checked: what the model is and what it was trained on."""

    kind: str
    config: object
    spec: DatasetSpec
    normaliser: Normaliser | PooledNormaliser   # pooled: one per instrument (data.pool)
    fold: Fold | None
    raw: dict
    tensors: dict[str, tuple[int, ...]] = field(default_factory=dict, repr=False)  # name → shape
    calibration: Calibrator | None = None   # train.calibration's map (models.calibration)

    @property
    def preset(self) -> str:
        return getattr(self.config, "preset", "?")

    @property
    def name(self) -> str:
        return f"{self.kind}/{self.preset}"


@dataclass
class LoadedModel:
    model: nn.Module
    meta_info: ModelMeta
    model_hash: str

    @property
    def kind(self) -> str:
        return self.meta_info.kind

    @property
    def config(self):
        return self.meta_info.config

    @property
    def spec(self) -> DatasetSpec:
        return self.meta_info.spec

    @property
    def normaliser(self) -> Normaliser:
        return self.meta_info.normaliser

    @property
    def fold(self) -> Fold | None:
        return self.meta_info.fold

    @property
    def meta(self) -> dict:
        return self.meta_info.raw

    @property
    def name(self) -> str:
        return self.meta_info.name


def versions() -> dict:
    import importlib.metadata as md

    def v(name: str) -> str:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return "not installed"

    return {"attnbt": v("attnbt"), "torch": torch.__version__, "numpy": v("numpy"),
            "pandas": v("pandas"), "python": platform.python_version()}


# --- hashing -------------------------------------------------------------------------------------
def _core(meta: dict) -> dict:
    """What the hash covers besides the weights; the calibration only where there is one, so
    an uncalibrated model's hash is what it was before calibration existed."""
    core = {k: meta[k] for k in ("kind", "config", "spec", "normaliser")}
    if meta.get("calibration") is not None:
        core["calibration"] = meta["calibration"]
    return core


def model_hash(weights: dict[str, torch.Tensor], meta: dict) -> str:
    """16 hex digits identifying the weights and what the model computes."""
    h = hashlib.sha256(json.dumps(_core(meta), sort_keys=True).encode())
    for name in sorted(weights):
        t = weights[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


# --- writing -------------------------------------------------------------------------------------
def model_meta(*, kind: str, config, spec: DatasetSpec, normaliser: Normaliser, fold: Fold | None,
               extra: dict) -> dict:
    return {"kind": kind, "config": config_to_dict(config), "spec": spec.to_dict(),
            "normaliser": normaliser.to_dict(), "split": fold.to_dict() if fold else None,
            "versions": versions(), **extra}


def read_normaliser(d: object, spec: DatasetSpec) -> Normaliser | PooledNormaliser:
    """model.json's normaliser, checked: one, or a pooled model's one per instrument
    (``{"pooled": {source: {mean, std}}}``, each checked, at least one)."""
    if isinstance(d, dict) and "pooled" in d:
        by = d["pooled"]
        if set(d) != {"pooled"} or not isinstance(by, dict) or not by or \
                not all(isinstance(k, str) and k for k in by):
            raise ValueError("normaliser.pooled must map each instrument's source to its "
                             "mean and std")
        pooled = PooledNormaliser.from_dict(d)
        for source, n in pooled.by_source.items():
            try:
                check_normaliser(n, spec)
            except ValueError as exc:
                raise ValueError(f"{exc} (instrument {source})") from None
        return pooled
    if not isinstance(d, dict):
        raise ValueError("normaliser must be an object")
    normaliser = Normaliser.from_dict(d)
    check_normaliser(normaliser, spec)
    return normaliser


def for_instrument(info: ModelMeta, source: str | None) -> ModelMeta:
    """A pooled model (``data.pool``) as applied to ONE instrument: that instrument's own
    normaliser (the same source, or the one trained source with its file name). An instrument
    the model was not trained on is refused: no normaliser was fitted on its training part.
    A single-instrument model is returned as it is."""
    if not isinstance(info.normaliser, PooledNormaliser):
        return info
    trained = ", ".join(info.normaliser.by_source)
    if source is None:
        raise ModelError(f"this model was pooled from several instruments ({trained}); give "
                         "one of them as data.source")
    key = info.normaliser.key_of(source)
    if key is None:
        raise ModelError(f"this model was pooled from {trained}, not {source}: each instrument "
                         f"is normalised by statistics of its own training part, and {source} "
                         "had none; apply it to one of those, or train a model on this one")
    return replace(info, normaliser=info.normaliser.of(key))


def save_model(folder: Path, weights: dict[str, torch.Tensor], meta: dict) -> str:
    """Write model.safetensors and model.json (with its model_hash); returns the hash."""
    folder = Path(folder)
    try:
        read_normaliser(meta["normaliser"], DatasetSpec.from_dict(meta["spec"]))
    except ValueError as exc:
        raise ModelError(f"the model cannot be saved: {exc} (the training data's features "
                         "are out of any market's range)") from None
    digest = model_hash(weights, meta)
    _save_weights(weights, folder / WEIGHTS)
    atomic_write(folder / META, json.dumps({**meta, "model_hash": digest}, indent=2,
                                           default=str).encode())
    return digest


def save_training_state(folder: Path, state) -> None:
    """The per-epoch checkpoint of ``models.step.TrainState`` (last weights + optimizer)."""
    folder = Path(folder)
    _save_weights(state.last_weights, folder / LAST)
    cols = list(state.history[0]) if state.history else []
    payload = {"optimizer": state.optimizer, "epoch": state.epoch, "best": state.best,
               "bad": state.bad, "history_cols": cols,
               "history": [[float(h[c]) for c in cols] for h in state.history]}
    atomic_write(folder / STATE, lambda tmp: torch.save(payload, tmp))


def load_training_state(folder: Path):
    """The TrainState saved by ``save_training_state`` (best weights from model.safetensors)."""
    folder = Path(folder)
    if not (folder / STATE).exists() or not (folder / LAST).exists():
        raise ModelError(f"{folder} has no training state to resume from")
    tensors = read_meta(folder).tensors
    last, best = (_checked_weights(folder / name, tensors) for name in (LAST, WEIGHTS))
    state = load_state(folder / STATE)
    try:
        history = [dict(zip(state["history_cols"], row, strict=True))
                   for row in state["history"]]
        return TrainState(int(state["epoch"]), float(state["best"]), int(state["bad"]), history,
                          last, best, state["optimizer"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{folder / STATE} is damaged ({type(exc).__name__}: {exc})") from None


def _save_weights(weights: dict[str, torch.Tensor], path: Path) -> None:
    state = {k: v.detach().to("cpu").contiguous() for k, v in weights.items()}
    atomic_write(path, lambda tmp: save_file(state, str(tmp)))


# --- reading -------------------------------------------------------------------------------------
def read_meta(folder: str | Path) -> ModelMeta:
    """Read and check model.json: the only place it is parsed. Any damage is a ModelError."""
    path = Path(folder) / META
    if not path.is_file():
        raise ModelError(f"{Path(folder)} holds no saved model ({META} is missing or not a file)")
    try:
        if path.stat().st_size > MAX_META_BYTES:
            raise ModelError(f"{path} is too large to be a model description")
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelError(f"{path} is not readable JSON ({type(exc).__name__})") from None
    if not isinstance(raw, dict):
        raise ModelError(f"{path} is not a model description (expected a JSON object)")
    try:
        kind = raw["kind"]
        if kind not in KINDS:
            raise ValueError(f"unknown model kind {kind!r}")
        config, tensors = _checked_config(kind, raw["config"])
        spec_d = raw["spec"]
        if not isinstance(spec_d, dict):
            raise ValueError("spec must be an object")
        spec = DatasetSpec.from_dict(spec_d)
        if not isinstance(spec.window, int):
            raise ValueError("spec.window must be a whole number")
        normaliser = read_normaliser(raw["normaliser"], spec)
        check_prior(raw.get("train_prior"))
        if (getattr(config, "n_features", spec.n_features) != spec.n_features
                or getattr(config, "window", spec.window) != spec.window):
            raise ValueError("the config's n_features/window do not match the spec")
        fold = Fold.from_dict(raw["split"]) if raw.get("split") else None
        calibration = calibrator_of(raw)
    except ModelError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
        raise ModelError(f"{path} is damaged or from an unknown version "
                         f"({type(exc).__name__}: {exc})") from None
    return ModelMeta(kind, config, spec, normaliser, fold, raw, tensors, calibration)


def check_normaliser(normaliser: Normaliser, spec: DatasetSpec) -> None:
    """A ValueError naming the first mean/std that would not turn finite features into finite
    model inputs (a std at or below STD_FLOOR, negative, or beyond MAX_NORM_SCALE; a mean
    beyond MAX_NORM_SCALE)."""
    names = spec.feature_names
    for part, arr in (("mean", normaliser.mean), ("std", normaliser.std)):
        if arr.shape != (spec.n_features,):
            raise ValueError(f"normaliser {part} must hold {spec.n_features} numbers")
        if part == "mean":
            bad = ~(np.abs(arr) <= MAX_NORM_SCALE)
            rule = f"a finite number within ±{MAX_NORM_SCALE:g}"
        else:
            bad = ~((arr > STD_FLOOR) & (arr <= MAX_NORM_SCALE))
            rule = f"a number over {STD_FLOOR:g} and at most {MAX_NORM_SCALE:g}"
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"normaliser.{part}[{i}] ({names[i]}) is {arr[i]:g}; it must be "
                             f"{rule}")


def check_prior(prior: object) -> None:
    """A ValueError unless ``prior`` (model.json's ``train_prior``) is absent or three class
    shares in [0, 1] that sum to 1."""
    if prior is None:
        return
    if (not isinstance(prior, list) or len(prior) != 3
            or not all(isinstance(p, int | float) and not isinstance(p, bool)
                       and 0 <= p <= 1 for p in prior)
            or abs(sum(prior) - 1) > 1e-6):
        raise ValueError(f"train_prior must be the 3 classes' shares of the training labels "
                         f"(numbers in [0, 1] summing to 1), not {str(prior)[:60]}")


def _checked_config(kind: str, d: object) -> tuple[object, dict[str, tuple[int, ...]]]:
    """The model config, every field type- and range-checked, within a depth and parameter
    budget, and the shapes of the tensors it makes, before anything is allocated."""
    if not isinstance(d, dict):
        raise ValueError("config must be an object")
    cls = KINDS[kind][0]
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown config field {sorted(unknown)[0]!r}")
    for name, value in d.items():
        tp = hints[name]
        if tp is int:
            top = MAX_LAYERS if name == "n_layers" else MAX_SIZE
            if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= top:
                raise ValueError(f"config.{name} must be a whole number in 1..{top:,}")
        elif tp is float:
            if (not isinstance(value, int | float) or isinstance(value, bool)
                    or not math.isfinite(value) or not 0 <= value < 1):
                raise ValueError(f"config.{name} must be a number in [0, 1)")
        elif tp is str:
            if not isinstance(value, str):
                raise ValueError(f"config.{name} must be text")
        elif typing.get_origin(tp) is list:
            if (not isinstance(value, list) or not 0 < len(value) <= MAX_LAYERS
                    or not all(isinstance(v, int) and not isinstance(v, bool)
                               and 0 < v <= MAX_SIZE for v in value)):
                raise ValueError(f"config.{name} must be a list of 1–{MAX_LAYERS} whole numbers "
                                 f"in 1..{MAX_SIZE:,}")
    config = config_from_dict(kind, d)
    if getattr(config, "n_classes", 3) != 3:
        raise ValueError("config.n_classes must be 3")
    heads = getattr(config, "n_heads", 1)
    if getattr(config, "d_model", heads) % heads:
        raise ValueError(f"config.d_model ({config.d_model}) must be a multiple of n_heads "
                         f"({heads})")
    if getattr(config, "preset", None) not in KINDS[kind][2]:
        raise ValueError(f"config.preset must be one of {', '.join(KINDS[kind][2])}")
    tensors = expected_tensors(kind, config)
    n = sum(math.prod(shape) for shape in tensors.values())
    if n > MAX_PARAMETERS:
        raise ValueError(f"the config describes {n:,} parameters ({4 * n / 1e9:,.1f} GB as "
                         f"float32), over the budget of {MAX_PARAMETERS:,} (the most attnbt "
                         "trains)")
    return config, tensors


def _load_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{path} is not a valid safetensors file ({exc})") from None


def _checked_weights(path: Path, expected: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """The weights file's tensors, refused unless its header lists exactly the tensors the config
    makes (names, shapes, float32) before any is read, and each holds finite values within
    ±MAX_ABS_WEIGHT."""
    try:
        with safe_open(str(path), framework="pt") as f:
            header = {k: (f.get_slice(k).get_dtype(), tuple(f.get_slice(k).get_shape()))
                      for k in f.keys()}  # noqa: SIM118 (a safe_open handle is not a dict)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{path} is not a valid safetensors file ({exc})") from None
    missing, extra = sorted(set(expected) - set(header)), sorted(set(header) - set(expected))
    if missing or extra:
        what = f"no tensor {missing[0]}" if missing else f"an unknown tensor {extra[0]}"
        raise ModelError(f"{path} does not fit its config ({what}; the config makes "
                         f"{len(expected)} tensors, the file holds {len(header)})")
    for name in sorted(expected):
        dtype, shape = header[name]
        if shape != expected[name]:
            raise ModelError(f"{path} does not fit its config ({name} is {list(shape)}, the "
                             f"config makes {list(expected[name])})")
        if dtype != "F32":
            raise ModelError(f"{path}: {name} is stored as {dtype}; a model's weights are "
                             "float32 (F32); the file was altered or not written by attnbt")
    state = _load_weights(path)
    for name in sorted(state):
        t = state[name]
        if not torch.isfinite(t).all():
            raise ModelError(f"{path} holds non-finite weights (NaN or inf in {name}); the "
                             "training diverged or the file is damaged")
        if t.numel() and t.abs().max().item() > MAX_ABS_WEIGHT:
            raise ModelError(f"{path}: {name} holds a weight of {t.abs().max().item():.3g}, "
                             f"beyond ±{MAX_ABS_WEIGHT:g} that no training reaches; the file "
                             "was altered or is damaged")
    return state


def load_model(folder: str | Path, *, device: str = "cpu",
               trust_unhashed: bool = False, instrument: str | None = None) -> LoadedModel:
    """Rebuild a model from its folder alone; a clear ModelError for anything amiss.
    A pooled model is loaded for one ``instrument`` (its source; ``for_instrument``): the
    hash covers every instrument's normaliser, the model applies that one's.

    The files must hash to model.json's ``model_hash``. A model.json without one (written before
    attnbt recorded hashes) is refused unless ``trust_unhashed``; its contents are checked
    either way."""
    folder = Path(folder)
    info = read_meta(folder)
    w_path = folder / WEIGHTS
    if not w_path.is_file():
        raise ModelError(f"{folder} holds no weights ({WEIGHTS} is missing)")
    state = _checked_weights(w_path, info.tensors)
    digest = model_hash(state, info.raw)
    saved = info.raw.get("model_hash")
    if saved is None or saved == "":
        if not trust_unhashed:
            raise ModelError(f"{folder / META} records no model_hash, so nothing shows the "
                             "model's files are the ones training wrote; retrain it, or load it with "
                             "`trust_unhashed` if attnbt saved it before it recorded hashes")
    elif saved != digest:
        raise ModelError(f"{folder}: the model's files changed after it was saved (hash "
                         f"{digest} != recorded {saved}); retrain or restore the files")
    model = build(info.kind, info.config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelError(f"{w_path} does not fit its config ({first})") from None
    model.to(device).eval()
    return LoadedModel(model, for_instrument(info, instrument), digest)


def load_state(path: Path) -> dict:
    """Training state (optimizer, epoch, history); weights_only refuses arbitrary objects."""
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # UnpicklingError and friends: never fall back to full unpickling
        raise ModelError(f"{path} is not a plain training state ({type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise ModelError(f"{path} is not a plain training state (not a mapping)")
    return state


def check_compatible(loaded: LoadedModel, *, spec: DatasetSpec | None = None,
                     timeframe: str | None = None) -> None:
    """Refuse data or options that do not match what the model was trained on."""
    if spec is not None and spec != loaded.spec:
        raise ModelError(
            f"the model reads {loaded.spec.window}-bar windows of '{loaded.spec.features}' "
            f"features labelled '{loaded.spec.labels}', not {spec.window}-bar '{spec.features}' "
            f"/ '{spec.labels}'; train a model for that")
    trained_tf = loaded.meta.get("timeframe")
    if timeframe and trained_tf and timeframe != trained_tf:
        raise ModelError(f"the model was trained on {trained_tf} bars, the data has {timeframe} "
                         "bars; resample the data or train a model on this timeframe")


__all__ = ["LoadedModel", "ModelError", "ModelMeta", "check_compatible", "check_normaliser",
           "check_prior", "expected_tensors", "for_instrument", "read_normaliser", "load_model", "load_state", "load_training_state",
           "model_hash", "model_meta", "read_meta", "save_model", "save_training_state",
           "versions"]
