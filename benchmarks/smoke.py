"""What the benchmark scripts share: their ``--smoke`` output paths and deliberate thread counts.

A smoke run uses tiny settings so that it takes seconds and goes through every code path of the
real run, including writing its output file. It never writes into the published results
(``docs/``, ``benchmarks/results/``): without ``--out`` it writes into a new temporary folder.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTECTED = (ROOT / "docs", ROOT / "benchmarks" / "results")


def smoke_out(out: Path | None, name: str) -> Path:
    """Where a smoke run writes ``name``: ``out`` (refused under ``docs/`` or
    ``benchmarks/results/``), else a new temporary folder."""
    if out is None:
        return Path(tempfile.mkdtemp(prefix="attnbt-smoke-")) / name
    resolved = Path(out).resolve()
    for protected in PROTECTED:
        if resolved == protected or protected in resolved.parents:
            raise SystemExit(f"--smoke never writes under {protected.relative_to(ROOT)}/ "
                             f"(asked for {out}); give another --out or leave it out")
    return Path(out)


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def set_threads(n: int) -> int:
    """Give torch ``n`` intra-op threads and one inter-op thread; returns ``n``."""
    import torch

    torch.set_num_threads(int(n))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set (or work already ran) in this process
        pass
    return int(n)
