"""Training settings: a plain frozen dataclass (no torch), the ``train`` section of the
experiment config (``backtests.config``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

WEIGHTINGS = ("none", "uniqueness")     # per-sample weights of the training windows


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 60
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-2
    patience: int = 8
    seed: int = 0
    class_weighting: str = "balanced"   # balanced | none
    device: str = "auto"
    bf16: bool = False                  # autocast to bfloat16 on CUDA
    compile: bool = False               # torch.compile the model (CUDA)
    max_grad_norm: float = 1.0
    threads: int = 1                    # torch CPU threads (results depend on it)
    weighting: str = "none"             # none | uniqueness (sample weights, data.uniqueness)
    calibration: str = "none"           # none | isotonic | platt (fitted on validation)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1 or self.threads < 1:
            raise ValueError("epochs, batch_size, patience and threads must be at least 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError("the learning rate must be a positive number")
        if self.class_weighting not in ("balanced", "none"):
            raise ValueError("class_weighting must be 'balanced' or 'none'")
        if self.weighting not in WEIGHTINGS:
            raise ValueError("weighting must be 'none' or 'uniqueness'")
        if self.calibration not in ("none", "isotonic", "platt"):
            raise ValueError("calibration must be 'none', 'isotonic' or 'platt'")


__all__ = ["WEIGHTINGS", "TrainConfig"]
