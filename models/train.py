"""Offline training: chronological split, class-weighted cross-entropy, AdamW, early stopping.

The per-bar feature matrix lives on the device once; each batch gathers its windows by index, so
no window is ever copied host→device. Each epoch re-seeds from (seed, epoch), so a run resumed from
its last checkpoint ends with the same weights as one never interrupted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from data.dataset import CandleDataset, DatasetSpec, Split
from models.checkpoint import (
    ModelError,
    load_model,
    load_state,
    save_state,
    save_weights,
    write_meta,
)
from models.evaluate import article_metrics, class_prior, classification_metrics
from models.registry import build, config_from_dict, make_config, n_parameters
from models.step import WindowBatches, train_step


@dataclass
class TrainConfig:
    epochs: int = 60
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-2
    patience: int = 8
    seed: int = 0
    class_weighting: str = "balanced"   # balanced | none
    device: str = "auto"
    bf16: bool = False                  # autocast to bfloat16 on CUDA
    compile: bool = False               # torch.compile the model (CUDA)
    max_grad_norm: float = 1.0


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ModelError("--device cuda was asked for, but this machine has no CUDA GPU")
    if name not in ("cpu", "cuda"):
        raise ModelError(f"unknown device {name!r}; choose auto, cpu or cuda")
    return torch.device(name)


def class_weights(y: np.ndarray, mode: str) -> torch.Tensor:
    if mode == "none":
        return torch.ones(3)
    prior = class_prior(y)
    w = 1.0 / np.maximum(prior, 1e-6)
    return torch.as_tensor(w / (w * prior).sum(), dtype=torch.float32)  # mean weight 1


def train(candles: pd.DataFrame, spec: DatasetSpec, split: Split, out_dir: Path, **kwargs) -> dict:
    """Train ``kind``/``preset`` on the train part, early-stop on validation; write ``out_dir``.

    Deterministic algorithms are switched on for the run (CPU: bit-identical weights for the same
    seed) and restored afterwards. See ``_train`` for the keyword arguments.
    """
    previous = torch.are_deterministic_algorithms_enabled()
    device = pick_device((kwargs.get("cfg") or TrainConfig()).device)
    torch.use_deterministic_algorithms(device.type == "cpu" or previous)
    try:
        return _train(candles, spec, split, out_dir, **kwargs)
    finally:
        torch.use_deterministic_algorithms(previous)


def _train(candles: pd.DataFrame, spec: DatasetSpec, split: Split, out_dir: Path, *,
          kind: str = "attention", preset: str = "article", cfg: TrainConfig | None = None,
          extra_meta: dict | None = None, resume: bool = False,
          progress: Callable[[dict], None] | None = None) -> dict:
    """The training run behind ``train``; returns the validation metrics of the best epoch."""
    cfg = cfg or TrainConfig()
    device = pick_device(cfg.device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ds = CandleDataset(candles, spec)
    train_ends, val_ends = ds.ends("train", split), ds.ends("val", split)
    if len(train_ends) < cfg.batch_size // 4 or len(val_ends) < 10:
        raise ModelError(f"too few samples to train ({len(train_ends)} train, {len(val_ends)} "
                         "validation windows); give more bars or change the split")
    normaliser = ds.fit_normaliser(split)
    batches = WindowBatches(ds.matrix(normaliser), ds.labels, spec.window, device)
    y_train = ds.labels[train_ends]
    weights = class_weights(y_train, cfg.class_weighting).to(device)

    torch.manual_seed(cfg.seed)
    model_cfg = make_config(kind, preset, spec.n_features, spec.window)
    if resume:
        meta = json.loads((out_dir / "model.json").read_text())
        model_cfg = config_from_dict(kind, meta["config"])
    model = build(kind, model_cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step_model = torch.compile(model) if cfg.compile else model

    meta_extra = {"train": asdict(cfg), "n_parameters": n_parameters(model),
                  "samples": {"train": len(train_ends), "val": len(val_ends)},
                  "train_prior": class_prior(y_train).tolist(),
                  "fingerprint": ds.fingerprint(), **(extra_meta or {})}
    if not resume:
        write_meta(out_dir, kind=kind, config=model_cfg, spec=spec, normaliser=normaliser,
                   split=split, extra=meta_extra)

    start, best, bad, history = 0, float("inf"), 0, []
    if resume:
        state_path = out_dir / "state.pt"
        if not state_path.exists():
            raise ModelError(f"{out_dir} has no training state to resume from")
        state = load_state(state_path)
        model.load_state_dict(load_file(str(out_dir / "last.safetensors")))
        opt.load_state_dict(state["optimizer"])
        start, best, bad = int(state["epoch"]) + 1, float(state["best"]), int(state["bad"])
        history = [dict(zip(state["history_cols"], row, strict=True))
                   for row in state["history"]]
        if bad >= cfg.patience:
            start = cfg.epochs

    train_idx = torch.as_tensor(train_ends, device=device)
    val_idx = torch.as_tensor(val_ends, device=device)
    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        order = train_idx[torch.randperm(len(train_idx), generator=gen).to(device)]
        model.train()
        total, count = torch.zeros((), device=device), 0
        for i in range(0, len(order), cfg.batch_size):
            x, y = batches.get(order[i:i + cfg.batch_size])
            loss = train_step(step_model, opt, x, y, weights, bf16=cfg.bf16,
                              max_grad_norm=cfg.max_grad_norm)
            total += loss * len(y)
            count += len(y)
        val_loss, val_probs = _evaluate(model, batches, val_idx, weights)
        y_val = ds.labels[val_ends]
        art = article_metrics(y_val, val_probs)
        row = {"epoch": epoch, "train_loss": float(total) / count, "val_loss": val_loss,
               "val_accuracy": classification_metrics(y_val, val_probs)["accuracy"],
               "val_error": art["error"], "val_hit_pct": art["hit_pct"],
               "val_missed_pct": art["missed_pct"], "seconds": time.perf_counter() - t0}
        history.append(row)
        if val_loss < best - 1e-6:
            best, bad = val_loss, 0
            save_weights(model, out_dir / "model.safetensors")
        else:
            bad += 1
        save_weights(model, out_dir / "last.safetensors")
        cols = list(row)
        save_state(out_dir / "state.pt", {
            "optimizer": opt.state_dict(), "epoch": epoch, "best": best, "bad": bad,
            "history_cols": cols, "history": [[float(h[c]) for c in cols] for h in history]})
        if progress:
            progress({**row, "best_val_loss": best, "epochs": cfg.epochs})
        if bad >= cfg.patience:
            break

    frame = pd.DataFrame(history)
    frame.to_csv(out_dir / "history.csv", index=False)
    from models.plots import learning_curves_png

    (out_dir / "learning_curves.png").write_bytes(learning_curves_png(frame, f"{kind}/{preset}"))
    best_model = load_model(out_dir, device=str(device)).model
    _, val_probs = _evaluate(best_model, batches, val_idx, weights)
    y_val = ds.labels[val_ends]
    metrics = {**classification_metrics(y_val, val_probs), **article_metrics(y_val, val_probs),
               "best_epoch": int(frame.loc[frame.val_loss.idxmin(), "epoch"]),
               "epochs_run": len(frame), "seconds": float(frame.seconds.sum())}
    (out_dir / "metrics.json").write_text(json.dumps({"validation": metrics}, indent=2))
    return metrics


@torch.no_grad()
def _evaluate(model, batches: WindowBatches, idx: torch.Tensor, weights: torch.Tensor,
              chunk: int = 8192) -> tuple[float, np.ndarray]:
    model.eval()
    losses, probs = [], []
    for i in range(0, len(idx), chunk):
        x, y = batches.get(idx[i:i + chunk])
        logits = model(x).float()
        losses.append(F.cross_entropy(logits, y, weight=weights, reduction="sum")
                      / weights[y].sum() * len(y))
        probs.append(logits.softmax(-1).cpu())
    return float(torch.stack(losses).sum()) / len(idx), torch.cat(probs).numpy()
