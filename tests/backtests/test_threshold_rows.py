"""``choose_threshold`` reads each threshold's row off the compiled simulator's arrays; the rows
(trades, total return, win rate) and the choice equal those of the full path it replaced: the
trades frame of ``simulate_fast`` and ``compute_stats``, to the last bit, with and without an
account-currency conversion, commission and slippage (a win is a net P&L above zero, so the
arithmetic of each trade's P&L must be the trades frame's own)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtests.analysis.performance import compute_stats
from backtests.simulation import THRESHOLD_GRID, best_threshold, choose_threshold
from strategy.fast import simulate_fast
from strategy.fractal import Costs, FractalParams


def _candles(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 1.1 + np.cumsum(rng.normal(0, 0.0008, n))
    open_ = np.r_[1.1, close[:-1]] + rng.normal(0, 0.0004, n) * (rng.random(n) < 0.2)
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC", name="time")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) + rng.exponential(4e-4, n),
                         "low": np.minimum(open_, close) - rng.exponential(4e-4, n),
                         "close": close, "volume": 1.0, "spread": rng.uniform(0, 4e-4, n)},
                        index=index)


def _probs(candles: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed + 1)
    p = rng.dirichlet([2.0, 1.0, 1.0], len(candles))
    p[rng.random(len(p)) < 0.05] = np.nan
    return pd.DataFrame(p, index=candles.index, columns=["p_none", "p_buy", "p_sell"])


def _reference(bars, probs, params, costs, cash, rates) -> list[dict]:
    """The rows as they were computed before: a trades frame and every statistic per run."""
    rows = []
    for threshold in THRESHOLD_GRID:
        trades, equity = simulate_fast(bars, probs, replace(params, threshold=threshold), costs,
                                       cash, rates=rates)
        stats = compute_stats(equity, trades)
        rows.append({"threshold": threshold, "validation trades": stats["n_trades"],
                     "validation return %": stats["total_return_pct"],
                     "validation win rate %": stats["win_rate_pct"]})
    return rows


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


class _ByClose:
    """A conversion whose rates are 1/close (an account in the instrument's base currency)."""

    rule = "1/close"


@pytest.mark.slow
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n=st.integers(40, 400), convert=st.booleans(),
       stop=st.sampled_from(["bar", "atr:1.5", "pips:8"]),
       take_profit_r=st.sampled_from([0.0, 1.0, 2.0]), hours=st.sampled_from(["", "7-17"]),
       sizing=st.sampled_from(["fixed", "risk"]),
       costs=st.builds(Costs, commission=st.sampled_from([0.0, 0.000035]),
                       slippage=st.sampled_from([0.0, 0.00003])))
def test_threshold_rows_equal_the_trades_frames_statistics(seed, n, convert, stop, take_profit_r,
                                                           hours, sizing, costs):
    bars, params = _candles(n, seed), FractalParams(stop=stop, take_profit_r=take_profit_r,
                                                    hours=hours, sizing=sizing)
    probs = _probs(bars, seed)
    conv = _ByClose() if convert else None
    rates = 1.0 / bars["close"].to_numpy(float) if convert else None
    chosen, rows = choose_threshold(bars, probs, params, costs, 10_000.0, conv)
    ref = _reference(bars, probs, params, costs, 10_000.0, rates)
    assert [r["threshold"] for r in rows] == list(THRESHOLD_GRID)
    for got, want in zip(rows, ref, strict=True):
        assert got.keys() == want.keys()
        assert type(got["validation trades"]) is type(want["validation trades"]) is int
        assert all(_same(got[k], want[k]) for k in want), (got, want)
    assert chosen == replace(params, threshold=best_threshold(ref)["threshold"])
    assert any(r["validation trades"] for r in ref)      # the runs traded: the rows say something
