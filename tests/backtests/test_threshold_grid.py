"""``backtest.threshold_grid``: the thresholds the validation choice tries. ``absolute`` is the
fixed grid 0.4 … 0.9; ``quantile`` reads its levels off the validation probabilities (the shares
of directional bars kept), so a model whose probabilities are ranked right but small (a
three-class model of a small edge) still gets a threshold that trades its best-ranked bars.
The key leaves every earlier config id as it was and enters the id when set; the walk-forward
chooses with it on each fold's validation bars only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtests.config import ConfigError, Experiment
from backtests.simulation import (
    QUANTILE_GRID,
    THRESHOLD_GRID,
    THRESHOLD_GRIDS,
    choose_threshold,
    threshold_grid,
)
from strategy.fractal import Costs, FractalParams, signals_from_frame


def _candles(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 1.1 + np.cumsum(rng.normal(0, 0.0008, n))
    open_ = np.r_[1.1, close[:-1]]
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC", name="time")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) + rng.exponential(4e-4, n),
                         "low": np.minimum(open_, close) - rng.exponential(4e-4, n),
                         "close": close, "volume": 1.0, "spread": 1e-4}, index=index)


def _probs(index: pd.Index, seed: int, scale: float = 1.0) -> pd.DataFrame:
    """Dirichlet probabilities pulled towards 1/3 by ``scale`` (ranks and arg-max unchanged)."""
    p = np.random.default_rng(seed).dirichlet([2.0, 1.0, 1.0], len(index))
    p = 1 / 3 + scale * (p - 1 / 3)
    return pd.DataFrame(p, index=index, columns=["p_none", "p_buy", "p_sell"])


def test_the_absolute_grid_is_the_fixed_one_and_an_unknown_grid_is_refused():
    probs = _probs(pd.RangeIndex(50), 0)
    assert threshold_grid(probs) == threshold_grid(probs, "absolute") == THRESHOLD_GRID
    assert THRESHOLD_GRIDS == ("absolute", "quantile")
    with pytest.raises(ValueError, match="quantile"):
        threshold_grid(probs, "relative")


@pytest.mark.parametrize("scale", [1.0, 0.1])
def test_each_quantile_threshold_keeps_its_share_of_the_directional_bars(scale):
    """At every scale of the probabilities, the level for quantile q keeps the top 1 - q of the
    bars whose arg-max is buy or sell signalling (up to two bars more: the level is the observed
    value at position floor(q (n - 1)) of the n sorted ones, and bars at it are kept);
    the absolute grid keeps none of them once the probabilities are small."""
    index = pd.date_range("2024-01-01", periods=2000, freq="h", tz="UTC")
    probs = _probs(index, 1, scale)
    directional = int(np.count_nonzero(probs.to_numpy().argmax(axis=1) > 0))
    levels = threshold_grid(probs, "quantile")
    assert len(levels) == len(QUANTILE_GRID) and list(levels) == sorted(levels)
    for q, level in zip(QUANTILE_GRID, levels, strict=True):
        kept = int(np.count_nonzero(signals_from_frame(probs, level)))
        assert 0 <= kept - (1 - q) * directional <= 2, (q, kept)   # n - floor(q (n - 1)) kept
    if scale < 1:
        assert all(np.count_nonzero(signals_from_frame(probs, t)) == 0 for t in THRESHOLD_GRID)


def test_no_directional_bar_gives_one_threshold_that_trades_nothing():
    p = pd.DataFrame([[0.5, 0.25, 0.25], [np.nan] * 3], columns=["p_none", "p_buy", "p_sell"])
    assert threshold_grid(p, "quantile") == (1.0,)


def test_the_quantile_choice_depends_on_the_ranking_not_the_scale():
    """The same model with probabilities pulled towards 1/3 trades the same validation bars with
    the quantile grid (same rows, same choice up to the level's scale); the absolute grid
    trades nothing there."""
    bars = _candles(600, 2)
    costs, params = Costs(spread=None), FractalParams(max_hold=1, take_profit_r=0)
    rows = {}
    for scale in (1.0, 0.09):         # at 0.09 every probability is under 0.4
        probs = _probs(bars.index, 3, scale)
        chosen, table = choose_threshold(bars, probs, params, costs, 100_000.0, grid="quantile")
        rows[scale] = ([(r["validation trades"], round(r["validation return %"], 12))
                        for r in table], table.index(next(r for r in table
                                                          if r["threshold"] == chosen.threshold)))
        if scale < 1:
            _, absolute = choose_threshold(bars, probs, params, costs, 100_000.0)
            assert all(r["validation trades"] == 0 for r in absolute)
    assert rows[1.0] == rows[0.09]
    assert rows[1.0][0][0][0] > rows[1.0][0][-1][0] > 0     # fewer trades at higher levels


def test_the_choice_reads_the_validation_bars_only():
    """Changing every probability after the validation bars changes neither the levels tried
    nor the choice: ``choose_threshold`` is given the validation slice, and the studies pass it
    that slice (walkforward.tasks, backtest)."""
    bars = _candles(900, 4)
    probs = _probs(bars.index, 5, 0.3)
    later = probs.copy()
    later.iloc[600:] = _probs(bars.index[600:], 6, 1.0).to_numpy()
    costs, params = Costs(spread=None), FractalParams(max_hold=1, take_profit_r=0)
    a = choose_threshold(bars.iloc[:600], probs.iloc[:600], params, costs, 1e5, grid="quantile")
    b = choose_threshold(bars.iloc[:600], later.iloc[:600], params, costs, 1e5, grid="quantile")
    assert a == b
    assert threshold_grid(probs.iloc[:600], "quantile") != threshold_grid(later, "quantile")


def test_the_key_is_checked_and_enters_the_id_only_when_set():
    base = Experiment()
    assert base.backtest.threshold_grid == "absolute"
    assert base.id == "7fe8b7747224"          # the id before the key existed
    q = base.override({"backtest.threshold_grid": "quantile"})
    assert q.id != base.id and q.train_id == base.train_id   # the same trained model
    assert base.override(["threshold_grid=quantile"]) == q
    with pytest.raises(ConfigError, match="backtest.threshold_grid"):
        base.override({"backtest.threshold_grid": "relative"})


@pytest.mark.slow   # a walk-forward (about 2 s)
def test_the_walkforward_chooses_with_the_configured_grid_on_each_folds_validation_bars(
        tmp_path, monkeypatch):
    """Each fold's choice gets the key's grid and exactly that fold's validation bars."""
    from test_walkforward_data import synthetic, write_csv

    from backtests import walkforward as wfm
    from backtests.walkforward import tasks as T

    csv = write_csv(synthetic(1300, seed=1), tmp_path / "walk.csv")
    seen, real = [], T.choose_threshold

    def spy(bars, probs, *args):
        seen.append((bars.index[0], bars.index[-1], len(probs), args[-1]))
        return real(bars, probs, *args)

    monkeypatch.setattr(T, "choose_threshold", spy)
    plan = wfm.FoldPlan(train_bars=500, val_bars=200, test_bars=200)
    base = Experiment().override({"runtime.runs_dir": str(tmp_path / "runs"),
                                  "backtest.threshold_grid": "quantile"})
    wfm.run(wfm.WalkForward(base=base, sources=[str(csv)], models=wfm.parse_models("rule/newhl"),
                            seeds=[0], plan=plan, workers=1, device="cpu"))
    candles = pd.read_csv(csv, index_col=0, parse_dates=True).index.tz_localize("UTC")
    folds = plan.folds(candles)
    assert len(seen) == len(folds) == 3
    for (first, last, n, grid), fold in zip(sorted(seen), folds, strict=True):
        lo, hi = fold.bounds(candles, "val")
        assert (first, last, n, grid) == (candles[lo], candles[hi], hi - lo + 1, "quantile")


def test_a_backtest_of_your_signals_chooses_with_the_configured_grid(tmp_path):
    """``attnbt backtest --threshold auto`` (here your own probabilities) tries the key's levels,
    read off the split's validation bars of those probabilities."""
    from backtests import api

    bars = _candles(1000, 7)
    probs = _probs(bars.index, 8, 0.2)
    bt = api.backtest(signals=probs, data=bars, record=False, runs_dir=tmp_path,
                      settings={"backtest.auto_threshold": True,
                                "backtest.threshold_grid": "quantile", "costs.spread": 1e-4})
    tables = bt.outcome.threshold_tables
    val = probs.iloc[600:800]                 # split 0.6 / 0.2 of 1,000 bars
    mine = [r["threshold"] for r in tables[bt.name]]
    assert mine == list(threshold_grid(val, "quantile")) != list(THRESHOLD_GRID)
