"""How fast is a sweep? The same grid on the sample with 1 worker, every core, Ray, or the GPU.

    python benchmarks/sweep_speed.py                          # 60 combinations × 5 folds, 1 vs all cores
    python benchmarks/sweep_speed.py --runs cpu:1,ray:2       # any list of executor:workers
    python benchmarks/sweep_speed.py --runs cpu:1,cpu:16,cuda --models attention,dense --seeds 3
    python benchmarks/sweep_speed.py --large --runs cpu:2     # 1,000 combinations × 5 folds
    python benchmarks/sweep_speed.py --smoke                  # seconds: a tiny slice (CI)

Each run is ``attnbt sweep`` (``backtests.sweep.run``) on ``sample:EURUSD_H1`` with the default
folds (2,000 / 500 / 500 bars: 5 folds) and the grid threshold × stop × take_profit_r
(5 × 3 × 4 = 60 rule combinations; ``--large``: threshold × stop × take_profit_r × max_hold,
10 × 5 × 5 × 4 = 1,000), into its own temporary runs folder, timed end to end
(loading, training, every combination, aggregation, SPA, backtrader re-runs of the top 3). The CPU
runs (local pool and Ray) must give the same table; ``cuda`` (vmapped ensembles) trains on other
hardware and is compared only for shape.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GRID = ["threshold=0.4,0.5,0.6,0.7,0.8", "stop=bar,atr:1,atr:2", "take_profit_r=0,1,2,3"]
GRID_1000 = ["threshold=0.4,0.45,0.5,0.55,0.6,0.65,0.7,0.75,0.8,0.85",
             "stop=bar,atr:1,atr:1.5,atr:2,atr:3", "take_profit_r=0,1,1.5,2,3",
             "max_hold=12,24,36,48"]   # 10 × 5 × 5 × 4 = 1,000 rule combinations
SMOKE_GRID = ["threshold=0.4,0.5", "stop=bar,atr:1"]


def parse_runs(text: str) -> list[tuple[str, int]]:
    """``cpu:1,cpu:2,ray:2,cuda`` → [(executor or device, workers)]."""
    out = []
    for item in text.split(","):
        kind, _, n = item.strip().partition(":")
        if kind not in ("cpu", "ray", "cuda"):
            raise SystemExit(f"--runs: {item!r}; give cpu:N, ray:N or cuda")
        out.append((kind, int(n or 1)))
    return out


def one_run(kind: str, workers: int, models: str, seeds: int, grid: list[str], smoke: bool,
            tmp: str) -> dict:
    from backtests import sweep as swm
    from backtests.config import Experiment
    from backtests.walkforward import FoldPlan, parse_models

    plan = FoldPlan(train_bars=400, val_bars=120, test_bars=120) if smoke else FoldPlan()
    base = Experiment().override({"runtime.runs_dir": f"{tmp}/{kind}{workers}",
                                  "data.end": "2017-06-01" if smoke else None,
                                  **({"train.epochs": 2} if smoke else {})})
    sw = swm.Sweep(base=base, source="sample:EURUSD_H1", models=parse_models(models),
                   seeds=list(range(seeds)), grid=swm.parse_grid(grid, base), plan=plan,
                   executor="ray" if kind == "ray" else "local", workers=workers,
                   device="cuda" if kind == "cuda" else "cpu")
    t0 = time.perf_counter()
    out = swm.run(sw)
    seconds = time.perf_counter() - t0
    table = (out.run.path / "table.csv").read_text()
    return {"seconds": seconds, "tasks": out.computed, "combinations": len(out.table),
            "failed": len(out.failures), "best": out.summary["best"],
            "best_sharpe": out.summary["best_sharpe"], "best_dsr": out.summary["best_dsr"],
            "backtrader_agrees": out.summary["backtrader_agrees"], "table": table}


def main(argv: list[str] | None = None) -> dict:
    from benchmarks.walkforward_speed import machine

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", help="executor:workers list (default cpu:1 and cpu:<all cores>)")
    ap.add_argument("--models", default="attention")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--smoke", action="store_true", help="a tiny slice, seconds (CI)")
    ap.add_argument("--large", action="store_true", help="1,000 rule combinations, not 60")
    args = ap.parse_args(argv)
    from backtests.execution import default_workers

    runs = parse_runs(args.runs) if args.runs else [("cpu", w) for w in
                                                    sorted({1, default_workers()})]
    grid = SMOKE_GRID if args.smoke else GRID_1000 if args.large else GRID
    print(f"machine: {machine()}")
    print(f"grid: {' '.join(grid)}; models {args.models}; seeds {args.seeds}", flush=True)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, workers in runs:
            r = one_run(kind, workers, args.models, args.seeds, grid, args.smoke, tmp)
            name = kind if kind == "cuda" else f"{kind}:{workers}"
            results[name] = r
            print(f"{name}: {r['tasks']} tasks, {r['combinations']} combinations in "
                  f"{r['seconds']:.1f} s; best {r['best']} (Sharpe {r['best_sharpe']:.2f}, DSR "
                  f"{r['best_dsr']:.3f}); backtrader agrees: {r['backtrader_agrees']}",
                  flush=True)
    cpu_tables = {r["table"] for n, r in results.items() if n != "cuda"}
    same = len(cpu_tables) <= 1
    print(f"same table on every CPU run: {same}")
    names = [n for n in results if n != "cuda"]
    if len(names) > 1:
        first = results[names[0]]["seconds"]
        for n in names[1:]:
            print(f"speed-up {n} vs {names[0]}: {first / results[n]['seconds']:.2f}x")
    if "cuda" in results and names:
        print(f"speed-up cuda vs {names[0]}: "
              f"{results[names[0]]['seconds'] / results['cuda']['seconds']:.2f}x")
    return {"runs": {n: {k: v for k, v in r.items() if k != "table"} for n, r in
                     results.items()}, "same_table": same}


if __name__ == "__main__":
    main()
