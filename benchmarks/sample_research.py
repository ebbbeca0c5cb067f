"""The sample's walk-forward with and without issue 18's research pieces (docs/research.md).

    python benchmarks/sample_research.py --runs-dir DIR [--seeds 2] [--out FILE]
    python benchmarks/sample_research.py --runs-dir DIR --table-only --out FILE

**Protocol** (declared and committed before any of its results was seen): on the embedded sample
``sample:EURUSD_H1`` (5,000 H1 bars, default folds 2,000 + 500 + 500: 5 folds, 2,500 test bars),
``attnbt walkforward --models attention,dense,rule/newhl --seeds 2 --workers 1 --device cpu`` with
everything else at its default (``train.epochs`` 60 with early stopping, the threshold chosen on
each fold's validation part, the default costs), once per configuration, in this order:

  a  defaults (fractal ``3bar`` labels, ``scaled`` features, no weighting, no calibration, no meta)
  b  ``dataset.labels=triple:1:1:24 strategy.barriers=auto`` (traded with the labels' exits)
  c  b + ``train.weighting=uniqueness``
  d  c + ``dataset.features=scaled+time+mtf``
  e  d + ``train.calibration=isotonic``
  f  e + ``strategy.meta=true`` (the walk-forward reports X and X+meta side by side)

All runs go into ONE runs folder, so each DSR counts every stitched series tried on these bars up
to then (``dsr_trials``); after the last run the script recomputes every row's DSR against all the
trials of the study (``dsr_all``: the charge for the whole search). An edge is claimed only where
DSR > 0.95. Nothing is re-run for a better number; a failed run is reported as failed.

Each configuration is run through the real CLI (``python -m backtests walkforward ...``, the
command is stored with its row) and its ``walkforward.json`` is read back; rows are appended to
``--out`` (JSON lines) as they finish, so an interrupted study resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = "sample:EURUSD_H1"
MODELS = "attention,dense,rule/newhl"
TRIPLE = ["dataset.labels=triple:1:1:24", "strategy.barriers=auto"]
CONFIGS: dict[str, list[str]] = {
    "a": [],
    "b": TRIPLE,
    "c": TRIPLE + ["train.weighting=uniqueness"],
    "d": TRIPLE + ["train.weighting=uniqueness", "dataset.features=scaled+time+mtf"],
    "e": TRIPLE + ["train.weighting=uniqueness", "dataset.features=scaled+time+mtf",
                   "train.calibration=isotonic"],
    "f": TRIPLE + ["train.weighting=uniqueness", "dataset.features=scaled+time+mtf",
                   "train.calibration=isotonic", "strategy.meta=true"],
}
NAMES = {"a": "defaults (3bar, scaled)", "b": "triple:1:1:24 + its exits", "c": "b + uniqueness",
         "d": "c + scaled+time+mtf", "e": "d + isotonic", "f": "e + meta"}


def command(config: str, args) -> list[str]:
    return [sys.executable, "-m", "backtests", "walkforward", "--data", DATA, "--models",
            args.models, "--seeds", str(args.seeds), "--workers", "1", "--device", "cpu",
            "--runs-dir", str(args.runs_dir), *CONFIGS[config]]


def _walkforwards(runs_dir: Path) -> set[Path]:
    return set(runs_dir.glob("*/walkforward.json"))


def summarise(payload: dict) -> dict:
    """The table's figures per model (``X`` and ``X+meta`` alike) and the comparisons."""
    models = {}
    for name, rec in payload["models"].items():
        acr = rec.get("across_seeds") or {}
        models[name] = {k: rec.get(k) for k in (
            "psr", "dsr", "dsr_trials", "sharpe", "total_return_pct", "max_drawdown_pct",
            "sharpe_per_bar", "n_obs", "skew", "kurtosis", "missing_tasks")}
        for k in ("hit_pct", "base_hit_pct", "win_rate_pct", "n_trades", "brier"):
            models[name][k] = (acr.get(k) or {}).get("mean")
    comparisons = []
    for c in payload["comparisons"]:
        sd = c.get("sharpe_diff") or {}
        comparisons.append({"a": c["a"], "b": c["b"], "decision": c["decision"],
                            "sharpe_diff": sd.get("diff_annualised"), "p": sd.get("p_value"),
                            "spa_p": (c.get("spa") or {}).get("p_value")})
    return {"models": models, "comparisons": comparisons,
            "failures": payload.get("failures") or [],
            "strategy": payload.get("strategy"), "costs": payload.get("costs")}


