"""The steps users run, without printing: train a run, evaluate it, predict with it.

Each step writes into a run folder and the registry (``backtests.runs``); the CLI only prints.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from backtests.runs import Run, new_run, resolve
from backtests.summary import timeframe
from data import AttnbtError, DataError, DatasetSpec, Split, load
from data.dataset import CandleDataset
from data.labels import horizon
from data.validate import to_utc
from models.checkpoint import ModelError, check_compatible, load_model
from models.evaluate import ARTICLE_FIGURES, class_prior, evaluate_predictions
from models.predict import Predictor
from models.registry import make_config
from models.train import TrainConfig, train


def load_source(source: str, tz: str = "UTC", sort: bool = False) -> pd.DataFrame:
    return load(source, tz=tz, sort=sort)


def make_split(index: pd.DatetimeIndex, *, train: float = 0.6, val: float = 0.2,
               train_end: str | None = None, val_end: str | None = None) -> Split:
    if (train_end is None) != (val_end is None):
        raise DataError("give both --train-end and --val-end, or neither", rule="bad split dates")
    if train_end is not None:
        return Split.by_dates(index, train_end, val_end)
    return Split.by_fraction(index, train, val)


def train_run(source: str, *, kind: str = "attention", preset: str = "article",
              spec: DatasetSpec | None = None, split_args: dict | None = None,
              cfg: TrainConfig | None = None, runs_dir: str | Path | None = None,
              progress: Callable[[dict], None] | None = None,
              candles: pd.DataFrame | None = None, start: str | None = None,
              end: str | None = None) -> tuple[Run, dict]:
    """Train one model on ``source`` (its bars from ``start`` to ``end`` when given, then split
    chronologically); returns the run and its validation metrics."""
    spec = spec or DatasetSpec()
    cfg = cfg or TrainConfig()
    try:
        make_config(kind, preset, spec.n_features, spec.window)
    except ValueError as exc:
        raise ModelError(str(exc)) from None
    candles = load_source(source) if candles is None else candles
    if start or end:
        first, last = period_bounds(candles.index, None, "all", start, end)
        candles = candles.iloc[first:last + 1]
    split = make_split(candles.index, **(split_args or {}))
    run = new_run("train", root=runs_dir, model=f"{kind}/{preset}", data=source,
                  meta={"spec": spec.to_dict(), "split": split.to_dict(), "seed": cfg.seed,
                        "from": str(candles.index[0]), "to": str(candles.index[-1])})
    tf = timeframe(candles.index)
    try:
        metrics = train(candles, spec, split, run.path, kind=kind, preset=preset, cfg=cfg,
                        extra_meta={"data": source, "timeframe": str(tf), "run_id": run.id},
                        progress=progress)
    except AttnbtError:
        run.discard()  # bad input: leave nothing behind
        raise
    except BaseException:
        run.finish({"note": "interrupted or failed; resume with attnbt train --resume"},
                   status="failed")
        raise
    run.finish(_brief(metrics))
    return run, metrics


def resume_run(ref: str, *, runs_dir: str | Path | None = None,
               progress: Callable[[dict], None] | None = None) -> tuple[Run, dict]:
    """Continue an interrupted training from its last checkpoint."""
    run = resolve(ref, root=runs_dir, kind="train")
    meta = json.loads((run.path / "model.json").read_text())
    candles = load_source(meta["data"])
    bounds = json.loads((run.path / "run.json").read_text())
    if bounds.get("from"):
        first, last = period_bounds(candles.index, None, "all", bounds["from"], bounds["to"])
        candles = candles.iloc[first:last + 1]
    spec, split = DatasetSpec.from_dict(meta["spec"]), Split.from_dict(meta["split"])
    cfg = TrainConfig(**meta["train"])
    kind, preset = meta["kind"], meta["config"]["preset"]
    metrics = train(candles, spec, split, run.path, kind=kind, preset=preset, cfg=cfg,
                    resume=True, progress=progress)
    run.finish(_brief(metrics))
    return run, metrics


def _brief(metrics: dict) -> dict:
    keys = ("accuracy", "macro_f1", "error", "hit_pct", "missed_pct", "best_epoch", "epochs_run",
            "seconds")
    return {f"val_{k}" if k not in ("best_epoch", "epochs_run", "seconds") else k: metrics[k]
            for k in keys}


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

    def metrics(self) -> dict:
        """Model and trivial-predictor metrics on the period's labelled windows ({} if none)."""
        ends, y = self.labelled()
        if len(ends) == 0:
            return {}
        prior = np.asarray(self.predictor.loaded.meta.get("train_prior") or class_prior(y))
        return evaluate_predictions(y, self.probs.to_numpy()[ends], prior, seed=0)


