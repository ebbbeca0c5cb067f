"""Saved models: weights in safetensors, everything else in JSON. Loading never unpickles.

A model folder holds ``model.safetensors`` (the best weights), ``model.json`` (model kind and
config, dataset spec, normalisation statistics, split, data fingerprint, versions), and while
training ``last.safetensors`` + ``state.pt`` (optimizer state, loaded with weights_only=True).
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from data.dataset import DatasetSpec, Normaliser, Split
from data.errors import AttnbtError
from models.registry import build, config_from_dict, config_to_dict

WEIGHTS, META = "model.safetensors", "model.json"


class ModelError(AttnbtError):
    """A saved model that is missing, damaged, or does not fit the data it is given."""


@dataclass
class LoadedModel:
    model: nn.Module
    kind: str
    config: object
    spec: DatasetSpec
    normaliser: Normaliser
    split: Split | None
    meta: dict


def versions() -> dict:
    import importlib.metadata as md

    def v(name: str) -> str:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return "not installed"

    return {"attnbt": v("attnbt"), "torch": torch.__version__, "numpy": v("numpy"),
            "pandas": v("pandas"), "python": platform.python_version()}


def write_meta(folder: Path, *, kind: str, config, spec: DatasetSpec, normaliser: Normaliser,
               split: Split | None, extra: dict) -> dict:
    meta = {"kind": kind, "config": config_to_dict(config), "spec": spec.to_dict(),
            "normaliser": normaliser.to_dict(), "split": split.to_dict() if split else None,
            "versions": versions(), **extra}
    _atomic_write(folder / META, json.dumps(meta, indent=2, default=str))
    return meta


def save_weights(model: nn.Module, path: Path) -> None:
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp))
    os.replace(tmp, path)


def load_model(folder: str | Path, *, weights: str = WEIGHTS, device: str = "cpu") -> LoadedModel:
    """Rebuild a model from its folder alone; a clear ModelError for anything amiss."""
    folder = Path(folder)
    meta_path, w_path = folder / META, folder / weights
    if not meta_path.exists() or not w_path.exists():
        raise ModelError(f"{folder} holds no saved model ({META} and {weights} are needed)")
    try:
        meta = json.loads(meta_path.read_text())
        kind = meta["kind"]
        config = config_from_dict(kind, meta["config"])
        spec = DatasetSpec.from_dict(meta["spec"])
        normaliser = Normaliser.from_dict(meta["normaliser"])
        split = Split.from_dict(meta["split"]) if meta.get("split") else None
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{meta_path} is damaged or from an unknown version ({exc})") from None
    model = build(kind, config)
    try:
        state = load_file(str(w_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{w_path} is not a valid safetensors file ({exc})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelError(f"{w_path} does not fit its config ({first})") from None
    model.to(device).eval()
    return LoadedModel(model, kind, config, spec, normaliser, split, meta)


def save_state(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_state(path: Path) -> dict:
    """Training state (optimizer, epoch, history); weights_only refuses arbitrary objects."""
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # UnpicklingError and friends: never fall back to full unpickling
        raise ModelError(f"{path} is not a plain training state ({type(exc).__name__})") from None


def check_compatible(loaded: LoadedModel, *, spec: DatasetSpec | None = None,
                     timeframe: str | None = None) -> None:
    """Refuse data or options that do not match what the model was trained on."""
    if spec is not None and spec != loaded.spec:
        raise ModelError(
            f"the model reads {loaded.spec.window}-bar windows of '{loaded.spec.features}' "
            f"features labelled '{loaded.spec.labels}', not {spec.window}-bar '{spec.features}' "
            f"/ '{spec.labels}'; train a model for that, or drop the option")
    trained_tf = loaded.meta.get("timeframe")
    if timeframe and trained_tf and timeframe != trained_tf:
        raise ModelError(f"the model was trained on {trained_tf} bars, the data has {timeframe} "
                         "bars; resample the data or train a model on this timeframe")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
