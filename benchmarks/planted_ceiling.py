"""The ceiling of a planted-world protocol: can the perfect rule itself be found? (docs/research.md)

    python benchmarks/planted_ceiling.py --worlds order,session,regime --planted 4,6,8 \
        --bars 21000 [--train-bars 12000 --val-bars 1000 --test-bars 2000] [--seeds 0] \
        [--trials 12] [--skill 1.0] [--out FILE]
    python benchmarks/planted_ceiling.py ... --skill 0.5 --trials 4 --panel rule \
        --set dataset.features=scaled+shape --set dataset.window=5 --set backtest.threshold_grid=quantile
    python benchmarks/planted_ceiling.py --against ROWS.jsonl [--skill 0.5]  # after the protocol

For each world, planted size and bar count: the world's planted trades (``synth.planted_trades``,
found from the candles alone) become signals at the bar before each entry, and are traded
through the engine on each walk-forward fold's test bars exactly as a model's signals are
(``run_backtest``, or the compiled simulator that equals it trade for trade, with the fixed-horizon label's own exits, ``label_exits(strategy,
"horizon:H")``, H = the world's planted hold; the world's per-bar spread; the default cash and
size); the folds' per-bar returns are stitched as the walk-forward stitches them.

Its DSR is charged for ``--trials`` N trials, learner-free: the other N - 1 are the same trades
with the side drawn by a fair coin (fixed seeds 1 … N-1): the same entries, hold, exits and
spreads, nothing of the planted drift (expected gross 0), so their Sharpe ratios are what N - 1
unskilled series of the same trading intensity get. The DSR's variance of trial Sharpe ratios
is that of the N series (the perfect rule's included), as ``significance.dsr_from_trials``
computes it in a walk-forward. Beside it, ``dsr_textbook``: the same N with the variance of
unskilled per-bar Sharpe ratios taken as 1 / n_obs (sampling alone). No learner is run.

``--skill S`` (default 1: the perfect rule, as above) replaces the perfect rule by a rule of
partial skill: the same planted trades, each keeping its true side with probability S and
otherwise taking a fair coin's side (``skilled_sides``, seeded by the world's seed), so it
collects about S of the planted drift and pays every spread: what a learner that half knows the
pattern (S = 0.5) would collect. Its N - 1 coin-flip twins are the perfect rule's.

``--panel rule`` (default ``coin``: the rows above, unchanged) puts a fixed rule's real series in
the learner-free panel: the N trials are the (partial-skill) rule, **rule/newhl's stitched test
series** on the same world and folds (a rule-only walk-forward, ``api.walkforward("rule/newhl",
...)``, with the fixed-horizon labels and the ``--set`` keys, e.g. the protocol's
``dataset.features=scaled+shape dataset.window=5 backtest.threshold_grid=quantile``: the series a
walk-forward of the protocol records for that model), and N - 2 coin twins (seeds 1 … N-2). A
rule that loses its spread widens the spread of the trials' Sharpe ratios and so raises SR₀, as
it does among real trials; still no learner is run.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SKILL_TAG = 20261203  # seeds the partial-skill draws apart from the coin twins' seeds 1 … N-1


def skilled_sides(direction: np.ndarray, skill: float, seed: int) -> np.ndarray:
    """The planted trades' sides, each kept with probability ``skill`` and otherwise a fair
    coin's (+1/-1), drawn from ``seed`` (the world's): expected agreement (1 + skill) / 2, expected
    share of the planted drift collected ``skill``. ``skill`` 1 returns the sides unchanged."""
    direction = np.asarray(direction, dtype=int)
    if not 0.0 <= skill <= 1.0:
        raise ValueError(f"skill {skill} is not in [0, 1]")
    if skill == 1.0:
        return direction.copy()
    rng = np.random.default_rng([SKILL_TAG, seed])
    keep = rng.random(len(direction)) < skill
    coin = rng.choice([-1, 1], len(direction))
    return np.where(keep, direction, coin)


def stitched(frame, sides, exp, labels: str, plan, engine: str = "fast") -> np.ndarray:
    """Per-bar returns of ``sides`` (+1/-1/0 at each bar's close) traded on each fold's test
    bars as the walk-forward trades a model (``evaluate_task``), stitched in time order."""
    import pandas as pd

    from backtests.api import signals_to_probs
    from backtests.currency import conversion_of, rates
    from backtests.simulation import run_backtest
    from strategy.fast import simulate_fast
    from strategy.rules import label_exits

    probs = signals_to_probs(pd.Series(sides, index=frame.index), frame)
    params = label_exits(exp.strategy, labels)
    conv = conversion_of(exp.data, "planted.csv")
    parts = []
    for fold in plan.folds(frame.index):
        first, last = fold.bounds(frame.index, "test")
        bars = frame.iloc[first:last + 1]
        cash = exp.backtest.cash
        if engine == "backtrader":
            bt = run_backtest(bars, probs.iloc[first:last + 1], params, exp.costs, cash,
                              rates=rates(bars, conv))
            values = bt.equity.to_numpy(float)
        else:
            _, equity = simulate_fast(bars, probs.iloc[first:last + 1], params, exp.costs, cash,
                                      rates=rates(bars, conv))
            values = equity.to_numpy(float)
        prev = np.concatenate([[cash], values[:-1]])
        parts.append(np.diff(np.concatenate([[cash], values])) / prev)
    return np.concatenate(parts)


def panel_sharpes(own: float, twins: list[float], rule: float | None, trials: int) -> list[float]:
    """The N = ``trials`` per-bar Sharpe ratios a row's DSR is charged against: its ``own``,
    then ``rule``'s (``--panel rule``; None: the coin panel) and coin twins up to N."""
    fixed = [own] if rule is None else [own, rule]
    if trials < len(fixed):
        raise ValueError(f"{trials} trials cannot hold the panel's {len(fixed)} fixed series")
    if len(twins) < trials - len(fixed):
        raise ValueError(f"{len(twins)} coin twins for {trials - len(fixed)} places")
    return [*fixed, *twins[:trials - len(fixed)]]


def rule_series(kind: str, planted: float, bars: int, seed: int, args) -> dict:
    """rule/newhl's stitched test series on the world (its walk-forward's record: per-bar Sharpe,
    return, trades), the ``horizon:H`` labels and ``args.set`` keys, in a scratch runs folder."""
    import tempfile

    from backtests import api
    from benchmarks.planted_worlds import world_csv
    from data import synth

    labels = f"horizon:{synth.truth(kind)['hold']}"
    settings = {"dataset.labels": labels, **dict(item.split("=", 1) for item in args.set)}
    with tempfile.TemporaryDirectory() as tmp:
        csv = world_csv(kind, planted, bars, Path(tmp) / "data", seed)
        wf = api.walkforward("rule/newhl", str(csv), runs_dir=Path(tmp) / "runs",
                             settings=settings, workers=1, train_bars=args.train_bars,
                             val_bars=args.val_bars, test_bars=args.test_bars)
        rec = json.loads((wf.outcome.run.path / "walkforward.json").read_text())["models"]
    (name, r), = rec.items()
    acr = r.get("across_seeds") or {}
    return {"model": name, "sharpe_per_bar": r["sharpe_per_bar"], "n_obs": r["n_obs"],
            "return_pct": r["total_return_pct"],
            "trades": (acr.get("n_trades") or {}).get("mean")}


def ceiling(kind: str, planted: float, bars: int, seed: int, args) -> dict:
    """The perfect rule's row (or, with ``args.skill`` < 1, the partial-skill rule's): its DSR
    against ``args.trials`` − 1 coin-flip twins, and more."""
    return ceiling_and_series(kind, planted, bars, seed, args)[0]


def ceiling_and_series(kind: str, planted: float, bars: int, seed: int, args,
                       skill: float | None = None) -> tuple[dict, np.ndarray]:
    """``ceiling``'s row and the rule's stitched per-bar returns behind it (``skill``: that of
    the rule, ``args.skill`` when None, 1 without it)."""
    from backtests.analysis import significance as sig
    from backtests.config import Experiment
    from backtests.walkforward.tasks import FoldPlan
    from data import synth

    hold = synth.truth(kind)["hold"]
    labels = f"horizon:{hold}"
    exp = Experiment().override({"dataset.labels": labels})
    plan = FoldPlan(args.train_bars, args.val_bars, args.test_bars)
    frame = synth.generate(kind, seed=seed, bars=bars, planted=planted)
    trades = synth.planted_trades(frame, kind)
    signal_at = trades["entry"].to_numpy(int) - 1
    direction = trades["direction"].to_numpy(int)
    if skill is None:
        skill = getattr(args, "skill", 1.0)
    chosen = skilled_sides(direction, skill, seed)
    sides = np.zeros(len(frame))
    sides[signal_at] = chosen
    perfect = stitched(frame, sides, exp, labels, plan, args.engine)
    rule = (rule_series(kind, planted, bars, seed, args)
            if getattr(args, "panel", "coin") == "rule" else None)
    n_twins = args.trials - (1 if rule is None else 2)
    twins = []
    for k in range(1, n_twins + 1):
        coin = np.random.default_rng(k).choice([-1, 1], len(signal_at))
        twin = np.zeros(len(frame))
        twin[signal_at] = coin
        twins.append(sig.sharpe(stitched(frame, twin, exp, labels, plan, args.engine)))
    sharpes = panel_sharpes(sig.sharpe(perfect), twins,
                            None if rule is None else rule["sharpe_per_bar"], args.trials)
    ds = sig.dsr_from_trials(perfect, sharpes)
    m = sig.moments(perfect)
    textbook = sig.dsr(m["sharpe_per_bar"], m["n_obs"], m["skew"], m["kurtosis"], args.trials,
                       1.0 / m["n_obs"])
    folds = plan.folds(frame.index)
    test_first = folds[0].bounds(frame.index, "test")[0]
    ref = synth.realised(frame.iloc[test_first:], kind)
    truth = synth.truth(kind, planted)
    cash = Experiment().backtest.cash
    equity = cash * np.cumprod(1 + perfect)
    row = {"world": kind, "planted": planted, "bars": bars, "seed": seed, "labels": labels,
            "folds": len(folds), "test_bars": int(m["n_obs"]), "trials": args.trials,
            "gross_bps": truth["gross_bps"], "spread_bps": truth["spread_bps"],
            "net_bps": truth["net_bps"], "realised_net_bps": ref["net_bps"],
            "realised_trades": ref["trades"], "return_pct": 100 * (equity[-1] / cash - 1),
            "sharpe_per_bar": m["sharpe_per_bar"], "twin_sharpe_mean": float(np.mean(twins)),
            "twin_sharpe_sd": float(np.std(twins, ddof=1)) if len(twins) > 1 else float("nan"),
            "sr0": ds["dsr_sr0"], "psr": ds["psr"], "dsr": ds["dsr"],
            "dsr_textbook": textbook}
    if skill != 1.0:  # rows of the perfect rule stay as they were
        row |= {"skill": skill, "agree": float(np.mean(chosen == direction))}
    if rule is not None:  # --panel rule: the fixed rule's real series among the trials
        if rule["n_obs"] != m["n_obs"]:
            raise RuntimeError(f"rule/newhl's series has {rule['n_obs']} bars, the rule's "
                               f"{m['n_obs']}: not the same folds")
        row |= {"panel": "rule", "settings": dict(item.split("=", 1) for item in args.set),
                "rule_model": rule["model"], "rule_sharpe_per_bar": rule["sharpe_per_bar"],
                "rule_return_pct": rule["return_pct"], "rule_trades": rule["trades"],
                "panel_sr_sd": float(np.std(sharpes, ddof=1))}
    return row, perfect


def against(path: Path, args) -> list[dict]:
    """After a protocol: each world's series (the rows of ``planted_worlds.py`` in ``path``, one
    runs folder per world and seed) charged for all of that world's series, and the perfect
    rule's DSR as one more trial among them (a diagnostic, not a trial); with ``args.skill`` < 1
    the partial-skill rule's too, as ``"skilled"``, likewise one more trial."""
    from collections import defaultdict

    from backtests.analysis import significance as sig

    groups: dict[tuple, list[dict]] = defaultdict(list)
    for line in path.read_text().splitlines():
        r = json.loads(line)
        groups[(r["world"], r.get("seed", 0), r["planted"], r["bars"])].append(r)
    out = []
    for (kind, seed, planted, bars), rows in groups.items():
        series = [(r, m, s) for r in rows for m, s in r["models"].items()
                  if s.get("sharpe_per_bar") is not None and math.isfinite(s["sharpe_per_bar"])]
        srs = [s["sharpe_per_bar"] for _, _, s in series]
        var = float(np.var(srs, ddof=1)) if len(srs) > 1 else 0.0
        world = {"world": kind, "seed": seed, "planted": planted, "bars": bars,
                 "trials": len(srs), "sr_sd": math.sqrt(var),
                 "sr0": sig.expected_max_sharpe(len(srs), var), "series": []}
        for r, m, s in series:
            world["series"].append({"labels": r["labels"], "settings": r.get("settings", {}),
                                    "model": m, "dsr_all": sig.dsr(
                                        s["sharpe_per_bar"], s["n_obs"], s["skew"], s["kurtosis"],
                                        len(srs), var)})
        if kind != "null":
            folds = rows[0]["folds"]
            args.train_bars, args.val_bars, args.test_bars = (
                folds["train_bars"], folds["val_bars"], folds["test_bars"])
            skills = {"perfect": 1.0}
            if getattr(args, "skill", 1.0) != 1.0:
                skills["skilled"] = args.skill
            for key, skill in skills.items():
                c, best = ceiling_and_series(kind, planted, bars, seed, args, skill)
                m = sig.moments(best)
                all_srs = [*srs, m["sharpe_per_bar"]]
                v = float(np.var(all_srs, ddof=1))
                world[key] = {"sharpe_per_bar": m["sharpe_per_bar"],
                              "return_pct": c["return_pct"], "dsr_coin_panel": c["dsr"],
                              "dsr_real_trials": sig.dsr(m["sharpe_per_bar"], m["n_obs"],
                                                         m["skew"], m["kurtosis"],
                                                         len(all_srs), v),
                              "sr0_real_trials": sig.expected_max_sharpe(len(all_srs), v)}
                if skill != 1.0:
                    world[key] |= {"skill": skill, "agree": c["agree"]}
        out.append(world)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worlds", default="order,session,regime")
    ap.add_argument("--planted", default="8", help="sizes, comma-separated")
    ap.add_argument("--bars", default="21000", help="bar counts, comma-separated")
    ap.add_argument("--seeds", default="0", help="world seeds, comma-separated")
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--skill", type=float, default=1.0,
                    help="the rule's skill: each planted trade keeps its true side with this "
                         "probability, otherwise a fair coin's (1: the perfect rule)")
    ap.add_argument("--panel", choices=("coin", "rule"), default="coin",
                    help="the trials charged: coin (the rule and N-1 coin twins) or rule (the "
                         "rule, rule/newhl's real series on the world and folds, N-2 twins)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="--panel rule: a config key of rule/newhl's walk-forward (repeatable)")
    ap.add_argument("--train-bars", type=int, default=12000)
    ap.add_argument("--val-bars", type=int, default=1000)
    ap.add_argument("--test-bars", type=int, default=2000)
    ap.add_argument("--engine", choices=("fast", "backtrader"), default="fast",
                    help="fast: the compiled simulator (trade for trade as backtrader, "
                         "tests/strategy/test_fast.py); backtrader: the engine of record")
    ap.add_argument("--out", type=Path, help="JSON lines (appended)")
    ap.add_argument("--against", type=Path, metavar="ROWS",
                    help="after a protocol: recharge its rows (planted_worlds.py --out) for all "
                         "of each world's series, and the perfect rule among them")
    args = ap.parse_args()
    if not 0.0 <= args.skill <= 1.0:
        ap.error(f"--skill {args.skill} is not in [0, 1]")
    if args.against:
        args.panel = "coin"   # the real series are the panel there
        for w in against(args.against, args):
            print(json.dumps(w))
        return
    for kind in args.worlds.split(","):
        for bars in map(int, args.bars.split(",")):
            for planted in map(float, args.planted.split(",")):
                for seed in map(int, args.seeds.split(",")):
                    t0 = time.perf_counter()
                    r = ceiling(kind, planted, bars, seed, args)
                    r["seconds"] = round(time.perf_counter() - t0, 1)
                    if args.out:
                        with args.out.open("a") as f:
                            f.write(json.dumps(r) + "\n")
                    who = "" if args.skill == 1.0 else f"skill {args.skill:g} (agree {r['agree']:.2f}) "
                    if args.panel == "rule":
                        who += (f"[panel rule: newhl SR/bar {r['rule_sharpe_per_bar']:+.3f}, "
                                f"{r['rule_return_pct']:+.2f} %] ")
                    print(f"{who}{kind:8s} p{planted:<5g} bars {bars} seed {seed}: {r['folds']} folds, "
                          f"net {r['net_bps']:.2f} bps/trade (spread {r['spread_bps']:.2f}; "
                          f"realised {r['realised_net_bps']:.2f} on {r['realised_trades']}), "
                          f"return {r['return_pct']:+.2f} %, SR/bar {r['sharpe_per_bar']:.3f}, "
                          f"twins {r['twin_sharpe_mean']:+.3f} ± {r['twin_sharpe_sd']:.3f}, "
                          f"SR0 {r['sr0']:.3f}, DSR {r['dsr']:.3f} (textbook "
                          f"{r['dsr_textbook']:.3f})  [{r['seconds']} s]", flush=True)


if __name__ == "__main__":
    main()
