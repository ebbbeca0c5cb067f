"""Train many models of one kind together: a stacked ensemble (one member per seed × fold).

Each member is what ``models.train.fit`` would train alone with the same seed, fold and batches:
the same initial weights (``torch.manual_seed(seed)`` before building), the same data order each
epoch (``randperm`` seeded by ``seed * 100_003 + epoch``), class-weighted cross-entropy, gradient
clipping per member, PyTorch's AdamW, and early stopping per member on its own validation part.

How: every member's parameters live in one ``[k, P]`` matrix (a row per member; each parameter a
``[k, *shape]`` view of it). ``models.stacked`` runs the k networks as batched matrix products
(attention/article, dense, lstm) or under ``vmap`` (conv), one backward pass gives every member's
gradient, and one fused AdamW step (``torch._fused_adamw_`` over the members' rows, with their own
step counts) updates them. Each step has the same shape: member ``m`` takes its next ``batch_size``
windows, padded with masked ones where its training part has fewer left (the loss is the weighted
mean over the real ones, as in ``fit``); a member without a batch left, or early-stopped, is
computed but masked out of the update — nothing is re-gathered. Validation runs every epoch for
all members in one batched pass, its losses and the history's metrics computed on the device.

Not stacked (trained one by one with ``fit``): models with dropout (``attention/modern``: its
dropout masks cannot follow ``fit``'s random stream). lstm is stacked as a batched LSTM cell.
Members' models are returned on the CPU (k models would otherwise hold the GPU's memory).
"""

from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from data.dataset import CandleDataset, DatasetSpec
from data.folds import Fold
from data.labels import BUY, NONE, SELL
from models.errors import ModelError
from models.evaluate import article_metrics, class_prior, classification_metrics
from models.networks import build, make_config, n_parameters
from models.stacked import stacked_forward
from models.step import autocast_for, deterministic_algorithms, sdpa_guard
from models.train import (
    TrainConfig,
    TrainResult,
    bar_weights,
    best_epoch,
    calibration_meta,
    class_weights,
    fit,
    pick_device,
)

BETAS, EPS = (0.9, 0.999), 1e-8      # torch.optim.AdamW defaults, as fit uses
VAL_CHUNK = 8192                     # fit's validation chunk (its loss is a per-chunk formula)
VAL_WINDOWS = 1 << 17                # windows per batched validation pass (members × windows)


def vmappable(kind: str, config) -> bool:
    """Whether members of this model can be stacked (no dropout)."""
    return not getattr(config, "dropout", 0.0)


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
        return _Ensemble(candles, spec, folds, kind, preset, cfgs, given, device).train()


