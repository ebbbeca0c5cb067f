"""The benchmark scripts still run: each one's ``--smoke`` mode end to end (untimed).

Every script runs as a person runs it, ``python benchmarks/x.py --smoke`` from the repository
root, with tiny settings that go through every code path of its real run (CUDA-only variants are
skipped by the scripts themselves on a CPU machine), but in this process: the file is executed as
``__main__`` (``runpy.run_path``) with its command line in ``sys.argv``. That a fresh interpreter
starts each script, as a file and as a module, is checked for every script by
tests/benchmarks/test_invocation.py (``test_every_benchmark_starts_as_a_file_and_as_a_module``);
a subprocess here paid the same ~5 s of imports (torch, its compiler, arch, Bokeh) again for
each script. Only exit status and the output file's shape are checked; nothing here measures
speed. The three smoke runs are slow tests; the check that a smoke run never writes into the
published results is quick. ``run_script`` is tests/conftest.py's.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def check(proc) -> None:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


@pytest.mark.slow
def test_train_speed_smoke(tmp_path, run_script):
    out = tmp_path / "train_speed.json"
    proc = run_script("train_speed.py", "--smoke", "--device", "cpu", "--out", str(out))
    check(proc)
    result = json.loads(out.read_text())
    assert set(result) == {"machine", "training", "inference", "sample_training"}
    order = ["attention/article", "attention/modern", "dense/article", "dense/matched",
             "conv/article", "lstm/article"]
    models = set(order)
    assert {r["model"] for r in result["training"]} == models
    assert all("error" not in r and r["windows_per_s"] > 0 for r in result["training"])
    assert {r["model"] for r in result["inference"]} == models
    assert all(r["median_ms"] > 0 for r in result["inference"])
    assert [r["model"] for r in result["sample_training"]] == order
    assert all(r["epochs"] == 1 and r["predict_at_ms"] > 0 for r in result["sample_training"])
    for heading in ("## training", "## inference", "## default training on the embedded sample"):
        assert heading in proc.stdout


@pytest.mark.slow
def test_backtest_speed_smoke(tmp_path, run_script):
    out = tmp_path / "backtest_speed.md"
    proc = run_script("backtest_speed.py", "--smoke", "--out", str(out))
    check(proc)
    text = out.read_text()
    assert text.startswith("machine: ")
    assert "| run | bars/s | seconds | of which prediction | trades |" in text
    for row in ("(a) backtrader", "(b) our strategy + attention", "(a') backtrader",
                "(c) backtesting.py", "(d) compiled simulator", "(d') compiled simulator"):
        assert sum(line.startswith(f"| {row}") for line in text.splitlines()) == 1, row
    vectorbt = importlib.util.find_spec("vectorbt") is not None
    assert sum(line.startswith("| (e) vectorbt") for line in text.splitlines()) == vectorbt
    assert ("(e) vectorbt: skipped" in text) != vectorbt
    assert "ratio (b)/(a):" in text and "ratio (d)/(a):" in text and "ratio (d)/(e):" in text
    assert text.count(": same within 1e-06") == 3
    assert text.strip() in proc.stdout



def test_smoke_never_writes_into_docs(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_smoke", ROOT / "benchmarks" / "smoke.py")
    smoke = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(smoke)
    for target in (ROOT / "docs" / "attention-vs-dense.md", ROOT / "docs" / "img" / "x.png",
                   ROOT / "benchmarks" / "results" / "train_speed_cpu.json"):
        with pytest.raises(SystemExit, match="never writes under"):
            smoke.smoke_out(target, "x")
    assert smoke.smoke_out(tmp_path / "a.md", "x") == tmp_path / "a.md"
    default = smoke.smoke_out(None, "page.md")
    assert default.name == "page.md" and default.parent.is_dir()
    assert ROOT not in default.parents
    default.parent.rmdir()


@pytest.mark.slow
def test_sweep_speed_smoke(run_script):
    proc = run_script("sweep_speed.py", "--smoke", "--runs", "cpu:1,cpu:2")
    check(proc)
    assert "same table on every CPU run: True" in proc.stdout
    assert proc.stdout.count("backtrader agrees: True") == 2
