"""Several instruments pooled into one training set (``data.pool``).

One calendar plan for every instrument: :func:`calendar` is the union of the instruments' bar
times, the walk-forward folds are cut on it (``data.folds.walk_forward``, bar counts counted on
the calendar) and every instrument turns the same fold *times* into its own bar positions
(``Fold.bounds``). The parts of a fold are disjoint periods of time, so no instrument's
validation or test bar precedes another instrument's training bar; each instrument's labels are
purged at its own last bar of the part and embargoed by its own bars (``CandleDataset.ends``).

:class:`PooledDataset` reads like a :class:`~data.dataset.CandleDataset` (``ends``,
``fit_normaliser``, ``matrix``, ``labels``), so ``models.train.fit`` trains on it unchanged:

- each instrument's features are normalised by a :class:`~data.dataset.Normaliser` fitted on that
  instrument's training part only (:class:`PooledNormaliser`, one per instrument);
- the instruments' per-bar matrices are stacked one after another with ``gap`` empty rows between
  them (no window there is complete, no label known), so a window never holds two instruments'
  bars and overlapping label spans (``train.weighting``) never join across instruments;
- window ends are each instrument's own purged ends, shifted by its offset in the stack.

With one instrument the stack is that instrument's dataset: the same windows, the same matrix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import PurePath

import numpy as np
import pandas as pd

from data.dataset import CandleDataset, DatasetSpec, Normaliser, fingerprint
from data.errors import DataError
from data.folds import Fold
from data.labels import horizon


def calendar(indexes: dict[str, pd.DatetimeIndex] | list[pd.DatetimeIndex]) -> pd.DatetimeIndex:
    """Every time at which some instrument has a bar, sorted (the pooled folds' calendar)."""
    items = list(indexes.values()) if isinstance(indexes, dict) else list(indexes)
    if not items:
        raise DataError("no instrument to pool", rule="empty period")
    out = pd.DatetimeIndex(items[0]).as_unit("ns")
    for ix in items[1:]:
        out = out.union(pd.DatetimeIndex(ix).as_unit("ns"))
    return out.sort_values()


@dataclass
class PooledNormaliser:
    """One :class:`Normaliser` per instrument (its own training part's mean and deviation)."""

    by_source: dict[str, Normaliser]

    def of(self, source: str) -> Normaliser:
        try:
            return self.by_source[source]
        except KeyError:
            raise DataError(f"no normaliser for {source!r}: the model was pooled from "
                            f"{', '.join(self.by_source)}", rule="unknown instrument") from None

    def key_of(self, source: str) -> str | None:
        """The trained instrument ``source`` is: the same source text, else the one trained
        source with the same file name (``EURUSD_H1.csv`` in another folder); None if none."""
        if source in self.by_source:
            return source
        name = PurePath(str(source)).name
        same = [s for s in self.by_source if PurePath(s).name == name]
        return same[0] if len(same) == 1 else None

    def to_dict(self) -> dict:
        return {"pooled": {s: n.to_dict() for s, n in self.by_source.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> PooledNormaliser:
        return cls({s: Normaliser.from_dict(n) for s, n in d["pooled"].items()})


class PooledDataset:
    """Several instruments' datasets stacked for one training (see the module's docstring)."""

    def __init__(self, candles: dict[str, pd.DataFrame], spec: DatasetSpec) -> None:
        if not candles:
            raise DataError("no instrument to pool", rule="empty period")
        self.spec = spec
        self.sources = list(candles)
        self.parts = {s: CandleDataset(c, spec) for s, c in candles.items()}
        self.gap = max(spec.window, horizon(spec.labels) + 1)
        self.offsets, at = {}, 0
        for s in self.sources:
            self.offsets[s] = at
            at += len(self.parts[s]) + self.gap
        self.size = at - self.gap
        self.labels = np.full(self.size, -1, dtype=self.parts[self.sources[0]].labels.dtype)
        for s in self.sources:
            o = self.offsets[s]
            self.labels[o:o + len(self.parts[s])] = self.parts[s].labels

    def __len__(self) -> int:
        return self.size

    def used(self, part: str, fold: Fold) -> list[str]:
        """The instruments holding bars in ``part`` of ``fold`` (an instrument whose data starts
        later or ends earlier takes no part where it has no bars)."""
        out = []
        # validation and test windows only of instruments that also have a training part
        # (an instrument without one has no normaliser)
        names = self.sources if part == "train" else self.used("train", fold)
        for s in names:
            try:
                self.parts[s].ends(part, fold, labelled=False)
            except DataError:
                continue
            out.append(s)
        if not out:
            raise DataError(f"no instrument holds bars in the {part} part of the fold "
                            f"({fold.period(part).describe()})", rule="empty period")
        return out

    def ends(self, period: str = "all", fold: Fold | None = None, *,
             labelled: bool = True) -> np.ndarray:
        """Each instrument's window ends (``CandleDataset.ends``) at its offset in the stack."""
        names = self.sources if period == "all" else self.used(period, fold)
        return np.concatenate([self.parts[s].ends(period, fold, labelled=labelled)
                               + self.offsets[s] for s in names]).astype(np.int64)

    def fit_normaliser(self, fold: Fold) -> PooledNormaliser:
        """Each instrument's normaliser, fitted on its own training bars only."""
        return PooledNormaliser({s: self.parts[s].fit_normaliser(fold)
                                 for s in self.used("train", fold)})

    def matrix(self, normaliser: PooledNormaliser) -> np.ndarray:
        """The stacked normalised matrix (float32); gaps, warm-ups and instruments without a
        training part (never in a training or validation window) are zeros."""
        out = np.zeros((self.size, self.spec.n_features), dtype=np.float32)
        for s in self.sources:
            if s in normaliser.by_source:
                o = self.offsets[s]
                out[o:o + len(self.parts[s])] = self.parts[s].matrix(normaliser.of(s))
        return out

    def fingerprint(self) -> str:
        if len(self.sources) == 1:
            return self.parts[self.sources[0]].fingerprint()
        return pooled_fingerprint({s: p.candles for s, p in self.parts.items()}, self.spec)


def pooled_fingerprint(candles: dict[str, pd.DataFrame], spec: DatasetSpec | None = None) -> str:
    """One hash of every instrument's fingerprint, by source."""
    import hashlib

    fps = {s: fingerprint(c, spec) for s, c in candles.items()}
    return hashlib.sha256(json.dumps(fps, sort_keys=True).encode()).hexdigest()[:16]


__all__ = ["PooledDataset", "PooledNormaliser", "calendar", "pooled_fingerprint"]
