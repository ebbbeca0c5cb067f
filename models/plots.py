"""Pictures of models: learning curves and attention maps beside their candles (PNG bytes)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def learning_curves_png(history: pd.DataFrame, title: str) -> bytes:
    from matplotlib.figure import Figure
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


def _bar_ticks(ax, candles: pd.DataFrame, labels: bool = True) -> None:
    """Ticks on whole bars (the candles' centres), labelled by offset from the last bar and its
    time: t-19 … t, so the maps below line up with the candles they attend to."""
    w = len(candles)
    step = max(1, int(np.ceil(w / 12)))
    ticks = list(range(w - 1, -1, -step))[::-1]
    ax.set_xticks(ticks)
    if labels:
        ax.set_xticklabels([f"t-{w - 1 - i}\n{candles.index[i]:%m-%d %H:%M}" if i < w - 1
                            else f"t\n{candles.index[i]:%m-%d %H:%M}" for i in ticks], fontsize=7)
    else:
        ax.tick_params(labelbottom=False)
    ax.set_xlim(-0.5, w - 0.5)


def attention_png(candles: pd.DataFrame, maps: list[np.ndarray], title: str,
                  probs: np.ndarray | None = None) -> bytes:
    """Candles of the window on top; below them, on the same bar axis, what the last bar attends
    to in each layer, then each layer's full W×W map (averaged over heads; columns = key bars,
    so every column sits under its candle; rows = query bars)."""
    w = len(candles)
    n = len(maps)
    from matplotlib.figure import Figure
    fig = Figure(figsize=(11, 3.2 + 1.6 + 3.2 * n))
    grid = fig.add_gridspec(2 + n, 1, height_ratios=[2, 1] + [2.2] * n, hspace=0.45)
    ax = fig.add_subplot(grid[0])
    draw_candles(ax, candles)
    _bar_ticks(ax, candles)
    sub = f"  p = [none {probs[0]:.2f}, buy {probs[1]:.2f}, sell {probs[2]:.2f}]" if probs is not None else ""
    ax.set_title(title + sub, fontsize=9)
    ax2 = fig.add_subplot(grid[1], sharex=ax)
    for i, m in enumerate(maps):
        ax2.plot(np.arange(w), m[-1], marker="o", ms=3, label=f"layer {i + 1}")
    ax2.set_ylabel("last bar (t)\nattends to", fontsize=8)
    _bar_ticks(ax2, candles, labels=False)
    ax2.grid(axis="x", alpha=.3)
    ax2.legend(fontsize=7)
    for i, m in enumerate(maps):
        axm = fig.add_subplot(grid[2 + i], sharex=ax)
        im = axm.imshow(m, cmap="viridis", aspect="auto", interpolation="nearest",
                        extent=(-0.5, w - 0.5, w - 0.5, -0.5))
        axm.set_title(f"layer {i + 1}: query bar (row) → key bar (column)", fontsize=8)
        _bar_ticks(axm, candles, labels=i == n - 1)
        step = max(1, int(np.ceil(w / 6)))
        rows = list(range(w - 1, -1, -step))[::-1]
        axm.set_yticks(rows, [f"t-{w - 1 - r}" if r < w - 1 else "t" for r in rows], fontsize=7)
        axm.set_ylabel("query", fontsize=7)
        cax = axm.inset_axes((1.01, 0, 0.012, 1))
        fig.colorbar(im, cax=cax)
    return _png(fig)
