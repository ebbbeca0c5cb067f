"""A backtrader broker for bid-price candles: buys fill at the ask, sells at the bid.

Candles hold bid prices (MetaTrader convention). For every order this broker looks at the bar it
is tried on and uses the bid OHLC for sell orders and the ask OHLC (bid + that bar's spread) for buy
orders, both to decide whether a stop or limit is touched and to price the fill:

- market: the open of the first bar after the one it was created on (bid for a sell, ask for a buy);
- stop: the open when the open is already through the stop (a gap), else the stop price;
- limit: the open when the open is already better than the limit, else the limit price.

Slippage (price units) is added against the trader on market and stop fills, never on limit fills,
and never capped to the bar's range. Bracket children (stop, then take-profit) stay in the order they
were submitted, so when both are touched in one bar the stop fills first (the conservative reading).
Two things differ from backtrader's own broker, on purpose: the take-profit child of a bracket is
re-priced from the parent's actual fill (``k`` × risk, risk = |fill − stop|, or a fixed distance
``tp_dist`` for ATR targets; with the strategy's triple barriers both the stop and the target are
measured from the fill bar's bid open instead), and, when
``stops_in_entry_bar`` is set, the children are active from the parent's fill onward, i.e. already in
the rest of the entry bar (backtrader activates them only on the next bar).
"""

from __future__ import annotations

import backtrader as bt
import numpy as np


class BidAskBroker(bt.brokers.BackBroker):
    """BackBroker with per-bar bid/ask spread, fixed slippage and fill-relative take-profits."""

    def __init__(self) -> None:
        super().__init__()
        self.spreads: np.ndarray = np.zeros(0)
        self.slippage: float = 0.0
        self.stops_in_entry_bar: bool = True
        # order ref -> (bar index, spread paid, slippage paid) per fill, for cost accounting
        self.fills: dict[int, tuple[int, float, float]] = {}

    def configure(self, spreads: np.ndarray, slippage: float, stops_in_entry_bar: bool) -> None:
        """Set the per-bar spread (price units), slippage and when bracket children activate."""
        self.spreads = np.asarray(spreads, dtype=float)
        self.slippage = float(slippage)
        self.stops_in_entry_bar = bool(stops_in_entry_bar)

    def _try_exec(self, order: bt.Order) -> None:
        data = order.data
        i = len(data) - 1
        buy = order.isbuy()
        spread = float(self.spreads[i]) if buy else 0.0
        popen, phigh, plow = data.open[0] + spread, data.high[0] + spread, data.low[0] + spread
        slip = self.slippage if buy else -self.slippage
        trigger = order.created.price
        kind = order.exectype
        if kind == bt.Order.Market:
            if data.datetime[0] <= order.created.dt:
                return  # never on the bar it was created on
            price, slipped = popen + slip, True
        elif kind == bt.Order.Stop:
            if (popen >= trigger) if buy else (popen <= trigger):
                price, slipped = popen + slip, True
            elif (phigh >= trigger) if buy else (plow <= trigger):
                price, slipped = trigger + slip, True
            else:
                return
        elif kind == bt.Order.Limit:
            if (popen <= trigger) if buy else (popen >= trigger):
                price, slipped = popen, False
            elif (plow <= trigger) if buy else (phigh >= trigger):
                price, slipped = trigger, False
            else:
                return
        else:
            raise NotImplementedError(f"order type {order.getordername()} is not supported")
        self.fills[order.ref] = (i, spread, self.slippage if slipped else 0.0)
        self._execute(order, ago=0, price=price)
        if order.status != bt.Order.Completed:
            self.fills.pop(order.ref, None)

    def _bracketize(self, order: bt.Order, cancel: bool = False) -> None:
        pref = getattr(order.parent, "ref", order.ref)
        is_parent_fill = (not cancel and order.ref == pref
                          and order.status == bt.Order.Completed)
        children = list(self._pchildren[pref])[1:] if is_parent_fill else []
        direction = 1.0 if order.isbuy() else -1.0
        bar_open = order.data.open[0]          # the fill bar's bid open
        stop = None
        for child in children:                 # the stop first: an R target reads it
            if child.exectype == bt.Order.Stop:
                if child.info.get("open_dist") is not None:
                    child.created.price = bar_open - direction * child.info["open_dist"]
                stop = child.created.price
        for child in children:
            k, dist = child.info.get("tp_r"), child.info.get("tp_dist")
            if k or dist is not None:
                base = bar_open if child.info.get("from_open") else order.executed.price
                if dist is None:
                    level = stop if child.info.get("from_open") else child.info["stop"]
                    dist = k * abs(base - level)
                child.created.price = base + direction * dist
        super()._bracketize(order, cancel=cancel)
        if children and self.stops_in_entry_bar:
            for child in children:
                if child in self._toactivate:
                    self._toactivate.remove(child)
                child.activate()
