"""Every benchmark script starts both ways a person runs it from the repository root: as a file
(``python benchmarks/x.py --help``) and as a module (``python -m benchmarks.x --help``).

Run in a subprocess without PYTHONPATH, so that neither way leans on the test's import path.
Only that each one starts and exits cleanly is checked (``--help`` runs nothing).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if p.name != "__init__.py")


def test_the_benchmarks_are_found():
    assert {"backtest_speed.py", "train_speed.py", "paper_step.py"} <= {p.name for p in SCRIPTS}


@pytest.mark.slow
@pytest.mark.parametrize("how", ["file", "module"])
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_a_benchmark_starts_as_a_file_and_as_a_module(script, how):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"MPLBACKEND": "Agg"}
    target = ([f"benchmarks/{script.name}"] if how == "file"
              else ["-m", f"benchmarks.{script.stem}"])
    proc = subprocess.run([sys.executable, *target, "--help"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr
    if "argparse" in script.read_text(encoding="utf-8"):
        assert proc.stdout.startswith("usage:"), proc.stdout[:500]
