"""Sweep null calibration: how often does a sweep over the new keys "find" an edge where none is?

    python benchmarks/planted_null_sweep.py --seeds 200 --workers 16 --out FILE   # resumable
    python benchmarks/planted_null_sweep.py --summary --out FILE

For each seed s of ``sample:planted-null:s:BARS`` (3,000 bars), in a fresh runs folder (so the
DSR counts the trials made on that world only), one sweep of ``MODELS`` (the attention net, the
same-size dense net and gradient boosting) over the model-side new keys and the threshold:
``features`` (``scaled``, ``scaled+shape``) × ``labels`` (``horizon:1``,
``triple:0.5:0.5:1``) × ``threshold`` (0.4, 0.5, 0.6): 4 model settings, each trained on every
fold, × 3 thresholds × 3 models = 36 combinations, all charged by the sweep's DSR. This is the
ninth planted-world trial's grid (docs/research.md), on small worlds: 1,000 training + 500
validation + 500 test bars a fold (3 folds), window 5, ``train.epochs=EPOCHS``.

Strict null as ``planted_null.py`` and ``planted_null_nets.py``: no spread (the CSV without its
spread column, ``costs.spread=0``) and exits that cannot bias a random walk
(``planted_null_nets.EXITS``: a stop 50 ATRs away, no target, a one-bar time exit, the labels'
barriers not used as exits), so every combination's expected return is exactly 0 and any claim
is a false one.

Claims counted per seed (the sweep's own ``sweep.json``): the best combination with DSR > 0.95
(what the sweep prints as found); the best with PSR > 0.95 (not deflated); Hansen's SPA of the
grid against random entries and against buy-and-hold with p < 0.05. Seeds run in parallel, one
process a seed, torch on one thread each; a row is appended to ``--out`` as each seed finishes.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.planted_null import rate  # noqa: E402  (the checkout first)
from benchmarks.planted_null_nets import EXITS, FOLDS, run_seeds, seed_parser  # noqa: E402

MODELS = "attention,dense/matched,gbm"
GRID = ["features=scaled,scaled+shape", "labels=horizon:1,triple:0.5:0.5:1",
        "threshold=0.4,0.5,0.6"]


def one_seed(seed: int, bars: int, epochs: int) -> dict:
    import torch

    torch.set_num_threads(1)
    from backtests import api
    from data import synth

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        frame = synth.generate("null", seed=seed, bars=bars).drop(columns=["spread"])
        source = str(synth.write_csv(frame, Path(tmp) / f"null-{seed}.csv", force=True))
        settings = {**EXITS, "costs.spread": 0.0, "train.epochs": epochs, "dataset.window": 5}
        sw = api.sweep(GRID, MODELS, source, runs_dir=Path(tmp) / "runs", settings=settings,
                       top=1, device="cpu", **FOLDS)
        p = json.loads((sw.outcome.run.path / "sweep.json").read_text())
    b = p["best"]
    return {"seed": seed, "bars": bars, "epochs": epochs,
            "best": f"{b['model']} {b['rules']}", "setting": b.get("model_setting"),
            "dsr": b["dsr"], "psr": b.get("psr"),
            "trials": b["dsr_trials"], "sharpe": b.get("sharpe"),
            "spa_random": p["spa"]["random_entries"]["p_value"],
            "spa_bh": p["spa"]["buy_and_hold"]["p_value"],
            "failed": len(p.get("failures") or []),
            "seconds": round(time.perf_counter() - t0, 1)}


def summary(rows: list[dict]) -> dict:
    rows = [r for r in rows if "error" not in r]
    n = len(rows)

    def sig(x) -> bool:
        return x is not None and x == x and x > 0.95

    def below(x) -> bool:
        return x is not None and x == x and x < 0.05

    return {"seeds": n,
            "sweep DSR > 0.95 (best combination: the claim the sweep prints)":
                rate(sum(sig(r["dsr"]) for r in rows), n),
            "sweep PSR > 0.95 (best combination, not deflated)":
                rate(sum(sig(r["psr"]) for r in rows), n),
            "SPA p < 0.05 vs random entries": rate(sum(below(r["spa_random"]) for r in rows), n),
            "SPA p < 0.05 vs buy-and-hold": rate(sum(below(r["spa_bh"]) for r in rows), n),
            "trials charged (min, max)": [min((r["trials"] for r in rows), default=None),
                                          max((r["trials"] for r in rows), default=None)]}


def main() -> None:
    ap = seed_parser(__doc__)
    args = ap.parse_args()
    done = run_seeds(args.out, range(args.first, args.first + args.seeds),
                     None if args.summary else args.workers,
                     lambda s: (one_seed, s, args.bars, args.epochs),
                     lambda r: f"{r['best']} DSR {r['dsr']:.3f} over {r['trials']}, "
                               f"SPA p {r['spa_random']}")
    rows = sorted(done.values(), key=lambda r: r["seed"])
    print(json.dumps(summary(rows), indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
