"""Backtest speed in bars per second on ~100k H1 bars, measured side by side in one run.

(a) our backtrader strategy, batched mode, precomputed random probabilities;
(b) our strategy with the attention model's batched prediction (``measure(candles, probs_fn)``
    times any ``probs_fn`` that predicts the whole frame), and (a') backtrader on those
    predictions precomputed;
(c) backtesting.py running the random signals of (a) (same exits: stop, target, max hold,
    opposite);
(d) the compiled simulator (``strategy.fast.run_prepared`` on arrays prepared once), equity only,
    and (d') with its trade records, on the random signals of (a): checked to give (a)'s number of
    trades and final equity within 1e-6 relative (and (a')'s, on the model's signals);
(e) vectorbt's ``Portfolio.from_signals`` with stop and target on the same entries, when vectorbt
    is importable (optional: ``pip install -e .[bench]``; otherwise the row is skipped with a
    note): a speed yardstick, not an equality check (its rules differ: no max hold, its own stop
    timing).

Every row is the best of ``--repeat`` rounds, run interleaved. (d), (d') and (e) are timed warm:
their first call (numba compilation, or loading it from the cache) is reported on its own line.

The candles are the EURUSD H1 sample tiled end to end: each copy is rescaled so that it starts at
the previous copy's last close, and the timestamps continue hourly after the last one.

    python benchmarks/backtest_speed.py [--bars 100000] [--repeat 1] [--threads N] [--out x.md]
    python benchmarks/backtest_speed.py --smoke [--out /tmp/x.md]   # seconds; numbers meaningless

The model of (b) is trained with ``models.train.fit`` (pure) and saved with
``models.checkpoint.save_model`` into a temporary folder. Torch (training, prediction) runs with
``--threads`` intra-op threads, default every core this process may use (1 with ``--smoke``). The table is printed
and, with ``--out``, also written as markdown.

``--smoke``: 500 bars, one training epoch on the first 600 sample bars, every row and the
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

import data  # noqa: E402
from backtests.simulation import run_backtest  # noqa: E402
from benchmarks.machine import cpu_model  # noqa: E402
from benchmarks.smoke import available_cores, set_threads, smoke_out  # noqa: E402
from strategy.fractal import Costs, FractalParams, signals_from_frame  # noqa: E402

PARAMS = FractalParams(stop_buffer=0.0002, take_profit_r=2.0, max_hold=24)
COSTS = Costs(spread=0.0)
CASH = 100_000.0


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
    result = run_backtest(candles, probs, params, costs, CASH)
    done = time.perf_counter()
    return {"bars": len(candles), "predict_s": predicted - start, "backtest_s": done - predicted,
            "total_s": done - start, "bars_per_s": len(candles) / (done - start),
            "trades": len(result.trades), "final_equity": float(result.equity.iloc[-1])}


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


def compiled_first_call(candles: pd.DataFrame, probs: pd.DataFrame, params: FractalParams = PARAMS,
                        costs: Costs = COSTS, cash: float = CASH) -> tuple[object, dict]:
    """(d)'s arrays prepared once, and its first call (numba compiles the kernel or loads it from
    ``$ATTNBT_CACHE/numba``), timed apart from the warm calls."""
    from strategy.fast import kernel, prepare, run_prepared

    start = time.perf_counter()
    prep = prepare(candles, probs)
    prepared = time.perf_counter()
    run_prepared(prep, params, costs, cash, trades=True, candles=candles)
    done = time.perf_counter()
    stats = getattr(kernel, "stats", None)
    how = ("loaded from the cache" if stats and sum(stats.cache_hits.values())
           else "compiled" if stats and sum(stats.cache_misses.values()) else "first call")
    return prep, {"prepare_s": prepared - start, "first_s": done - prepared, "how": how}


def compiled(candles: pd.DataFrame, prep, trades: bool, params: FractalParams = PARAMS,
             costs: Costs = COSTS, cash: float = CASH) -> dict:
    """(d)/(d'): one warm ``run_prepared`` on arrays prepared once (signals, spreads, ATR and
    hour mask computed inside, as a sweep pays them per rule combination)."""
    from strategy.fast import run_prepared

    start = time.perf_counter()
    res = run_prepared(prep, params, costs, cash, trades=trades, candles=candles)
    elapsed = time.perf_counter() - start
    return {"bars": len(candles), "total_s": elapsed, "bars_per_s": len(candles) / elapsed,
            "trades": res.n_trades, "final_equity": float(res.equity[-1])}


def check_same(name: str, fast: dict, ref: dict, rel: float = 1e-6) -> str:
    """The compiled simulator gave backtrader's number of trades and final equity (asserted)."""
    diff = abs(fast["final_equity"] - ref["final_equity"]) / abs(ref["final_equity"])
    line = (f"check {name}: trades {fast['trades']:,} vs {ref['trades']:,}, final equity "
            f"{fast['final_equity']:,.6f} vs {ref['final_equity']:,.6f} (relative difference "
            f"{diff:.1e})")
    assert fast["trades"] == ref["trades"] and diff <= rel, line
    return line + f": same within {rel:g}"


