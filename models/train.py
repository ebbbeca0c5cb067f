"""Offline training: class-weighted cross-entropy, AdamW, early stopping on the validation part.

``fit`` takes candles, a dataset spec and a fold and returns a :class:`TrainResult` (the best
model, its normaliser, the history and validation metrics); it writes nothing. A caller that wants
to survive interruptions passes ``checkpoint``, called after every epoch with a
:class:`TrainState`, and later ``resume=`` that state: each epoch re-seeds from (seed, epoch), so a
resumed training ends with the same weights as one never interrupted.

The per-bar feature matrix lives on the device once; each batch gathers its windows by index, so
no window is ever copied host→device. CPU training runs with ``threads`` torch threads (results
depend on the thread count, so it is part of the config).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from data.dataset import CandleDataset, DatasetSpec, Normaliser
from data.folds import Fold
from data.labels import horizon
from data.pool import PooledDataset
from data.uniqueness import uniqueness_weights
from models.config import TrainConfig
from models.errors import ModelError
from models.evaluate import article_metrics, class_prior, classification_metrics
from models.gbm import KIND as GBM_KIND
from models.networks import build, make_config, n_parameters
from models.rules import KIND as RULE_KIND
from models.rules import RuleConfig, rule_probs
from models.step import (
    TrainState,
    WindowBatches,
    deterministic_algorithms,
    sdpa_guard,
    torch_threads,
    train_step,
)


@dataclass
class TrainResult:
    """A trained model (best validation epoch) and what it was trained from; nothing on disk."""

    model: nn.Module | None
    kind: str
    preset: str
    config: object
    spec: DatasetSpec
    normaliser: Normaliser
    fold: Fold
    train: TrainConfig
    history: pd.DataFrame
    metrics: dict
    meta: dict = field(default_factory=dict)
    state: TrainState | None = None
    resumed_from: int | None = None    # epochs already done before this call (resume)


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ModelError("CUDA was asked for, but this machine has no CUDA GPU")
    if name not in ("cpu", "cuda"):
        raise ModelError(f"unknown device {name!r}; choose auto, cpu or cuda")
    return torch.device(name)


def class_weights(y: np.ndarray, mode: str) -> torch.Tensor:
    if mode == "none":
        return torch.ones(3)
    prior = class_prior(y)
    w = 1.0 / np.maximum(prior, 1e-6)
    return torch.as_tensor(w / (w * prior).sum(), dtype=torch.float32)  # mean weight 1


def bar_weights(ds: CandleDataset, train_ends: np.ndarray, mode: str) -> np.ndarray | None:
    """Per-bar sample weights (float32; the window ending at a bar of ``train_ends`` gets its
    weight, every other bar 0), or None for ``train.weighting = none``.

    ``uniqueness``: the average uniqueness of each training label among the training part's labels
    only (``data.uniqueness``; spans of ``horizon(labels)`` bars), scaled to mean 1 over the
    training windows. It multiplies the class weight (``class_weighting``) of the sample's label;
    the validation loss (early stopping) keeps the class weights alone."""
    if mode == "none":
        return None
    if mode != "uniqueness":
        raise ModelError(f"train.weighting = {mode!r}; choose none or uniqueness")
    out = np.zeros(len(ds), dtype=np.float32)
    out[train_ends] = uniqueness_weights(train_ends, horizon(ds.spec.labels))
    return out


def fit(candles: pd.DataFrame, spec: DatasetSpec, fold: Fold, *, kind: str = "attention",
        preset: str = "article", cfg: TrainConfig | None = None,
        resume: TrainState | None = None, model_config=None,
        checkpoint: Callable[[TrainState, TrainResult], None] | None = None,
        progress: Callable[[dict], None] | None = None) -> TrainResult:
    """Train ``kind``/``preset`` on the fold's training part, early-stopping on its validation
    part; return the best epoch's model. Writes nothing.

    Deterministic algorithms are on for CPU runs (bit-identical weights for the same seed and
    thread count) and the global setting is restored afterwards, as is the thread count.
    """
    cfg = cfg or TrainConfig()
    if kind == RULE_KIND:
        return _fit_rule(candles, spec, fold, preset, cfg)
    if kind == GBM_KIND:      # scikit-learn on the CPU, whatever train.device says
        return _fit_gbm(candles, spec, fold, preset, cfg)
    device = pick_device(cfg.device)
    with deterministic_algorithms(device.type == "cpu", compiled=cfg.compile), \
            torch_threads(cfg.threads), sdpa_guard(device, cfg.batch_size):
        return _fit(candles, spec, fold, kind, preset, cfg, device, resume, model_config,
                    checkpoint, progress)


def _fit(candles, spec, fold, kind, preset, cfg, device, resume, model_config, checkpoint,
         progress) -> TrainResult:
    # several instruments ({source: candles}, ``data.pool``): one model on their pooled windows
    ds = PooledDataset(candles, spec) if isinstance(candles, dict) else CandleDataset(candles, spec)
    train_ends, val_ends = ds.ends("train", fold), ds.ends("val", fold)
    if len(train_ends) < 64 or len(val_ends) < 10:
        raise ModelError(f"too few samples to train ({len(train_ends)} train, {len(val_ends)} "
                         "validation windows); give more bars, change the split or use a "
                         "smaller batch")
    normaliser = ds.fit_normaliser(fold)
    batches = WindowBatches(ds.matrix(normaliser), ds.labels, spec.window, device)
    y_train, y_val = ds.labels[train_ends], ds.labels[val_ends]
    weights = class_weights(y_train, cfg.class_weighting).to(device)
    per_bar = bar_weights(ds, train_ends, cfg.weighting)
    per_bar = None if per_bar is None else torch.as_tensor(per_bar, device=device)

    torch.manual_seed(cfg.seed)
    model_config = model_config or make_config(kind, preset, spec.n_features, spec.window)
    model = build(kind, model_config).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step_model = torch.compile(model) if cfg.compile else model
    meta = {"train": asdict(cfg), "n_parameters": n_parameters(model),
            "samples": {"train": len(train_ends), "val": len(val_ends)},
            "train_prior": class_prior(y_train).tolist(), "fingerprint": ds.fingerprint()}

    start, best, bad, history = 0, float("inf"), 0, []
    best_weights = _copy_weights(model)
    if resume is not None:
        model.load_state_dict(resume.last_weights)
        opt.load_state_dict(resume.optimizer)
        best_weights = {k: v.clone() for k, v in resume.best_weights.items()}
        start, best, bad, history = resume.epoch + 1, resume.best, resume.bad, list(resume.history)
        if bad >= cfg.patience:
            start = cfg.epochs
    resumed_from = start if resume is not None else None

    train_idx = torch.as_tensor(train_ends, device=device)
    val_idx = torch.as_tensor(val_ends, device=device)
    state = resume
    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        order = train_idx[torch.randperm(len(train_idx), generator=gen).to(device)]
        model.train()
        total, count = torch.zeros((), device=device), 0
        for i in range(0, len(order), cfg.batch_size):
            ends = order[i:i + cfg.batch_size]
            x, y = batches.get(ends)
            loss = train_step(step_model, opt, x, y, weights, bf16=cfg.bf16,
                              max_grad_norm=cfg.max_grad_norm,
                              sample_weights=None if per_bar is None else per_bar[ends])
            total += loss * len(y)
            count += len(y)
        train_loss = float(total) / count
        finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
        if not np.isfinite(train_loss) or not finite:
            raise ModelError(f"training diverged at epoch {epoch + 1} (loss is {train_loss}); "
                             "lower the learning rate")
        val_loss, val_probs = validation_loss_and_probs(model, batches, val_idx, weights)
        art = article_metrics(y_val, val_probs)
        row = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss,
               "val_accuracy": classification_metrics(y_val, val_probs)["accuracy"],
               "val_error": art["error"], "val_hit_pct": art["hit_pct"],
               "val_missed_pct": art["missed_pct"], "seconds": time.perf_counter() - t0}
        history.append(row)
        if val_loss < best - 1e-6:
            best, bad = val_loss, 0
            best_weights = _copy_weights(model)
        else:
            bad += 1
        state = TrainState(epoch, best, bad, [dict(h) for h in history], _copy_weights(model),
                           best_weights, opt.state_dict())
        if progress:
            progress({**row, "best_val_loss": best, "epochs": cfg.epochs})
        if checkpoint:
            checkpoint(state, _result(model_config, kind, preset, spec, normaliser, fold, cfg,
                                      history, {}, meta, state, resumed_from, None))
        if bad >= cfg.patience:
            break

    best_model = build(kind, model_config).to(device)
    best_model.load_state_dict(best_weights)
    _, val_probs = validation_loss_and_probs(best_model, batches, val_idx, weights)
    frame = pd.DataFrame(history)
    metrics = {**classification_metrics(y_val, val_probs), **article_metrics(y_val, val_probs),
               "best_epoch": best_epoch(frame),
               "epochs_run": len(frame), "seconds": float(frame.seconds.sum())}
    meta.update(calibration_meta(cfg, val_probs, y_val))
    return _result(model_config, kind, preset, spec, normaliser, fold, cfg, history, metrics,
                   meta, state, resumed_from, best_model.eval())


def calibration_meta(cfg: TrainConfig, val_probs: np.ndarray, y_val: np.ndarray) -> dict:
    """``{"calibration": …}`` for the model's meta when ``cfg.calibration`` asks for one: the
    map fitted on the validation windows' probabilities and labels (``models.calibration``);
    {} otherwise, so an uncalibrated model's description (and hash) is what it always was."""
    from models.calibration import fit_calibrator

    try:
        cal = fit_calibrator(val_probs, y_val, cfg.calibration)
    except ValueError as exc:
        raise ModelError(str(exc)) from None
    return {} if cal is None else {"calibration": cal.to_dict()}


