"""Backtest speed in bars per second on ~100k H1 bars, measured side by side in one run.

(a) our backtrader strategy, batched mode, precomputed random probabilities;
(c) backtesting.py running the same signals (same exits: stop, target, max hold, opposite).
(b) our strategy with a real model's batched prediction is left to the models side: call
``measure(candles, probs_fn)`` with a ``probs_fn`` that predicts the whole frame.

The candles are the EURUSD H1 sample tiled end to end: each copy is rescaled so that it starts at
the previous copy's last close, and the timestamps continue hourly after the last one.

    python benchmarks/backtest_speed.py [--bars 100000] [--repeat 1] [--threads N] [--out x.md]
    python benchmarks/backtest_speed.py --smoke [--out /tmp/x.md]   # seconds; numbers meaningless

The model of (b) is trained with ``models.train.fit`` (pure) and saved with
``models.checkpoint.save_model`` into a temporary folder. Torch (training, prediction) runs with
``--threads`` intra-op threads, default every core this process may use (1 with ``--smoke``). The table is printed
and, with ``--out``, also written as markdown.

``--smoke``: 500 bars, one training epoch on the first 600 sample bars, all four rows and the
markdown file (into a temporary folder unless ``--out``; never under ``docs/`` or
``benchmarks/results/``): it checks that the script works, not how fast anything is.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # this checkout first

from smoke import available_cores, set_threads, smoke_out  # noqa: E402  (benchmarks/smoke.py)

import data  # noqa: E402
from backtests.engine import run_backtest  # noqa: E402
from strategy.fractal import Costs, FractalParams, signals_from_frame  # noqa: E402

PARAMS = FractalParams(stop_buffer=0.0002, take_profit_r=2.0, max_hold=24)
COSTS = Costs(spread=0.0)


def tiled_candles(bars: int) -> pd.DataFrame:
    """The sample repeated to ``bars`` rows, prices continuous, timestamps hourly onward."""
    sample = data.load("sample:EURUSD_H1")
    pieces, last_close = [], None
    while sum(len(p) for p in pieces) < bars:
        piece = sample[["open", "high", "low", "close", "volume"]].copy()
        if last_close is not None:
            scale = last_close / piece["open"].iloc[0]
            piece[["open", "high", "low", "close"]] *= scale
        pieces.append(piece)
        last_close = piece["close"].iloc[-1]
    frame = pd.concat(pieces, ignore_index=True).iloc[:bars]
    frame.index = pd.date_range(sample.index[0], periods=len(frame), freq="h", name="time")
    return frame


def random_probs(candles: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Seeded random class probabilities, about 9% buy and 9% sell signals."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet([4.0, 1.0, 1.0], size=len(candles))
    return pd.DataFrame(p, index=candles.index, columns=["p_none", "p_buy", "p_sell"])


def measure(candles: pd.DataFrame, probs_fn: Callable[[pd.DataFrame], pd.DataFrame],
            params: FractalParams = PARAMS, costs: Costs = COSTS) -> dict:
    """HOOK for (b): time ``probs_fn(candles)`` (batched prediction) plus our backtest."""
    start = time.perf_counter()
    probs = probs_fn(candles)
    predicted = time.perf_counter()
    result = run_backtest(candles, probs, params, costs)
    done = time.perf_counter()
    return {"bars": len(candles), "predict_s": predicted - start, "backtest_s": done - predicted,
            "total_s": done - start, "bars_per_s": len(candles) / (done - start),
            "trades": len(result.trades)}


def backtesting_py(candles: pd.DataFrame, probs: pd.DataFrame, params: FractalParams = PARAMS) -> dict:
    """backtesting.py on the same signals; its TP is set from the signal bar's close (it cannot
    express ours, k × risk from the fill), which changes a few exits but not the work done."""
    from backtesting import Backtest, Strategy

    sig = signals_from_frame(probs, params.threshold)
    lo, hi, cl = (candles[k].to_numpy() for k in ("low", "high", "close"))
    k, buf, hold = params.take_profit_r, params.stop_buffer, params.max_hold

    class Signals(Strategy):
        def init(self):
            pass

        def next(self):
            i = len(self.data) - 1
            s = sig[i]
            if self.position:
                trade = self.trades[-1]
                d = 1 if trade.is_long else -1
                if s == -d:
                    self.enter(i, s)
                elif hold and i - trade.entry_bar + 1 >= hold:
                    trade.close()
            elif s:
                self.enter(i, s)

        def enter(self, i, s):
            stop = lo[i] - buf if s > 0 else hi[i] + buf
            tp = cl[i] + s * k * abs(cl[i] - stop)
            try:
                (self.buy if s > 0 else self.sell)(size=10_000, sl=stop, tp=tp)
            except ValueError:
                pass   # close == stop: backtesting.py refuses the bracket

    frame = candles.rename(columns=str.capitalize)
    frame.index = frame.index.tz_convert(None)
    bt = Backtest(frame, Signals, cash=100_000, trade_on_close=False, hedging=False,
                  exclusive_orders=True, finalize_trades=True)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = bt.run()
    elapsed = time.perf_counter() - start
    return {"bars": len(candles), "total_s": elapsed, "bars_per_s": len(candles) / elapsed,
            "trades": int(stats["# Trades"])}


def trained_predictor(epochs: int = 2, threads: int = 1, bars: int | None = None):
    """(b)'s model: attention/article trained briefly on the sample (speed, not skill, matters),
    on its first ``bars`` bars when given, saved into a temporary folder and loaded back."""
    import tempfile

    from data import DatasetSpec, plain_split
    from models.checkpoint import model_meta, save_model
    from models.predict import Predictor
    from models.train import TrainConfig, fit

    sample = data.load("sample:EURUSD_H1")
    if bars:
        sample = sample.iloc[:bars]
    result = fit(sample, DatasetSpec(features="scaled"), plain_split(sample.index, 0.6, 0.2),
                 kind="attention", preset="article",
                 cfg=TrainConfig(epochs=epochs, device="cpu", threads=threads))
    folder = Path(tempfile.mkdtemp(prefix="attnbt-bt-speed-"))
    weights = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
    save_model(folder, weights, model_meta(kind=result.kind, config=result.config,
                                           spec=result.spec, normaliser=result.normaliser,
                                           fold=result.fold, extra=result.meta))
    return Predictor.from_run(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: the cores this process may "
                             "use; 1 with --smoke)")
    parser.add_argument("--out", type=Path, help="also write the table as markdown here")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, every code path, a few seconds; writes to a temp "
                             "folder unless --out (never under docs/ or benchmarks/results/)")
    args = parser.parse_args()
    args.threads = set_threads(args.threads or (1 if args.smoke else available_cores()))
    epochs, train_bars = 2, None
    if args.smoke:
        args.bars, args.repeat, epochs, train_bars = 500, 1, 1, 600
        args.out = smoke_out(args.out, "backtest_speed.md")
    candles = tiled_candles(args.bars)
    probs = random_probs(candles)
    predictor = trained_predictor(epochs, args.threads, train_bars)
    rows = []
    for _ in range(args.repeat):
        a = measure(candles, lambda _c: probs)
        rows.append(("(a) backtrader, our strategy, batched probs", a))
        b = measure(candles, predictor.predict_frame)
        rows.append(("(b) our strategy + attention model's batched prediction", b))
        model_probs = predictor.predict_frame(candles)
        a2 = measure(candles, lambda _c, p=model_probs: p)
        rows.append(("(a') backtrader, our strategy, the same model's probs precomputed", a2))
        c = backtesting_py(candles, probs)
        rows.append(("(c) backtesting.py, the random signals of (a)", c))
    lines = [f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
             f"{args.threads} torch threads, Python {platform.python_version()}, "
             f"{len(candles):,} H1 bars",
             "| run | bars/s | seconds | of which prediction | trades |\n|---|---:|---:|---:|---:|"]
    for name, r in rows:
        pred = f"{r['predict_s']:.2f}" if "predict_s" in r else "—"
        lines.append(f"| {name} | {r['bars_per_s']:,.0f} | {r['total_s']:.2f} | {pred} | "
                     f"{r['trades']:,} |")
    best = {n: max(r["bars_per_s"] for m, r in rows if m == n) for n, _ in rows}
    a, b, a2, c = list(best)
    lines.append(f"ratio (b)/(a): {best[b] / best[a]:.2f}   ratio (b)/(a'): "
                 f"{best[b] / best[a2]:.2f}   ratio (a)/(c): {best[a] / best[c]:.2f}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