class _Ensemble:
    """The k members' data, stacked parameters and optimiser state, and the training loop."""

    def __init__(self, candles, spec, folds, kind, preset, cfgs, given, device) -> None:
        cfg0 = cfgs[0]
        self.kind, self.preset, self.spec, self.folds, self.cfgs = kind, preset, spec, folds, cfgs
        self.device, self.cfg0, self.k, self.bs = device, cfg0, len(folds), cfg0.batch_size
        ds = self.ds = CandleDataset(candles, spec)
        self.train_ends = [ds.ends("train", f) for f in folds]
        self.val_ends = [ds.ends("val", f) for f in folds]
        for tr, va in zip(self.train_ends, self.val_ends, strict=True):
            if len(tr) < max(self.bs // 4, 10) or len(va) < 10:
                raise ModelError(f"too few samples to train ({len(tr)} train, {len(va)} "
                                 "validation windows); give more bars, change the split or use "
                                 "a smaller batch")
        # one normalised matrix per distinct fold; member m reads matrices[group[m]]
        keys = [(f.train.start, f.train.end) for f in folds]
        firsts = {key: i for i, key in reversed(list(enumerate(keys)))}
        order = sorted(set(firsts.values()))
        self.group = torch.as_tensor([order.index(firsts[key]) for key in keys], device=device)
        norm_of = {i: ds.fit_normaliser(folds[i]) for i in order}
        self.normalisers = [norm_of[firsts[key]] for key in keys]
        self.matrices = torch.stack([torch.as_tensor(ds.matrix(norm_of[i])) for i in order]
                                    ).to(device)
        self.labels = torch.as_tensor(np.asarray(ds.labels).astype(np.int64), device=device)
        self.offsets = torch.arange(-spec.window + 1, 1, device=device)
        self.weights = torch.stack([class_weights(ds.labels[t], c.class_weighting)
                                    for t, c in zip(self.train_ends, cfgs, strict=True)]
                                   ).to(device)
        # per-bar sample weights of each member's own training part (train.weighting); None
        # when no member weights: the loss then multiplies by nothing more
        per_bar = [bar_weights(ds, t, c.weighting)
                   for t, c in zip(self.train_ends, cfgs, strict=True)]
        self.per_bar = None if all(w is None for w in per_bar) else torch.stack([
            torch.as_tensor(w if w is not None else np.ones(len(ds), dtype=np.float32))
            for w in per_bar]).to(device)
        self.member = torch.arange(self.k, device=device)[:, None]
        self._init_params(given)

    # --- parameters ------------------------------------------------------------------------
    def _init_params(self, given) -> None:
        """Each member's initial weights as ``fit`` draws them (members sharing a seed share
        them), in one ``[k, P]`` matrix."""
        first: dict[int, torch.Tensor] = {}
        for c in self.cfgs:
            if c.seed in first:
                continue
            torch.manual_seed(c.seed)     # then make_config, as fit does (it may draw numbers)
            self.model_config = given or make_config(self.kind, self.preset,
                                                     self.spec.n_features, self.spec.window)
            template = build(self.kind, self.model_config)
            first[c.seed] = torch.cat([p.detach().reshape(-1) for p in template.parameters()])
        if any(True for _ in template.buffers()):
            raise ModelError(f"{self.kind} has buffers: it cannot be trained as an ensemble")
        self.template = template
        self.shapes = [(n, p.shape) for n, p in template.named_parameters()]
        rows = torch.stack([first[c.seed] for c in self.cfgs])
        self.flat = rows.to(self.device)
        self.exp_avg, self.exp_avg_sq = torch.zeros_like(self.flat), torch.zeros_like(self.flat)
        self.grad = torch.zeros_like(self.flat)
        self.best = self.flat.clone()
        self.steps = torch.zeros(self.k, device=self.device)
        self.forward = stacked_forward(template)
        self.losses = _member_losses(self.forward, self.weights, self.cfg0.bf16)
        if self.cfg0.compile:
            self.forward = torch.compile(self.forward, dynamic=False)
            self.losses = torch.compile(self.losses, dynamic=False)

    def views(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each parameter as a ``[members, *shape]`` view of the rows of ``flat``."""
        out, at = {}, 0
        for name, shape in self.shapes:
            n = shape.numel()
            out[name] = flat[:, at:at + n].view(flat.shape[0], *shape)
            at += n
        return out

    # --- the loop ----------------------------------------------------------------------------
    def train(self) -> list[TrainResult]:
        k, bs, cfg0, dev = self.k, self.bs, self.cfg0, self.device
        leaves = self.views(self.flat)
        for v in leaves.values():
            v.requires_grad_(True)
        grad_views = list(self.views(self.grad).values())
        rows = [list(t.unbind(0)) for t in (self.flat, self.grad, self.exp_avg, self.exp_avg_sq,
                                            self.steps)]
        n_train = np.array([len(t) for t in self.train_ends])
        member_steps = (n_train + bs - 1) // bs
        n_steps = int(member_steps.max())
        best, bad = np.full(k, np.inf), np.zeros(k, int)
        stopped = np.zeros(k, bool)
        histories: list[list[dict]] = [[] for _ in range(k)]
        val = _ValBatch(self, self.val_ends)
        for epoch in range(cfg0.epochs):
            if stopped.all():
                break
            t0 = time.perf_counter()
            idx, mask = self._epoch_batches(epoch, n_steps, ~stopped)
            active = (np.arange(n_steps)[:, None] < member_steps[None, :]) & ~stopped[None, :]
            active_dev = torch.as_tensor(active, device=dev, dtype=torch.float32)
            totals = torch.zeros(k, device=dev)
            for s in range(n_steps):
                sl = slice(s * bs, (s + 1) * bs)
                x = self.matrices[self.group[:, None, None], idx[:, sl, None] + self.offsets]
                y, m = self.labels[idx[:, sl]], mask[:, sl]
                # a window counts class weight × sample weight (fit's loss); m stays the count
                wm = m if self.per_bar is None else m * self.per_bar[self.member, idx[:, sl]]
                losses = self.losses(leaves, x, y, wm)
                grads = torch.autograd.grad(losses.sum(), list(leaves.values()))
                torch._foreach_copy_(grad_views, grads)
                totals += losses.detach() * m.sum(1)
                self._adamw(active[s], active_dev[s], rows)
            val_loss, probs = val.run(self.flat)
            train_loss = (totals.cpu().numpy() / np.maximum(n_train, 1)).astype(float)
            seconds = (time.perf_counter() - t0) / max(1, int((~stopped).sum()))
            metrics = val.history_metrics(probs)
            improved = np.zeros(k, bool)
            for i in np.flatnonzero(~stopped):
                if not np.isfinite(train_loss[i]):
                    raise ModelError(f"training diverged at epoch {epoch + 1} (loss is "
                                     f"{train_loss[i]}); lower the learning rate")
                histories[i].append({"epoch": epoch + 1, "train_loss": float(train_loss[i]),
                                     "val_loss": float(val_loss[i]),
                                     **{key: float(col[i]) for key, col in metrics.items()},
                                     "seconds": seconds})
                if val_loss[i] < best[i] - 1e-6:
                    best[i], bad[i], improved[i] = val_loss[i], 0, True
                else:
                    bad[i] += 1
            if improved.any():
                keep = torch.as_tensor(improved, device=dev)[:, None]
                torch.where(keep, self.flat, self.best, out=self.best)
            stopped |= bad >= np.array([c.patience for c in self.cfgs])
        return self._results(histories, val)

    def _epoch_batches(self, epoch: int, n_steps: int, live: np.ndarray):
        """Every step's window ends ``[k, n_steps * bs]`` and mask (0 for padding and for
        members that stopped), on the device."""
        width = n_steps * self.bs
        idx = np.empty((self.k, width), np.int64)
        mask = np.zeros((self.k, width), np.float32)
        perms: dict[tuple[int, int], np.ndarray] = {}
        for i, (c, ends) in enumerate(zip(self.cfgs, self.train_ends, strict=True)):
            key = (c.seed, len(ends))
            if key not in perms:
                gen = torch.Generator().manual_seed(c.seed * 100_003 + epoch)
                perms[key] = torch.randperm(len(ends), generator=gen).numpy()
            idx[i, :len(ends)] = ends[perms[key]]
            idx[i, len(ends):] = ends[0]
            mask[i, :len(ends)] = live[i]
        return (torch.as_tensor(idx).to(self.device, non_blocking=True),
                torch.as_tensor(mask).to(self.device, non_blocking=True))

    @torch.no_grad()
    def _adamw(self, active: np.ndarray, active_dev: torch.Tensor, rows) -> None:
        """Clip each member's gradient to ``max_grad_norm``, then PyTorch's AdamW step (fused)
        for the active members; the others keep their weights and optimiser state."""
        cfg = self.cfg0
        if cfg.max_grad_norm:
            norms = torch.linalg.vector_norm(self.grad, dim=1)
            coef = torch.clamp(cfg.max_grad_norm / (norms + 1e-6), max=1.0)
            self.grad.mul_(coef[:, None])
        if not active.any():
            return
        self.steps.add_(active_dev)
        if active.all():
            params, grads, avg, avg_sq, steps = rows
        else:
            on = np.flatnonzero(active)
            params, grads, avg, avg_sq, steps = ([r[i] for i in on] for r in rows)
        torch._fused_adamw_(params, grads, avg, avg_sq, [], steps, lr=cfg.lr, beta1=BETAS[0],
                            beta2=BETAS[1], weight_decay=cfg.weight_decay, eps=EPS,
                            amsgrad=False, maximize=False)

    # --- results -----------------------------------------------------------------------------
    def _results(self, histories, val) -> list[TrainResult]:
        _, probs = val.run(self.best)
        best = self.best.cpu()
        results = []
        for m, (fold, c) in enumerate(zip(self.folds, self.cfgs, strict=True)):
            state = {name: v.clone() for name, v in self.views(best[m:m + 1]).items()}
            with torch.device("meta"):
                model = build(self.kind, self.model_config)
            model.load_state_dict({n: v[0] for n, v in state.items()}, assign=True)
            y_val = self.ds.labels[self.val_ends[m]]
            p = probs[m, :len(y_val)]
            frame = pd.DataFrame(histories[m])
            metrics = {**classification_metrics(y_val, p), **article_metrics(y_val, p),
                       "best_epoch": best_epoch(frame),
                       "epochs_run": len(frame), "seconds": float(frame.seconds.sum())}
            y_train = self.ds.labels[self.train_ends[m]]
            meta = {"train": asdict(c), "n_parameters": n_parameters(model),
                    "samples": {"train": len(self.train_ends[m]), "val": len(y_val)},
                    "train_prior": class_prior(y_train).tolist(),
                    "fingerprint": self.ds.fingerprint(),
                    "ensemble": {"members": self.k, "member": m},
                    **calibration_meta(c, p, y_val)}
            results.append(TrainResult(model.eval(), self.kind, self.preset, self.model_config,
                                       self.spec, self.normalisers[m], fold, c, frame, metrics,
                                       meta))
        return results


def _member_losses(forward, weights: torch.Tensor, bf16: bool):
    """``losses(params, x, y, mask)``: each member's class-weighted mean cross-entropy over its
    real (mask 1) windows, as ``fit``'s ``F.cross_entropy(logits, y, weight=w)``."""
    member = torch.arange(len(weights), device=weights.device)[:, None]

    def losses(params, x, y, mask):
        with autocast_for(x.device, bf16):
            logits = forward(params, x).float()
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                             reduction="none").view(y.shape)
        wy = weights[member, y] * mask
        return (ce * wy).sum(1) / wy.sum(1).clamp_min(1e-12)

    return losses


