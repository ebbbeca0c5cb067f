"""Paper trading: the cost of one `paper step` with one new bar, whatever the history length.

For each history length N, a CSV of N hourly bars (a seeded random walk) gets a paper account
(default start: only bars appended later are traded); then, REPEAT times, one bar is appended and
one step is timed (in-process, model kept loaded as `paper run` does). Side by side, in the same
run: ``Predictor.predict_at`` for the same bar, which recomputes the features over the whole history
(what scoring one bar cost before) beside the incremental scoring alone
(``IncrementalPredictor.advance``, the "ratio" column), and a check that the stepped bars' features equal the batch
computation over the full history (≤ 1e-9) and their probabilities ``predict_frame``'s (≤ 1e-6);
and the new line's parse alone, by the full loader and by ``data.tail`` (checked equal).

    python benchmarks/paper_step.py [--bars 5000 50000 500000] [--repeat 15] [--run RUN]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # this checkout first

from benchmarks.machine import cpu_model  # noqa: E402


def random_walk(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 1.1 * np.exp(np.cumsum(rng.normal(0, 0.0015, n)))
    open_ = np.r_[close[0], close[:-1]]
    wick = np.abs(rng.normal(0, 0.0008, (n, 2)))
    index = pd.date_range("1960-01-01", periods=n, freq="h", tz="UTC", name="time")
    return pd.DataFrame({"open": open_.round(5), "high": (np.maximum(open_, close) + wick[:, 0])
                         .round(5), "low": (np.minimum(open_, close) - wick[:, 1]).round(5),
                         "close": close.round(5), "volume": rng.integers(1, 5000, n)
                         .astype(float)}, index=index)


def csv_lines(frame: pd.DataFrame) -> list[str]:
    text = frame.to_csv(date_format="%Y-%m-%d %H:%M:%S")
    return text.splitlines(keepends=True)


def train(runs: Path) -> str:
    import data
    from backtests.config import Experiment
    from backtests.workflows import train_run

    exp = Experiment().override({"train.epochs": 1, "train.seed": 1,
                                 "runtime.runs_dir": str(runs)})
    return train_run(exp, candles=data.load("sample:EURUSD_H1"))[0].id


def measure(n: int, repeat: int, run: str, runs: Path) -> dict:
    from backtests import paper
    from backtests.store import Registry
    from data.features import compute_features
    from models.predict import Predictor

    frame = random_walk(n + repeat + 1)
    lines = csv_lines(frame)
    csv = runs / f"walk{n}.csv"
    csv.write_text("".join(lines[:1 + n]))
    name = f"bench{n}"
    t = time.perf_counter()
    paper.init(name, run, str(csv), runs_dir=runs)
    init_s = time.perf_counter() - t
    with csv.open("a") as fh:      # a warm-up step (imports, first model load)
        fh.write(lines[1 + n])
    paper.step(name, runs)
    times = []
    for k in range(repeat):
        with csv.open("a") as fh:
            fh.write(lines[2 + n + k])
        t = time.perf_counter()
        r = paper.step(name, runs)
        times.append(time.perf_counter() - t)
        assert r.new_bars == 1, r.message
    predictor = Predictor.from_run(Registry(runs).resolve(run).path)
    full = frame.iloc[:n + repeat + 1]
    from models.predict import IncrementalPredictor

    inc = IncrementalPredictor.from_history(predictor, full.iloc[:n])
    score = []
    for k in range(repeat + 1):
        t = time.perf_counter()
        inc.advance(full.iloc[n + k:n + k + 1])
        score.append(time.perf_counter() - t)
    t = time.perf_counter()
    one = predictor.predict_at(full, len(full) - 1)
    predict_at_s = time.perf_counter() - t
    view = paper.read_account(name, runs)
    tail = full.iloc[-5000:] if n > 5000 else full   # batch check on the stepped bars
    batch_feat = compute_features(full, predictor.spec.features).to_numpy()[-(repeat + 1):]
    from data.incremental import FeatureState

    state = FeatureState.from_history(full.iloc[:n], predictor.spec.features, 20)
    inc_feat = state.extend(full.iloc[n:])
    probs = predictor.predict_frame(tail).iloc[-(repeat + 1):].to_numpy()
    parse_full, parse_light = _parse_times(lines[0], lines[1 + n + repeat])
    return {"bars": n, "init_s": init_s, "parse_full_ms": parse_full,
            "parse_light_ms": parse_light, "step_ms_median": 1e3 * statistics.median(times),
            "step_ms_max": 1e3 * max(times),
            "score_ms": 1e3 * statistics.median(score), "predict_at_ms": 1e3 * predict_at_s,
            "feature_max_diff": float(np.nanmax(np.abs(inc_feat - batch_feat))),
            "prob_max_diff": float(np.nanmax(np.abs(view.probs.to_numpy() - probs))),
            "last_prob_diff": float(np.nanmax(np.abs(one - probs[-1])))}


def _parse_times(head: str, line: str, rounds: int = 30) -> tuple[float, float]:
    """Median ms to read one appended line: the full loader vs ``data.tail`` (same frame)."""
    from data.sources import read_text
    from data.tail import read_appended

    full, light = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        a = read_text(head + line, "walk.csv", tz="UTC", sort=False, point=None, dayfirst=None)
        full.append(time.perf_counter() - t)
        t = time.perf_counter()
        b = read_appended(head, line, "walk.csv", tz="UTC", point=None, dayfirst=None,
                          dialect="generic")
        light.append(time.perf_counter() - t)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    return 1e3 * statistics.median(full), 1e3 * statistics.median(light)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, nargs="+", default=[5_000, 50_000, 500_000])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--run", help="a trained H1 run (default: train one epoch on the sample)")
    ap.add_argument("--runs-dir", type=Path)
    args = ap.parse_args()
    runs = args.runs_dir or Path(tempfile.mkdtemp(prefix="paper-bench-"))
    run = args.run or train(runs)
    import torch

    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()}, Python "
          f"{platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} "
          f"threads); load average {os.getloadavg()[0]:.1f}")
    print(f"{'history':>9} {'init s':>7} {'step ms':>8} {'(max)':>7} {'score ms':>9} "
          f"{'predict_at ms':>14} {'ratio':>6} {'feat diff':>10} {'prob diff':>10} "
          f"{'parse ms: loader':>17} {'light':>6}")
    for n in args.bars:
        m = measure(n, args.repeat, run, runs)
        print(f"{m['bars']:>9,} {m['init_s']:>7.1f} {m['step_ms_median']:>8.1f} "
              f"{m['step_ms_max']:>7.1f} {m['score_ms']:>9.2f} {m['predict_at_ms']:>14.1f} "
              f"{m['predict_at_ms'] / m['score_ms']:>6.0f} "
              f"{m['feature_max_diff']:>10.1e} {m['prob_max_diff']:>10.1e} "
              f"{m['parse_full_ms']:>17.2f} {m['parse_light_ms']:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
