"""Every model kind and its presets, in one place (no torch: the config and the CLI read it at start-up).

The networks' configs build each preset (``models.networks``); the rule baselines' presets are
``models.rules.PRESETS``; the gradient-boosting baseline's (``models.gbm``) are ``GBM_PRESETS``.
The first preset of a kind is its default.
"""

from __future__ import annotations

from models.rules import KIND as RULE_KIND
from models.rules import PRESETS as RULE_PRESETS

NETWORK_PRESETS: dict[str, tuple[str, ...]] = {
    "attention": ("article", "modern"),
    "dense": ("article", "matched"),
    "conv": ("article",),
    "lstm": ("article",),
}
# scikit-learn's HistGradientBoostingClassifier on the flattened windows (``models.gbm``)
GBM_KIND = "gbm"
GBM_PRESETS: tuple[str, ...] = ("hgb",)
# Its trees (small, regularised), shared with the meta-labelling model (backtests.meta).
TREE_SETTINGS = {"learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 20,
                 "l2_regularization": 1.0}
PRESETS: dict[str, tuple[str, ...]] = {**NETWORK_PRESETS, GBM_KIND: GBM_PRESETS,
                                       RULE_KIND: RULE_PRESETS}

__all__ = ["GBM_KIND", "GBM_PRESETS", "NETWORK_PRESETS", "PRESETS", "TREE_SETTINGS"]
