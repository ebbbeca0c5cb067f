"""Applying a trained model, shared by every study: the experiment's candles, the model's experiment,
a run scored on candles (``Scored``) and the validation bars a train run kept.

A floor below the studies (backtest, walk-forward, sweep, paper, the train/evaluate workflows):
they all read data and models through it, and none of them imports another.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from backtests.config import PERIODS, ConfigError, Experiment
from backtests.store import Registry, Run
from data import load
from data.dataset import CandleDataset
from data.folds import Fold, Period, plain_split
from data.labels import horizon
from data.summary import timeframe
from models.checkpoint import check_compatible, load_model
from models.errors import ModelError
from models.evaluate import class_prior, evaluate_predictions
from models.predict import PROB_COLUMNS, Predictor
from models.rules import BASELINE_RULES, RuleConfig, rule_probs
from models.train import TrainConfig

VALIDATION_FILE = "validation.parquet"


# --- data ----------------------------------------------------------------------------------------
def check_one_source(d) -> None:
    """Refuse ``data.source`` listing several instruments (``data.pool``) where one is read."""
    if d.pool and "," in d.source:
        raise ConfigError(f"data.source {d.source} lists several instruments (data.pool): only "
                          "train and walkforward pool them; give one of them as data.source to apply a "
                          "pooled model")


def load_candles(exp: Experiment) -> pd.DataFrame:
    """The experiment's candles: its source read as configured, cut to data.start … data.end."""
    d = exp.data
    check_one_source(d)
    candles = load(d.source, tz=d.tz, sort=d.sort, point=d.point, dayfirst=d.dayfirst)
    if d.start or d.end:
        first, last = Period.between(d.start, d.end).positions(candles.index, "the data period")
        attrs = dict(candles.attrs)
        candles = candles.iloc[first:last + 1]
        candles.attrs.update(attrs)
    return candles


def make_fold(exp: Experiment, index: pd.DatetimeIndex) -> Fold:
    s = exp.split
    return plain_split(index, s.train, s.val, train_end=s.train_end, val_end=s.val_end,
                       embargo=s.embargo)


def experiment_of(meta: dict) -> Experiment:
    """The experiment a model was trained with (rebuilt from older model.json files too)."""
    if isinstance(meta.get("experiment"), dict):
        return Experiment.from_dict(meta["experiment"], where="model.json")
    train = {k: v for k, v in (meta.get("train") or {}).items()
             if k in TrainConfig.__dataclass_fields__}
    return Experiment.from_dict({
        "data": {"source": meta.get("data") or "sample:EURUSD_H1"},
        "dataset": {k: meta["spec"][k] for k in ("window", "features", "labels")},
        "model": {"kind": meta["kind"], "preset": meta["config"]["preset"]},
        "train": train}, where="model.json")


# --- applying a trained model --------------------------------------------------------------------
@dataclass
class Scored:
    """A model run applied to candles: probabilities for every bar and the period's positions."""

    run: Run
    predictor: Predictor
    candles: pd.DataFrame
    probs: pd.DataFrame
    first: int
    last: int

    @property
    def name(self) -> str:
        return self.predictor.loaded.name

    @property
    def period_candles(self) -> pd.DataFrame:
        return self.candles.iloc[self.first:self.last + 1]

    @property
    def period_probs(self) -> pd.DataFrame:
        return self.probs.iloc[self.first:self.last + 1]

    def labelled(self) -> tuple[np.ndarray, np.ndarray]:
        """(positions, labels) of the period's windows whose label is known from bars inside
        the period (the last ``horizon`` bars are purged, as at every split boundary)."""
        ds = CandleDataset(self.candles, self.predictor.spec)
        h = horizon(self.predictor.spec.labels)
        ends = ds.ends("all")
        ends = ends[(ends >= self.first) & (ends + h <= self.last)]
        return ends, ds.labels[ends]

    def metrics(self, rules=BASELINE_RULES) -> dict:
        """Model, trivial-predictor and rule-baseline metrics (``rules``: presets, keyed by
        ``rule/<preset>``) on the period's labelled windows ({} if none)."""
        ends, y = self.labelled()
        if len(ends) == 0:
            return {}
        prior = np.asarray(self.predictor.loaded.meta.get("train_prior") or class_prior(y))
        labels = self.predictor.spec.labels
        configs = [RuleConfig.preset_config(r) for r in rules]
        rules = {c.name: rule_probs(self.candles, c, labels).to_numpy()[ends] for c in configs}
        return evaluate_predictions(y, self.probs.to_numpy()[ends], prior, seed=0, rules=rules)


def period_positions(index: pd.DatetimeIndex, fold: Fold | None, period: str,
                     start: str | None = None, end: str | None = None) -> tuple[int, int]:
    """Bar positions of a named period of the model's fold, or of ``start`` … ``end``."""
    if start is not None or end is not None:
        return Period.between(start, end).positions(index, "the period")
    if period == "all":
        return 0, len(index) - 1
    if fold is None:
        raise ModelError("this run has no split; use the whole data or give a start and end")
    return fold.bounds(index, period)


def data_for_model(loaded, source: str | None, reading: dict | None = None) -> pd.DataFrame:
    """Candles for applying ``loaded``: ``source`` (or the model's own), read the way the
    model's data was read (timezone, sort, point, day order) unless ``reading`` says otherwise
    (keys of the config's data section, e.g. ``{"tz": "Europe/Athens"}``)."""
    exp = experiment_of(loaded.meta)
    if reading:
        exp = exp.override({f"data.{k}": v for k, v in reading.items() if v is not None})
    d = exp.data
    return load(source or d.source, tz=d.tz, sort=d.sort, point=d.point, dayfirst=d.dayfirst)


def score(ref: str, source: str | None = None, *, period: str = "test",
          start: str | None = None, end: str | None = None,
          runs_dir: str | Path | None = None, candles: pd.DataFrame | None = None,
          device: str = "cpu", reading: dict | None = None,
          trust_unhashed: bool = False) -> Scored:
    """Load a trained run, check it fits the data, and score every bar of the data
    (``trust_unhashed``: accept a model saved before hashes were recorded)."""
    if period not in PERIODS:
        raise ConfigError(f"backtest.period = {period!r}: choose {', '.join(PERIODS)}")
    run = Registry(runs_dir).resolve(ref, kind="train")
    loaded = load_model(run.path, device=device, trust_unhashed=trust_unhashed,
                        instrument=source)      # a pooled model: that instrument's normaliser
    if candles is None:
        candles = data_for_model(loaded, source, reading)
    check_compatible(loaded, timeframe=str(timeframe(candles.index)))
    predictor = Predictor(loaded, device)
    probs = predictor.predict_frame(candles)
    first, last = period_positions(candles.index, loaded.fold, period, start, end)
    return Scored(run, predictor, candles, probs, first, last)


def validation_bars(run: Run) -> pd.DataFrame | None:
    """The validation candles + probabilities a train run kept (None for older runs)."""
    path = run.path / VALIDATION_FILE
    if not path.exists():
        return None
    frame = pd.read_parquet(path)
    missing = [c for c in PROB_COLUMNS if c not in frame]
    if missing:
        raise ModelError(f"{path} is damaged (no {missing[0]} column)")
    return frame


__all__ = ["VALIDATION_FILE", "Scored", "check_one_source", "data_for_model", "experiment_of",
           "load_candles", "make_fold",
           "period_positions", "score", "validation_bars"]