def score(ref: str, source: str | None = None, *, period: str = "test",
          start: str | None = None, end: str | None = None,
          runs_dir: str | Path | None = None, candles: pd.DataFrame | None = None,
          device: str = "cpu") -> Scored:
    """Load a trained run, check it fits the data, and score every bar of the data.

    ``period`` (train | val | test | all) uses the run's split; ``start``/``end`` override it.
    """
    run = resolve(ref, root=runs_dir, kind="train")
    loaded = load_model(run.path, device=device)
    source = source or loaded.meta.get("data")
    if candles is None:
        candles = load_source(source)
    check_compatible(loaded, timeframe=str(timeframe(candles.index)))
    predictor = Predictor(loaded, device)
    probs = predictor.predict_frame(candles)
    first, last = period_bounds(candles.index, loaded.split, period, start, end)
    return Scored(run, predictor, candles, probs, first, last)


def period_bounds(index: pd.DatetimeIndex, split: Split | None, period: str,
                  start: str | None = None, end: str | None = None) -> tuple[int, int]:
    if start or end:
        lo = index.searchsorted(to_utc(start, "--from")) if start else 0
        hi = index.searchsorted(to_utc(end, "--to"), side="right") - 1 if end else len(index) - 1
        first, last = int(lo), int(hi)
    elif period == "all":
        first, last = 0, len(index) - 1
    else:
        if split is None:
            raise ModelError("this run has no split; use --period all or --from/--to")
        first, last = split.period_bounds(index, period)
    if last < first:
        what = f"{start or '…'} → {end or '…'}" if (start or end) else f"the {period} period"
        raise DataError(f"{what} holds no bars of this data ({index[0]} → {index[-1]})",
                        rule="empty period")
    return first, last


def evaluate_run(ref: str, source: str | None = None, *, period: str = "test",
                 start: str | None = None, end: str | None = None,
                 runs_dir: str | Path | None = None, candles: pd.DataFrame | None = None) -> dict:
    """Out-of-sample metrics of a run, trivial predictors, and the article's figures."""
    scored = score(ref, source, period=period, start=start, end=end, runs_dir=runs_dir,
                   candles=candles)
    ends, _ = scored.labelled()
    if len(ends) == 0:
        raise DataError("the period holds no labelled windows to evaluate", rule="empty period")
    result = scored.metrics()
    return {"run": scored.run.id, "model": scored.predictor.loaded.meta["config"],
            "kind": scored.predictor.loaded.kind, "period": period,
            "start": str(scored.candles.index[ends[0]]), "end": str(scored.candles.index[ends[-1]]),
            "samples": int(len(ends)), "results": result, "article": ARTICLE_FIGURES}


def predict_run(ref: str, source: str | None, out: Path, *,
                runs_dir: str | Path | None = None) -> tuple[Path, pd.DataFrame]:
    """Write per-bar probabilities to CSV or Parquet (by the file suffix)."""
    scored = score(ref, source, period="all", runs_dir=runs_dir)
    if out.suffix not in (".csv", ".parquet"):
        raise DataError("the output must end in .csv or .parquet", source=str(out),
                        rule="bad output")
    if out.exists():
        raise DataError("exists already; choose a new file name (nothing is overwritten)",
                        source=str(out), rule="bad output")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".csv":
        scored.probs.to_csv(out, index_label="time")
    else:
        scored.probs.to_parquet(out)
    return out, scored.probs



def attention_plot(ref: str, source: str | None, at: str | None, out: Path | None, *,
                   runs_dir: str | Path | None = None) -> Path:
    """PNG of the attention maps for the window ending at bar ``at`` (default: the last bar)."""
    from models.plots import attention_png

    run = resolve(ref, root=runs_dir, kind="train")
    predictor = Predictor.from_run(run.path)
    candles = load_source(source or predictor.loaded.meta.get("data"))
    if at is None:
        pos = len(candles) - 1
    else:
        ts = to_utc(at, "--at")
        pos = int(candles.index.searchsorted(ts, side="right")) - 1
        if pos < 0 or candles.index[pos] != ts:
            raise DataError(f"no bar at {ts} in this data ({candles.index[0]} → "
                            f"{candles.index[-1]})", rule="unknown bar")
    probs, maps = predictor.attention_at(candles, pos)
    w = predictor.spec.window
    png = attention_png(candles.iloc[pos - w + 1:pos + 1], maps,
                        f"{run.id} at {candles.index[pos]}", probs)
    out = out or run.path / f"attention-{candles.index[pos]:%Y%m%d-%H%M}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png)
    return out