def import_vectorbt():
    """(vectorbt, None), or (None, why) when it cannot be imported (an optional dependency)."""
    try:
        import vectorbt
    except Exception as exc:  # ImportError, or a numba/numpy mismatch raised while importing
        return None, f"{type(exc).__name__}: {exc}".splitlines()[0]
    return vectorbt, None


def vectorbt_inputs(candles: pd.DataFrame, probs: pd.DataFrame,
                    params: FractalParams = PARAMS) -> dict:
    """(e)'s arguments: the signal of bar t enters at the open of t + 1 (long or short; an
    opposite signal reverses), size ``params.units``; stop at the signal bar's low/high ∓ the
    buffer and target at ``take_profit_r`` × that risk, both as fractions of the fill price.
    There is no max hold (``from_signals`` cannot express one without a callback). The index is
    made tz-naive, as for (c): on a tz-aware one vectorbt spends about 60 ms more per call
    converting timestamps to objects when it wraps its results."""
    sig = signals_from_frame(probs, params.threshold)
    o, h, lo, c = (candles[k].to_numpy(dtype=float) for k in ("open", "high", "low", "close"))
    s = np.zeros(len(sig), dtype=np.int8)
    s[1:] = sig[:-1]
    stop = np.full(len(s), np.nan)
    stop[1:] = np.where(s[1:] > 0, lo[:-1] - params.stop_buffer, h[:-1] + params.stop_buffer)
    risk = np.where(s != 0, np.abs(o - stop) / o, np.nan)
    risk = np.where(np.isfinite(risk), np.maximum(risk, 1e-9), np.nan)
    index = pd.DatetimeIndex(candles.index)
    index = index.tz_convert(None) if index.tz is not None else index
    return {"close": pd.Series(c, index=index), "open": pd.Series(o, index=index),
            "high": pd.Series(h, index=index), "low": pd.Series(lo, index=index),
            "entries": pd.Series(s > 0, index=index),
            "exits": pd.Series(False, index=index),
            "short_entries": pd.Series(s < 0, index=index),
            "short_exits": pd.Series(False, index=index),
            "price": pd.Series(o, index=index), "size": params.units,
            "sl_stop": pd.Series(risk, index=index),
            "tp_stop": pd.Series(params.take_profit_r * risk, index=index),
            "stop_entry_price": "fillprice", "upon_opposite_entry": "reverse",
            "init_cash": CASH, "freq": "1h"}


