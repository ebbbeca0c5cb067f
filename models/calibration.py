"""Calibrated probabilities: a map fitted on the validation part, saved with the model.

``train.calibration`` (``none`` | ``isotonic`` | ``platt``) picks the map. It is fitted once, at the
end of training, on the best model's probabilities for the fold's **validation** windows (purged
at the boundary, so no label reads a test bar) and their labels; it never sees a test bar.

The scheme for the three classes is scikit-learn's for multi-class calibration
(``CalibratedClassifierCV``): one-vs-rest, then renormalised. For each class c a monotone map g_c
is fitted on (p_c, 1[y = c]); the calibrated vector is g(p) / sum(g(p)) (all three 0: 1/3 each, as
scikit-learn does). Every class is mapped, so the strategy's arg-max, threshold, margin and Kelly
size all read one consistent calibrated vector.

- ``isotonic``: ``sklearn.isotonic.IsotonicRegression(increasing=True, y_min=0, y_max=1,
  out_of_bounds="clip")``; saved as its knots (``X_thresholds_``, ``y_thresholds_``) and applied
  with ``np.interp``, which is what its ``predict`` computes with ``out_of_bounds="clip"``.
- ``platt``: a logistic map on the log-odds, g(p) = sigmoid(a × logit(p) + b), fitted by
  ``sklearn.linear_model.LogisticRegression`` (no penalty) with Platt's smoothed targets
  (N₊ + 1)/(N₊ + 2) and 1/(N₋ + 2), so a class that never occurs in the validation part still
  gives a finite map; saved as (a, b).

A calibrator is plain numbers (JSON in model.json, never pickled) and is applied with numpy alone,
so loading a model needs no scikit-learn; ``from_dict`` checks every number before use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

METHODS = ("none", "isotonic", "platt")
MAX_KNOTS = 1_000_000          # an isotonic map has at most one knot per validation window
MAX_PLATT = 1e6                # |a|, |b|: a fitted log-odds map is O(1)-O(100)
EPS = 1e-7                     # probabilities are clipped to [EPS, 1 - EPS] before the log-odds


@dataclass(frozen=True)
class Calibrator:
    """One-vs-rest maps for [p_none, p_buy, p_sell] (``params[c]``: the knots ``(x, y)`` of an
    isotonic map, or ``(a, b)`` of a Platt map) and the number of windows they were fitted on."""

    method: str
    params: tuple
    samples: int

    def apply(self, probs: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for rows of [p_none, p_buy, p_sell] (NaN rows stay NaN)."""
        p = np.asarray(probs, dtype=np.float64)
        mapped = np.column_stack([_map(self.method, par, p[:, c])
                                  for c, par in enumerate(self.params)])
        total = mapped.sum(axis=1)
        out = np.full_like(mapped, 1.0 / 3.0)
        pos = total > 0
        out[pos] = mapped[pos] / total[pos, None]
        out[~np.isfinite(p).all(axis=1)] = np.nan
        return out

    def to_dict(self) -> dict:
        if self.method == "isotonic":
            classes = [{"x": list(map(float, x)), "y": list(map(float, y))}
                       for x, y in self.params]
        else:
            classes = [{"a": float(a), "b": float(b)} for a, b in self.params]
        return {"method": self.method, "fitted_on": "validation", "samples": int(self.samples),
                "classes": classes}

    @classmethod
    def from_dict(cls, d: object) -> Calibrator:
        """A calibrator from model.json, every number checked (a ValueError naming the part)."""
        if not isinstance(d, dict):
            raise ValueError("calibration must be an object")
        method, classes, samples = d.get("method"), d.get("classes"), d.get("samples")
        if method not in METHODS[1:]:
            raise ValueError(f"calibration.method must be isotonic or platt, not {method!r}")
        if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
            raise ValueError("calibration.samples must be a whole number of windows (>= 1)")
        if not isinstance(classes, list) or len(classes) != 3:
            raise ValueError("calibration.classes must hold one map per class (3)")
        params = []
        for i, c in enumerate(classes):
            where = f"calibration.classes[{i}]"
            if not isinstance(c, dict):
                raise ValueError(f"{where} must be an object")
            if method == "isotonic":
                x, y = _numbers(c.get("x"), f"{where}.x"), _numbers(c.get("y"), f"{where}.y")
                if len(x) != len(y) or not 1 <= len(x) <= MAX_KNOTS:
                    raise ValueError(f"{where}: x and y must hold the same number of knots "
                                     f"(1 to {MAX_KNOTS:,})")
                for name, v in (("x", x), ("y", y)):
                    if v.min() < 0 or v.max() > 1 or np.any(np.diff(v) < 0):
                        raise ValueError(f"{where}.{name} must be non-decreasing numbers in "
                                         "[0, 1]")
                params.append((x, y))
            else:
                a, b = c.get("a"), c.get("b")
                for name, v in (("a", a), ("b", b)):
                    if (not isinstance(v, int | float) or isinstance(v, bool)
                            or not math.isfinite(v) or abs(v) > MAX_PLATT):
                        raise ValueError(f"{where}.{name} must be a finite number within "
                                         f"±{MAX_PLATT:g}")
                params.append((float(a), float(b)))
        return cls(method, tuple(params), samples)


