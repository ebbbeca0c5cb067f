"""Candles in → validated OHLCV frame → per-bar features, fractal labels, windows."""

from data.dataset import CandleDataset, DatasetSpec, Normaliser, fingerprint
from data.errors import AttnbtError, DataError
from data.features import FEATURE_SETS, compute_features
from data.folds import Fold, Period, plain_split, purge, walk_forward
from data.labels import CLASS_NAMES, fractal_labels, label_summary
from data.sources import load
from data.validate import validate_frame

__all__ = [
    "AttnbtError", "CLASS_NAMES", "FEATURE_SETS", "CandleDataset", "DataError", "DatasetSpec", "Normaliser",
    "Fold", "Period", "compute_features", "fingerprint", "fractal_labels", "label_summary", "load",
    "plain_split", "purge", "validate_frame", "walk_forward",
]
