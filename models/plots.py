"""Pictures of models: learning curves and attention maps beside their candles (PNG bytes)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def learning_curves_png(history: pd.DataFrame, title: str) -> bytes:
    fig = Figure(figsize=(10, 3.5))
    (a, b) = fig.subplots(1, 2)
    a.plot(history.epoch, history.train_loss, label="train loss")
    a.plot(history.epoch, history.val_loss, label="validation loss")
    best = history.val_loss.idxmin()
    a.axvline(history.epoch[best], color="grey", ls=":", label="best epoch")
    a.set_xlabel("epoch")
    a.legend()
    b.plot(history.epoch, history.val_hit_pct, label="validation hit %")
    b.plot(history.epoch, history.val_missed_pct, label="validation missed %")
    b.set_xlabel("epoch")
    b.legend()
    fig.suptitle(title)
    return _png(fig)


def draw_candles(ax, candles: pd.DataFrame) -> None:
    x = np.arange(len(candles))
    o, h, lo, c = (candles[k].to_numpy() for k in ("open", "high", "low", "close"))
    up = c >= o
    ax.vlines(x, lo, h, color="#444", lw=0.8)
    ax.bar(x, np.abs(c - o) + 1e-12, bottom=np.minimum(o, c), color=np.where(up, "#2a9d8f", "#e76f51"),
           width=0.7)
    ax.set_xlim(-0.5, len(candles) - 0.5)


def attention_png(candles: pd.DataFrame, maps: list[np.ndarray], title: str,
                  probs: np.ndarray | None = None) -> bytes:
    """Candles of the window on top, the last bar's attention per layer below them, then the full
    W×W map of each layer (averaged over heads)."""
    w = len(candles)
    n = len(maps)
    fig = Figure(figsize=(4 + 3.2 * n, 7.5))
    grid = fig.add_gridspec(3, n, height_ratios=[2, 1, 3], hspace=0.35)
    ax = fig.add_subplot(grid[0, :])
    draw_candles(ax, candles)
    ax.set_xticks(range(0, w, max(w // 10, 1)))
    ax.set_xticklabels([candles.index[i].strftime("%m-%d %H:%M") for i in range(0, w, max(w // 10, 1))],
                       fontsize=7)
    sub = f"  p = [none {probs[0]:.2f}, buy {probs[1]:.2f}, sell {probs[2]:.2f}]" if probs is not None else ""
    ax.set_title(title + sub, fontsize=9)
    ax2 = fig.add_subplot(grid[1, :], sharex=ax)
    for i, m in enumerate(maps):
        ax2.plot(np.arange(w), m[-1], marker="o", ms=3, label=f"layer {i + 1}")
    ax2.set_ylabel("last bar attends", fontsize=8)
    ax2.tick_params(labelbottom=False)
    ax2.legend(fontsize=7)
    for i, m in enumerate(maps):
        axm = fig.add_subplot(grid[2, i])
        im = axm.imshow(m, cmap="viridis", aspect="equal")
        axm.set_title(f"layer {i + 1}: query bar → key bar", fontsize=8)
        axm.set_xlabel("key (bar in window)", fontsize=7)
        axm.set_ylabel("query", fontsize=7)
        fig.colorbar(im, ax=axm, fraction=0.046)
    return _png(fig)
