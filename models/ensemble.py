"""Train many models of one kind together: a vmapped ensemble (one member per seed × fold).

Each member is exactly what ``models.train.fit`` would train alone with the same seed, fold and
batches: the same initial weights (``torch.manual_seed(seed)`` before building), the same data
order each epoch (``randperm`` seeded by ``seed * 100_003 + epoch``), class-weighted cross-entropy
(times the sample weights of ``train.weighting``, from each member's own training part),
gradient clipping per member, AdamW (PyTorch's update, written out so it vmaps), and early
stopping per member on its own validation part. The members' parameters are stacked
(``torch.func.stack_module_state``) and one ``vmap(grad_and_value(functional_call))`` step updates
all of them, so a GPU runs one large kernel instead of many small ones.

Members differ in their training-part length: each batch is padded to ``batch_size`` with masked
samples (the loss is the weighted mean over the real ones, as in ``fit``), and a member whose epoch
has no batch left, or that has early-stopped, is not updated.

Not vmapped (trained one by one with ``fit``): ``lstm`` (cuDNN's LSTM has no batching rule) and
models with dropout (``attention/modern``: its dropout masks cannot follow ``fit``'s random stream).
On CUDA, very large stacked batches run attention through the memory-efficient or math SDPA kernels
(cuDNN's SDPA failed at a batch of 65,536 on an H100).
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

from data.dataset import CandleDataset, DatasetSpec
from data.folds import Fold
from models.errors import ModelError
from models.evaluate import article_metrics, class_prior, classification_metrics
from models.networks import build, make_config, n_parameters
from models.step import LARGE_SDPA_BATCH, WindowBatches, deterministic_algorithms, sdpa_guard
from models.train import (
    TrainConfig,
    TrainResult,
    bar_weights,
    best_epoch,
    calibration_meta,
    class_weights,
    fit,
    pick_device,
    validation_loss_and_probs,
)

BETAS, EPS = (0.9, 0.999), 1e-8      # torch.optim.AdamW defaults, as fit uses


def vmappable(kind: str, config) -> bool:
    """Whether members of this model can be stacked (no LSTM, no dropout)."""
    return kind != "lstm" and not getattr(config, "dropout", 0.0)


def train_ensemble(candles: pd.DataFrame, spec: DatasetSpec, folds: list[Fold], *,
                   kind: str, preset: str, cfgs: list[TrainConfig],
                   model_config=None) -> list[TrainResult]:
    """One TrainResult per (fold, cfg) member, as ``fit`` would return each alone."""
    if len(folds) != len(cfgs) or not folds:
        raise ValueError("give one training config per fold (at least one)")
    given = model_config
    model_config = model_config or make_config(kind, preset, spec.n_features, spec.window)
    shared = {k: v for k, v in asdict(cfgs[0]).items() if k != "seed"}
    if any({k: v for k, v in asdict(c).items() if k != "seed"} != shared for c in cfgs):
        raise ValueError("ensemble members may differ only in their seed")
    if not vmappable(kind, model_config) or len(folds) == 1:
        out = []
        for f, c in zip(folds, cfgs, strict=True):
            with sdpa_guard(pick_device(c.device), c.batch_size):
                out.append(fit(candles, spec, f, kind=kind, preset=preset, cfg=c,
                               model_config=given))
        return out
    device = pick_device(cfgs[0].device)
    with deterministic_algorithms(device.type == "cpu"):
        return _train(candles, spec, folds, kind, preset, cfgs, given, device)


def _train(candles, spec, folds, kind, preset, cfgs, model_config, device) -> list[TrainResult]:
    cfg0 = cfgs[0]
    M, bs = len(folds), cfg0.batch_size
    ds = CandleDataset(candles, spec)
    train_ends = [ds.ends("train", f) for f in folds]
    val_ends = [ds.ends("val", f) for f in folds]
    for tr, va in zip(train_ends, val_ends, strict=True):
        if len(tr) < max(bs // 4, 10) or len(va) < 10:
            raise ModelError(f"too few samples to train ({len(tr)} train, {len(va)} validation "
                             "windows); give more bars, change the split or use a smaller batch")
    normalisers = [ds.fit_normaliser(f) for f in folds]
    matrices = torch.stack([torch.as_tensor(ds.matrix(n)) for n in normalisers]).to(device)
    labels = torch.as_tensor(np.asarray(ds.labels).astype(np.int64), device=device)
    offsets = torch.arange(-spec.window + 1, 1, device=device)
    weights = torch.stack([class_weights(ds.labels[t], c.class_weighting)
                           for t, c in zip(train_ends, cfgs, strict=True)]).to(device)
    # per-bar sample weights of each member's training part (train.weighting; ones for none:
    # multiplying by 1.0 changes no bit of the loss)
    per_bar = torch.stack([torch.as_tensor(
        w if (w := bar_weights(ds, t, c.weighting)) is not None
        else np.ones(len(ds), dtype=np.float32))
        for t, c in zip(train_ends, cfgs, strict=True)]).to(device)

    models = []
    given = model_config
    for c in cfgs:
        torch.manual_seed(c.seed)     # then make_config, as fit does (it may draw numbers)
        model_config = given or make_config(kind, preset, spec.n_features, spec.window)
        models.append(build(kind, model_config).to(device))
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    names = list(params)

    def loss_fn(p, b, x, y, w, s, mask):
        logits = functional_call(base, (p, b), (x,)).float()
        ce = F.cross_entropy(logits, y, reduction="none")
        wy = w[y] * s * mask
        return (ce * wy).sum() / wy.sum().clamp_min(1e-12)

    step_fn = vmap(grad_and_value(loss_fn), in_dims=(0, 0, 0, 0, 0, 0, 0))
    forward = vmap(lambda p, b, x: functional_call(base, (p, b), (x,)), in_dims=(0, 0, 0))

    exp_avg = {k: torch.zeros_like(v) for k, v in params.items()}
    exp_avg_sq = {k: torch.zeros_like(v) for k, v in params.items()}
    steps = torch.zeros(M, device=device)
    best_params = {k: v.detach().clone() for k, v in params.items()}
    best, bad = [float("inf")] * M, [0] * M
    stopped = [False] * M
    histories: list[list[dict]] = [[] for _ in range(M)]
    rows = torch.arange(M, device=device)[:, None]
    train_idx = [torch.as_tensor(t, device=device) for t in train_ends]

    for epoch in range(cfg0.epochs):
        if all(stopped):
            break
        t0 = time.perf_counter()
        orders = []
        for c, idx in zip(cfgs, train_idx, strict=True):
            gen = torch.Generator().manual_seed(c.seed * 100_003 + epoch)
            orders.append(idx[torch.randperm(len(idx), generator=gen).to(device)])
        n_steps = max((len(o) + bs - 1) // bs for o in orders)
        totals, counts = torch.zeros(M, device=device), [0] * M
        for s in range(n_steps):
            idx = torch.zeros((M, bs), dtype=torch.long, device=device)
            mask = torch.zeros((M, bs), device=device)
            active = torch.zeros(M, dtype=torch.bool, device=device)
            for m, o in enumerate(orders):
                part = o[s * bs:(s + 1) * bs]
                if stopped[m] or len(part) == 0:
                    idx[m] = o[0]
                    continue
                idx[m, :len(part)], mask[m, :len(part)] = part, 1.0
                idx[m, len(part):] = part[0]
                active[m] = True
                counts[m] += len(part)
            x = matrices[rows[:, :, None], idx[:, :, None] + offsets]
            y = labels[idx]
            with sdpa_guard(device, M * bs):
                grads, loss = step_fn(params, buffers, x, y, weights, per_bar[rows, idx], mask)
            totals += torch.where(active, loss.detach() * mask.sum(1), 0.0)
            _adamw(params, grads, exp_avg, exp_avg_sq, steps, active, cfg0)
        val = _validate(forward, params, buffers, matrices, labels, offsets, val_ends, weights,
                        device)
        seconds = (time.perf_counter() - t0) / max(1, sum(not s for s in stopped))
        for m in range(M):
            if stopped[m]:
                continue
            train_loss = float(totals[m]) / max(counts[m], 1)
            if not np.isfinite(train_loss):
                raise ModelError(f"training diverged at epoch {epoch + 1} (loss is "
                                 f"{train_loss}); lower the learning rate")
            val_loss, probs = val[m]
            y_val = ds.labels[val_ends[m]]
            art = article_metrics(y_val, probs)
            histories[m].append({
                "epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss,
                "val_accuracy": classification_metrics(y_val, probs)["accuracy"],
                "val_error": art["error"], "val_hit_pct": art["hit_pct"],
                "val_missed_pct": art["missed_pct"], "seconds": seconds})
            if val_loss < best[m] - 1e-6:
                best[m], bad[m] = val_loss, 0
                for k in names:
                    best_params[k][m] = params[k][m].detach()
            else:
                bad[m] += 1
            if bad[m] >= cfgs[m].patience:
                stopped[m] = True

    results = []
    for m, (fold, c) in enumerate(zip(folds, cfgs, strict=True)):
        model = build(kind, model_config).to(device)
        state = {k: best_params[k][m].clone() for k in names}
        state |= {k: v[m].clone() for k, v in buffers.items()}
        model.load_state_dict(state)
        batches = WindowBatches(ds.matrix(normalisers[m]), ds.labels, spec.window, device)
        vi = torch.as_tensor(val_ends[m], device=device)
        _, probs = validation_loss_and_probs(model, batches, vi, weights[m])
        y_val = ds.labels[val_ends[m]]
        frame = pd.DataFrame(histories[m])
        metrics = {**classification_metrics(y_val, probs), **article_metrics(y_val, probs),
                   "best_epoch": best_epoch(frame),
                   "epochs_run": len(frame), "seconds": float(frame.seconds.sum())}
        y_train = ds.labels[train_ends[m]]
        meta = {"train": asdict(c), "n_parameters": n_parameters(model),
                "samples": {"train": len(train_ends[m]), "val": len(val_ends[m])},
                "train_prior": class_prior(y_train).tolist(), "fingerprint": ds.fingerprint(),
                "ensemble": {"members": M, "member": m}, **calibration_meta(c, probs, y_val)}
        results.append(TrainResult(model.eval(), kind, preset, model_config, spec, normalisers[m],
                                   fold, c, frame, metrics, meta))
    return results


@torch.no_grad()
def _adamw(params, grads, exp_avg, exp_avg_sq, steps, active, cfg: TrainConfig) -> None:
    """Clip each member's gradient to ``max_grad_norm``, then PyTorch's AdamW step for the
    active members (the others keep their weights and optimiser state)."""
    M = len(steps)
    if cfg.max_grad_norm:
        norms = torch.sqrt(sum((g.reshape(M, -1).double() ** 2).sum(1) for g in grads.values()))
        norms = norms.float()
        coef = torch.clamp(cfg.max_grad_norm / (norms + 1e-6), max=1.0)
    else:
        coef = torch.ones(M, device=steps.device)
    steps += active.float()
    b1, b2 = BETAS
    bc1 = 1 - b1 ** steps.clamp_min(1)
    bc2_sqrt = torch.sqrt(1 - b2 ** steps.clamp_min(1))
    for k, p in params.items():
        shape = (M,) + (1,) * (p.dim() - 1)
        a = active.view(shape)
        g = grads[k] * coef.view(shape)
        m_new = exp_avg[k].lerp(g, 1 - b1)
        v_new = exp_avg_sq[k] * b2 + (1 - b2) * g * g
        p_new = p * (1 - cfg.lr * cfg.weight_decay)
        denom = v_new.sqrt() / bc2_sqrt.view(shape) + EPS
        p_new = p_new - (cfg.lr / bc1).view(shape) * m_new / denom
        p.copy_(torch.where(a, p_new, p))
        exp_avg[k].copy_(torch.where(a, m_new, exp_avg[k]))
        exp_avg_sq[k].copy_(torch.where(a, v_new, exp_avg_sq[k]))


@torch.no_grad()
def _validate(forward, params, buffers, matrices, labels, offsets, val_ends, weights, device,
              chunk: int = 8192) -> list[tuple[float, np.ndarray]]:
    """Each member's validation loss (as ``fit`` computes it) and probabilities."""
    M = len(val_ends)
    n = max(len(v) for v in val_ends)
    rows = torch.arange(M, device=device)[:, None]
    losses = [torch.zeros((), device=device) for _ in range(M)]
    probs: list[list[torch.Tensor]] = [[] for _ in range(M)]
    for i in range(0, n, chunk):
        idx = torch.zeros((M, min(chunk, n - i)), dtype=torch.long, device=device)
        lens = []
        for m, v in enumerate(val_ends):
            part = torch.as_tensor(v[i:i + chunk], device=device)
            lens.append(len(part))
            if len(part):
                idx[m, :len(part)] = part
                idx[m, len(part):] = part[0]
            else:
                idx[m] = int(v[0])
        x = matrices[rows[:, :, None], idx[:, :, None] + offsets]
        with sdpa_guard(device, x.shape[0] * x.shape[1]):
            logits = forward(params, {k: v for k, v in buffers.items()}, x).float()
        y = labels[idx]
        for m in range(M):
            k = lens[m]
            if k == 0:
                continue
            lg, yy, w = logits[m, :k], y[m, :k], weights[m]
            losses[m] = losses[m] + (F.cross_entropy(lg, yy, weight=w, reduction="sum")
                                     / w[yy].sum() * k)
            probs[m].append(lg.softmax(-1).cpu())
    return [(float(losses[m]) / len(val_ends[m]), torch.cat(probs[m]).numpy()) for m in range(M)]


__all__ = ["LARGE_SDPA_BATCH", "train_ensemble", "vmappable"]
