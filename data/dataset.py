"""Candle-pattern datasets: windows of W bars ending at bar t, labelled with the fractal at t.

The feature matrix is kept once per bar; windows are gathered from it by their end positions,
so a dataset of N windows costs N integers, not N x W x F floats.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from data.errors import DataError
from data.features import canonical_feature_set, compute_features, feature_names
from data.folds import Fold, purge
from data.labels import CLASS_NAMES, fractal_labels, horizon

STD_FLOOR = 1e-12   # a feature whose training std is at or below this is left unscaled (std 1)

@dataclass(frozen=True)
class DatasetSpec:
    """What a model reads: window length, feature set and label kind. The feature set is kept
    in its canonical spelling (``mtf+scaled`` → ``scaled+mtf``), so equal sets have equal ids."""

    window: int = 20
    features: str = "scaled"
    labels: str = "3bar"

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ValueError("window must be at least 2 bars")
        object.__setattr__(self, "features", canonical_feature_set(self.features))
        horizon(self.labels)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return feature_names(self.features)

    def to_dict(self) -> dict:
        return {**asdict(self), "feature_names": list(self.feature_names),
                "classes": list(CLASS_NAMES)}

    @classmethod
    def from_dict(cls, d: dict) -> DatasetSpec:
        return cls(window=int(d["window"]), features=d["features"], labels=d["labels"])


@dataclass
class Normaliser:
    """Per-feature mean and standard deviation, fitted on training bars only."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray) -> Normaliser:
        rows = features[np.isfinite(features).all(axis=1)]
        if len(rows) < 2:
            raise DataError("too few complete training bars to fit the normalisation",
                            rule="too few bars")
        std = rows.std(axis=0)
        return cls(rows.mean(axis=0), np.where(std > STD_FLOOR, std, 1.0))

    def transform(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Normaliser:
        return cls(np.asarray(d["mean"], dtype=np.float64), np.asarray(d["std"], dtype=np.float64))


class CandleDataset:
    """Features and labels of every bar of a candle frame, and the windows over them."""

    def __init__(self, candles: pd.DataFrame, spec: DatasetSpec) -> None:
        self.candles = candles
        self.spec = spec
        self.index = candles.index
        self.raw = compute_features(candles, spec.features).to_numpy()
        self.labels = fractal_labels(candles, spec.labels).to_numpy()
        complete = np.isfinite(self.raw).all(axis=1)
        # A window ending at t is usable when all W of its bars have complete features.
        run = np.convolve(complete.astype(int), np.ones(spec.window, int))[: len(complete)]
        self.window_ok = run == spec.window

    def __len__(self) -> int:
        return len(self.index)

    def ends(self, period: str = "all", fold: Fold | None = None, *,
             labelled: bool = True) -> np.ndarray:
        """Window-end positions in ``period`` of ``fold``; with ``labelled``, only those whose
        label is known and stays inside the period (``data.folds.purge``)."""
        if period == "all":
            first, last = 0, len(self) - 1
        else:
            if fold is None:
                raise ValueError(f"period {period!r} needs a fold")
            first, last = fold.bounds(self.index, period)
        pos = np.arange(first, last + 1)
        pos = pos[self.window_ok[pos]]
        if labelled:
            pos = purge(pos[self.labels[pos] >= 0], last, horizon(self.spec.labels))
        return pos

    def fit_normaliser(self, fold: Fold) -> Normaliser:
        """Mean and deviation of the training part's bars only."""
        first, last = fold.bounds(self.index, "train")
        return Normaliser.fit(self.raw[first:last + 1])

    def matrix(self, normaliser: Normaliser) -> np.ndarray:
        """Normalised per-bar features (float32); warm-up rows are zeros and never in a window."""
        return np.nan_to_num(normaliser.transform(self.raw), nan=0.0)

    def windows(self, matrix: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Gather windows (len(ends), W, F) from a per-bar matrix."""
        offsets = np.arange(-self.spec.window + 1, 1)
        return matrix[np.asarray(ends)[:, None] + offsets]

    def fingerprint(self) -> str:
        return fingerprint(self.candles, self.spec)


def fingerprint(candles: pd.DataFrame, spec: DatasetSpec | None = None) -> str:
    """Short hash of the candles (timestamps and values) and the feature/label spec."""
    h = hashlib.sha256()
    # nanoseconds whatever the index's resolution, so equal candles give equal fingerprints
    h.update(np.ascontiguousarray(candles.index.as_unit("ns").asi8).tobytes())
    cols = [c for c in ("open", "high", "low", "close", "volume", "spread") if c in candles]
    h.update(np.ascontiguousarray(candles[cols].to_numpy(dtype="float64")).tobytes())
    if spec is not None:
        h.update(json.dumps(spec.to_dict(), sort_keys=True).encode())
    return h.hexdigest()[:16]