def best_epoch(history: pd.DataFrame) -> int:
    """The epoch (counted from 1, as the progress and ``history.csv`` count them) whose weights
    were kept: the lowest validation loss, the first of equals."""
    return int(history.loc[history.val_loss.idxmin(), "epoch"])


def _fit_rule(candles: pd.DataFrame, spec: DatasetSpec, fold: Fold, preset: str,
              cfg: TrainConfig) -> TrainResult:
    """A rule baseline "trains" as a no-op: nothing is fitted (the normaliser is kept only so
    the result has the shape of every other), its validation metrics are those of the rule
    itself, and ``model`` is None: ``rule_probs`` scores the candles."""
    t0 = time.perf_counter()
    rule = RuleConfig.preset_config(preset)
    ds = CandleDataset(candles, spec)
    train_ends, val_ends = ds.ends("train", fold), ds.ends("val", fold)
    y_train, y_val = ds.labels[train_ends], ds.labels[val_ends]
    val_probs = rule_probs(candles, rule, spec.labels).to_numpy()[val_ends]
    meta = {"train": asdict(cfg), "n_parameters": 0,
            "samples": {"train": len(train_ends), "val": len(val_ends)},
            "train_prior": class_prior(y_train).tolist() if len(y_train) else None,
            "fingerprint": ds.fingerprint()}
    metrics = {**classification_metrics(y_val, val_probs), **article_metrics(y_val, val_probs),
               "best_epoch": None, "epochs_run": 0, "seconds": time.perf_counter() - t0}
    return TrainResult(None, RULE_KIND, preset, rule, spec, ds.fit_normaliser(fold), fold, cfg,
                       pd.DataFrame(), metrics, meta)


