"""Classification metrics, the article's three metrics, trivial predictors, and the article's figures.

The article's metrics (ARTICLE.md): ``error`` is the root-mean-square error of the 3 outputs
against the one-hot target; ``hit`` the share of emitted buy/sell signals that matched the actual
fractal; ``missed`` the share of actual fractals for which no signal (arg-max "none") was given.
"""

from __future__ import annotations

import math

import numpy as np

from data.labels import BUY, CLASS_NAMES, NONE, SELL

# In-sample figures reported by the MQL5 series (reference/ARTICLE.md); None where not given.
ARTICLE_FIGURES = [
    {"part": 2, "network": "dense 240-1000-300-90-27-3 (SGD)", "epochs": 35,
     "error": 0.78, "hit_pct": 11.22, "missed_pct": 24.65},
    {"part": 7, "network": "dense (Adam), epoch 5", "epochs": 5,
     "error": 0.30, "hit_pct": 48.6, "missed_pct": 72.5},
    {"part": 7, "network": "dense (Adam), later", "epochs": 14,
     "error": 0.30, "hit_pct": 41.1, "missed_pct": 72.5},
    {"part": 8, "network": "attention (2 layers, Adam)", "epochs": 25,
     "error": 0.355, "hit_pct": 22.5, "missed_pct": None},
]


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n: int = 3) -> np.ndarray:
    """Rows: actual class, columns: predicted class."""
    m = np.zeros((n, n), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return m


def classification_metrics(y_true: np.ndarray, probs: np.ndarray) -> dict:
    """Per-class precision/recall/F1, accuracy, macro F1 and the confusion matrix."""
    y_true = np.asarray(y_true, int)
    y_pred = np.asarray(probs).argmax(axis=1)
    cm = confusion(y_true, y_pred)
    per_class = {}
    for c, name in enumerate(CLASS_NAMES):
        tp, predicted, actual = cm[c, c], cm[:, c].sum(), cm[c, :].sum()
        # A class never predicted (or never present) scores 0, as sklearn's zero_division=0.
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": float(precision), "recall": float(recall),
                           "f1": float(f1), "support": int(actual)}
    f1s = [v["f1"] for v in per_class.values()]
    return {"n": int(len(y_true)), "accuracy": float(np.trace(cm) / max(cm.sum(), 1)),
            "macro_f1": float(np.mean(f1s)),
            "per_class": per_class, "confusion": cm.tolist()}


def article_metrics(y_true: np.ndarray, probs: np.ndarray) -> dict:
    """The series' error, hit and missed (percentages for hit and missed)."""
    y_true = np.asarray(y_true, int)
    probs = np.asarray(probs, dtype=np.float64)
    onehot = np.eye(3)[y_true]
    error = float(np.sqrt(np.mean((probs - onehot) ** 2)))
    pred = probs.argmax(axis=1)
    signals = pred != NONE
    fractals = (y_true == BUY) | (y_true == SELL)
    hit = float((pred[signals] == y_true[signals]).mean() * 100) if signals.any() else float("nan")
    missed = float((pred[fractals] == NONE).mean() * 100) if fractals.any() else float("nan")
    return {"error": error, "hit_pct": hit, "missed_pct": missed,
            "signals": int(signals.sum()), "fractals": int(fractals.sum())}


def brier_scores(y_true: np.ndarray, probs: np.ndarray) -> dict:
    """Brier scores against the one-hot labels: ``brier`` the multi-class score (the mean over
    windows of the squared distance summed over the 3 classes: 0 is perfect, 2 the worst; the
    article's ``error`` is sqrt(brier / 3)) and ``brier_none``/``brier_buy``/``brier_sell`` each
    class's one-vs-rest score (the mean of (p_c − 1[y = c])²; they add up to ``brier``).
    NaN without windows."""
    y = np.asarray(y_true, int)
    p = np.asarray(probs, dtype=np.float64)
    if len(y) == 0:
        return {"brier": float("nan"), **{f"brier_{n}": float("nan") for n in CLASS_NAMES}}
    sq = (p - np.eye(3)[y]) ** 2
    per = sq.mean(axis=0)
    return {"brier": float(sq.sum(axis=1).mean()),
            **{f"brier_{n}": float(per[c]) for c, n in enumerate(CLASS_NAMES)}}


RELIABILITY_BINS = 10


