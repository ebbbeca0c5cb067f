"""PyTorch classifiers (attention + the article's earlier networks), training and checkpoints.

Public surface: ``fit`` (train → ``TrainResult``, writes nothing), the one reader/writer of
model folders (``load_model``, ``read_meta``, ``save_model``, ``model_hash``), ``Predictor``,
the network registry (``KINDS``, ``make_config``, ``build``) and the evaluation metrics.
"""

from models.checkpoint import (
    LoadedModel,
    ModelError,
    ModelMeta,
    check_compatible,
    load_model,
    load_training_state,
    model_hash,
    model_meta,
    read_meta,
    save_model,
    save_training_state,
)
from models.evaluate import ARTICLE_FIGURES, article_metrics, classification_metrics
from models.predict import PROB_COLUMNS, Predictor
from models.registry import KINDS, build, make_config, n_parameters
from models.train import TrainConfig, TrainResult, TrainState, fit, pick_device

__all__ = [
    "ARTICLE_FIGURES", "KINDS", "PROB_COLUMNS", "LoadedModel", "ModelError", "ModelMeta",
    "Predictor", "TrainConfig", "TrainResult", "TrainState", "article_metrics", "build",
    "check_compatible", "classification_metrics", "fit", "load_model", "load_training_state",
    "make_config", "model_hash", "model_meta", "n_parameters", "pick_device", "read_meta",
    "save_model", "save_training_state",
]
