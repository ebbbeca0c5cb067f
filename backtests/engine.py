"""Run the fractal strategy over candles and a probs frame with backtrader; tidy the results.

``run_backtest`` is the one entry point. Probabilities are precomputed (batched mode) or come from a
``predictor`` called once per bar; both give the same orders. A trade still open after the last bar
is closed at the last close (bid for a long, ask for a short, plus slippage and commission) with
``exit_reason="end"``, and the last equity point includes that closing cost, so
``final_equity == cash + trades.pnl_net.sum()``. Equity marks an open position at each bar's close
(bid), so an open short shows its spread only when it is closed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import backtrader as bt
import numpy as np
import pandas as pd

from backtests.metrics import compute_stats
from strategy.broker import BidAskBroker
from strategy.fractal import PROB_COLUMNS, Costs, FractalParams, FractalStrategy, ProbsData

TRADE_COLUMNS = [
    "signal_time", "entry_time", "exit_time", "direction", "size", "entry_price", "exit_price",
    "pnl", "costs", "pnl_net", "return_pct", "bars_held", "exit_reason",
    "signal_bar", "entry_bar", "exit_bar", "commission", "spread_cost", "slippage_cost",
]
ORDER_COLUMNS = ["created_time", "executed_time", "type", "price", "side", "role", "size",
                 "order_price", "status", "reason", "ref"]


@dataclass
class BacktestResult:
    """Everything one backtest produced (see the module docstring for conventions)."""

    trades: pd.DataFrame
    equity: pd.Series
    orders: pd.DataFrame
    stats: dict
    params: FractalParams
    costs: Costs
    cash: float = 100_000.0
    meta: dict = field(default_factory=dict)


def align_probs(candles: pd.DataFrame, probs: pd.DataFrame | None) -> pd.DataFrame:
    """``probs`` on the candles' index (NaN where missing); raises on bad columns or index."""
    if probs is None:
        return pd.DataFrame(np.nan, index=candles.index, columns=list(PROB_COLUMNS))
    missing = [c for c in PROB_COLUMNS if c not in probs.columns]
    if missing:
        raise ValueError(f"probs is missing columns {missing}; expected {list(PROB_COLUMNS)}")
    extra = probs.index.difference(candles.index)
    if len(extra):
        raise ValueError(f"probs has {len(extra)} timestamps not in the candles, first {extra[0]}")
    return probs[list(PROB_COLUMNS)].astype(float).reindex(candles.index)


def run_backtest(candles: pd.DataFrame, probs: pd.DataFrame | None,
                 params: FractalParams = FractalParams(), costs: Costs = Costs(),
                 cash: float = 100_000.0,
                 predictor: Callable[[int], np.ndarray] | None = None) -> BacktestResult:
    """Backtest ``FractalStrategy`` on ``candles`` (bid prices) with ``probs`` or ``predictor``.

    With ``predictor`` (one-window-at-a-time mode) it is called with the bar position ``t`` at the
    close of bar ``t`` and ``probs`` may be None. Pass only the candles of the period to test.
    """
    if len(candles) < 2:
        raise ValueError("need at least 2 candles to backtest")
    aligned = align_probs(candles, probs if predictor is None else None)
    spreads = costs.spread_array(candles)
    frame = candles[["open", "high", "low", "close", "volume"]].astype(float).copy()
    frame[list(PROB_COLUMNS)] = aligned.to_numpy()
    frame.index = frame.index.tz_convert(None) if frame.index.tz is not None else frame.index

    cerebro = bt.Cerebro(stdstats=False, runonce=True, preload=True)
    broker = BidAskBroker()
    broker.configure(spreads, costs.slippage, params.stops_in_entry_bar)
    broker.set_cash(cash)
    # Futures-like accounting (cash marked to market each bar, value = equity). The margin per
    # unit is a negligible constant so the broker never refuses an order for margin: leverage is
    # capped by the strategy's sizing (max_leverage), from data up to the signal bar only.
    broker.addcommissioninfo(bt.CommInfoBase(
        stocklike=False, commtype=bt.CommInfoBase.COMM_FIXED, commission=costs.commission,
        margin=1e-9, mult=1.0))
    cerebro.setbroker(broker)
    cerebro.adddata(ProbsData(dataname=frame))
    cerebro.addstrategy(FractalStrategy, fractal=params, predictor=predictor, spreads=spreads)
    strat = cerebro.run()[0]

    index = candles.index
    equity = pd.Series(strat.equity, index=index, name="equity")
    equity = equity.ffill().fillna(cash)
    logs = list(strat.trade_log)
    if strat.open_trade is not None:
        end = _end_fill(candles, spreads, costs, strat.open_trade)
        logs.append({**strat.open_trade, "exit": end, "exit_reason": "end"})
        equity.iloc[-1] -= end["closing_cost"]
    trades = _trades_frame(logs, index)
    orders = _orders_frame(strat.order_log, index)
    stats = compute_stats(equity, trades)
    return BacktestResult(trades=trades, equity=equity, orders=orders, stats=stats,
                          params=params, costs=costs, cash=cash,
                          meta={"bars": len(candles), "mode": "predictor" if predictor else "batched"})


