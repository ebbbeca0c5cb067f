"""The training step, the state carried between epochs and the on-device window gathering, shared by
training, checkpoints and benchmarks.

Imports torch only, so the speed benchmark runs wherever torch does.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class TrainState:
    """Everything needed to continue a training after ``epoch`` (the 0-based index of the last
    epoch run; the ``history`` rows count epochs from 1, as users see them)."""

    epoch: int
    best: float
    bad: int
    history: list[dict]
    last_weights: dict[str, torch.Tensor]
    best_weights: dict[str, torch.Tensor]
    optimizer: dict



class WindowBatches:
    """Windows gathered on the device from a per-bar feature matrix kept there once."""

    def __init__(self, matrix: np.ndarray, labels: np.ndarray, window: int,
                 device: torch.device) -> None:
        self.matrix = torch.as_tensor(matrix, device=device)
        self.labels = torch.as_tensor(np.asarray(labels).astype(np.int64), device=device)
        self.offsets = torch.arange(-window + 1, 1, device=device)

    def get(self, ends: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.matrix[ends[:, None] + self.offsets], self.labels[ends]


@contextlib.contextmanager
def torch_threads(n: int):
    """Run the block with ``n`` torch CPU threads, then restore the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def deterministic_algorithms(on: bool, compiled: bool = False):
    """Run the block with torch's deterministic algorithms ``on`` (or left on if they were), then
    restore the previous setting.

    ``torch.use_deterministic_algorithms`` also sets ``torch._inductor.config.deterministic``, and
    importing that config costs every fresh process 2-3 s (it pulls in torch._dynamo). That setting
    matters to compiled code only, so the public call is made for ``compiled`` models; eager ones
    switch the same kernel flag alone (``torch.are_deterministic_algorithms_enabled`` reads it).
    """
    previous = torch.are_deterministic_algorithms_enabled()
    wanted = bool(on) or previous
    switch = torch.use_deterministic_algorithms if compiled else torch._C._set_deterministic_algorithms
    change = wanted != previous or compiled
    if change:
        switch(wanted)
    try:
        yield
    finally:
        if change:
            switch(previous)


LARGE_SDPA_BATCH = 32_768


def sdpa_guard(device: torch.device, batch: int):
    """Above ``LARGE_SDPA_BATCH`` windows at once on CUDA (a vmapped ensemble stacks its
    members' batches), use the plain math attention kernel: cuDNN's fused kernel failed at such
    batches (65,536 on an H100) and the memory-efficient one has grid limits there too."""
    if device.type == "cuda" and batch > LARGE_SDPA_BATCH:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel([SDPBackend.MATH])
    return contextlib.nullcontext()


def autocast_for(device: torch.device, bf16: bool):
    """bfloat16 autocast on CUDA when asked for; a no-op context otherwise."""
    if bf16 and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_step(model, opt, x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, *,
               bf16: bool = False, max_grad_norm: float = 1.0,
               sample_weights: torch.Tensor | None = None) -> torch.Tensor:
    """One optimisation step on a batch; returns the (detached) mean loss.

    ``weights``: one per class; ``sample_weights``: one per window (``train.weighting``) or None.
    Sample i counts ``weights[y_i] × sample_weights[i]`` and the loss is the weighted mean,
    Σ w_i·ce_i / Σ w_i (with no sample weights, ``F.cross_entropy``'s class-weighted mean, the same
    formula)."""
    with autocast_for(x.device, bf16):
        logits = model(x).float()
        if sample_weights is None:
            loss = F.cross_entropy(logits, y, weight=weights)
        else:
            w = weights[y] * sample_weights
            loss = (F.cross_entropy(logits, y, reduction="none") * w).sum() / w.sum()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if max_grad_norm:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    opt.step()
    return loss.detach()
