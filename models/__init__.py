"""PyTorch classifiers (attention + the article's earlier networks), training and checkpoints.

Public surface (imported on first use): ``fit`` (train → ``TrainResult``, writes nothing), the
one reader/writer of model folders (``load_model``, ``read_meta``, ``save_model``,
``model_hash``), ``Predictor``, the network registry (``KINDS``, ``make_config``, ``build``), the
training settings (``TrainConfig``) and the evaluation metrics.
"""

from __future__ import annotations

import importlib

_PUBLIC = {
    "ModelError": "models.errors",
    **dict.fromkeys(("LoadedModel", "ModelMeta", "check_compatible", "load_model",
                     "load_training_state", "model_hash", "model_meta", "read_meta",
                     "save_model", "save_training_state"), "models.checkpoint"),
    **dict.fromkeys(("ARTICLE_FIGURES", "article_metrics", "classification_metrics"),
                    "models.evaluate"),
    **dict.fromkeys(("PROB_COLUMNS", "Predictor"), "models.predict"),
    **dict.fromkeys(("KINDS", "build", "make_config", "n_parameters"), "models.networks"),
    **dict.fromkeys(("TrainResult", "fit", "pick_device"), "models.train"),
    "TrainState": "models.step",
    "TrainConfig": "models.config",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    """Public names are imported on first use, so that a torch-free part (``models.config``)
    can be imported without loading torch."""
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'models' has no attribute {name!r}")
