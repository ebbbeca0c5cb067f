"""Is one strategy's Sharpe ratio really higher than another's on the same bars?

``sharpe_difference_test`` resamples the two per-bar return series *together* (the same bar
positions for both, so their correlation is kept) with a stationary block bootstrap (Politis and
Romano 1994: blocks of geometric length with mean ``block``, wrapping around the end), so that
the serial dependence of returns within a block survives. The p-value is two-sided, from the
bootstrap distribution of the difference centred on the observed one (the null "no difference"
shifted to the data), and the 95 % interval is the percentile interval.

It uses ``arch.bootstrap.StationaryBootstrap`` when ``arch`` is installed, else the same scheme
in numpy (vectorised). Both are seeded: the same inputs and seed give the same answer.
"""

from __future__ import annotations

import numpy as np


def _sharpe(r: np.ndarray, axis: int = -1) -> np.ndarray:
    """Per-bar Sharpe ratio (mean / sample sd), 0 where the sd is 0."""
    mean = r.mean(axis=axis)
    sd = r.std(axis=axis, ddof=1)
    return np.divide(mean, sd, out=np.zeros_like(mean, dtype=float), where=sd > 0)


def _numpy_indices(n: int, block: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) stationary-bootstrap positions: a new block starts with probability 1/block
    at each step (always at the first); inside a block positions run on, wrapping at n."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n, size=(n_boot, n))
    new = rng.random((n_boot, n)) < 1.0 / block
    new[:, 0] = True
    cols = np.arange(n)
    last_start = np.maximum.accumulate(np.where(new, cols, 0), axis=1)
    first = np.take_along_axis(starts, last_start, axis=1)
    return (first + cols - last_start) % n


def _arch_indices(n: int, block: int, n_boot: int, seed: int) -> np.ndarray | None:
    try:
        from arch.bootstrap import StationaryBootstrap
    except ImportError:
        return None
    bs = StationaryBootstrap(block, np.arange(n), seed=seed)
    return np.stack([pos[0] for pos, _ in bs.bootstrap(n_boot)]).astype(np.int64)


def sharpe_difference_test(returns_a: np.ndarray, returns_b: np.ndarray, *, n_boot: int = 2000,
                           block: int | None = None, seed: int = 0) -> dict:
    """Paired block-bootstrap test of ``sharpe(a) - sharpe(b)`` (per-bar Sharpe ratios).

    ``returns_a`` and ``returns_b`` are per-bar returns of the same bars (equal length, NaN-free).
    Returns ``{"diff", "p_value" (two-sided), "ci" (95 % percentile interval), "block" (mean
    block length used: round(n ** (1/3)) unless given), "n_boot", "n", "method"}``.
    """
    a = np.asarray(returns_a, dtype=float)
    b = np.asarray(returns_b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"the two return series must be 1-D and of equal length, not "
                         f"{a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("returns must be finite (drop the first bar's NaN)")
    n = len(a)
    if n < 3:
        raise ValueError(f"need at least 3 bars of returns, not {n}")
    block = int(block) if block is not None else max(1, round(n ** (1 / 3)))
    diff = float(_sharpe(a) - _sharpe(b))
    idx = _arch_indices(n, block, n_boot, seed)
    method = "arch StationaryBootstrap"
    if idx is None:
        idx, method = _numpy_indices(n, block, n_boot, seed), "numpy stationary bootstrap"
    boot = _sharpe(a[idx], axis=1) - _sharpe(b[idx], axis=1)
    # H0: no difference. Centre the bootstrap distribution on 0 and see how often it is at
    # least as far from 0 as the observed difference (+1 corrected, so never 0).
    extreme = np.sum(np.abs(boot - diff) >= abs(diff))
    p = float((1 + extreme) / (n_boot + 1))
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {"diff": diff, "p_value": p, "ci": (float(lo), float(hi)), "block": block,
            "n_boot": int(n_boot), "n": n, "method": method}


def describe_p(p: float | None) -> str:
    """A p-value in words (for two-sided tests of a difference)."""
    if p is None:
        return "not tested"
    if p < 0.01:
        return f"strong evidence of a difference (p = {p:.3f})"
    if p < 0.05:
        return f"evidence of a difference (p = {p:.3f})"
    if p < 0.10:
        return f"weak evidence of a difference (p = {p:.3f}), not significant at 5 %"
    return f"no evidence of a difference (p = {p:.2f})"


__all__ = ["describe_p", "sharpe_difference_test"]