def vectorbt_run(vbt, kwargs: dict) -> dict:
    """(e): one ``Portfolio.from_signals`` call (timed); trades and final value counted after."""
    start = time.perf_counter()
    pf = vbt.Portfolio.from_signals(**kwargs)
    elapsed = time.perf_counter() - start
    bars = len(kwargs["close"])
    return {"bars": bars, "total_s": elapsed, "bars_per_s": bars / elapsed,
            "trades": int(pf.trades.count()), "final_equity": float(pf.final_value())}


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
    prep, first = compiled_first_call(candles, probs)
    vbt, vbt_missing = import_vectorbt()
    A = "(a) backtrader, our strategy, batched probs"
    B = "(b) our strategy + attention model's batched prediction"
    A2 = "(a') backtrader, our strategy, the same model's probs precomputed"
    C = "(c) backtesting.py, the random signals of (a)"
    D = "(d) compiled simulator (numba), equity only, the random signals of (a)"
    D2 = "(d') compiled simulator, with its trade records, the same signals"
    E = (f"(e) vectorbt {vbt.__version__} Portfolio.from_signals, stop + target, the same entries"
         if vbt else None)
    if vbt:
        vbt_kwargs = vectorbt_inputs(candles, probs)
        start = time.perf_counter()
        vectorbt_run(vbt, vbt_kwargs)        # numba compiles (or loads its cache): not timed
        first["vectorbt_s"] = time.perf_counter() - start
    rows: dict[str, list[dict]] = {}
    for _ in range(args.repeat):
        rows.setdefault(A, []).append(measure(candles, lambda _c: probs))
        rows.setdefault(B, []).append(measure(candles, predictor.predict_frame))
        model_probs = predictor.predict_frame(candles)
        rows.setdefault(A2, []).append(measure(candles, lambda _c, p=model_probs: p))
        rows.setdefault(C, []).append(backtesting_py(candles, probs))
        rows.setdefault(D, []).append(compiled(candles, prep, trades=False))
        rows.setdefault(D2, []).append(compiled(candles, prep, trades=True))
        if vbt:
            rows.setdefault(E, []).append(vectorbt_run(vbt, vbt_kwargs))
    best = {name: min(runs, key=lambda r: r["total_s"]) for name, runs in rows.items()}
    model_prep = compiled_first_call(candles, model_probs)[0]
    checks = [check_same("(d) vs (a)", best[D], best[A]),
              check_same("(d') vs (a)", best[D2], best[A]),
              check_same("compiled vs (a') on the model's signals",
                         compiled(candles, model_prep, trades=False), best[A2])]
    versions = f"numba {version('numba')}, backtrader {version('backtrader')}, " + (
        f"vectorbt {vbt.__version__}" if vbt else "vectorbt not installed")
    lines = [f"machine: {cpu_model()}, {available_cores()} usable cores ({os.cpu_count()} CPUs), "
             f"{args.threads} torch threads, Python {platform.python_version()}, {versions}; "
             f"{len(candles):,} H1 bars, best of {args.repeat}",
             "| run | bars/s | seconds | of which prediction | trades |\n|---|---:|---:|---:|---:|"]
    for name, r in best.items():
        pred = f"{r['predict_s']:.2f}" if "predict_s" in r else "—"
        lines.append(f"| {name} | {r['bars_per_s']:,.0f} | {seconds(r['total_s'])} | {pred} | "
                     f"{r['trades']:,} |")
    if not vbt:
        lines.append(f"(e) vectorbt: skipped, not importable ({vbt_missing}); "
                     "`pip install -e .[bench]` adds it")
    vbt_first = f"; vectorbt {first['vectorbt_s']:.2f} s" if vbt else ""
    lines.append(f"first calls, not in the table: compiled simulator {first['first_s']:.2f} s "
                 f"({first['how']}; prepare() {first['prepare_s'] * 1e3:.1f} ms, once per "
                 f"candles and probs){vbt_first}")
    lines += checks
    bps = {name: r["bars_per_s"] for name, r in best.items()}
    lines.append(f"ratio (b)/(a): {bps[B] / bps[A]:.2f}   ratio (b)/(a'): "
                 f"{bps[B] / bps[A2]:.2f}   ratio (a)/(c): {bps[A] / bps[C]:.2f}")
    met = {True: "met", False: "NOT met"}
    lines.append(f"ratio (d)/(a): {bps[D] / bps[A]:,.0f}× (target ≥ 250×: "
                 f"{met[bps[D] / bps[A] >= 250]})   ratio (d')/(a): {bps[D2] / bps[A]:,.0f}×")
    if vbt:
        lines.append(f"ratio (d)/(e): {bps[D] / bps[E]:.2f} (target ≥ 0.5, within 2× of vectorbt: "
                     f"{met[bps[D] / bps[E] >= 0.5]})   ratio (d')/(e): {bps[D2] / bps[E]:.2f}")
    else:
        lines.append("ratio (d)/(e): n/a (vectorbt not installed)")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
        print(f"wrote {args.out}")


def seconds(s: float) -> str:
    """Seconds to 2 decimals, or 3 significant digits below one second."""
    return f"{s:.2f}" if s >= 1 else f"{s:.3g}"


def version(package: str) -> str:
    """An installed distribution's version, "?" when it is not installed."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as _version

    try:
        return _version(package)
    except PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    main()
