"""Is the comparison verdict calibrated on the networks' own null return series?

    python benchmarks/null_verdict.py --rows null-nets.jsonl --series DIR [--flips 2] [--out FILE]

Reads what ``planted_null_nets.py --series DIR`` saved: for each null seed and label rule, the
stitched test returns of attention and dense/matched (the pair the walk-forward's comparison
judged). For each pair it reports:

1. **reproduced**: ``significance.difference_verdict`` on the saved pair gives the decision the
   walk-forward recorded (a check that the series are the ones judged);
2. **flip p**: an exact sign-flip randomisation p-value of the Sharpe difference (2,000 flips):
   every bar's return of both models multiplied by the same random sign. On these worlds (a
   symmetric random walk, one-bar holds, no costs) a model's return on a bar is its position,
   fixed before the bar, times the bar's price change, whose sign is a fair coin given the past;
   so the flip p needs no large-sample approximation (it is exact only as far as the positions
   do not depend on the earlier bars' signs, which they do through the features), and a share of
   flip p < 0.05 far above 5 % says the *data* are extreme, not the verdict's tests;
3. **flip null verdict**: the verdict rule on ``--flips`` sign-flipped copies of each pair: the
   same positions, sparsity, overlap and volatility, with no edge by construction. Its share of
   "better"/"worse" is the verdict's false-positive rate on return series shaped exactly like the
   networks'.

Rates with 95 % Clopper-Pearson intervals, per label rule, for all seeds and by blocks of 100.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backtests.analysis import significance as S  # noqa: E402
from benchmarks.planted_null import rate  # noqa: E402

PAIR = ("attention/article", "dense/matched")
N_FLIPS_P = 2000


def pairs(rows: Path, series: Path) -> list[dict]:
    """One dict per (seed, label rule): ``a``, ``b`` (the bars both have) and the recorded
    ``decision``."""
    out = []
    for line in rows.read_text().splitlines():
        r = json.loads(line)
        if "configs" not in r:
            continue
        z = np.load(series / f"{r['seed']}.npz")
        for c in r["configs"]:
            a, b = (z[f"{c['labels']}|{m}"] for m in PAIR)
            keep = np.isfinite(a) & np.isfinite(b)
            out.append({"seed": r["seed"], "labels": c["labels"], "a": a[keep], "b": b[keep],
                        "decision": c["decision"]})
    return sorted(out, key=lambda p: (p["seed"], p["labels"]))


def flip_p(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> float:
    """Two-sided sign-flip randomisation p-value of Sharpe(a) - Sharpe(b)."""
    d0 = S.sharpe(a) - S.sharpe(b)
    signs = rng.choice([-1.0, 1.0], (N_FLIPS_P, len(a)))
    d = S._sharpe_rows(a * signs) - S._sharpe_rows(b * signs)
    d = d[np.isfinite(d)]
    return float((np.sum(np.abs(d) >= abs(d0) * (1 - 1e-12)) + 1) / (len(d) + 1))


def analyse(p: dict, i: int, flips: int) -> dict:
    a, b = p["a"], p["b"]
    rec = {"seed": p["seed"], "labels": p["labels"], "recorded": p["decision"],
           "trades_a": int(np.count_nonzero(a)), "trades_b": int(np.count_nonzero(b))}
    if not (a.std() > 0 or b.std() > 0):     # neither model traded: nothing was judged
        return {**rec, "skipped": "no trades"}
    rng = np.random.default_rng(i)
    rec["decision"] = S.difference_verdict(a, b, both=False)["decision"]
    rec["flip_p"] = flip_p(a, b, rng)
    rec["flip_decisions"] = []
    for k in range(flips):
        s = rng.choice([-1.0, 1.0], len(a))
        rec["flip_decisions"].append(
            S.difference_verdict(a * s, b * s, seed=k, both=False)["decision"])
    return rec


def summary(recs: list[dict]) -> dict:
    def decided(d: str | None) -> bool:
        return d in ("better", "worse")

    out: dict = {}
    for labels in dict.fromkeys(r["labels"] for r in recs):
        rs = [r for r in recs if r["labels"] == labels and "skipped" not in r]
        blocks = sorted({r["seed"] // 100 for r in rs})
        fl = [d for r in rs for d in r["flip_decisions"]]
        out[labels] = {
            "pairs judged": len(rs),
            "recomputed = recorded": f"{sum(r['decision'] == r['recorded'] for r in rs)}/{len(rs)}",
            "verdict better/worse (recorded)": rate(sum(decided(r["recorded"]) for r in rs), len(rs)),
            **{f"  seeds {100 * k}-{100 * k + 99}": rate(
                sum(decided(r["recorded"]) for r in rs if r["seed"] // 100 == k),
                sum(r["seed"] // 100 == k for r in rs)) for k in blocks},
            "exact flip p < 0.05 (the data)": rate(sum(r["flip_p"] < S.ALPHA for r in rs), len(rs)),
            "verdict on sign-flipped pairs (the test)": rate(sum(map(decided, fl)), len(fl))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=Path, required=True, help="planted_null_nets.py's JSON lines")
    ap.add_argument("--series", type=Path, required=True, help="its --series folder")
    ap.add_argument("--flips", type=int, default=2, help="sign-flipped copies of each pair")
    ap.add_argument("--out", type=Path, help="JSON lines, one per pair")
    args = ap.parse_args()
    t0 = time.perf_counter()
    recs = [analyse(p, i, args.flips) for i, p in enumerate(pairs(args.rows, args.series))]
    if args.out:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in recs))
    print(json.dumps(summary(recs), indent=1, ensure_ascii=False))
    print(f"{len(recs)} pairs in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
