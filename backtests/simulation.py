"""Backtest the fractal strategy: the engine's trades, orders and equity plus named statistics.

``run_backtest`` is the one entry point; it runs ``strategy.engine.simulate`` (see there for the
conventions: fills, ``finalize``, resuming from a ``state``) and adds ``compute_stats``. With the
default ``finalize=True`` a trade still open after the last bar is closed at the last close with
``exit_reason="end"``, so ``final_equity == cash + trades.pnl_net.sum()``.

``run_reference`` gives the same result for a report's reference strategies (rule baselines, the
oracle, the other models given with ``vs``) from the compiled simulator (``strategy.fast``),
whose trades and equity are backtrader's to the last bit (tests/strategy/test_fast.py,
tests/backtests/test_reference_engine.py) at a small fraction of the time; the model a report is
about is traded by ``run_backtest`` on backtrader, the engine of record.

``choose_threshold(bars, probs, ...)`` picks the signal threshold on validation bars (the rule of
``threshold auto`` in every study); ``check_costs`` refuses a spread in the wrong units.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from backtests.analysis.performance import compute_stats
from backtests.currency import Conversion, rates
from data.errors import DataError
from data.validate import MAX_SPREAD_SHARE
from strategy.engine import (
    ORDER_COLUMNS,
    TRADE_COLUMNS,
    EngineState,
    OrderRecord,
    TradeRecord,
    align_probs,
    simulate,
    to_frame,
)
from strategy.fractal import Costs, FractalParams

__all__ = ["ORDER_COLUMNS", "QUANTILE_GRID", "THRESHOLD_GRID", "THRESHOLD_GRIDS", "TRADE_COLUMNS",
           "BacktestResult", "align_probs", "best_threshold", "check_costs", "choose_threshold",
           "run_backtest", "run_reference", "threshold_grid"]

THRESHOLD_GRID = (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)
# ``backtest.threshold_grid=quantile``: the thresholds that keep the top 50 %, 25 %, ... 1 % of the
# validation bars' directional probabilities (bars whose arg-max is buy or sell).
QUANTILE_GRID = (0.5, 0.75, 0.9, 0.95, 0.98, 0.99)
THRESHOLD_GRIDS = ("absolute", "quantile")


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


def run_reference(candles: pd.DataFrame, probs: pd.DataFrame,
                  params: FractalParams = FractalParams(), costs: Costs = Costs(),
                  cash: float = 100_000.0, *, rates: np.ndarray | None = None) -> BacktestResult:
    """``run_backtest(candles, probs, params, costs, cash, rates=rates)`` for a reference strategy
    of a report, traded by the compiled simulator: the same trades frame, equity and
    ``compute_stats``; ``orders`` is empty (the kernel keeps no order log) and
    ``meta["engine"]`` says ``"compiled"``. A setting the kernel does not read
    (``strategy.fast.unsupported``) runs on backtrader instead (``meta["engine"]``:
    ``"backtrader"``, ``meta["fallback"]``: that setting)."""
    from strategy.fast import simulate_fast, unsupported

    why = unsupported(params, costs)
    if why is not None:
        result = run_backtest(candles, probs, params, costs, cash, rates=rates)
        result.meta = {**result.meta, "engine": "backtrader", "fallback": why}
        return result
    trades, equity = simulate_fast(candles, probs, params, costs, cash, rates=rates)
    return BacktestResult(trades=trades, equity=equity,
                          orders=to_frame((), OrderRecord, candles.index.dtype),
                          stats=compute_stats(equity, trades), params=params, costs=costs,
                          cash=cash, meta={"bars": len(candles), "first_bar": 0,
                                           "mode": "batched", "finalized": True,
                                           "engine": "compiled"})


def threshold_grid(probs: pd.DataFrame | np.ndarray, grid: str = "absolute") -> tuple[float, ...]:
    """The thresholds ``choose_threshold`` tries on validation ``probs`` (``backtest.threshold_grid``).

    ``absolute``: ``THRESHOLD_GRID`` (0.4 … 0.9), the same for every model. ``quantile``: levels
    read off these probabilities themselves, the ``QUANTILE_GRID`` quantiles of the directional
    probability (``max(p_buy, p_sell)``) over the bars whose arg-max is buy or sell, so that each
    threshold keeps a given share of them signalling whatever the scale of the model's
    probabilities (a three-class model of a small edge rarely gives any class 0.5). Only the
    ``probs`` given are read (pass the validation bars'). No directional bar: ``(1.0,)``.
    """
    if grid == "absolute":
        return THRESHOLD_GRID
    if grid != "quantile":
        raise ValueError(f"threshold grid {grid!r}: give one of {', '.join(THRESHOLD_GRIDS)}")
    p = np.asarray(probs, dtype=np.float64)
    p = p[np.isfinite(p).all(axis=1)]
    top = np.argmax(p, axis=1) if len(p) else np.zeros(0, int)
    directional = p[top > 0].max(axis=1) if len(p) else np.zeros(0)
    if not len(directional):
        return (1.0,)
    levels = np.quantile(directional, QUANTILE_GRID, method="lower")   # observed values
    return tuple(sorted({float(x) for x in levels}))


def choose_threshold(bars: pd.DataFrame, probs: pd.DataFrame, params: FractalParams,
                     costs: Costs, cash: float, conv: Conversion | None = None,
                     grid: str = "absolute") -> tuple[FractalParams, list[dict]]:
    """Pick the signal threshold on validation ``bars`` and their ``probs`` (never the bars
    being tested).

    Each threshold of ``threshold_grid(probs, grid)`` (``THRESHOLD_GRID`` by default) is backtested on these bars with the same rules and the
    costs of the backtest being run (``conv``: the P&L conversion to the account currency); the
    highest total return wins (ties: the higher threshold, fewer trades). The compiled simulator
    runs these backtests (it gives backtrader's trades and equity, tests/strategy/test_fast.py).
    Returns the params with the chosen threshold and one row per threshold tried.

    Only the threshold changes from one run to the next, so the bars are prepared once and each
    row is read off the kernel's arrays (:func:`threshold_row`) instead of a trades frame and
    the full statistics: the same numbers as ``compute_stats`` gives for ``simulate_fast``'s
    trades and equity (tests/backtests/test_threshold_rows.py).
    """
    from strategy.engine import Booking
    from strategy.fast import prepare, run_prepared
    from strategy.rules import atr_array, hour_mask, needs_atr, parse_hours

    bar_rates = rates(bars, conv) if conv is not None else None
    prep = prepare(bars, probs, bar_rates)
    book = Booking(bars, bar_rates)
    shared = {"spreads": costs.spread_array(bars), "hour_ok": hour_mask(prep.index,
                                                                        parse_hours(params.hours)),
              "atr": (atr_array(bars, params.atr_period) if needs_atr(params)
                      else np.full(len(prep.close), np.nan))}
    rows = []
    for threshold in threshold_grid(prep.probs, grid):
        res = run_prepared(prep, replace(params, threshold=threshold), costs, cash,
                           candles=bars, **shared)
        rows.append({"threshold": threshold, **threshold_row(res, book)})
    return replace(params, threshold=best_threshold(rows)["threshold"]), rows


def threshold_row(res, book) -> dict:
    """Trades, total return and win rate of one compiled run (``strategy.fast.FastResult``,
    finalized: every trade closed), computed as ``compute_stats`` computes them from the trades
    frame ``strategy.fast.trades_frame`` would build: each trade's net P&L booked by
    ``strategy.engine.trade_record``'s arithmetic (``book``: its ``Booking``)."""
    from strategy.fast import F_CM_IN, F_CM_OUT, F_PIN, F_POUT, F_SIZE, I_DIR, I_ENTRY, I_EXIT

    ti, tf, values = res.trades_int, res.trades_float, res.equity
    wins = 0
    for t, f in zip(ti, tf, strict=True):
        net_move = (float(book.move(int(t[I_ENTRY]), float(f[F_PIN]), int(t[I_EXIT]),
                                    float(f[F_POUT]))) * int(t[I_DIR]) * float(f[F_SIZE]))
        wins += (net_move - (float(f[F_CM_IN]) + float(f[F_CM_OUT]))) > 0
    k = len(ti)
    return {"validation trades": k,
            "validation return %": 100.0 * (float(values[-1]) / float(values[0]) - 1.0),
            "validation win rate %": float(100.0 * wins / k) if k else float("nan")}


def best_threshold(rows: list[dict], key: str = "threshold") -> dict:
    """The row ``choose_threshold`` picks: highest validation return, ties to the higher one
    (``key``: the column of the threshold tried; the meta threshold's choice uses this rule too)."""
    return max(rows, key=lambda r: (r["validation return %"], r[key]))


def check_costs(candles: pd.DataFrame, costs: Costs) -> None:
    """Refuse a spread that is absurd for the price (a units mistake: points vs price)."""
    spread = costs.spread_array(candles)
    price = float(np.nanmedian(candles["close"].to_numpy(float)))
    worst = float(np.nanmax(spread)) if len(spread) else 0.0
    if price > 0 and worst > MAX_SPREAD_SHARE * price:
        raise DataError(f"a spread of {worst:g} is over {MAX_SPREAD_SHARE:.0%} of the price "
                        f"(about {price:g}); spreads are in price units, not points or pips",
                        rule="absurd spread")
