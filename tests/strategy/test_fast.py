"""The compiled simulator equals backtrader trade for trade: a property test over random candles
(with time gaps and price gaps), signals, per-bar spreads, commission, slippage, account-currency
rates, every stop/target/trailing/time-exit rule (triple barriers from the entry bar's open included),
every entry filter and every sizing mode."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strategy.engine import TRADE_COLUMNS, simulate
from strategy.fast import prepare, run_prepared, simulate_fast
from strategy.fractal import Costs, FractalParams


def random_candles(n: int, seed: int, *, drop: float = 0.1, gap_share: float = 0.2,
                   spread_col: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 1.1 + np.cumsum(rng.normal(0, 0.0008, n))
    gaps = rng.normal(0, 0.0008, n) * (rng.random(n) < gap_share)
    open_ = np.r_[1.1, close[:-1]] + gaps
    high = np.maximum(open_, close) + rng.exponential(0.0004, n)
    low = np.minimum(open_, close) - rng.exponential(0.0004, n)
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC", name="time")
    frame = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                          "volume": 1.0}, index=index)
    if spread_col:
        frame["spread"] = rng.uniform(0, 0.0004, n)
    keep = rng.random(n) >= drop                         # missing hours: gaps in time
    keep[:2] = True
    return frame[keep]


def random_probs(candles: pd.DataFrame, seed: int, nan_share: float = 0.05) -> pd.DataFrame:
    rng = np.random.default_rng(seed + 10_000)
    p = rng.dirichlet([2.0, 1.0, 1.0], len(candles))
    p[rng.random(len(p)) < nan_share] = np.nan
    return pd.DataFrame(p, index=candles.index, columns=["p_none", "p_buy", "p_sell"])


def assert_same(candles, probs, params, costs, cash=100_000.0, rates=None, finalize=True):
    ref = simulate(candles, probs, params, costs, cash, finalize=finalize, rates=rates)
    trades, equity = simulate_fast(candles, probs, params, costs, cash, finalize=finalize,
                                   rates=rates)
    a, b = ref.trades, trades
    assert len(a) == len(b), f"{len(a)} backtrader trades, {len(b)} compiled"
    assert list(b.columns) == TRADE_COLUMNS
    for col in TRADE_COLUMNS:
        x, y = a[col].to_numpy(), b[col].to_numpy()
        if a[col].dtype.kind == "f":
            scale = max(1.0, float(np.nanmax(np.abs(x)))) if len(x) else 1.0
            np.testing.assert_allclose(y, x, rtol=0, atol=1e-9 * scale, err_msg=col)
        else:
            assert (x == y).all(), col
    np.testing.assert_allclose(equity.to_numpy(), ref.equity.to_numpy(), rtol=1e-12, atol=1e-9)
    assert (equity.index == ref.equity.index).all()
    return a


rules = st.fixed_dictionaries({
    "threshold": st.sampled_from([0.34, 0.4, 0.5, 0.6]),
    "allow_short": st.booleans(),
    "exit_on_opposite": st.booleans(),
    "max_hold": st.sampled_from([0, 1, 3, 24]),
    "stops_in_entry_bar": st.booleans(),
    "stop": st.sampled_from(["bar", "atr:0.5", "atr:1.5", "pips:8"]),
    "stop_buffer": st.sampled_from([0.0, 0.0002]),
    "take_profit_r": st.sampled_from([0.0, 1.0, 2.5]),
    "take_profit_atr": st.sampled_from([0.0, 0.0, 2.0]),
    "trail": st.sampled_from(["none", "none", "r:1", "atr:1", "pips:6"]),
    "atr_period": st.sampled_from([5, 14]),
    "min_stop_spreads": st.sampled_from([0.0, 0.0, 3.0]),
    "hours": st.sampled_from(["", "", "7-17", "22-6"]),
    "min_margin": st.sampled_from([0.0, 0.0, 0.15]),
    "sizing": st.sampled_from(["fixed", "risk", "kelly"]),
    "risk_fraction": st.sampled_from([0.005, 0.02]),
    "max_leverage": st.sampled_from([5.0, 30.0]),
    "kelly_fraction": st.sampled_from([0.25, 1.0]),
    "barriers": st.sampled_from(["auto", "none", "atr:1:1", "atr:1.5:0.5"]),
})
costs_st = st.builds(
    Costs, spread=st.sampled_from([None, None, 0.0, 0.00015]),
    commission=st.sampled_from([0.0, 0.000035]), slippage=st.sampled_from([0.0, 0.00003]))


@pytest.mark.slow
@settings(max_examples=max(1, 80 * settings.default.max_examples // 100),   # 80 when thorough
          deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(rule=rules, costs=costs_st, seed=st.integers(0, 10_000), n=st.integers(30, 400),
       with_rates=st.booleans(), finalize=st.booleans(), spread_col=st.booleans())
def test_compiled_simulator_equals_backtrader(rule, costs, seed, n, with_rates, finalize,
                                              spread_col):
    candles = random_candles(n, seed, spread_col=spread_col)
    probs = random_probs(candles, seed)
    rates = None
    if with_rates:
        rates = 1.0 / candles["close"].to_numpy() * np.random.default_rng(seed).uniform(
            0.98, 1.02, len(candles))
    assert_same(candles, probs, FractalParams(**rule), costs, rates=rates, finalize=finalize)


@pytest.mark.slow   # backtrader on each case, and the first compiles the simulator: seconds
@pytest.mark.parametrize("params", [
    FractalParams(),
    FractalParams(sizing="risk", trail="r:1", stop="atr:1.5", take_profit_atr=2.0),
    FractalParams(sizing="kelly", threshold=0.4, hours="7-17", min_margin=0.1,
                  min_stop_spreads=2.0, trail="atr:1", max_hold=5),
    FractalParams(stop="pips:10", trail="pips:5", allow_short=False, exit_on_opposite=False,
                  take_profit_r=0, stops_in_entry_bar=False),
    # a triple-barrier label's exits (strategy.rules.label_exits), with each sizing and a trail
    FractalParams(barriers="atr:1.5:1", max_hold=25),
    FractalParams(barriers="atr:0.5:2", sizing="risk", trail="r:1", max_hold=6),
    FractalParams(barriers="atr:1:1", sizing="kelly", threshold=0.4, trail="atr:1",
                  stops_in_entry_bar=False),
])
def test_compiled_simulator_equals_backtrader_on_fixed_cases(params):
    candles = random_candles(600, 3)
    trades = assert_same(candles, random_probs(candles, 3), params,
                         Costs(commission=0.00003, slippage=0.00002))
    assert len(trades) > 20     # the case trades: the comparison is not vacuous


def test_every_exit_reason_is_exercised_by_the_fixed_cases():
    candles = random_candles(2000, 5)
    probs = random_probs(candles, 5)
    seen = set()
    for params in (FractalParams(max_hold=3), FractalParams(trail="r:0.5", max_hold=0)):
        trades, _ = simulate_fast(candles, probs, params, Costs())
        seen |= set(trades["exit_reason"])
    assert seen == {"stop", "target", "opposite", "max_hold", "end"}


def test_equity_only_mode_matches_the_full_run():
    candles = random_candles(500, 7)
    probs = random_probs(candles, 7)
    params, costs = FractalParams(sizing="risk"), Costs(commission=0.00003)
    trades, equity = simulate_fast(candles, probs, params, costs)
    prep = prepare(candles, probs)
    quick = run_prepared(prep, params, costs, trades=False, candles=candles)
    assert quick.trades_int is None and quick.n_trades == len(trades)
    np.testing.assert_array_equal(quick.equity, equity.to_numpy())


@pytest.mark.slow
def test_compiled_code_is_cached_under_the_cache_directory_not_the_package(tmp_path):
    # the smallest compiled function of the module (the kernel takes ~10 s to compile): where
    # one function's cache goes, every one's goes (one NUMBA_CACHE_DIR for the process)
    code = ("import numpy as np\n"
            "from strategy.fast import signal_arrays\n"
            "signal_arrays(np.full((4, 3), 1 / 3), 0.5)\n")
    env = {**os.environ, "ATTNBT_CACHE": str(tmp_path / "cache")}
    env.pop("NUMBA_CACHE_DIR", None)
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300)
    cached = list((tmp_path / "cache" / "numba").rglob("*.nbi"))
    assert cached, "no numba index files under $ATTNBT_CACHE/numba"
    import strategy

    pycache = os.path.join(os.path.dirname(strategy.__file__), "__pycache__")
    inside = [f for f in (os.listdir(pycache) if os.path.isdir(pycache) else [])
              if f.endswith((".nbi", ".nbc"))]
    assert inside == []


def test_signal_arrays_follow_the_signal_rule_on_ties_and_nan():
    from strategy.fast import signal_arrays
    from strategy.fractal import signal_from_probs

    rng = np.random.default_rng(0)
    p = rng.dirichlet([1, 1, 1], 3000)
    p[::7] = np.round(p[::7], 1)                            # ties
    p[::11, 1] = p[::11, 0]
    p[::13, 2] = p[::13, 1]
    p[::17, rng.integers(0, 3)] = np.nan
    for threshold in (0.0, 0.3, 0.5):
        sig, p_dir, margin = signal_arrays(p, threshold)
        assert sig.tolist() == [signal_from_probs(row, threshold) for row in p]
        ok = np.isfinite(p).all(axis=1)
        s = np.sort(np.where(ok[:, None], p, 0.0), axis=1)
        np.testing.assert_array_equal(margin, s[:, 2] - s[:, 1])
        chosen = np.where(sig > 0, p[:, 1], np.where(sig < 0, p[:, 2], 0.0))
        np.testing.assert_array_equal(p_dir, np.where(sig != 0, chosen, 0.0))