def _fit_gbm(candles, spec: DatasetSpec, fold: Fold, preset: str,
             cfg: TrainConfig) -> TrainResult:
    """The gradient-boosting baseline (``models.gbm``): the networks' normalised windows,
    flattened; class (and uniqueness) weights as theirs; the iteration count chosen on the
    validation part as their best epoch is."""
    from models.gbm import GbmClassifier, GbmConfig, fit_trees, flat_windows

    t0 = time.perf_counter()
    ds = PooledDataset(candles, spec) if isinstance(candles, dict) else CandleDataset(candles, spec)
    train_ends, val_ends = ds.ends("train", fold), ds.ends("val", fold)
    if len(train_ends) < 64 or len(val_ends) < 10:
        raise ModelError(f"too few samples to train ({len(train_ends)} train, {len(val_ends)} "
                         "validation windows); give more bars or change the split")
    normaliser = ds.fit_normaliser(fold)         # the training bars' statistics only
    matrix = ds.matrix(normaliser)
    y_train, y_val = ds.labels[train_ends].astype(int), ds.labels[val_ends].astype(int)
    cw = class_weights(y_train, cfg.class_weighting).numpy().astype(float)
    w_train = cw[y_train]
    per_bar = bar_weights(ds, train_ends, cfg.weighting)
    if per_bar is not None:
        w_train = w_train * per_bar[train_ends]
    config = GbmConfig.preset_config(preset)
    binner, clf, losses = fit_trees(config, flat_windows(matrix, train_ends, spec.window), y_train,
                            w_train, flat_windows(matrix, val_ends, spec.window), y_val, cw,
                            seed=cfg.seed, threads=cfg.threads)
    model = GbmClassifier(binner, clf, config, cfg.threads)
    val_probs = model.probs(flat_windows(matrix, val_ends, spec.window))
    seconds = time.perf_counter() - t0
    history = pd.DataFrame({"epoch": np.arange(1, len(losses) + 1), "val_loss": losses})
    meta = {"train": asdict(cfg), "n_parameters": 0, "iterations": int(clf.n_iter_),
            "samples": {"train": len(train_ends), "val": len(val_ends)},
            "train_prior": class_prior(y_train).tolist(), "fingerprint": ds.fingerprint()}
    metrics = {**classification_metrics(y_val, val_probs), **article_metrics(y_val, val_probs),
               "best_epoch": int(clf.n_iter_), "epochs_run": len(losses), "seconds": seconds}
    meta.update(calibration_meta(cfg, val_probs, y_val))
    return TrainResult(model, GBM_KIND, preset, config, spec, normaliser, fold, cfg, history,
                       metrics, meta)


