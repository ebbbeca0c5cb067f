"""The article's earlier networks, trained by the same code as the attention model.

- ``dense`` (Parts 2/7): fully connected on the flattened window; preset ``article`` is
  240-1000-300-90-27-3, preset ``matched`` has about the attention article preset's parameters.
- ``conv`` (Part 3): 1-D convolutions over the bars, max-pooling, then dense.
- ``lstm`` (Part 4): an LSTM over the bars; its last state → dense.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class DenseConfig:
    n_features: int = 12
    window: int = 20
    preset: str = "article"
    hidden: list[int] = field(default_factory=lambda: [1000, 300, 90, 27])
    dropout: float = 0.0
    n_classes: int = 3

    @classmethod
    def preset_config(cls, preset: str, n_features: int, window: int) -> DenseConfig:
        if preset == "article":
            return cls(n_features, window, preset, [1000, 300, 90, 27])
        if preset == "matched":
            return cls(n_features, window, preset, [matched_width(n_features, window), 100, 27])
        raise ValueError(f"unknown dense preset {preset!r}; choose article or matched")


def matched_width(n_features: int, window: int) -> int:
    """First hidden width giving a W×F-[h]-100-27-3 dense net the attention/article preset's
    parameter count for the same inputs (the "same size" comparison)."""
    from models.attention import AttentionClassifier, AttentionConfig

    target = sum(p.numel() for p in AttentionClassifier(
        AttentionConfig.preset_config("article", n_features, window)).parameters())
    tail = 100 + 100 * 27 + 27 + 27 * 3 + 3          # layers after the first hidden one
    per_unit = n_features * window + 1 + 100         # weights in, bias, weights out
    return max(1, round((target - tail) / per_unit))


class DenseClassifier(nn.Module):
    def __init__(self, cfg: DenseConfig) -> None:
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = [nn.Flatten()]
        width = cfg.n_features * cfg.window
        for h in cfg.hidden:
            layers += [nn.Linear(width, h), nn.Tanh()]
            if cfg.dropout:
                layers.append(nn.Dropout(cfg.dropout))
            width = h
        layers.append(nn.Linear(width, cfg.n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass
class ConvConfig:
    n_features: int = 12
    window: int = 20
    preset: str = "article"
    channels: int = 32
    kernel: int = 3
    hidden: int = 200
    n_classes: int = 3

    @classmethod
    def preset_config(cls, preset: str, n_features: int, window: int) -> ConvConfig:
        if preset != "article":
            raise ValueError(f"unknown conv preset {preset!r}; choose article")
        return cls(n_features, window, preset)


class ConvClassifier(nn.Module):
    def __init__(self, cfg: ConvConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c, k = cfg.channels, cfg.kernel
        self.conv = nn.Sequential(
            nn.Conv1d(cfg.n_features, c, k, padding=k // 2), nn.LeakyReLU(0.01), nn.MaxPool1d(2),
            nn.Conv1d(c, c, k, padding=k // 2), nn.LeakyReLU(0.01))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c * (cfg.window // 2), cfg.hidden),
                                  nn.Tanh(), nn.Linear(cfg.hidden, cfg.n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x.transpose(1, 2)))


@dataclass
class LSTMConfig:
    n_features: int = 12
    window: int = 20
    preset: str = "article"
    hidden_size: int = 64
    n_layers: int = 2
    dropout: float = 0.0
    n_classes: int = 3

    @classmethod
    def preset_config(cls, preset: str, n_features: int, window: int) -> LSTMConfig:
        if preset != "article":
            raise ValueError(f"unknown lstm preset {preset!r}; choose article")
        return cls(n_features, window, preset)


class LSTMClassifier(nn.Module):
    def __init__(self, cfg: LSTMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.lstm = nn.LSTM(cfg.n_features, cfg.hidden_size, cfg.n_layers, batch_first=True,
                            dropout=cfg.dropout if cfg.n_layers > 1 else 0.0)
        self.head = nn.Linear(cfg.hidden_size, cfg.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1])
