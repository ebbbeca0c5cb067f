"""A gradient-boosting baseline: scikit-learn's HistGradientBoostingClassifier on the windows.

``model.kind = gbm`` (preset ``hgb``) sees what the networks see: the window of ``dataset.window``
bars × the per-bar features of ``dataset.features``, normalised with the statistics of the
fold's training bars only (``CandleDataset.fit_normaliser``), flattened to one row per window,
and the same three classes (none / buy / sell). It is a baseline, not a network: the planted-world
diagnosis (docs/research.md) found it ranks an ordered candle pattern far better than the networks
on the same features, so walk-forward and sweeps try it beside them and the deflated Sharpe ratio
charges it like any other model.

Training (``models.train.fit`` with ``kind="gbm"``), mirroring the networks':

- sample weights: the class weights of ``train.class_weighting`` (times the label uniqueness of
  ``train.weighting = uniqueness``), as the networks' weighted cross-entropy;
- early stopping on the fold's **validation** part: boosting iterations are fitted on the
  training windows until ``PATIENCE`` of them bring no lower class-weighted validation
  cross-entropy (at most ``max_iter``; scikit-learn >= 1.7 takes the validation rows as
  ``X_val``, an older one fits all ``max_iter``), the loss of every stage is read
  (``staged_predict_proba``), and the model is refitted with the best number of iterations (the
  first of equals), as the networks keep their best epoch. The test part is never read.
  scikit-learn's default early stopping (a random share of the *training* rows) is never used;
- quantile bins of every column fitted on the training windows (``fit_binner``, unweighted), as
  HistGradientBoosting's own binning would without sample weights;
- deterministic: no row or feature subsampling, ``random_state = train.seed``; the seed
  therefore changes nothing, and walk-forward plans one seed of it, as of a rule baseline (an
  identical series is one trial, not one per seed);
- on the CPU with ``train.threads`` OpenMP threads whatever ``train.device`` says (a walk-forward
  on ``--device cuda`` trains it in its CPU worker, never in a stacked GPU ensemble).

The tree settings are those of the meta-labelling model (``models.presets.TREE_SETTINGS``,
which ``backtests.meta`` reads): small, regularised trees. The fitted model is wrapped as a parameter-free
``torch.nn.Module`` (:class:`GbmClassifier`) whose output is the log of the class probabilities,
so ``models.predict.Predictor`` (batched, one window, incremental) scores it as it scores a
network: ``softmax(log p) = p``. It lives in memory only: ``attnbt train`` refuses it
(``model.kind = gbm`` is not saved to a model folder), walk-forward and sweeps train it per fold.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from models.errors import ModelError
from models.presets import GBM_KIND as KIND
from models.presets import GBM_PRESETS as PRESETS
from models.presets import TREE_SETTINGS

# The most boosting iterations; the validation part picks how many are kept.
MAX_ITER = 300
# Quantile bins per column (HistGradientBoosting's own maximum), fitted on the training rows.
MAX_BINS = 255
# Boosting iterations without a lower validation loss before the fit stops.
PATIENCE = 20
EPS = 1e-12


@dataclass(frozen=True)
class GbmConfig:
    """The gradient-boosting baseline's settings (``preset`` names them)."""

    preset: str = PRESETS[0]
    max_iter: int = MAX_ITER
    learning_rate: float = TREE_SETTINGS["learning_rate"]
    max_leaf_nodes: int = TREE_SETTINGS["max_leaf_nodes"]
    min_samples_leaf: int = TREE_SETTINGS["min_samples_leaf"]
    l2_regularization: float = TREE_SETTINGS["l2_regularization"]

    @classmethod
    def preset_config(cls, preset: str, n_features: int = 0, window: int = 0) -> GbmConfig:
        """The preset's settings (the registry's signature; features and window unused)."""
        if preset not in PRESETS:
            raise ValueError(f"unknown {KIND} preset {preset!r}; choose {', '.join(PRESETS)}")
        return cls(preset)

    @property
    def name(self) -> str:
        return f"{KIND}/{self.preset}"

    def estimator(self, seed: int, max_iter: int | None = None):
        """A fresh, unfitted HistGradientBoostingClassifier of these settings."""
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(
            max_iter=max_iter or self.max_iter, learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes, min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization, early_stopping=False,
            random_state=seed)


def is_gbm(name: str) -> bool:
    """Whether a model name (``gbm/hgb``, ``gbm``) names the gradient-boosting baseline."""
    return isinstance(name, str) and name.split("/", 1)[0] == KIND


def flat_windows(matrix: np.ndarray, ends: np.ndarray, window: int) -> np.ndarray:
    """Windows ending at ``ends`` of a per-bar feature matrix, one flattened row each
    (oldest bar first, as the networks' windows)."""
    ends = np.asarray(ends, dtype=np.int64)
    rows = matrix[ends[:, None] + np.arange(-window + 1, 1)]
    return rows.reshape(len(ends), -1)