def _result(model_config, kind, preset, spec, normaliser, fold, cfg, history, metrics, meta,
            state, resumed_from, model) -> TrainResult:
    """The typed result; ``model`` is None in the per-epoch checkpoint calls (the state holds
    the weights)."""
    return TrainResult(model, kind, preset, model_config, spec, normaliser, fold, cfg,
                       pd.DataFrame(history), metrics, dict(meta), state, resumed_from)


def _copy_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").clone().contiguous() for k, v in model.state_dict().items()}


@torch.no_grad()
def validation_loss_and_probs(model, batches: WindowBatches, idx: torch.Tensor,
                              weights: torch.Tensor, chunk: int = 8192) -> tuple[float, np.ndarray]:
    model.eval()
    losses, probs = [], []
    for i in range(0, len(idx), chunk):
        x, y = batches.get(idx[i:i + chunk])
        logits = model(x).float()
        losses.append(F.cross_entropy(logits, y, weight=weights, reduction="sum")
                      / weights[y].sum() * len(y))
        probs.append(logits.softmax(-1).cpu())
    return float(torch.stack(losses).sum()) / len(idx), torch.cat(probs).numpy()


__all__ = ["TrainConfig", "TrainResult", "bar_weights", "best_epoch", "calibration_meta", "class_weights", "fit", "pick_device", "validation_loss_and_probs"]