def one(config: str, args) -> dict:
    cmd = command(config, args)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    before = _walkforwards(args.runs_dir)
    log = args.runs_dir / f"sample-research-{config}.log"
    args.runs_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with log.open("w") as f:
        rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    seconds = round(time.perf_counter() - t0)
    shown = ["attnbt", *cmd[3:]]
    row = {"config": config, "settings": CONFIGS[config], "command": " ".join(shown),
           "rc": rc, "seconds": seconds, "load_after": os.getloadavg()}
    new = sorted(_walkforwards(args.runs_dir) - before)
    if rc != 0 or len(new) != 1:
        row["error"] = log.read_text()[-2000:]
        return row
    payload = json.loads(new[0].read_text())
    row["run"] = new[0].parent.name
    row.update(summarise(payload))
    return row


def charge_all(rows: list[dict], runs_dir: Path) -> None:
    """Each row's DSR against every stitched trial of the study (the final registry)."""
    from backtests.analysis import significance as sig
    from backtests.execution.driver import STITCHED_KIND
    from backtests.store.registry import Registry

    trials = Registry(runs_dir).trials(kind=STITCHED_KIND)
    fps = {t["fingerprint"] for t in trials}
    if len(fps) != 1:   # every run uses the same bars and folds
        raise SystemExit(f"expected one data/fold fingerprint in {runs_dir}, got {fps}")
    srs = [t["sharpe_per_bar"] for t in trials]
    srs = [s for s in srs if s is not None and math.isfinite(s)]
    n, var = len(srs), (float(sum((s - sum(srs) / len(srs)) ** 2 for s in srs) / (len(srs) - 1))
                        if len(srs) > 1 else 0.0)
    for r in rows:
        for m in (r.get("models") or {}).values():
            sr = m.get("sharpe_per_bar")
            ok = sr is not None and math.isfinite(sr) and m.get("n_obs")
            m["dsr_all"] = (sig.dsr(sr, m["n_obs"], m["skew"], m["kurtosis"], n, var)
                            if ok else None)
            m["dsr_all_trials"] = n


def fmt(x, f=".3f") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, f)


def verdicts(r: dict, name: str) -> str:
    """The walk-forward's paired comparisons shown on a row: attention vs the same-size dense
    net (each arm against its like), and an X+meta arm against X alone."""
    out = []
    for c in r.get("comparisons") or []:
        a, b = c["a"], c["b"]
        if a != name:
            continue
        if ((a.startswith("attention") and b.startswith("dense")
             and a.endswith("+meta") == b.endswith("+meta"))
                or (a.endswith("+meta") and b == a[:-len("+meta")])):
            out.append(f"vs {b}: {c['decision']} ({fmt(c['sharpe_diff'], '+.2f')}, "
                       f"p {fmt(c['p'], '.2f')}, SPA p {fmt(c['spa_p'], '.2f')})")
    return "; ".join(out)


def table(rows: list[dict]) -> str:
    n_all = next((m.get("dsr_all_trials") for r in rows for m in (r.get("models") or {}).values()),
                 "all")
    out = ["| config | model | trades | hit % (base) | win % | return % | Sharpe | PSR | "
           f"DSR (trials) | DSR ({n_all}) | verdict: Sharpe diff (ann.), bootstrap p, SPA p |",
           "|" + "---|" * 11]
    for r in rows:
        if "models" not in r:
            out.append(f"| {r['config']} {NAMES[r['config']]} | failed (rc {r['rc']}) |"
                       + " |" * 9)
            continue
        for name, m in r["models"].items():
            out.append(
                f"| {r['config']} {NAMES[r['config']]} | {name} | {fmt(m['n_trades'], '.0f')} | "
                f"{fmt(m['hit_pct'], '.1f')} ({fmt(m['base_hit_pct'], '.1f')}) | "
                f"{fmt(m['win_rate_pct'], '.1f')} | {fmt(m['total_return_pct'], '+.2f')} | "
                f"{fmt(m['sharpe'], '.2f')} | {fmt(m['psr'])} | "
                f"{fmt(m['dsr'])} ({m['dsr_trials']}) | {fmt(m.get('dsr_all'))} | "
                f"{verdicts(r, name)} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs-dir", type=Path, required=True)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--models", default=MODELS)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--out", type=Path, help="JSON lines (appended); the table covers them all")
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args()
    rows = []
    if args.out and args.out.exists():
        rows = [json.loads(line) for line in args.out.read_text().splitlines() if line.strip()]
    if not args.table_only:
        for config in args.configs.split(","):
            if any(r["config"] == config for r in rows):
                continue
            r = one(config, args)
            rows.append(r)
            if args.out:
                with args.out.open("a") as f:
                    f.write(json.dumps(r) + "\n")
            print(f"{config}: rc {r['rc']}, {r['seconds']} s", flush=True)
    if (args.runs_dir / "registry.sqlite").exists():
        charge_all(rows, args.runs_dir)
    print(table(rows))


if __name__ == "__main__":
    main()