def reliability(y_true: np.ndarray, probs: np.ndarray, bins: int = RELIABILITY_BINS) -> dict:
    """The reliability diagram's numbers, one-vs-rest per class: windows binned by the predicted
    probability of the class (``bins`` equal bins of [0, 1], the last one closed), and per bin
    the number of windows, the sum of their predicted probabilities and the number whose label is
    the class. Sums, not means, so that diagrams of several test parts add up
    (``pool_reliability``); ``reliability_rows`` gives the means."""
    y = np.asarray(y_true, int)
    p = np.asarray(probs, dtype=np.float64)
    out = {"bins": int(bins)}
    for c, name in enumerate(CLASS_NAMES):
        idx = np.clip((p[:, c] * bins).astype(int), 0, bins - 1) if len(y) else np.zeros(0, int)
        out[name] = {"count": np.bincount(idx, minlength=bins).tolist(),
                     "pred_sum": np.bincount(idx, weights=p[:, c], minlength=bins).tolist(),
                     "hits": np.bincount(idx, weights=(y == c).astype(float),
                                         minlength=bins).astype(int).tolist()}
    return out


def pool_reliability(parts: list[dict]) -> dict | None:
    """Several ``reliability`` dicts (same bins) added up; None when there are none."""
    parts = [r for r in parts if r]
    if not parts:
        return None
    out = {"bins": parts[0]["bins"]}
    for name in CLASS_NAMES:
        out[name] = {k: np.sum([r[name][k] for r in parts], axis=0).tolist()
                     for k in ("count", "pred_sum", "hits")}
        out[name]["hits"] = [int(h) for h in out[name]["hits"]]
        out[name]["count"] = [int(h) for h in out[name]["count"]]
    return out


def reliability_rows(rel: dict) -> list[dict]:
    """One row per class and non-empty bin: the bin, the windows in it, the mean predicted
    probability and the observed frequency of the class (what the diagram plots)."""
    rows = []
    bins = rel["bins"]
    for name in CLASS_NAMES:
        r = rel[name]
        for i in range(bins):
            n = r["count"][i]
            if n:
                rows.append({"class": name, "bin": f"{i / bins:.1f}–{(i + 1) / bins:.1f}",
                             "windows": int(n), "predicted": r["pred_sum"][i] / n,
                             "observed": r["hits"][i] / n})
    return rows


def class_prior(y: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.asarray(y, int), minlength=3).astype(float)
    return counts / counts.sum()


def trivial_predictions(n: int, prior: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Probabilities of two trivial predictors: always "none", and random draws from the prior."""
    always_none = np.tile([1.0, 0.0, 0.0], (n, 1))
    draws = np.random.default_rng(seed).choice(3, size=n, p=prior)
    return {"always none": always_none, "class-prior random": np.eye(3)[draws]}


def evaluate_predictions(y_true: np.ndarray, probs: np.ndarray, prior: np.ndarray,
                         seed: int = 0, rules: dict[str, np.ndarray] | None = None) -> dict:
    """Model metrics plus the same metrics, on the same bars, for the trivial predictors and
    for the rule baselines given (name → their probabilities on those bars)."""
    out = {"model": {**classification_metrics(y_true, probs), **article_metrics(y_true, probs),
                     **brier_scores(y_true, probs),
                     "reliability": reliability(y_true, probs)}}
    predictors = {**trivial_predictions(len(y_true), prior, seed), **(rules or {})}
    for name, p in predictors.items():
        out[name] = {**classification_metrics(y_true, p), **article_metrics(y_true, p),
                     **brier_scores(y_true, p)}
    return out


def _finite(x) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def versus_rules(name: str, model: dict, rules: dict[str, dict]) -> dict | None:
    """The model's hit rate against the strongest rule baseline's (the highest hit rate of
    ``rules``, name → metrics with ``hit_pct`` and ``missed_pct``), in words: the null a
    trivial rule sets, not chance. None when no rule gave a signal."""
    scored = {k: v for k, v in rules.items() if _finite(v.get("hit_pct"))}
    if not scored:
        return None
    best = max(scored, key=lambda k: scored[k]["hit_pct"])
    base = float(scored[best]["hit_pct"])
    if _finite(model.get("hit_pct")):
        hit = float(model["hit_pct"])
        diff = hit - base
        text = (f"{name} hit {hit:.1f} % vs best rule baseline {best} {base:.1f} % "
                f"({diff:+.1f} pp)")
    else:
        hit = diff = None
        text = f"{name} gave no signals vs best rule baseline {best} {base:.1f} % hit"
    missed, base_missed = model.get("missed_pct"), scored[best].get("missed_pct")
    if _finite(missed) and _finite(base_missed):
        text += f"; missed {missed:.1f} % vs {base_missed:.1f} %"
    return {"model": name, "rule": best, "hit_pct": hit, "rule_hit_pct": base,
            "diff_pp": diff, "missed_pct": missed, "rule_missed_pct": base_missed,
            "text": text}