def _end_fill(candles: pd.DataFrame, spreads: np.ndarray, costs: Costs, open_trade: dict) -> dict:
    """Close an open trade at the last close (what the mark-to-market equity does not include)."""
    last = len(candles) - 1
    direction = open_trade["direction"]
    size = open_trade["entry"]["size"]
    close = float(candles["close"].iloc[-1])
    spread = float(spreads[last]) if direction < 0 else 0.0
    price = close + spread - direction * costs.slippage
    comm = costs.commission * size
    closing_cost = (spread + costs.slippage) * size + comm
    return {"bar": last, "price": price, "size": size, "spread": spread,
            "slip": costs.slippage, "comm": comm, "closing_cost": closing_cost}


def _trades_frame(logs: list[dict], index: pd.DatetimeIndex) -> pd.DataFrame:
    rows = []
    for t in logs:
        entry, exit_ = t["entry"], t["exit"]
        d, size = t["direction"], entry["size"]
        net_move = (exit_["price"] - entry["price"]) * d * size
        commission = entry["comm"] + exit_["comm"]
        spread_cost = (entry["spread"] + exit_["spread"]) * size
        slippage_cost = (entry["slip"] + exit_["slip"]) * size
        costs = commission + spread_cost + slippage_cost
        pnl_net = net_move - commission
        rows.append({
            "direction": d, "size": size,
            "entry_price": entry["price"], "exit_price": exit_["price"],
            "pnl": pnl_net + costs, "costs": costs, "pnl_net": pnl_net,
            "return_pct": 100.0 * pnl_net / (entry["price"] * size),
            "bars_held": exit_["bar"] - entry["bar"], "exit_reason": t["exit_reason"],
            "signal_bar": t["signal_bar"], "entry_bar": entry["bar"], "exit_bar": exit_["bar"],
            "commission": commission, "spread_cost": spread_cost, "slippage_cost": slippage_cost,
        })
    frame = pd.DataFrame(rows, columns=TRADE_COLUMNS)
    for col in ("direction", "bars_held", "signal_bar", "entry_bar", "exit_bar"):
        frame[col] = frame[col].astype(int)
    for col, bar in (("signal_time", "signal_bar"), ("entry_time", "entry_bar"),
                     ("exit_time", "exit_bar")):
        frame[col] = index.take(frame[bar].to_numpy())
    return frame


def _orders_frame(log: dict[int, dict], index: pd.DatetimeIndex) -> pd.DataFrame:
    rows = [dict(log[ref]) for ref in sorted(log)]
    frame = pd.DataFrame(rows, columns=[*ORDER_COLUMNS, "created_bar", "executed_bar"])
    created = frame["created_bar"].to_numpy(dtype=int)
    executed = frame["executed_bar"].to_numpy(dtype=float)
    frame["created_time"] = index.take(created)
    done = np.isfinite(executed)
    times = pd.Series(pd.NaT, index=frame.index, dtype=index.dtype)
    times[done] = index.take(executed[done].astype(int))
    frame["executed_time"] = times
    frame["ref"] = np.arange(1, len(frame) + 1)  # backtrader's refs are process-wide; renumber
    return frame[ORDER_COLUMNS]
