"""Network null calibration: how often do the networks "find" an edge on worlds that have none?

    python benchmarks/planted_null_nets.py --seeds 200 --workers 16 --out FILE   # resumable
    python benchmarks/planted_null_nets.py --summary --out FILE
    python benchmarks/planted_null_nets.py ... --series DIR     # also save the return series
    python benchmarks/planted_null_nets.py ... --models attention,dense/matched,gbm \
        --references rule/newhl          # another panel: the candidates, and references beside

``--series DIR`` saves, per seed, the two models' stitched per-bar test returns of each label
rule (``DIR/SEED.npz``, keys ``LABELS|MODEL``, recovered from the walk-forward's equity.csv):
the pairs the comparison verdict judged, so a verdict rule can be re-calibrated on them without
training the networks again (``benchmarks/null_verdict.py``).

For each seed s of ``sample:planted-null:s:BARS`` (3,000 bars), in a fresh runs folder (so the
DSR counts the trials made on that world only), one walk-forward of ``attention,dense/matched``
(1,000 training + 500 validation + 500 test bars a fold: 3 folds; threshold chosen on validation;
``train.epochs=EPOCHS``) for each value of the searched model-side key ``dataset.labels`` in
``LABELS`` (``3bar``, the default, then ``horizon:1``), in that order, both in the same runs
folder: the second walk-forward's DSR charges 4 trials (2 models × 2 label rules), the first 2,
as the product counts them. Strict null as ``planted_null.py``: no spread (the CSV without its
spread column, ``costs.spread=0``) and exits that cannot bias a random walk (``EXITS`` with
``strategy.barriers=none``, the same for both label rules), so every model's expected return is 0.

Claims counted per seed (the walk-forward's own outputs): the winner (highest stitched Sharpe)
with DSR > 0.95; the winner with PSR > 0.95 (not deflated); attention vs dense decided
"better"/"worse" (``significance.decide``: the paired test + SPA); each "after the search" (any
of the label rules) and for the first label rule alone. Since registry schema v5 the second
walk-forward's comparison is the pair's second on these bars and is judged at α / 2
(docs/walkforward.md); each row keeps its α and the decision it would have had at α. Seeds run
in parallel, one process a seed, torch on one thread each; a row is appended to ``--out`` as
each seed finishes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks.planted_null import rate  # noqa: E402  (the checkout first)

MODELS = "attention,dense/matched"
LABELS = ("3bar", "horizon:1")
FOLDS = dict(train_bars=1000, val_bars=500, test_bars=500)
EXITS = {"strategy.stop": "atr:50", "strategy.take_profit_r": 0, "strategy.max_hold": 1,
         "strategy.barriers": "none"}


def returns_from_equity(equity_csv: Path, cash: float) -> dict[str, np.ndarray]:
    """Per-bar returns of each model column of a walk-forward's equity.csv (equity from
    ``cash``): what ``results.model_summary`` compounded into it."""
    eq = pd.read_csv(equity_csv, index_col=0)
    return {m: (eq[m] / eq[m].shift(1, fill_value=cash) - 1).to_numpy() for m in eq.columns}


def one_seed(seed: int, bars: int, epochs: int, series: Path | None = None,
             models: str = MODELS, references: str | None = None) -> dict:
    import torch

    torch.set_num_threads(1)
    from backtests import api
    from data import synth

    t0 = time.perf_counter()
    out: dict = {"seed": seed, "bars": bars, "epochs": epochs, "configs": [],
                 **({"models": models} if models != MODELS else {}),
                 **({"references": references} if references else {})}
    saved: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        frame = synth.generate("null", seed=seed, bars=bars).drop(columns=["spread"])
        source = str(synth.write_csv(frame, Path(tmp) / f"null-{seed}.csv", force=True))
        for labels in LABELS:
            settings = {**EXITS, "costs.spread": 0.0, "train.epochs": epochs,
                        "dataset.labels": labels}
            wf = api.walkforward(models, source, runs_dir=Path(tmp) / "runs",
                                 settings=settings, references=references, **FOLDS)
            p = json.loads((wf.outcome.run.path / "walkforward.json").read_text())
            if series is not None:
                for m, r in returns_from_equity(wf.outcome.run.path / "equity.csv",
                                                p["cash"]).items():
                    saved[f"{labels}|{m}"] = r
            best = (p.get("winner") or {}).get("model")   # None: no model traded a test bar
            rec = p["models"].get(best) or {"psr": None, "dsr": None, "dsr_trials": None}
            cmp = [c for c in p["comparisons"]
                   if c["a"].startswith("attention") and c["b"].startswith("dense")]
            out["configs"].append({
                "labels": labels, "best": best, "psr": rec["psr"], "dsr": rec["dsr"],
                "trials": rec["dsr_trials"],
                "models": {m: {"sharpe": r.get("sharpe"), "psr": r.get("psr"), "dsr": r.get("dsr")}
                           for m, r in p["models"].items()},
                "decision": cmp[0]["decision"] if cmp else None,
                "spa": (cmp[0].get("spa") or {}).get("p_value") if cmp else None,
                **(_verdict_numbers(cmp[0]) if cmp else {})})
    if series is not None:
        series.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(series / f"{seed}.npz", **saved)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def _verdict_numbers(c: dict) -> dict:
    """The comparison's p-values, its α (the registry's charge: the second label rule's
    comparison is the pair's second on these bars) and the decision it would have had at α."""
    from backtests.analysis.significance import ALPHA, decide

    sd, worse = c["sharpe_diff"], (c.get("spa_worse") or {}).get("p_value")
    return {"alpha": (c.get("family") or {}).get("alpha", ALPHA), "diff": sd["diff"],
            "p_bootstrap": sd["p_value"], "spa_worse": worse,
            "decision_at_alpha": decide(sd["diff"], sd["p_value"], c["spa"]["p_value"], worse)}


