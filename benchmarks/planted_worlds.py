"""Does the research loop find what each planted world plants? (docs/research.md)

    python benchmarks/planted_worlds.py --runs-dir DIR [--worlds order,session] [--planted 3]
        [--labels triple:0.5:0.5:1,triple:1:1:6] [--epochs 5] [--bars 8000] [--out FILE]
        [--train-bars 3000 --val-bars 1000 --test-bars 1000] [--seed 0]
        [--set dataset.window=5 --set dataset.features=scaled+shape ...]
        [--models attention,dense,rule/newhl,gbm] [--references rule/newhl]

For each world (``data.synth``, seed ``--seed``) at the given ``planted`` size, and each label
rule in ``--labels`` (declared before any result is seen; every one is charged), one
walk-forward: ``--models attention,dense,rule/newhl`` (or ``--models``), 1 seed, folds of ``--train-bars``
training + ``--val-bars`` validation + ``--test-bars`` test bars (by default 3,000 + 1,000 +
1,000: 4 folds on 8,000 bars), the signal threshold chosen on each fold's validation part, the
world's per-bar spread, ``train.epochs=EPOCHS``, the label's own exits
(``strategy.barriers=auto``) and the ``--set`` keys (e.g. ``backtest.threshold_grid=quantile``). All runs share one runs folder, so each world's DSR counts every
configuration tried on its bars. A world is **found** when a model's stitched test return has
DSR > 0.95 (a ``--references`` model, run beside them but not a candidate and not charged,
is never what is found). Beside it: the planted trade itself measured on the same test bars
(``synth.realised``: what a perfect rule collects), and attention vs the same-size dense net
(``attention/article`` vs ``dense/matched``: the walk-forward's paired test, bootstrap, SPA and
``significance.decide``'s verdict).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = "attention,dense,rule/newhl"
def world_csv(kind: str, planted: float, bars: int, folder: Path, seed: int = 0) -> Path:
    from data import synth

    folder.mkdir(parents=True, exist_ok=True)
    tag = "" if seed == 0 else f"-s{seed}"
    path = folder / f"planted-{kind}{tag}-p{planted:g}-{bars}.csv"
    if not path.exists():
        synth.write_csv(synth.generate(kind, seed=seed, bars=bars, planted=planted), path)
    return path


def folds(args) -> dict:
    return dict(train_bars=args.train_bars, val_bars=args.val_bars, test_bars=args.test_bars)


def extra(args) -> dict:
    """The ``--set KEY=VALUE`` settings (values as the CLI reads them)."""
    return dict(item.split("=", 1) for item in args.set)


def reference(kind: str, planted: float, bars: int, args) -> dict:
    """The planted trade on the walk-forward's test bars (from the first test bar on)."""
    from data import synth

    if kind == "null":
        return {}
    frame = synth.generate(kind, seed=args.seed, bars=bars, planted=planted)
    first = args.train_bars + args.val_bars
    r = synth.realised(frame.iloc[first:], kind)
    r["t"] = (r["net_bps"] / r["se_bps"]) if r["se_bps"] else float("nan")
    return r


def one(kind: str, planted: float, labels: str, args) -> dict:
    from backtests import api

    csv = world_csv(kind, planted, args.bars, args.runs_dir / "data", args.seed)
    settings = {"train.epochs": args.epochs, "dataset.labels": labels, **extra(args)}
    t0 = time.perf_counter()
    wf = api.walkforward(args.models, str(csv), runs_dir=args.runs_dir, settings=settings,
                         workers=args.workers, references=args.references, **folds(args))
    payload = json.loads((wf.outcome.run.path / "walkforward.json").read_text())
    models = {m: {k: rec.get(k) for k in ("reference", "psr", "dsr", "dsr_trials", "sharpe",
                                           "total_return_pct", "sharpe_per_bar", "n_obs", "skew",
                                           "kurtosis", "dsr_sr0")}
              for m, rec in payload["models"].items()}
    for m, rec in payload["models"].items():
        acr = rec.get("across_seeds") or {}
        models[m]["hit"] = (acr.get("hit_pct") or {}).get("mean")
        models[m]["trades"] = (acr.get("n_trades") or {}).get("mean")
    att_vs_dense = None
    for c in payload["comparisons"]:
        if c["a"].startswith("attention") and c["b"].startswith("dense"):
            att_vs_dense = {"decision": c["decision"], "hit_pp": c["hit_pp"],
                            "sharpe_diff": c["sharpe_diff"], "spa": c["spa"],
                            "spa_worse": c["spa_worse"]}
    return {"world": kind, "planted": planted, "labels": labels, "run": wf.run_id,
            "seed": args.seed, "bars": args.bars, "folds": folds(args), "settings": extra(args),
            **({"models_asked": args.models} if args.models != MODELS else {}),
            **({"references": args.references} if args.references else {}),
            "seconds": round(time.perf_counter() - t0), "models": models,
            "attention_vs_dense": att_vs_dense, "reference": reference(kind, planted, args.bars, args)}