def three_class(probs: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """``predict_proba``'s columns (the classes seen in training) placed in none/buy/sell."""
    out = np.zeros((len(probs), 3))
    out[:, np.asarray(classes, dtype=int)] = probs
    return out


def weighted_loss(probs: np.ndarray, y: np.ndarray, class_weights: np.ndarray) -> float:
    """Class-weighted cross-entropy (the networks' validation loss, ``F.cross_entropy`` with
    ``weight``): sum of w_y × −log p_y over sum of w_y."""
    w = class_weights[y]
    return float(-(w * np.log(np.maximum(probs[np.arange(len(y)), y], EPS))).sum() / w.sum())


def fit_binner(x_train: np.ndarray):
    """Unweighted quantile bins of every column, from the training rows only.

    HistGradientBoosting bins its inputs itself, but with sample weights (the class weights)
    scikit-learn 1.9 computes weighted percentiles per column in Python: 44 s for 2,000 windows
    × 380 columns on the 2-core machine. Handing it at most ``MAX_BINS`` distinct values per
    column (a monotone map, so the trees' splits are the same kind) leaves it nothing to do."""
    import warnings

    from sklearn.preprocessing import KBinsDiscretizer

    with warnings.catch_warnings():      # constant columns / merged edges: fewer bins, fine
        warnings.simplefilter("ignore")
        return KBinsDiscretizer(n_bins=MAX_BINS, encode="ordinal", strategy="quantile",
                                subsample=None).fit(x_train)


def fit_trees(config: GbmConfig, x_train: np.ndarray, y_train: np.ndarray,
              w_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
              class_weights: np.ndarray, *, seed: int, threads: int):
    """Fit on the training rows, keep the iteration count with the lowest validation loss.
    Returns (binner, fitted classifier, validation loss per iteration); the binner's and the
    trees' statistics come from the training rows only."""
    from threadpoolctl import threadpool_limits

    if len(np.unique(y_train)) < 2:
        raise ModelError("the training windows hold one class only; the gradient-boosting "
                         "baseline needs at least two (give more bars or change dataset.labels)")
    binner = fit_binner(x_train)
    x_train, x_val = binner.transform(x_train), binner.transform(x_val)
    with threadpool_limits(limits=int(threads), user_api="openmp"):
        clf = config.estimator(seed)
        if "X_val" in inspect.signature(clf.fit).parameters:   # scikit-learn >= 1.7
            # stop once PATIENCE iterations bring no lower validation loss (the fold's
            # validation rows, class-weighted): saves fitting all max_iter trees
            clf.set_params(early_stopping=True, scoring="loss", n_iter_no_change=PATIENCE,
                           tol=0.0)
            clf.fit(x_train, y_train, sample_weight=w_train, X_val=x_val, y_val=y_val,
                    sample_weight_val=class_weights[y_val])
        else:
            clf.fit(x_train, y_train, sample_weight=w_train)
        losses = [weighted_loss(three_class(p, clf.classes_), y_val, class_weights)
                  for p in clf.staged_predict_proba(x_val)]
        best = int(np.argmin(losses)) + 1
        if best < clf.n_iter_:      # the same first `best` trees: nothing in the fit is random
            clf = config.estimator(seed, max_iter=best).fit(x_train, y_train,
                                                            sample_weight=w_train)
    return binner, clf, losses


class GbmClassifier(nn.Module):
    """A fitted HistGradientBoostingClassifier behind a network's interface: windows
    (n, W, F) in, log-probabilities (n, 3) out (``softmax`` gives the probabilities back).
    No parameters; always computed on the CPU with ``threads`` OpenMP threads."""

    def __init__(self, binner, clf, config: GbmConfig, threads: int = 1) -> None:
        super().__init__()
        self.binner = binner
        self.clf = clf
        self.config = config
        self.threads = int(threads)

    def probs(self, flat: np.ndarray) -> np.ndarray:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=self.threads, user_api="openmp"):
            binned = self.binner.transform(flat)
            return three_class(self.clf.predict_proba(binned), self.clf.classes_)

    def forward(self, x: torch.Tensor, return_attention: bool = False) -> torch.Tensor:
        if return_attention:
            raise ModelError(f"a {KIND} model has no attention maps")
        flat = x.detach().to("cpu", torch.float32).reshape(len(x), -1).numpy()
        logp = np.log(np.maximum(self.probs(flat), EPS))
        return torch.as_tensor(logp, dtype=torch.float32).to(x.device)


__all__ = ["KIND", "MAX_ITER", "PRESETS", "TREE_SETTINGS", "GbmClassifier", "GbmConfig",
           "fit_binner", "fit_trees", "flat_windows", "is_gbm", "three_class", "weighted_loss"]