def _numbers(v: object, where: str) -> np.ndarray:
    if (not isinstance(v, list)
            or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)):
        raise ValueError(f"{where} must be a list of numbers")
    arr = np.asarray(v, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{where} must hold finite numbers")
    return arr


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, EPS, 1 - EPS)
    return np.log(q) - np.log1p(-q)


def _map(method: str, par: tuple, p: np.ndarray) -> np.ndarray:
    if method == "isotonic":
        x, y = par
        return np.interp(p, x, y)
    a, b = par
    return 1.0 / (1.0 + np.exp(-(a * _logit(p) + b)))


def fit_calibrator(probs: np.ndarray, y: np.ndarray, method: str) -> Calibrator | None:
    """Fit ``method``'s one-vs-rest maps on validation ``probs`` (rows of [p_none, p_buy,
    p_sell]) and labels ``y`` (0, 1, 2); None for ``none``. Deterministic: the same inputs give
    the same maps."""
    if method not in METHODS:
        raise ValueError(f"train.calibration = {method!r}; choose {', '.join(METHODS)}")
    if method == "none":
        return None
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y, dtype=int)
    ok = np.isfinite(p).all(axis=1)
    p, y = p[ok], y[ok]
    if len(y) < 2:
        raise ValueError(f"train.calibration = {method}: the validation part holds "
                         f"{len(y)} scored windows, too few to fit a calibration on")
    params = []
    for c in range(3):
        target = (y == c).astype(np.float64)
        params.append(_fit_isotonic(p[:, c], target) if method == "isotonic"
                      else _fit_platt(p[:, c], target))
    return Calibrator(method, tuple(params), int(len(y)))


def _fit_isotonic(p: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(increasing=True, y_min=0.0, y_max=1.0, out_of_bounds="clip")
    iso.fit(p, target)
    return (np.asarray(iso.X_thresholds_, dtype=np.float64),
            np.asarray(iso.y_thresholds_, dtype=np.float64))


def _fit_platt(p: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    from sklearn.linear_model import LogisticRegression

    pos = float(target.sum())
    neg = float(len(target) - pos)
    hi, lo = (pos + 1) / (pos + 2), 1 / (neg + 2)      # Platt (1999): smoothed targets
    soft = np.where(target > 0, hi, lo)
    z = _logit(p)[:, None]
    x = np.vstack([z, z])
    labels = np.concatenate([np.ones(len(z)), np.zeros(len(z))])
    weights = np.concatenate([soft, 1 - soft])
    model = LogisticRegression(C=np.inf, solver="lbfgs", max_iter=1000, tol=1e-10)
    model.fit(x, labels, sample_weight=weights)
    a, b = float(model.coef_[0, 0]), float(model.intercept_[0])
    return float(np.clip(a, -MAX_PLATT, MAX_PLATT)), float(np.clip(b, -MAX_PLATT, MAX_PLATT))


def calibrator_of(meta: dict) -> Calibrator | None:
    """The calibrator a model description (``model.json``, a TrainResult's meta) holds, if any."""
    d = meta.get("calibration") if isinstance(meta, dict) else None
    return None if d is None else Calibrator.from_dict(d)


__all__ = ["METHODS", "Calibrator", "calibrator_of", "fit_calibrator"]
