"""A report's reference strategies (the rule baselines, a ``vs rule/...``, the oracle) are traded
by the compiled simulator (``backtests.simulation.run_reference``): each gives the trades,
equity and statistics backtrader gives for the same inputs (``run_backtest``, the old path), to
the last bit, here with a USD/XXX account conversion; a setting the kernel does not read falls back to
backtrader."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from test_walkforward_data import synthetic

import backtests.backtest as B
import strategy.fast as F
from backtests.config import Experiment
from backtests.currency import conversion_of
from backtests.simulation import run_backtest, run_reference
from strategy.engine import TRADE_COLUMNS
from strategy.fractal import Costs, FractalParams

# The compiled simulator does backtrader's float operations in backtrader's order (its margin
# flows, its executed prices): every number is expected to the last bit, and was so measured.
RTOL = 0.0


def _world(n: int = 900, seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """USD/CHF-like candles (about 0.88, a per-bar spread in price units) and probabilities that
    know the next 4 bars' direction a little."""
    c = synthetic(n, seed=seed)
    for k in ("open", "high", "low", "close"):
        c[k] *= 0.8
    rng = np.random.default_rng(seed)
    c["spread"] = rng.integers(8, 25, n) * 1e-5
    future = np.sign(np.nan_to_num(c["close"].shift(-4).to_numpy() - c["close"].to_numpy()))
    p = rng.dirichlet([2.0, 1.0, 1.0], n)
    p[:, 1] += 0.3 * np.clip(future, 0, None)
    p[:, 2] += 0.3 * np.clip(-future, 0, None)
    p /= p.sum(axis=1, keepdims=True)
    return c, pd.DataFrame(p, index=c.index, columns=["p_none", "p_buy", "p_sell"])


