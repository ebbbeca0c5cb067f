"""Backtest the fractal strategy: the engine's trades, orders and equity plus named statistics.

``run_backtest`` is the one entry point; it runs ``strategy.engine.simulate`` (see there for the
conventions: fills, ``finalize``, resuming from a ``state``) and adds ``compute_stats``. With the
default ``finalize=True`` a trade still open after the last bar is closed at the last close with
``exit_reason="end"``, so ``final_equity == cash + trades.pnl_net.sum()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from backtests.analysis.performance import compute_stats
from strategy.engine import (
    ORDER_COLUMNS,
    TRADE_COLUMNS,
    EngineState,
    OrderRecord,
    TradeRecord,
    align_probs,
    simulate,
)
from strategy.fractal import Costs, FractalParams

__all__ = ["ORDER_COLUMNS", "TRADE_COLUMNS", "BacktestResult", "align_probs", "run_backtest"]


@dataclass
class BacktestResult:
    """Everything one backtest produced (see ``strategy.engine`` for conventions)."""

    trades: pd.DataFrame
    equity: pd.Series
    orders: pd.DataFrame
    stats: dict
    params: FractalParams
    costs: Costs
    cash: float = 100_000.0
    meta: dict = field(default_factory=dict)
    open_trade: TradeRecord | None = None      # finalize=False: the position still open
    pending: tuple[OrderRecord, ...] = ()      # finalize=False: orders still alive
    state: EngineState | None = None           # where a later run can resume from


def run_backtest(candles: pd.DataFrame, probs: pd.DataFrame | None,
                 params: FractalParams = FractalParams(), costs: Costs = Costs(),
                 cash: float = 100_000.0,
                 predictor: Callable[[int], np.ndarray] | None = None, *,
                 finalize: bool = True, state: EngineState | None = None,
                 rates: np.ndarray | None = None) -> BacktestResult:
    """Backtest ``FractalStrategy`` on ``candles`` (bid prices) with ``probs`` or ``predictor``.

    With ``predictor`` (one-window-at-a-time mode) it is called with the bar position ``t`` at the
    close of bar ``t`` and ``probs`` may be None. Pass only the candles of the period to test.
    ``finalize``, ``state`` and ``rates`` (quote → account currency per bar): see
    ``strategy.engine.simulate``.
    """
    r = simulate(candles, probs, params, costs, cash, predictor, finalize=finalize, state=state,
                 rates=rates)
    start_cash = cash if state is None else state.cash
    return BacktestResult(trades=r.trades, equity=r.equity, orders=r.orders,
                          stats=compute_stats(r.equity, r.trades), params=params, costs=costs,
                          cash=start_cash, meta=r.meta, open_trade=r.open_trade,
                          pending=r.pending, state=r.state)
