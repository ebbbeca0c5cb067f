"""Every benchmark script starts both ways a person runs it from the repository root: as a file
(``python benchmarks/x.py --help``) and as a module (``python -m benchmarks.x --help``).

Run in a subprocess without PYTHONPATH, so that neither way leans on the test's import path.
Only that each one starts and exits cleanly is checked (``--help`` runs nothing).
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if p.name != "__init__.py")


def test_the_benchmarks_are_found():
    assert {"backtest_speed.py", "train_speed.py", "paper_step.py"} <= {p.name for p in SCRIPTS}


def _start(script: Path, how: str) -> list[str]:
    """What went wrong when ``script`` starts the ``how`` way with ``--help`` (empty: nothing)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"MPLBACKEND": "Agg"}
    target = ([f"benchmarks/{script.name}"] if how == "file"
              else ["-m", f"benchmarks.{script.stem}"])
    proc = subprocess.run([sys.executable, *target, "--help"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240)
    wrong = []
    if proc.returncode != 0:
        wrong.append(f"exit {proc.returncode}\n{proc.stderr[-3000:]}")
    if "Traceback" in proc.stderr:
        wrong.append(f"a traceback on stderr\n{proc.stderr[-3000:]}")
    if "argparse" in script.read_text(encoding="utf-8") and not proc.stdout.startswith("usage:"):
        wrong.append(f"stdout does not start with usage:\n{proc.stdout[:500]}")
    return wrong


@pytest.mark.slow
def test_every_benchmark_starts_as_a_file_and_as_a_module():
    """One fresh interpreter per script and way (none leans on another's imports), started a
    few at a time; a failure names the script and the way."""
    cases = [(script, how) for script in SCRIPTS for how in ("file", "module")]
    with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 1))) as pool:
        results = list(pool.map(lambda case: _start(*case), cases))
    failures = [f"{script.stem} as a {how}: {problem}"
                for (script, how), problems in zip(cases, results, strict=True)
                for problem in problems]
    assert not failures, "\n\n".join(failures)
