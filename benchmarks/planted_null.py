"""Null calibration: how often does the research loop call an edge on worlds that have none?

    python benchmarks/planted_null.py --seeds 200 [--sweep-only] [--costs none|world] [--out FILE]

For each seed s of ``sample:planted-null:s:BARS`` (``data.synth``: a random walk with GARCH
volatility, fat tails and the FX spread), in a fresh runs folder (so each world's DSR counts the
trials of that world only):

1. (unless ``--sweep-only``) a walk-forward of the rule baselines ``rule/newhl,rule/newhl-range``
   (1,000 training, 500 validation, 500 test bars a fold: 3 folds on 3,000 bars; threshold
   chosen on validation);
2. a sweep of the same rules over rule keys: ``max_hold=1,3,6,24`` ×
   ``threshold=0.5,0.6,0.75,0.9`` (16 combinations a model, 32 trials) with exits that cannot
   bias a random walk (``EXITS``: no target, a stop 50 ATRs away, the time exit), so that
   without costs every rule's expected return is exactly 0. ``--exits default`` searches the
   new key ``strategy.barriers`` instead: ``barriers=none,atr:1:1,atr:2:1`` × ``max_hold=1,6,24``
   × ``threshold=0.5,0.75`` (36 trials) with the default stop and 2 R target, a null that loses
   even without costs (a bar that reaches stop and target is a stop: the engine's tie rule).
   ``strategy.meta``, the other new key a rule takes, is not a sweep axis.

A "significant" verdict is the claim each command prints: the walk-forward's best model (highest
stitched Sharpe) with PSR > 0.95 or with DSR > 0.95; the sweep's best combination with DSR > 0.95;
and, between the two rules, a comparison decided "better" or "worse" (``significance.decide``);
also the sweep's best PSR > 0.95 (not deflated: what a search would claim without the DSR).
``--costs none`` trades the same worlds without spread (the CSV without its spread column,
``costs.spread=0``): the strict null, where the expected return of every rule is exactly 0; with
the world's spread (``--costs world``) every rule loses its costs in expectation.

Rates are given with their 95 % Clopper-Pearson interval (scipy). Networks are not covered: one
network walk-forward costs minutes of CPU, 200 of them hours.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = "rule/newhl,rule/newhl-range"
FOLDS = dict(train_bars=1000, val_bars=500, test_bars=500)
# Exits that cannot bias a random walk: no target, a stop 50 ATRs away, a time exit. (The
# default stop at the signal bar's extreme with its 2 R target loses even without costs: a bar
# that reaches both is a stop, the engine's conservative tie rule.)
EXITS = {"strategy.stop": "atr:50", "strategy.take_profit_r": 0, "strategy.max_hold": 1}
GRID = {"max_hold": [1, 3, 6, 24], "threshold": [0.5, 0.6, 0.75, 0.9]}
# ``--exits default``: the engine's default exits (stop at the signal bar's extreme, 2 R target)
# and the triple-barrier exits as an axis; the tie rule makes this null lose even without costs.
GRID_DEFAULT_EXITS = {"barriers": ["none", "atr:1:1", "atr:2:1"], "max_hold": [1, 6, 24],
                      "threshold": [0.5, 0.75]}


def one_seed(seed: int, bars: int, costs: str, tmp: Path, walkforward: bool = True,
             exits: str = "far") -> dict:
    from backtests import api
    from data import synth

    source = f"sample:planted-null:{seed}:{bars}"
    settings: dict = dict(EXITS) if exits == "far" else {}
    grid = GRID if exits == "far" else GRID_DEFAULT_EXITS
    if costs == "none":
        frame = synth.generate("null", seed=seed, bars=bars).drop(columns=["spread"])
        source = str(synth.write_csv(frame, tmp / f"null-{seed}.csv", force=True))
        settings["costs.spread"] = 0.0
    runs = tmp / f"runs-{seed}"
    out: dict = {"seed": seed}
    if walkforward:
        wf = api.walkforward(MODELS, source, runs_dir=runs, settings=settings, **FOLDS)
        payload = json.loads((wf.outcome.run.path / "walkforward.json").read_text())
        best = payload["winner"]["model"]
        rec = payload["models"][best]
        out.update({"wf_best": best, "wf_psr": rec["psr"], "wf_dsr": rec["dsr"],
                    "wf_trials": rec["dsr_trials"],
                    "decisions": [c["decision"] for c in payload["comparisons"]]})
    sw = api.sweep(grid, MODELS, source, runs_dir=runs, settings=settings, top=1, **FOLDS)
    spay = json.loads((sw.outcome.run.path / "sweep.json").read_text())
    b = spay["best"]
    return {**out, "sweep_best": f"{b['model']} {b['rules']}", "sweep_dsr": b["dsr"],
            "sweep_psr": b.get("psr"),
            "sweep_trials": b["dsr_trials"], "sweep_spa_bh": spay["spa"]["buy_and_hold"]["p_value"],
            "sweep_spa_random": spay["spa"]["random_entries"]["p_value"]}


def rate(hits: int, n: int) -> str:
    from scipy.stats import binomtest

    if n == 0:
        return "n/a (no seed)"
    ci = binomtest(hits, n).proportion_ci(0.95, method="exact")
    return f"{hits}/{n} = {100 * hits / n:.1f} % (95 % CI {100 * ci.low:.1f} … {100 * ci.high:.1f} %)"


def summary(rows: list[dict]) -> dict:
    n = len(rows)

    def count(pred) -> int:
        return sum(1 for r in rows if pred(r))

    def sig(x) -> bool:
        return x is not None and x == x and x > 0.95

    wf = [r for r in rows if "wf_psr" in r]
    m = len(wf)
    figures = {"seeds": n}
    if m:
        figures.update({
            "walkforward PSR > 0.95 (best model)": rate(sum(sig(r["wf_psr"]) for r in wf), m),
            "walkforward DSR > 0.95 (best model)": rate(sum(sig(r["wf_dsr"]) for r in wf), m),
            "comparison better/worse (newhl vs newhl-range)":
                rate(sum(any(d in ("better", "worse") for d in r["decisions"]) for r in wf), m)})
    return {**figures,
            "sweep PSR > 0.95 (best combination, not deflated)":
                rate(count(lambda r: sig(r.get("sweep_psr"))), count(lambda r: "sweep_psr" in r)),
            "sweep DSR > 0.95 (best combination)": rate(count(lambda r: sig(r["sweep_dsr"])), n),
            "sweep SPA p < 0.05 vs random entries":
                rate(count(lambda r: (r["sweep_spa_random"] or 1) < 0.05), n)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--bars", type=int, default=3000)
    ap.add_argument("--costs", choices=("world", "none"), default="none")
    ap.add_argument("--exits", choices=("far", "default"), default="far",
                    help="far: EXITS and GRID (a strict null); default: GRID_DEFAULT_EXITS")
    ap.add_argument("--summary", action="store_true",
                    help="only summarise every seed already in --out")
    ap.add_argument("--sweep-only", action="store_true", help="skip the walk-forward (faster)")
    ap.add_argument("--out", type=Path, help="JSON lines, one per seed (appended; resumable)")
    args = ap.parse_args()
    done = {}
    if args.out and args.out.exists():
        for line in args.out.read_text().splitlines():
            r = json.loads(line)
            done[r["seed"]] = r
    if args.summary:
        rows = sorted(done.values(), key=lambda r: r["seed"])
        print(json.dumps(summary(rows), indent=1, ensure_ascii=False))
        return
    rows = []
    t0 = time.perf_counter()
    for seed in range(args.first, args.first + args.seeds):
        if seed in done:
            rows.append(done[seed])
            continue
        with tempfile.TemporaryDirectory() as tmp:
            r = one_seed(seed, args.bars, args.costs, Path(tmp), not args.sweep_only,
                         args.exits)
        rows.append(r)
        if args.out:
            with args.out.open("a") as f:
                f.write(json.dumps(r) + "\n")
        print(f"seed {seed}: wf PSR {r.get('wf_psr', float('nan')):.3f} DSR "
              f"{r.get('wf_dsr', float('nan')):.3f}; sweep DSR {r['sweep_dsr']:.3f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    print(json.dumps(summary(rows), indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
