"""Self-attention classifiers over a window of candles.

Two presets:
- ``article``: the Part 8 network of the MQL5 series: per-bar embedding F→36 (sigmoid), two
  single-head self-attention blocks (Q, K tanh; V linear; residual + LayerNorm; feed-forward
  36→72 leaky-ReLU →36 with a second residual + LayerNorm), then dense 200 tanh → 200 tanh → 3.
- ``modern``: a pre-norm transformer encoder: learned positional embedding, multi-head attention
  (``scaled_dot_product_attention``), GELU feed-forward, dropout, pooled last + mean token → 3.

Both return logits over [none, buy, sell]; ``forward(x, return_attention=True)`` also returns the
attention weights of every layer, each (batch, heads, W, W).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

SDPA_CHUNK = 16_384   # windows per attention kernel call


@dataclass
class AttentionConfig:
    n_features: int = 12
    window: int = 20
    preset: str = "article"   # article | modern
    d_model: int = 36
    n_heads: int = 1
    n_layers: int = 2
    d_ff: int = 72
    head_hidden: int = 200    # article: dense 200 → 200 after flattening the window
    dropout: float = 0.0
    n_classes: int = 3

    @classmethod
    def preset_config(cls, preset: str, n_features: int, window: int) -> AttentionConfig:
        if preset == "article":
            return cls(n_features, window, "article", 36, 1, 2, 72, 200, 0.0)
        if preset == "modern":
            return cls(n_features, window, "modern", 64, 4, 2, 128, 64, 0.1)
        raise ValueError(f"unknown attention preset {preset!r}; choose article or modern")


class ArticleBlock(nn.Module):
    """Single-head self-attention block as in Part 8 (post-norm, tanh Q/K)."""

    def __init__(self, d: int, d_ff: int) -> None:
        super().__init__()
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, d_ff), nn.LeakyReLU(0.01), nn.Linear(d_ff, d))

    def forward(self, x: torch.Tensor, need_weights: bool = False):
        q, k, v = torch.tanh(self.q(x)), torch.tanh(self.k(x)), self.v(x)
        scores = q @ k.transpose(-2, -1) / math.sqrt(x.shape[-1])
        weights = scores.softmax(dim=-1)
        x = self.norm1(x + weights @ v)
        x = self.norm2(x + self.ff(x))
        return x, (weights.unsqueeze(1) if need_weights else None)


class ModernBlock(nn.Module):
    """Pre-norm multi-head self-attention block."""

    def __init__(self, d: int, heads: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.ff = nn.Sequential(nn.Linear(d, d_ff), nn.GELU(), nn.Dropout(dropout),
                                nn.Linear(d_ff, d))
        self.drop = nn.Dropout(dropout)
        self.p = dropout

    def forward(self, x: torch.Tensor, need_weights: bool = False):
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).unbind(2)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))
        weights = None
        if need_weights:
            weights = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-1)
            out = weights @ v
        else:
            p = self.p if self.training else 0.0
            # cuDNN's fused kernel fails on very large batches (65,536 windows on an H100): attend
            # in chunks of SDPA_CHUNK windows (same numbers, one kernel launch per chunk)
            out = torch.cat([F.scaled_dot_product_attention(q[i:i + SDPA_CHUNK],
                                                            k[i:i + SDPA_CHUNK],
                                                            v[i:i + SDPA_CHUNK], dropout_p=p)
                             for i in range(0, b, SDPA_CHUNK)]) if b > SDPA_CHUNK else \
                F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        x = x + self.drop(self.proj(out.transpose(1, 2).reshape(b, t, d)))
        return x + self.drop(self.ff(self.norm2(x))), weights


class AttentionClassifier(nn.Module):
    """Window (batch, W, F) → logits (batch, 3); optional attention weights per layer."""

    def __init__(self, cfg: AttentionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.embed = nn.Linear(cfg.n_features, d)  # a kernel-1 convolution over bars
        if cfg.preset == "article":
            self.blocks = nn.ModuleList(ArticleBlock(d, cfg.d_ff) for _ in range(cfg.n_layers))
            self.head = nn.Sequential(
                nn.Flatten(), nn.Linear(cfg.window * d, cfg.head_hidden), nn.Tanh(),
                nn.Linear(cfg.head_hidden, cfg.head_hidden), nn.Tanh(),
                nn.Linear(cfg.head_hidden, cfg.n_classes))
        else:
            self.pos = nn.Parameter(torch.zeros(1, cfg.window, d))
            nn.init.normal_(self.pos, std=0.02)
            self.blocks = nn.ModuleList(ModernBlock(d, cfg.n_heads, cfg.d_ff, cfg.dropout)
                                        for _ in range(cfg.n_layers))
            self.norm = nn.LayerNorm(d)
            self.head = nn.Sequential(nn.Linear(2 * d, cfg.head_hidden), nn.GELU(),
                                      nn.Dropout(cfg.dropout),
                                      nn.Linear(cfg.head_hidden, cfg.n_classes))

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        if self.cfg.preset == "article":
            h = torch.sigmoid(self.embed(x))
        else:
            h = self.embed(x) + self.pos
        maps = []
        for block in self.blocks:
            h, w = block(h, need_weights=return_attention)
            maps.append(w)
        if self.cfg.preset == "article":
            logits = self.head(h)
        else:
            h = self.norm(h)
            logits = self.head(torch.cat([h[:, -1], h.mean(dim=1)], dim=-1))
        return (logits, maps) if return_attention else logits
