"""Sample weights by label uniqueness (López de Prado, *Advances in Financial Machine Learning*,
ch. 4): overlapping labels share their information, so a label that overlaps many others counts
for less.

The label of the window ending at bar t reads the bars after t up to its horizon h
(``data.labels.horizon``): its span is bars t+1 … t+h (``3bar``: h = 1, ``5bar``: 2, ``swing:M:H``:
H, ``triple:K_UP:K_DN:H``: H + 1, the entry bar and the H bars after it; ``horizon:H``: H + 1,
the bars held and the exit bar). The concurrency c_u of bar u is the number of the given labels whose span holds u; a label's average uniqueness is the
mean of 1 / c_u over its span (1 when no other label overlaps it, 1/h when h labels end at every
bar). Only the labels passed in are counted: the training part's, so no validation or test label
changes a training weight.
"""

from __future__ import annotations

import numpy as np


def average_uniqueness(ends: np.ndarray, h: int) -> np.ndarray:
    """The average uniqueness (in (0, 1]) of the labels of the samples ending at ``ends`` whose
    spans are bars end+1 … end+h, counting only these labels' concurrency."""
    if h < 1:
        raise ValueError("the label horizon must be at least 1 bar")
    ends = np.asarray(ends, dtype=np.int64)
    if len(ends) == 0:
        return np.empty(0)
    first = int(ends.min()) + 1                      # the first bar any span holds
    delta = np.zeros(int(ends.max()) + h + 2 - first)
    np.add.at(delta, ends + 1 - first, 1.0)          # a span starts
    np.add.at(delta, ends + h + 1 - first, -1.0)     # and ends after bar end+h
    concurrency = np.cumsum(delta)[:-1]
    inverse = np.divide(1.0, concurrency, out=np.zeros_like(concurrency), where=concurrency > 0)
    total = np.r_[0.0, np.cumsum(inverse)]
    return (total[ends + h + 1 - first] - total[ends + 1 - first]) / h


def uniqueness_weights(ends: np.ndarray, h: int) -> np.ndarray:
    """Weights proportional to the average uniqueness, with mean 1 over ``ends``."""
    u = average_uniqueness(ends, h)
    return u / u.mean() if len(u) else u


__all__ = ["average_uniqueness", "uniqueness_weights"]