class _ValBatch:
    """The members' validation windows (padded to the longest), scored in batched passes."""

    def __init__(self, ens: _Ensemble, val_ends: list[np.ndarray]) -> None:
        self.ens, k = ens, len(val_ends)
        self.n = np.array([len(v) for v in val_ends])
        width = int(self.n.max())
        idx = np.zeros((k, width), np.int64)
        for i, v in enumerate(val_ends):
            idx[i, :len(v)], idx[i, len(v):] = v, v[0]
        dev = ens.device
        self.idx = torch.as_tensor(idx, device=dev)
        pos = np.arange(width)
        self.mask = torch.as_tensor(pos[None, :] < self.n[:, None], device=dev)
        self.y = ens.labels[self.idx]
        self.y_np = np.where(pos[None, :] < self.n[:, None], ens.labels[self.idx].cpu().numpy(),
                             -1)
        # fit's loss: per chunk of VAL_CHUNK windows, the weighted mean × the chunk's length
        chunk = torch.as_tensor(pos // VAL_CHUNK, device=dev)
        self.n_chunks = int(chunk.max()) + 1
        self.slot = (torch.arange(k, device=dev)[:, None] * self.n_chunks + chunk).reshape(-1)
        self.members_per_pass = max(1, VAL_WINDOWS // width)

    @torch.no_grad()
    def run(self, flat: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Each member's validation loss (as ``fit`` computes it) and probabilities
        ``[k, longest validation part, 3]`` (rows past a member's length are padding)."""
        ens, k = self.ens, len(self.n)
        logits = []
        for a in range(0, k, self.members_per_pass):
            b = min(k, a + self.members_per_pass)
            x = ens.matrices[ens.group[a:b, None, None], self.idx[a:b, :, None] + ens.offsets]
            logits.append(ens.forward(ens.views(flat[a:b]), x).float())
        logits = torch.cat(logits)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), self.y.reshape(-1),
                             reduction="none").view(self.y.shape)
        member = torch.arange(k, device=ens.device)[:, None]
        wy = ens.weights[member, self.y] * self.mask
        sums = torch.zeros(2, k * self.n_chunks, device=ens.device, dtype=torch.float64)
        sums[0].index_add_(0, self.slot, (ce * wy).reshape(-1).double())
        sums[1].index_add_(0, self.slot, wy.reshape(-1).double())
        per_chunk = sums[0] / sums[1].clamp_min(1e-300)
        lens = torch.zeros(k * self.n_chunks, device=ens.device, dtype=torch.float64)
        lens.index_add_(0, self.slot, self.mask.reshape(-1).double())
        loss = (per_chunk * lens).view(k, self.n_chunks).sum(1).cpu().numpy() / self.n
        return loss, logits.softmax(-1).cpu().numpy()

    def history_metrics(self, probs: np.ndarray) -> dict[str, np.ndarray]:
        """The history's validation metrics of every member (as ``classification_metrics`` and
        ``article_metrics`` compute them), vectorised over members."""
        y, real = self.y_np, self.y_np >= 0
        pred = probs.argmax(-1)
        onehot = np.eye(3)[np.maximum(y, 0)]
        sq = ((probs.astype(np.float64) - onehot) ** 2).sum(-1) * real
        signals, fractals = (pred != NONE) & real, (y == BUY) | (y == SELL)
        with np.errstate(invalid="ignore", divide="ignore"):
            hit = ((pred == y) & signals).sum(1) / signals.sum(1) * 100
            missed = ((pred == NONE) & fractals).sum(1) / fractals.sum(1) * 100
        return {"val_accuracy": ((pred == y) & real).sum(1) / self.n,
                "val_error": np.sqrt(sq.sum(1) / (3 * self.n)),
                "val_hit_pct": np.where(signals.any(1), hit, np.nan),
                "val_missed_pct": np.where(fractals.any(1), missed, np.nan)}


__all__ = ["train_ensemble", "vmappable"]
