"""Training and inference throughput (windows/s) of every model, on CPU or one CUDA GPU.

    python benchmarks/train_speed.py --device cpu  [--sample-train] [--threads N]
    python benchmarks/train_speed.py --device cuda --out result.json
    python benchmarks/train_speed.py --smoke [--out /tmp/x.json]   # seconds; numbers meaningless

Data: a synthetic per-bar feature matrix (throughput does not depend on the values) gathered into
windows on the device exactly as training does (models.step). Every variant is measured in the
same process, one after another, so the ratios between them are side by side. Torch runs with
``--threads`` intra-op threads (default: every core this process may use; 1 with ``--smoke``), set once at the start
and given to the sample trainings as ``train.threads``.

``--smoke`` runs every path of a CPU run (all models, both batch variants, inference, the sample
trainings with ``train_run`` and ``predict_at``, the JSON) with tiny sizes: it checks that the
script works, not how fast anything is. It writes into a temporary folder unless ``--out`` is
given, and never under ``docs/`` or ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # this checkout first

from benchmarks.machine import cpu_model  # noqa: E402
from benchmarks.smoke import available_cores, set_threads, smoke_out  # noqa: E402

MODELS = [("attention", "article"), ("attention", "modern"), ("dense", "article"),
          ("dense", "matched"), ("conv", "article"), ("lstm", "article")]
N_FEATURES, WINDOW = 19, 20


# torch and the models are imported where they are used, so that `--help` starts at once.


def machine(device) -> str:
    import torch

    cpu = cpu_model()
    gpu = torch.cuda.get_device_name(0) if device.type == "cuda" else "none"
    return (f"CPU {cpu} ({torch.get_num_threads()} torch threads), GPU {gpu}, "
            f"torch {torch.__version__}, Python {platform.python_version()}")


def sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def measure_training(kind, preset, device, *, batch, bf16=False, compile_mode=None,
                     seconds=3.0, bars=200_000, fused=False, warmup=None, chunk=10) -> dict:
    """Windows per second of ``train_step``: ``warmup`` steps first (default 5, 15 to compile),
    then chunks of ``chunk`` steps until ``seconds`` have passed (at least one chunk)."""
    import torch

    from models.networks import build, make_config, n_parameters
    from models.step import WindowBatches, train_step

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    batches = WindowBatches(rng.standard_normal((bars, N_FEATURES), dtype=np.float32),
                            rng.integers(0, 3, bars), WINDOW, device)
    model = build(kind, make_config(kind, preset, N_FEATURES, WINDOW)).to(device)
    opt_kw = {"fused": True} if fused and device.type == "cuda" else {}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, **opt_kw)
    step_model = (torch.compile(model, mode=None if compile_mode == "default" else compile_mode)
                  if compile_mode else model)
    weights = torch.ones(3, device=device)
    ends_pool = torch.arange(WINDOW - 1, bars, device=device)
    gen = torch.Generator(device=device).manual_seed(0)

    def step():
        idx = ends_pool[torch.randint(len(ends_pool), (batch,), device=device, generator=gen)]
        x, y = batches.get(idx)
        return train_step(step_model, opt, x, y, weights, bf16=bf16)

    t0 = time.perf_counter()
    for _ in range(warmup or (5 if compile_mode is None else 15)):  # warm-up (and compiling)
        step()
    sync(device)
    warm = time.perf_counter() - t0
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(chunk):
            loss = step()
        steps += chunk
        sync(device)
    elapsed = time.perf_counter() - t0
    assert torch.isfinite(loss), "training diverged during the benchmark"
    return {"model": f"{kind}/{preset}", "params": n_parameters(model), "device": device.type,
            "batch": batch, "bf16": bf16, "compile": compile_mode or "no",
            "fused_adamw": bool(opt_kw), "windows_per_s": steps * batch / elapsed,
            "warmup_s": warm}


def measure_inference(kind, preset, device, *, batch=1, repeats=300, warmup=20) -> dict:
    import torch

    from models.networks import build, make_config

    with torch.no_grad():
        torch.manual_seed(0)
        model = build(kind, make_config(kind, preset, N_FEATURES, WINDOW)).to(device).eval()
        x = torch.randn(batch, WINDOW, N_FEATURES, device=device)
        for _ in range(warmup):
            model(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x).softmax(-1)
            sync(device)
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"model": f"{kind}/{preset}", "device": device.type, "batch": batch,
            "median_ms": med * 1e3, "windows_per_s": batch / med}


def sample_training_time(threads: int, *, epochs: int | None = None, bars: int | None = None,
                         predict_calls: int = 50) -> list[dict]:
    """Wall time of a default `attnbt train` on the embedded sample (early stopping), per model:
    ``train_run`` into a temporary runs folder (per-epoch checkpoints, history, plot, validation
    bars), then ``Predictor.predict_at`` on ``predict_calls`` bars (positions n-100 … n-51).
    ``epochs`` and ``bars`` shrink it for ``--smoke`` (first ``bars`` bars of the sample)."""
    import tempfile

    from backtests.config import Experiment
    from backtests.scoring import load_candles
    from backtests.workflows import train_run
    from models.predict import Predictor

    base = Experiment().override({"data.source": "sample:EURUSD_H1",
                                  "dataset.features": "scaled", "train.device": "cpu",
                                  "train.threads": threads,
                                  **({"train.epochs": epochs} if epochs else {})})
    candles = load_candles(base)
    if bars:
        base = base.override({"data.end": str(candles.index[bars - 1])})
        candles = load_candles(base)
    first = len(candles) - 100
    rows = []
    for kind, preset in MODELS:
        with tempfile.TemporaryDirectory() as tmp:
            exp = base.override({"model.kind": kind, "model.preset": preset,
                                 "runtime.runs_dir": tmp})
            t0 = time.perf_counter()
            run, result = train_run(exp, candles=candles)
            wall = time.perf_counter() - t0
            predictor = Predictor.from_run(run.path)
            t1 = time.perf_counter()
            for pos in range(first, first + predict_calls):
                predictor.predict_at(candles, pos)
            per_bar = (time.perf_counter() - t1) / predict_calls
        rows.append({"model": f"{kind}/{preset}", "wall_s": wall,
                     "epochs": result.metrics["epochs_run"], "predict_at_ms": per_bar * 1e3})
    return rows


def table(rows: list[dict]) -> str:
    cols = list(dict.fromkeys(c for r in rows for c in r))
    rows = [{c: r.get(c, "") for c in cols} for r in rows]
    fmt = [(f"{r[c]:,.0f}" if isinstance(r[c], float) and r[c] >= 100 else
            f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c])) for r in rows for c in cols]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for i in range(len(rows)):
        lines.append("| " + " | ".join(fmt[i * len(cols):(i + 1) * len(cols)]) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--sample-train", action="store_true",
                    help="also time a default training run on the embedded sample (CPU)")
    ap.add_argument("--only-attention", action="store_true")
    ap.add_argument("--baselines-quick", action="store_true",
                    help="baselines: only the plain fp32 and the largest bf16 variant, no compile")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: the cores this process may "
                         "use; 1 with --smoke)")
    ap.add_argument("--repeats", type=int, default=300, help="timed one-batch inference calls")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny sizes, every code path, a few seconds; writes to a temp folder "
                         "unless --out (never under docs/ or benchmarks/results/)")
    args = ap.parse_args()
    import torch

    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    args.threads = set_threads(args.threads or (1 if args.smoke else available_cores()))
    bars, warmup, predict_calls, epochs, sample_bars = 200_000, 20, 50, None, None
    train_warmup, chunk = None, 10          # measure_training's defaults
    if args.smoke:
        args.seconds, args.repeats, args.sample_train = 0.02, 3, True
        bars, warmup, predict_calls, epochs, sample_bars = 5_000, 2, 3, 1, 600
        train_warmup, chunk = 1, 1          # each loop of the measurement runs, once or so
        args.out = smoke_out(args.out, "train_speed.json")
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    result = {"machine": machine(device), "training": [], "inference": []}
    print(result["machine"], flush=True)
    models = MODELS[:2] if args.only_attention else MODELS
    if device.type == "cuda":
        variants = [dict(batch=4096), dict(batch=16384, bf16=True),
                    dict(batch=16384, bf16=True, compile_mode="default", fused=True),
                    dict(batch=16384, bf16=True, compile_mode="reduce-overhead", fused=True),
                    dict(batch=65536, bf16=True, compile_mode="default", fused=True)]
    else:
        variants = [dict(batch=256), dict(batch=4096)]
    if args.smoke:   # same variants, tiny batches
        variants = [{**v, "batch": 8 * (i + 1)} for i, v in enumerate(variants)]
    for kind, preset in models:
        baseline_variants = variants[:1] + [{**variants[-1], "compile_mode": None}]
        for v in variants if kind == "attention" else baseline_variants:
            try:
                row = measure_training(kind, preset, device, seconds=args.seconds, bars=bars,
                                       warmup=train_warmup, chunk=chunk, **v)
            except Exception as exc:  # a variant that fails is reported, not hidden
                row = {"model": f"{kind}/{preset}", **v, "error": f"{type(exc).__name__}: {exc}"[:200]}
            print(row, flush=True)
            result["training"].append(row)
            if args.out:  # written as we go: a run cut short still leaves its rows
                args.out.write_text(json.dumps(result, indent=2))
    inference_batches = (1, 4096) if device.type == "cpu" else (1, 65536)
    if args.smoke:
        inference_batches = (1, 16)
    for kind, preset in models:
        for batch in inference_batches:
            result["inference"].append(measure_inference(kind, preset, device, batch=batch,
                                                         repeats=args.repeats, warmup=warmup))
    if args.sample_train:
        result["sample_training"] = sample_training_time(args.threads, epochs=epochs,
                                                         bars=sample_bars,
                                                         predict_calls=predict_calls)
    print("\n## training\n" + table(result["training"]))
    print("\n## inference\n" + table(result["inference"]))
    if "sample_training" in result:
        print("\n## default training on the embedded sample (early stopping)\n"
              + table(result["sample_training"]))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
