"""Forward passes of k models of one kind at once, from parameters stacked as ``[k, ...]`` tensors.

``stacked_forward(model, config)`` returns ``forward(params, x) → logits`` where ``params`` maps
each parameter name of the module to a ``[k, *shape]`` tensor and ``x`` is ``[k, B, W, F]`` (member
``m``'s windows in ``x[m]``); logits are ``[k, B, n_classes]``, each member's equal (up to the
order of float sums) to its module's output on its own windows.

attention/article and dense are written out with batched matrix products (``baddbmm``: one kernel
per layer for every member) and plain attention (20×20 scores per window, as the module computes
them), lstm as a batched LSTM cell stepped over the window (cuDNN's LSTM has no batching rule);
any other network (conv) runs its own module under ``torch.func.vmap``.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from models.attention import AttentionClassifier
from models.earlier import DenseClassifier, LSTMClassifier


def _linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``x [k, n, in] @ w[k]ᵀ + b[k]`` for every member in one batched product."""
    return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))


def _layer_norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm over the last dimension with each member's own scale and shift. Written with
    ``var_mean``: on rows of 36 CUDA's fused layer-norm kernel is slow (H200, 256 members ×
    65,536 rows: forward 2.1 ms against 1.1 ms; forward and backward 3.5 ms either way)."""
    var, mean = torch.var_mean(x, dim=-1, keepdim=True, correction=0)
    return torch.addcmul(b.unsqueeze(1), (x - mean) * torch.rsqrt(var + eps), w.unsqueeze(1))


def _article(model: AttentionClassifier):
    cfg = model.cfg
    n_layers, d = cfg.n_layers, cfg.d_model
    eps = [(b.norm1.eps, b.norm2.eps) for b in model.blocks]
    slope = [b.ff[1].negative_slope for b in model.blocks]
    scale = 1.0 / math.sqrt(d)

    def forward(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        k, n, w, f = x.shape
        h = torch.sigmoid(_linear(x.reshape(k, n * w, f), p["embed.weight"], p["embed.bias"]))
        for i in range(n_layers):
            pre = f"blocks.{i}."
            wqkv = torch.cat([p[pre + "q.weight"], p[pre + "k.weight"], p[pre + "v.weight"]], 1)
            bqkv = torch.cat([p[pre + "q.bias"], p[pre + "k.bias"], p[pre + "v.bias"]], 1)
            q, kk, v = _linear(h, wqkv, bqkv).view(k * n, w, 3 * d).split(d, dim=-1)
            scores = torch.tanh(q) @ torch.tanh(kk).transpose(1, 2) * scale
            att = (scores.softmax(dim=-1) @ v).view(k, n * w, d)
            h = _layer_norm(h + att, p[pre + "norm1.weight"], p[pre + "norm1.bias"], eps[i][0])
            ff = F.leaky_relu(_linear(h, p[pre + "ff.0.weight"], p[pre + "ff.0.bias"]), slope[i])
            ff = _linear(ff, p[pre + "ff.2.weight"], p[pre + "ff.2.bias"])
            h = _layer_norm(h + ff, p[pre + "norm2.weight"], p[pre + "norm2.bias"], eps[i][1])
        z = h.view(k, n, w * d)
        z = torch.tanh(_linear(z, p["head.1.weight"], p["head.1.bias"]))
        z = torch.tanh(_linear(z, p["head.3.weight"], p["head.3.bias"]))
        return _linear(z, p["head.5.weight"], p["head.5.bias"])

    return forward


def _dense(model: DenseClassifier):
    layers = [(f"net.{i}.", isinstance(m, nn.Linear)) for i, m in enumerate(model.net)
              if isinstance(m, nn.Linear | nn.Tanh)]

    def forward(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        k, n = x.shape[:2]
        z = x.reshape(k, n, -1)
        for pre, linear in layers:
            z = _linear(z, p[pre + "weight"], p[pre + "bias"]) if linear else torch.tanh(z)
        return z

    return forward


def _lstm(model: LSTMClassifier):
    """nn.LSTM's equations (gates i, f, g, o; zero initial state), a batched cell per time step;
    each layer's input products for every step in one batched product."""
    n_layers, hidden = model.cfg.n_layers, model.cfg.hidden_size

    def forward(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        k, n, w, _ = x.shape
        seq = x
        for layer in range(n_layers):
            whh = p[f"lstm.weight_hh_l{layer}"].transpose(1, 2)
            bias = p[f"lstm.bias_ih_l{layer}"] + p[f"lstm.bias_hh_l{layer}"]
            pre = _linear(seq.reshape(k, n * w, -1), p[f"lstm.weight_ih_l{layer}"], bias
                          ).view(k, n, w, 4 * hidden)
            h = c = x.new_zeros(k, n, hidden)
            outs = []
            for t in range(w):
                gates = torch.baddbmm(pre[:, :, t], h, whh) if t else pre[:, :, t]
                i, f, g, o = gates.chunk(4, dim=-1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                outs.append(h)
            if layer < n_layers - 1:
                seq = torch.stack(outs, dim=2)
        return _linear(h, p["head.weight"], p["head.bias"])

    return forward


def _vmapped(model: nn.Module):
    base = copy.deepcopy(model).to("meta")
    return vmap(lambda p, x: functional_call(base, p, (x,)), in_dims=(0, 0))


def written_out(model: nn.Module) -> bool:
    """Whether ``stacked_forward`` has batched products for this network (else it vmaps)."""
    if isinstance(model, AttentionClassifier):
        return model.cfg.preset == "article" and not model.cfg.dropout
    if isinstance(model, DenseClassifier | LSTMClassifier):
        return not model.cfg.dropout
    return False


def stacked_forward(model: nn.Module):
    """``forward(params, x)`` for k stacked copies of ``model`` (a template: its weights unused)."""
    if written_out(model):
        kind = {AttentionClassifier: _article, DenseClassifier: _dense, LSTMClassifier: _lstm}
        return kind[type(model)](model)
    return _vmapped(model)


__all__ = ["stacked_forward", "written_out"]