def fmt(x, f=".3f") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, f)


def config(r: dict) -> str:
    """The row's labels and ``--set`` keys (leaf names), as the tables show them."""
    keys = [f"{k.rsplit('.', 1)[-1]}={v}" for k, v in sorted((r.get("settings") or {}).items())]
    return " ".join([r["labels"], *keys])


def table(rows: list[dict]) -> str:
    out = ["| world | planted | labels | model | trades | hit % | return % | Sharpe | DSR "
           "(trials) | found |", "|" + "---|" * 10]
    for r in rows:
        planted = "–" if r["world"] == "null" else f"{r['planted']:g}"
        for m, s in r["models"].items():
            # a reference (--references) is not a candidate: it cannot be what is found
            found = s["dsr"] is not None and s["dsr"] > 0.95 and not s.get("reference")
            name = f"{m} (reference)" if s.get("reference") else m
            out.append(f"| {r['world']} | {planted} | {config(r)} | {name} | "
                       f"{fmt(s['trades'], '.0f')} | {fmt(s['hit'], '.1f')} | "
                       f"{fmt(s['total_return_pct'], '+.2f')} | {fmt(s['sharpe'], '.2f')} | "
                       f"{fmt(s['dsr'])} ({s['dsr_trials']}) | {'yes' if found else 'no'} |")
    out.append("")
    out.append("| world | planted | labels | attention vs dense | planted trade on the test bars |")
    out.append("|---|---|---|---|---|")
    for r in rows:
        c, ref = r["attention_vs_dense"] or {}, r["reference"]
        sd = c.get("sharpe_diff") or {}
        cmp_ = (f"{c.get('decision')}: Sharpe diff {fmt(sd.get('diff_annualised'), '+.2f')} "
                f"(p {fmt(sd.get('p_value'), '.2f')}), SPA p {fmt((c.get('spa') or {}).get('p_value'), '.2f')}"
                if c else "–")
        refs = (f"{ref['trades']} trades, net {ref['net_bps']:+.2f} ± {ref['se_bps']:.2f} bps "
                f"(t {ref['t']:.1f})" if ref else "none planted")
        planted = "–" if r["world"] == "null" else f"{r['planted']:g}"
        out.append(f"| {r['world']} | {planted} | {config(r)} | {cmp_} | {refs} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs-dir", type=Path, required=True)
    ap.add_argument("--worlds", default="null,order,regime,session")
    ap.add_argument("--planted", type=float, default=3.0)
    ap.add_argument("--labels", default="triple:0.5:0.5:1,triple:1:1:6")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--bars", type=int, default=8000)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0, help="the worlds' seed (0: the protocol's)")
    ap.add_argument("--train-bars", type=int, default=3000)
    ap.add_argument("--val-bars", type=int, default=1000)
    ap.add_argument("--test-bars", type=int, default=1000)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a config key for every walk-forward (repeatable)")
    ap.add_argument("--models", default=MODELS, help=f"walk-forward models (default {MODELS})")
    ap.add_argument("--references", default=None,
                    help="walk-forward references: run beside the models, not candidates, not "
                         "charged in the DSR (e.g. rule/newhl)")
    ap.add_argument("--out", type=Path, help="JSON lines (appended); the table covers them all")
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args()
    rows = []
    if args.out and args.out.exists():
        rows = [json.loads(line) for line in args.out.read_text().splitlines()]
    if not args.table_only:
        for kind in args.worlds.split(","):
            for labels in args.labels.split(","):
                if any(r["world"] == kind and r["planted"] == args.planted
                       and r["labels"] == labels and r.get("settings", {}) == extra(args)
                       and r.get("seed", 0) == args.seed and r.get("bars", 8000) == args.bars
                       and r.get("models_asked", MODELS) == args.models
                       and r.get("references") == args.references
                       for r in rows):
                    continue
                r = one(kind, args.planted, labels, args)
                rows.append(r)
                if args.out:
                    with args.out.open("a") as f:
                        f.write(json.dumps(r) + "\n")
                print(f"{kind} p{args.planted:g} {labels}: {r['seconds']} s", flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
