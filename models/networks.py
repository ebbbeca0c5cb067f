"""The networks by kind: their config class and module class (presets: ``models.presets``)."""

from __future__ import annotations

from dataclasses import asdict

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
from models.presets import NETWORK_PRESETS

KINDS = {
    "attention": (AttentionConfig, AttentionClassifier, NETWORK_PRESETS["attention"]),
    "dense": (DenseConfig, DenseClassifier, NETWORK_PRESETS["dense"]),
    "conv": (ConvConfig, ConvClassifier, NETWORK_PRESETS["conv"]),
    "lstm": (LSTMConfig, LSTMClassifier, NETWORK_PRESETS["lstm"]),
}


def make_config(kind: str, preset: str, n_features: int, window: int):
    """The config of ``kind`` with ``preset`` for windows of ``window`` × ``n_features``."""
    if kind not in KINDS:
        raise ValueError(f"unknown model {kind!r}; choose {', '.join(KINDS)}")
    return KINDS[kind][0].preset_config(preset, n_features, window)


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
