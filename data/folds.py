"""Periods and folds as data: the one place where times become bar positions.

A :class:`Fold` is a training, a validation and a test :class:`Period` plus an embargo. It is built
by :func:`plain_split` (one chronological split, test to the end of the data) or
:func:`walk_forward` (rolling or expanding folds, each test part bounded). Its parts are turned into
bar positions by :meth:`Fold.bounds`, and samples are purged by :func:`purge`:

- **purge**: a sample at bar t whose label needs bars up to t + horizon is kept in a part only when
  t + horizon is still inside that part, so no label reaches across a boundary;
- **embargo**: the first ``embargo`` bars of the validation and test parts are left out, so
  features that look back over the boundary (rolling indicators) do not carry training bars'
  information straight into the next part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from data.errors import DataError
from data.validate import to_utc

PARTS = ("train", "val", "test", "all")


@dataclass(frozen=True)
class Period:
    """Bars from ``start`` to ``end`` inclusive; None is open (the data's first/last bar)."""

    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None

    def positions(self, index: pd.DatetimeIndex, what: str = "the period") -> tuple[int, int]:
        """[first, last] bar positions of the period in ``index``; DataError when it holds none."""
        index = pd.DatetimeIndex(index)
        if index.unit != "ns":   # the boundaries are nanosecond-exact
            index = index.as_unit("ns")
        first = int(index.searchsorted(self.start)) if self.start is not None else 0
        last = (int(index.searchsorted(self.end, side="right")) - 1 if self.end is not None
                else len(index) - 1)
        if len(index) == 0 or last < first:
            span = f"{index[0]} → {index[-1]}" if len(index) else "no bars"
            raise DataError(f"{what} ({self.describe()}) holds no bars of this data ({span})",
                            rule="empty period")
        return first, last

    def describe(self) -> str:
        return f"{self.start if self.start is not None else '…'} → " \
               f"{self.end if self.end is not None else '…'}"

    def to_dict(self) -> dict:
        return {"start": self.start.isoformat() if self.start is not None else None,
                "end": self.end.isoformat() if self.end is not None else None}

    @classmethod
    def from_dict(cls, d: dict | None) -> Period:
        d = d or {}
        return cls(to_utc(d["start"]) if d.get("start") else None,
                   to_utc(d["end"]) if d.get("end") else None)

    @classmethod
    def between(cls, start: str | pd.Timestamp | None, end: str | pd.Timestamp | None) -> Period:
        """A period from user-given times (naive times are UTC)."""
        return cls(to_utc(start, "the start time") if start is not None else None,
                   to_utc(end, "the end time") if end is not None else None)


@dataclass(frozen=True)
class Fold:
    """Training, validation and test periods (chronological, non-overlapping) and an embargo."""

    train: Period
    validation: Period
    test: Period
    embargo: int = 0

    @property
    def train_end(self) -> pd.Timestamp:
        return self.train.end

    @property
    def val_end(self) -> pd.Timestamp:
        return self.validation.end

    def period(self, part: str) -> Period:
        if part not in PARTS:
            raise ValueError(f"unknown period {part!r}; choose {', '.join(PARTS)}")
        return {"train": self.train, "val": self.validation, "test": self.test,
                "all": Period()}[part]

    def bounds(self, index: pd.DatetimeIndex, part: str) -> tuple[int, int]:
        """[first, last] bar positions of ``part`` in ``index``, the embargo applied."""
        name = {"val": "the validation period"}.get(part, f"the {part} period")
        first, last = self.period(part).positions(index, name)
        if part in ("val", "test") and self.embargo:
            first += self.embargo
            if first > last:
                raise DataError(f"{name} is shorter than the embargo of {self.embargo} bars",
                                rule="empty period")
        return first, last

    def to_dict(self) -> dict:
        return {"train": self.train.to_dict(), "validation": self.validation.to_dict(),
                "test": self.test.to_dict(), "embargo": self.embargo,
                # the boundaries as the first model.json format wrote them
                "train_end": self.train.end.isoformat(), "val_end": self.validation.end.isoformat()}

    @classmethod
    def from_dict(cls, d: dict) -> Fold:
        """Read either format: periods, or the first format's ``train_end``/``val_end``."""
        if "train" in d:
            return cls(Period.from_dict(d["train"]), Period.from_dict(d["validation"]),
                       Period.from_dict(d["test"]), int(d.get("embargo", 0)))
        return boundaries(to_utc(d["train_end"]), to_utc(d["val_end"]))


def boundaries(train_end: pd.Timestamp, val_end: pd.Timestamp, *, embargo: int = 0) -> Fold:
    """The fold of a plain split: train up to ``train_end``, validation up to ``val_end``, test
    after it to the end of whatever data it is applied to."""
    step = pd.Timedelta(1, "ns")
    return Fold(Period(None, train_end), Period(train_end + step, val_end),
                Period(val_end + step, None), embargo)


def plain_split(index: pd.DatetimeIndex, train: float = 0.6, val: float = 0.2, *,
                train_end: str | pd.Timestamp | None = None,
                val_end: str | pd.Timestamp | None = None, embargo: int = 0) -> Fold:
    """One chronological split by fractions of the bars, or by the two end dates."""
    n = len(index)
    if train_end is not None or val_end is not None:
        if train_end is None or val_end is None:
            raise DataError("give both the training and the validation end, or neither",
                            rule="bad split dates")
        te, ve = to_utc(train_end, "training end"), to_utc(val_end, "validation end")
        if not (n and index[0] <= te < ve < index[-1]):
            span = f"{index[0]} … {index[-1]}" if n else "no bars"
            raise DataError(f"need first bar <= training end {te} < validation end {ve} < last "
                            f"bar ({span})", rule="bad split dates")
        return boundaries(te, ve, embargo=embargo)
    if not (0 < train < 1 and 0 < val < 1 and train + val < 1):
        raise ValueError("split fractions must be in (0, 1) and leave room for a test part")
    i_train, i_val = int(n * train) - 1, int(n * (train + val)) - 1
    if i_train < 1 or i_val <= i_train or i_val >= n - 1:
        raise DataError(f"{n} bars are too few to split {train:.0%}/{val:.0%}/rest",
                        rule="too few bars")
    return boundaries(index[i_train], index[i_val], embargo=embargo)


def walk_forward(index: pd.DatetimeIndex, *, train_bars: int, val_bars: int, test_bars: int,
                 step_bars: int | None = None, expanding: bool = False,
                 embargo: int = 0) -> list[Fold]:
    """Rolling (or expanding) folds: train, validation and test parts of fixed bar counts, the
    whole fold moved forward by ``step_bars`` (default and minimum: ``test_bars``, so test parts
    never overlap). With ``expanding`` every training part starts at the first bar."""
    for name, value, low in (("train_bars", train_bars, 2), ("val_bars", val_bars, 1),
                             ("test_bars", test_bars, 1)):
        if value < low:
            raise ValueError(f"{name} must be at least {low}")
    step = test_bars if step_bars is None else step_bars
    if step < test_bars:
        raise ValueError("step_bars must be at least test_bars (test parts must not overlap)")
    folds = []
    start = 0
    while True:
        t_first = 0 if expanding else start
        t_last = start + train_bars - 1
        v_last = t_last + val_bars
        x_last = v_last + test_bars
        if x_last > len(index) - 1:
            break
        folds.append(Fold(Period(index[t_first], index[t_last]),
                          Period(index[t_last + 1], index[v_last]),
                          Period(index[v_last + 1], index[x_last]), embargo))
        start += step
    if not folds:
        raise DataError(f"{len(index)} bars are too few for one fold of {train_bars} + "
                        f"{val_bars} + {test_bars} bars", rule="too few bars")
    return folds


def purge(ends: np.ndarray, last: int, horizon: int) -> np.ndarray:
    """The sample positions whose label (which needs bars up to t + horizon) stays at or before
    bar ``last``: those whose label reaches across the boundary are dropped."""
    ends = np.asarray(ends)
    return ends[ends + horizon <= last]


__all__ = ["PARTS", "Fold", "Period", "boundaries", "plain_split", "purge", "walk_forward"]
