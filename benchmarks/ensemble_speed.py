"""How many models a second does a GPU ensemble train? (issue 19, target 1)

    python benchmarks/ensemble_speed.py --device cuda                      # k = 256 and 1,024
    python benchmarks/ensemble_speed.py --device cuda --before old.py      # side by side
    python benchmarks/ensemble_speed.py --device cpu --k 4 --epochs 2      # seconds (CPU)

The workload of the issue: attention/article members on the sample EURUSD H1, 4 rolling folds of
3,000 training bars (about 3,000 windows: 12 steps of batch 256 an epoch) and 500 validation bars,
20 epochs with no early stop (patience 20): 240 optimizer steps per member; k members = seeds × 4
folds. Each row is one call of ``models.ensemble.train_ensemble`` timed end to end (data
preparation, training, validation every epoch, the members' results), after a small warm-up call
of the same code. ``--before FILE`` times another ``train_ensemble`` (e.g. the previous
models/ensemble.py) in the same process for a before/after pair; ``--check N`` trains N members
alone with ``fit`` and prints how far each member is from it (the distances of
tests/models/test_ensemble.py).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _load_train_ensemble(path: str | None):
    if path is None:
        from models.ensemble import train_ensemble

        return train_ensemble
    spec = importlib.util.spec_from_file_location("ensemble_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.train_ensemble


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def workload(device: str, epochs: int, folds: int):
    from data import load
    from data.dataset import DatasetSpec
    from data.folds import walk_forward

    candles = load("sample:EURUSD_H1")
    plan = walk_forward(candles.index, train_bars=3000, val_bars=500, test_bars=250)[-folds:]
    return candles, DatasetSpec(), plan


def time_call(train, candles, spec, plan, k: int, *, kind: str, preset: str, device: str,
              epochs: int, **train_settings) -> dict:
    import torch

    from models.train import TrainConfig

    members = [(plan[i % len(plan)], TrainConfig(seed=i // len(plan), device=device,
                                                 epochs=epochs, patience=epochs,
                                                 **train_settings))
               for i in range(k)]
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    _sync(device)
    t0 = time.perf_counter()
    out = train(candles, spec, [f for f, _ in members], kind=kind, preset=preset,
                cfgs=[c for _, c in members])
    _sync(device)
    seconds = time.perf_counter() - t0
    windows = sum(r.meta["samples"]["train"] * r.metrics["epochs_run"] for r in out)
    val = sum(r.meta["samples"]["val"] * r.metrics["epochs_run"] for r in out)
    return {"k": k, "seconds": seconds, "models_per_s": k / seconds,
            "train_windows_per_s": windows / seconds,
            "all_windows_per_s": (windows + val) / seconds,
            "steps": max(r.metrics["epochs_run"] for r in out) * -(-max(
                r.meta["samples"]["train"] for r in out) // members[0][1].batch_size),
            "gpu_peak_gib": (torch.cuda.max_memory_allocated() / 2**30
                             if device == "cuda" else None),
            "results": out}


def distances(member, alone, candles, spec) -> dict:
    """tests/models/test_ensemble.py's distances: relative L2 of the weights, the largest
    probability difference over every window, the largest relative validation-loss difference."""
    import numpy as np
    import torch

    from data.dataset import CandleDataset

    def weights(r):
        return torch.cat([v.detach().flatten().double().cpu()
                          for v in r.model.state_dict().values()])

    def probs(r):
        ds = CandleDataset(candles, spec)
        ends = np.flatnonzero(ds.window_ok)
        model = r.model.eval().cpu()
        with torch.inference_mode():
            x = torch.as_tensor(ds.windows(ds.matrix(r.normaliser), ends))
            return model(x).softmax(-1).double().numpy()

    wa, wb = weights(member), weights(alone)
    va, vb = member.history.val_loss.to_numpy(), alone.history.val_loss.to_numpy()
    n = min(len(va), len(vb))
    return {"weights": float((wa - wb).norm() / wb.norm()),
            "probs": float(np.abs(probs(member) - probs(alone)).max()),
            "val_loss": float(np.max(np.abs(va[:n] - vb[:n]) / np.abs(vb[:n]))),
            "same_epochs": member.metrics["epochs_run"] == alone.metrics["epochs_run"]}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cuda")
    ap.add_argument("--k", default="256,1024", help="ensemble sizes, comma-separated")
    ap.add_argument("--before", help="a file defining another train_ensemble, timed beside")
    ap.add_argument("--before-k", help="sizes for --before (default: --k)")
    ap.add_argument("--model", default="attention/article")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--bf16", action="store_true", help="also time bf16 autocast")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile")
    ap.add_argument("--check", type=int, default=0, help="members compared with fit alone")
    ap.add_argument("--profile", type=int, default=0,
                    help="profile a 2-epoch call of this many members (CUDA kernels by time)")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    import torch

    from models.train import TrainConfig, fit

    kind, preset = args.model.split("/")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    print(f"machine: {platform.processor() or platform.machine()}; {gpu}; torch "
          f"{torch.__version__}; Python {platform.python_version()}", flush=True)
    candles, spec, plan = workload(args.device, args.epochs, args.folds)
    common = dict(kind=kind, preset=preset, device=args.device, epochs=args.epochs)
    ks = [int(v) for v in args.k.split(",")]
    impls = [("after", _load_train_ensemble(None), {}, ks)]
    if args.bf16:
        impls.append(("after bf16", impls[0][1], {"bf16": True}, ks))
    if args.compile:   # no warm-up: the first call compiles, the second (same k) reuses it
        impls.append(("after compile", impls[0][1], {"compile": True}, [ks[0], ks[0]]))
    if args.before:
        before_ks = [int(v) for v in (args.before_k or args.k).split(",")]
        impls.insert(0, ("before", _load_train_ensemble(args.before), {}, before_ks))
    rows, kept = [], {}
    for name, train, settings, sizes in impls:
        if not settings.get("compile"):
            time_call(train, candles, spec, plan, 2 * len(plan), **common, **settings)  # warm-up
        for k in sizes:
            r = time_call(train, candles, spec, plan, k, **common, **settings)
            kept[(name, k)] = r.pop("results")
            rows.append({"impl": name, **r})
            print(f"{name:>14} k={k:5d}: {r['seconds']:7.2f} s  {r['models_per_s']:7.1f} "
                  f"models/s  {r['train_windows_per_s'] / 1e6:6.3f} M train windows/s  "
                  f"peak {r['gpu_peak_gib'] or 0:6.2f} GiB", flush=True)
    checks = []
    if args.check:
        name, k = "after", max(ks)
        members = kept[(name, k)]
        picks = sorted({round(i * (k - 1) / max(1, args.check - 1)) for i in range(args.check)})
        t_fit = 0.0
        for i in picks:
            cfg = TrainConfig(seed=i // len(plan), device=args.device, epochs=args.epochs,
                              patience=args.epochs)
            _sync(args.device)
            t0 = time.perf_counter()
            alone = fit(candles, spec, plan[i % len(plan)], kind=kind, preset=preset, cfg=cfg)
            _sync(args.device)
            t_fit += time.perf_counter() - t0
            d = distances(members[i], alone, candles, spec)
            checks.append({"member": i, **d})
            print(f"member {i} of {k} vs fit alone: weights {d['weights']:.2e}, probabilities "
                  f"{d['probs']:.2e}, val loss {d['val_loss']:.2e}, same epochs "
                  f"{d['same_epochs']}, best epoch {members[i].metrics['best_epoch']} vs "
                  f"{alone.metrics['best_epoch']}", flush=True)
            if args.device == "cuda" and i == picks[0]:    # the noise floor: fit on the CPU
                cpu = fit(candles, spec, plan[i % len(plan)], kind=kind, preset=preset,
                          cfg=TrainConfig(seed=cfg.seed, device="cpu", epochs=args.epochs,
                                          patience=args.epochs))
                d = distances(cpu, alone, candles, spec)
                checks.append({"member": i, "fit_cpu_vs_fit_cuda": True, **d})
                print(f"fit on the CPU vs fit on CUDA (member {i}): weights {d['weights']:.2e},"
                      f" probabilities {d['probs']:.2e}, val loss {d['val_loss']:.2e}",
                      flush=True)
        print(f"fit alone: {len(picks) / t_fit:.2f} models/s", flush=True)
        rows.append({"impl": "fit alone", "k": len(picks), "seconds": t_fit,
                     "models_per_s": len(picks) / t_fit})
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == "cuda" else [])
        with profile(activities=acts) as prof:
            time_call(_load_train_ensemble(None), candles, spec, plan, args.profile,
                      **{**common, "epochs": 2})
        key = "cuda_time_total" if args.device == "cuda" else "cpu_time_total"
        print(prof.key_averages().table(sort_by=key, row_limit=25, max_name_column_width=60))
    print("\nimpl            k   seconds  models/s  M train windows/s  GPU peak GiB")
    for r in rows:
        print(f"{r['impl']:<14} {r['k']:5d} {r['seconds']:8.2f} {r['models_per_s']:9.1f} "
              f"{r.get('train_windows_per_s', float('nan')) / 1e6:18.3f} "
              f"{r.get('gpu_peak_gib') or float('nan'):13.2f}")
    result = {"machine": gpu, "torch": torch.__version__, "rows": rows, "checks": checks}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