def summary(rows: list[dict]) -> dict:
    rows = [r for r in rows if "configs" in r]
    n = len(rows)

    def sig(x) -> bool:
        return x is not None and x == x and x > 0.95

    def decided(c) -> bool:
        return c["decision"] in ("better", "worse")

    def count(pred, which) -> int:
        return sum(any(pred(c) for c in which(r["configs"])) for r in rows)

    def first(cs):
        return cs[:1]

    def every(cs):
        return cs

    def second(cs):
        return cs[1:2]

    return {"seeds": n,
            "winner DSR > 0.95, any label rule": rate(count(lambda c: sig(c["dsr"]), every), n),
            "winner PSR > 0.95, any label rule": rate(count(lambda c: sig(c["psr"]), every), n),
            "attention vs dense better/worse, any label rule": rate(count(decided, every), n),
            "winner DSR > 0.95, 3bar only": rate(count(lambda c: sig(c["dsr"]), first), n),
            "winner PSR > 0.95, 3bar only": rate(count(lambda c: sig(c["psr"]), first), n),
            "attention vs dense better/worse, 3bar only": rate(count(decided, first), n),
            "winner DSR > 0.95, horizon:1 only": rate(count(lambda c: sig(c["dsr"]), second), n),
            "attention vs dense better/worse, horizon:1 only": rate(count(decided, second), n),
            "attention vs dense better/worse, any label rule, not charged (each at 0.05)": rate(
                count(lambda c: c.get("decision_at_alpha", c["decision"]) in ("better", "worse"),
                      every), n)}


def run_seeds(out: Path, seeds, workers: int | None, task, describe) -> dict[int, dict]:
    """The rows of ``out`` (JSON lines, one per seed; error rows are kept but run again), after
    running ``task(seed)`` = ``(fn, *args)`` for each seed of ``seeds`` not yet there on a pool of
    ``workers`` processes (``None``: run nothing), appending each row as it finishes and printing
    ``describe(row)``."""
    done = {}
    if out.exists():
        for line in out.read_text().splitlines():
            r = json.loads(line)
            if "error" not in r:
                done[r["seed"]] = r
    if workers is None:
        return done
    todo = [s for s in seeds if s not in done]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(*task(s)): s for s in todo}
        for fut in as_completed(futures):
            try:
                r = fut.result()
            except Exception as exc:   # a row that says so, and the other seeds go on
                r = {"seed": futures[fut], "error": f"{type(exc).__name__}: {exc}"}
            with out.open("a") as f:   # error rows are kept, and run again on resuming
                f.write(json.dumps(r) + "\n")
            if "error" in r:
                print(f"seed {r['seed']}: {r['error']}", flush=True)
                continue
            done[r["seed"]] = r
            print(f"seed {r['seed']}: {describe(r)} ({r['seconds']} s; "
                  f"{time.perf_counter() - t0:.0f} s in all)", flush=True)
    return done


def seed_parser(doc: str) -> argparse.ArgumentParser:
    """The options of a null calibration over seeds (this one's and ``planted_null_sweep``'s)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--bars", type=int, default=3000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--summary", action="store_true", help="only summarise the rows in --out")
    ap.add_argument("--out", type=Path, required=True, help="JSON lines, one per seed (resumable)")
    return ap


def main() -> None:
    ap = seed_parser(__doc__)
    ap.add_argument("--series", type=Path, help="folder: save each seed's return series there")
    ap.add_argument("--models", default=MODELS, help=f"the candidates (default {MODELS})")
    ap.add_argument("--references", help="walk-forward references beside them (not charged)")
    args = ap.parse_args()
    done = run_seeds(args.out, range(args.first, args.first + args.seeds),
                     None if args.summary else args.workers,
                     lambda s: (one_seed, s, args.bars, args.epochs, args.series, args.models,
                                args.references),
                     lambda r: [(c["labels"], c["dsr"], c["decision"]) for c in r["configs"]])
    rows = sorted(done.values(), key=lambda r: r["seed"])
    print(json.dumps(summary(rows), indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
