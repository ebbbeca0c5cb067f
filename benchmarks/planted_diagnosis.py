"""Does a network learn the order world's planted pattern? (docs/research.md, "Why nothing was found")

    python benchmarks/planted_diagnosis.py --seed 101 --planted 8 [--train-bars 3000]
        [--epochs 5] [--model attention/article] [--set dataset.window=5 ...] [--runs-dir DIR]

On a development world (``data.synth`` order, a seed that is not the protocol's 0) of
``--train-bars`` + 1,000 validation + 1,000 test bars: the labels' base rates and their rates on
the planted-pattern bars (``synth.planted_trades``: the bar that completes a pattern); a
HistGradientBoosting classifier on the last three bars' features (a learnability check); then the
network trained as the protocol trains it, and for both: the mean P(buy), P(sell) on the long- and
short-pattern test bars and on the others, the AUC of p_buy - p_sell for the pattern's direction,
the largest probability of any test bar, and for each ``QUANTILE_GRID`` level of the directional
probability (chosen on the validation bars) the test signals, the share of them on a pattern bar
in its direction (precision), the share whose last bar (and last two) have the pattern's last
shapes, and the test return with the label's exits.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=101)
    ap.add_argument("--planted", type=float, default=8.0)
    ap.add_argument("--train-bars", type=int, default=3000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--labels", default="triple:0.5:0.5:1")
    ap.add_argument("--model", default="attention/article", help="or none")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--runs-dir", type=Path, default=None)
    args = ap.parse_args()
    if args.seed == 0:
        ap.error("seed 0 is the protocol's world: diagnose on another seed")
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    from backtests import api
    from backtests.simulation import QUANTILE_GRID
    from data import synth
    from data.dataset import CandleDataset, DatasetSpec, Normaliser
    from strategy.fractal import FractalParams
    from strategy.rules import label_exits

    extra = dict(item.split("=", 1) for item in args.set)
    tr, va = args.train_bars, 1000
    n = tr + va + 1000
    frame = synth.generate("order", seed=args.seed, bars=n, planted=args.planted)
    trades = synth.planted_trades(frame, "order")
    codes = synth.shape_codes(frame)
    ends = {1: synth.codes(synth.ORDER_PATTERN), -1: synth.codes(synth.ORDER_MIRROR)}
    pattern = np.zeros(n, int)
    pattern[trades["entry"].to_numpy() - 1] = trades["direction"].to_numpy()
    spec = DatasetSpec(window=int(extra.get("dataset.window", 20)),
                       features=extra.get("dataset.features", "scaled"), labels=args.labels)
    ds = CandleDataset(frame, spec)
    y = ds.labels
    parts = {"train": (0, tr), "validation": (tr, tr + va), "test": (tr + va, n)}
    print(f"order world seed {args.seed}, planted {args.planted:g}, {n} bars, {args.labels}: "
          f"{np.sum(pattern == 1)} long- and {np.sum(pattern == -1)} short-pattern bars")
    for name, (a, b) in parts.items():
        m = (np.arange(n) >= a) & (np.arange(n) < b) & (y >= 0)
        rate = lambda sel: [round(float(np.mean(y[sel] == k)), 2) for k in range(3)]  # noqa: E731
        print(f"  {name}: labels none/buy/sell {rate(m)}; long-pattern bars {rate(m & (pattern == 1))}; "
              f"short-pattern bars {rate(m & (pattern == -1))}")

    exits = label_exits(FractalParams(), args.labels)

    def test_return(signals: np.ndarray, a: int, b: int) -> tuple[int, float]:
        s = pd.Series(signals[a:b], index=frame.index[a:b])
        bt = api.backtest(signals=s, data=frame.iloc[a:b], period="all", record=False,
                          settings={"strategy.barriers": exits.barriers,
                                    "strategy.max_hold": exits.max_hold})
        return len(bt.trades), float(bt.stats["Return [%]"])

    def report(name: str, p: np.ndarray) -> None:
        a, b = parts["test"]
        pt, s = p[a:b], pattern[a:b]
        edge = pt[:, 1] - pt[:, 2]
        means = {k: (round(float(pt[sel, 1].mean()), 3), round(float(pt[sel, 2].mean()), 3))
                 for k, sel in (("long", s == 1), ("short", s == -1), ("other", s == 0))}
        print(f"  {name}: mean (P buy, P sell) on long-pattern bars {means['long']}, short "
              f"{means['short']}, other {means['other']}; AUC of p_buy - p_sell: long "
              f"{roc_auc_score(s == 1, edge):.3f}, short {roc_auc_score(s == -1, -edge):.3f}; "
              f"largest probability of a test bar {np.nanmax(pt[:, 1:]):.3f}")
        top, best = p.argmax(axis=1), p.max(axis=1)
        va_dir = best[tr:tr + va][top[tr:tr + va] > 0]
        for q, level in zip(QUANTILE_GRID, np.quantile(va_dir, QUANTILE_GRID, method="lower"),
                            strict=True):
            sig = np.where((top > 0) & (best >= level), np.where(top == 1, 1, -1), 0)
            on = sig[a:b] != 0
            precision = float(np.mean(sig[a:b][on] == s[on])) if on.any() else float("nan")
            pos = np.flatnonzero(on) + a
            last = np.mean([codes[i] == ends[sig[i]][-1] for i in pos]) if len(pos) else np.nan
            two = (np.mean([tuple(codes[i - 1:i + 1]) == ends[sig[i]][-2:] for i in pos])
                   if len(pos) else np.nan)
            k, ret = test_return(sig, a, b)
            print(f"    level q{q:g} = {level:.3f}: {k} test trades, precision {precision:.2f} "
                  f"(pattern bars: {np.mean(s != 0):.2f} of the test bars), last shape right "
                  f"{last:.2f}, last two {two:.2f}, return {ret:+.2f} %")

    mat = ds.matrix(Normaliser.fit(ds.raw[:tr]))
    fit = np.arange(40, tr - 2)
    fit = fit[ds.window_ok[fit] & (y[fit] >= 0)]
    last3 = lambda e: np.stack([mat[e - 2], mat[e - 1], mat[e]], 1).reshape(len(e), -1)  # noqa: E731
    hgb = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=0)
    hgb.fit(last3(fit), y[fit])
    every = np.arange(40, n)
    p = np.full((n, 3), np.nan)
    p[every] = hgb.predict_proba(last3(every))
    report("HistGradientBoosting (last 3 bars)", p)
    if args.model != "none":
        runs = args.runs_dir or Path(tempfile.mkdtemp(prefix="planted-diag-"))
        settings = {"dataset.labels": args.labels, "split.train": tr / n, "split.val": va / n,
                    "train.epochs": args.epochs, **extra}
        model = api.train(args.model, frame, settings=settings, runs_dir=runs)
        report(args.model, model.probabilities(frame).to_numpy())


if __name__ == "__main__":
    main()