def _largest_gap(a: np.ndarray, b: np.ndarray) -> float:
    """max |a − b| relative to the largest |a| (at least 1); NaN where both are NaN counts 0."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if not len(a):
        return 0.0
    both_nan = np.isnan(a) & np.isnan(b)
    assert (np.isnan(a) == np.isnan(b)).all()
    scale = max(1.0, float(np.nanmax(np.abs(a))) if (~both_nan).any() else 1.0)
    return float(np.max(np.where(both_nan, 0.0, np.abs(a - b)))) / scale


def assert_same_result(new, old, who: str) -> None:
    """Trades (counts, bars, times, directions, reasons, money and prices), equity and every
    statistic equal (within RTOL: none); prints the largest relative difference found."""
    a, b = old.trades, new.trades
    assert list(b.columns) == TRADE_COLUMNS and len(a) == len(b), who
    worst = 0.0
    for col in TRADE_COLUMNS:
        if a[col].dtype.kind == "f":
            worst = max(worst, _largest_gap(a[col].to_numpy(), b[col].to_numpy()))
        else:
            assert (a[col].to_numpy() == b[col].to_numpy()).all(), (who, col)
    assert (new.equity.index == old.equity.index).all(), who
    eq_gap = _largest_gap(old.equity.to_numpy(), new.equity.to_numpy())
    assert old.stats.keys() == new.stats.keys(), who
    stat_gap = 0.0
    for k, x in old.stats.items():
        y = new.stats[k]
        if isinstance(x, int | np.integer) and not isinstance(x, bool):
            assert x == y, (who, k)
        elif isinstance(x, float | np.floating):
            stat_gap = max(stat_gap, _largest_gap(np.array([x]), np.array([y])))
        else:
            assert x == y, (who, k)
    print(f"{who}: {len(a)} trades, largest relative difference: trades {worst:.2e}, "
          f"equity {eq_gap:.2e}, statistics {stat_gap:.2e}")
    assert max(worst, eq_gap, stat_gap) <= RTOL, who


@pytest.mark.parametrize("strategy", [
    {},
    {"strategy.sizing": "risk", "strategy.stop": "atr:1.5", "strategy.trail": "r:1",
     "strategy.max_hold": 12},
])
def test_each_reference_of_a_report_is_what_backtrader_gives(monkeypatch, strategy):
    candles, probs = _world()
    exp = Experiment().override({"data.instrument": "USDCHF", "data.account_currency": "USD",
                                 "backtest.auto_threshold": True, "backtest.random_draws": 20,
                                 **strategy})
    assert conversion_of(exp.data).rule == "1/close"          # P&L converted at each bar
    calls = []

    def recorded(*args, **kwargs):
        result = run_reference(*args, **kwargs)
        calls.append((args, kwargs, result))
        return result

    monkeypatch.setattr(B, "run_reference", recorded)
    outcome = B.compute_signals_backtest(exp, candles, probs, vs=["rule/newhl-range:0.5"],
                                         with_report=False)
    names = ["rule:newhl", "rule:newhl-range", "rule:newhl-range:0.5", "oracle"]
    assert [k for k in outcome.baselines if k.startswith("rule:") or k == "oracle"] == names
    assert len(calls) == len(names)
    assert sum(len(r.trades) for *_, r in calls) > 50       # the references trade
    for name, (args, kwargs, new) in zip(names, calls, strict=True):
        assert new.meta["engine"] == "compiled" and kwargs["rates"] is not None
        assert_same_result(new, run_backtest(*args, **kwargs), name)
        row = outcome.baselines[name]
        assert all(row[k] == new.stats[k] for k in B.HEADLINE), name
        if name != "oracle":
            assert outcome.curves[name]["equity"] is new.equity


def test_a_setting_the_kernel_does_not_read_falls_back_to_backtrader(monkeypatch):
    candles, probs = _world(300)
    candles = candles.iloc[100:]
    probs = probs.iloc[100:]
    rates = 1.0 / candles["close"].to_numpy()
    params = FractalParams(trail="r:1", sizing="risk")
    assert F.unsupported(params, Costs()) is None
    every = FractalParams(threshold=0.4, allow_short=False, stop_buffer=1e-4, take_profit_r=1.0,
                          exit_on_opposite=False, max_hold=5, sizing="kelly", units=5.0,
                          risk_fraction=0.02, max_leverage=5.0, stops_in_entry_bar=False,
                          stop="atr:1", take_profit_atr=1.0, trail="atr:1", atr_period=5,
                          pip=0.01, min_stop_spreads=1.0, hours="7-17", min_margin=0.1,
                          kelly_fraction=0.25, barriers="atr:1:1", meta=True, meta_threshold=0.5,
                          meta_folds=2, meta_epochs=1)
    assert F.unsupported(every, Costs(spread=1e-4, default_spread=2e-4, commission=1e-5,
                                      slippage=1e-5)) is None
    compiled = run_reference(candles, probs, params, Costs(), rates=rates)
    assert compiled.meta["engine"] == "compiled" and compiled.orders.empty

    monkeypatch.setattr(F, "PARAMS_READ", F.PARAMS_READ - {"trail"})
    monkeypatch.setattr(F, "COSTS_READ", F.COSTS_READ - {"slippage"})
    assert F.unsupported(params, Costs()) == "FractalParams.trail='r:1'"
    assert F.unsupported(replace(params, trail="none"), Costs(slippage=1e-5)) == \
        "Costs.slippage=1e-05"
    assert F.unsupported(replace(params, trail="none"), Costs()) is None   # at its default
    fallback = run_reference(candles, probs, params, Costs(), rates=rates)
    old = run_backtest(candles, probs, params, Costs(), rates=rates)
    assert fallback.meta == {**old.meta, "engine": "backtrader",
                             "fallback": "FractalParams.trail='r:1'"}
    assert len(fallback.orders) == len(old.orders) > 0
    pd.testing.assert_frame_equal(fallback.trades, old.trades)
    pd.testing.assert_series_equal(fallback.equity, old.equity)
    assert_same_result(fallback, old, "the fallback")
    assert_same_result(compiled, old, "compiled beside the fallback")
