"""How fast is a walk-forward? CPU pool (1 worker vs all cores) and GPU (sequential vs ensembles).

    python benchmarks/walkforward_speed.py                 # CPU: 4 models × 3 seeds × 5 folds
    python benchmarks/walkforward_speed.py --device cuda   # GPU: 4 models × 5 seeds × 10 folds
    python benchmarks/walkforward_speed.py --smoke         # seconds: a tiny slice (CI)

CPU mode runs ``attnbt walkforward`` on the sample (default fold sizes: 5 folds) with 1 worker and
with every core, side by side, and checks the two give the same table. CUDA mode times the training
of the (seed × fold) models of each kind one after the other (``fit``) and as one vmapped ensemble
(``models.ensemble.train_ensemble``; dropout models fall back to one at a time) on 10
rolling folds of the sample, after a one-epoch warm-up ``fit`` (CUDA and cuDNN start-up), and
prints the ratio (``--json FILE`` keeps the figures). Every run goes into a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = "attention,dense,conv,lstm"


def machine() -> str:
    import torch

    from backtests.execution import default_workers
    from benchmarks.machine import cpu_model

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu_model()}, {default_workers()} usable cores; {gpu}; torch {torch.__version__}; "
            f"Python {platform.python_version()}")


def cpu_mode(seeds: int, models: str, smoke: bool) -> dict:
    from backtests import walkforward as wfm
    from backtests.config import Experiment
    from backtests.execution import default_workers

    plan = (wfm.FoldPlan(train_bars=400, val_bars=120, test_bars=120) if smoke
            else wfm.FoldPlan())
    settings = {"train.epochs": 2} if smoke else {}
    source = "sample:EURUSD_H1"
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in sorted({1, default_workers()}):
            base = Experiment().override({"runtime.runs_dir": f"{tmp}/w{workers}",
                                          "data.end": "2017-06-01" if smoke else None,
                                          **settings})
            wf = wfm.WalkForward(base=base, sources=[source],
                                 models=wfm.parse_models(models), seeds=list(range(seeds)),
                                 plan=plan, workers=workers, device="cpu")
            t0 = time.perf_counter()
            outcome = wfm.run(wf)
            out[workers] = {"seconds": time.perf_counter() - t0, "tasks": outcome.computed,
                            "table": (outcome.run.path / "results.csv").read_text()}
    tables = {v["table"] for v in out.values()}
    return {"runs": {w: {k: v for k, v in r.items() if k != "table"} for w, r in out.items()},
            "same_table": len(tables) == 1}


def cuda_mode(seeds: int, folds: int, models: str, smoke: bool) -> dict:
    import torch

    from backtests.walkforward import parse_models
    from data import load
    from data.dataset import DatasetSpec
    from data.folds import walk_forward
    from models.ensemble import train_ensemble, vmappable
    from models.networks import make_config
    from models.train import TrainConfig, fit

    device = "cuda" if torch.cuda.is_available() else "cpu"
    candles = load("sample:EURUSD_H1")
    if smoke:
        candles = candles.iloc[:1200]
    n = len(candles)
    test = max(50, (n - 3000) // folds) if not smoke else 100
    all_folds = walk_forward(candles.index, train_bars=2000 if not smoke else 500,
                             val_bars=500 if not smoke else 150, test_bars=test)[:folds]
    spec = DatasetSpec()
    epochs = 2 if smoke else 60
    rows = {}
    if device == "cuda":        # CUDA's and cuDNN's start-up out of the first timed row
        for kind, preset in parse_models(models):
            fit(candles, spec, all_folds[0], kind=kind, preset=preset,
                cfg=TrainConfig(device=device, epochs=1))
    for kind, preset in parse_models(models):
        members = [(f, TrainConfig(seed=s, device=device, epochs=epochs))
                   for s in range(seeds) for f in all_folds]
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for f, c in members:
            fit(candles, spec, f, kind=kind, preset=preset, cfg=c)
        if device == "cuda":
            torch.cuda.synchronize()
        seq = time.perf_counter() - t0
        t0 = time.perf_counter()
        train_ensemble(candles, spec, [f for f, _ in members], kind=kind, preset=preset,
                       cfgs=[c for _, c in members])
        if device == "cuda":
            torch.cuda.synchronize()
        ens = time.perf_counter() - t0
        rows[f"{kind}/{preset}"] = {
            "models": len(members), "sequential_s": seq, "ensemble_s": ens,
            "speedup": seq / ens if ens else float("nan"),
            "vmapped": vmappable(kind, make_config(kind, preset, spec.n_features, spec.window))}
    return {"device": device, "folds": len(all_folds), "seeds": seeds, "rows": rows}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--smoke", action="store_true", help="a tiny slice, seconds (CI)")
    ap.add_argument("--models", default=MODELS)
    ap.add_argument("--seeds", type=int, help="seeds (default: 3 on CPU, 5 on CUDA)")
    ap.add_argument("--folds", type=int, default=10, help="folds in CUDA mode (default 10)")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    print(f"machine: {machine()}")
    if args.device == "cpu":
        seeds = 1 if args.smoke else (args.seeds or 3)
        models = "dense" if args.smoke else args.models
        r = cpu_mode(seeds, models, args.smoke)
        for workers, row in r["runs"].items():
            print(f"{workers} worker(s): {row['tasks']} tasks in {row['seconds']:.1f} s")
        if len(r["runs"]) > 1:
            one, many = r["runs"][1]["seconds"], r["runs"][max(r["runs"])]["seconds"]
            print(f"speed-up with {max(r['runs'])} workers: {one / many:.2f}x")
        print(f"same table whatever the worker count: {r['same_table']}")
        return r
    seeds, folds = (2, 2) if args.smoke else (args.seeds or 5, args.folds)
    r = cuda_mode(seeds, folds, "dense,lstm" if args.smoke else args.models, args.smoke)
    print(f"device {r['device']}: {r['seeds']} seeds × {r['folds']} folds per model")
    for name, row in r["rows"].items():
        print(f"{name}: {row['models']} models, sequential {row['sequential_s']:.1f} s, ensemble "
              f"{row['ensemble_s']:.1f} s ({row['speedup']:.2f}x"
              f"{'' if row['vmapped'] else ', not vmapped: trained one at a time'})")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), **r}, indent=2))
    return r


if __name__ == "__main__":
    main()
