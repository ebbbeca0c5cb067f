"""The networks by kind: their config class and module class (presets: ``models.presets``)."""

from __future__ import annotations

import math
from dataclasses import asdict

import torch
from torch import nn

from models.attention import AttentionClassifier, AttentionConfig
from models.earlier import (
    ConvClassifier,
    ConvConfig,
    DenseClassifier,
    DenseConfig,
    LSTMClassifier,
    LSTMConfig,
)
from models.errors import ModelError
from models.presets import NETWORK_PRESETS

KINDS = {
    "attention": (AttentionConfig, AttentionClassifier, NETWORK_PRESETS["attention"]),
    "dense": (DenseConfig, DenseClassifier, NETWORK_PRESETS["dense"]),
    "conv": (ConvConfig, ConvClassifier, NETWORK_PRESETS["conv"]),
    "lstm": (LSTMConfig, LSTMClassifier, NETWORK_PRESETS["lstm"]),
}


# The parameter budget of one model: 200 M float32 parameters (800 MB). The largest preset
# (dense/article) at the longest window a config allows (dataset.window 10,000) over the widest
# *base* feature set (scaled, 19 columns) has 190,330,931 parameters; composed feature sets
# (scaled+atr+mtf..., up to dozens of columns) can exceed it at long windows, so make_config refuses
# such a model before anything is trained, and every model attnbt trains also loads
# (models.checkpoint applies the same budget to the files it reads).
MAX_PARAMETERS = 200_000_000


def make_config(kind: str, preset: str, n_features: int, window: int):
    """The config of ``kind`` with ``preset`` for windows of ``window`` × ``n_features``;
    a model over ``MAX_PARAMETERS`` is refused (ModelError naming what to make smaller)."""
    if kind not in KINDS:
        raise ValueError(f"unknown model {kind!r}; choose {', '.join(KINDS)}")
    config = KINDS[kind][0].preset_config(preset, n_features, window)
    n = count_parameters(kind, config)
    if n > MAX_PARAMETERS:
        raise ModelError(f"{kind}/{preset} over windows of {window} bars × {n_features} features "
                         f"has {n:,} parameters, over the budget of {MAX_PARAMETERS:,} "
                         f"({4 * MAX_PARAMETERS / 1e9:.1f} GB as float32): make dataset.window "
                         "shorter, dataset.features narrower or model.preset smaller")
    return config


def expected_tensors(kind: str, config) -> dict[str, tuple[int, ...]]:
    """Name → shape of every tensor the model's state holds, from a build on the meta device
    (no memory is allocated; cheap once the depth is bounded)."""
    with torch.device("meta"):
        model = build(kind, config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def count_parameters(kind: str, config) -> int:
    """Numbers in the model's state (parameters and buffers), without building it for real."""
    return sum(math.prod(shape) for shape in expected_tensors(kind, config).values())


def build(kind: str, config) -> nn.Module:
    return KINDS[kind][1](config)


def config_from_dict(kind: str, d: dict):
    if kind not in KINDS:
        raise ValueError(f"unknown model {kind!r} in checkpoint")
    return KINDS[kind][0](**d)


def config_to_dict(config) -> dict:
    return asdict(config)


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
