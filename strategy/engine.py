"""The trading engine: candles and class probabilities → trades, orders and equity; resumable.

``simulate`` runs ``FractalStrategy`` on ``BidAskBroker`` (backtrader) and returns typed results and
no statistics (those live in ``backtests``). It is the one engine for backtests and paper trading.

- Bars are numbered from the first bar of the first run; a resumed run continues the numbering and
  the order refs, so results of consecutive runs concatenate (``merge``).
- ``finalize=True``: a trade still open after the last bar is closed at the last close (bid for a
  long, ask for a short, plus slippage and commission) with ``exit_reason="end"``, and the last
  equity point includes that closing cost, so ``final equity == cash + trades.pnl_net.sum()``.
- ``finalize=False``: nothing is closed. The open position is ``open_trade`` (entry only), the
  orders still alive are ``pending``, and equity is marked to market at each close (bid).
- Every run ends with an ``EngineState``: the last close at which the account was flat with no
  order alive or unsettled. Such a bar carries nothing into the next one except cash, so a run
  resumed from it (``state=``) gives exactly the bars after it of one uninterrupted run. Pass
  candles that contain ``state.flat_time`` (the whole history or any part of it that includes that
  bar): the engine starts at the bar after it and never replays what came before.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any, get_args, get_type_hints

import backtrader as bt
import numpy as np
import pandas as pd

from strategy.broker import BidAskBroker
from strategy.fractal import PROB_COLUMNS, Costs, FractalParams, FractalStrategy, ProbsData
from strategy.rules import atr_array, hour_mask, needs_atr, parse_hours

OHLCV = ["open", "high", "low", "close", "volume"]


# --- records ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class TradeRecord:
    """One trade; exit fields are None/NaN while it is open. Money in account currency.

    ``pnl_gross`` is before costs, ``pnl_net`` after (spread, slippage and commission); ``costs``
    = commission + spread_cost + slippage_cost. Bars are positions counted from the first run.
    """

    signal_time: pd.Timestamp
    entry_time: pd.Timestamp
    exit_time: pd.Timestamp | None
    direction: int
    size: float
    entry_price: float
    exit_price: float
    pnl_gross: float
    costs: float
    pnl_net: float
    return_pct: float
    bars_held: int | None
    exit_reason: str | None
    signal_bar: int
    entry_bar: int
    exit_bar: int | None
    commission: float
    spread_cost: float
    slippage_cost: float

    @property
    def is_open(self) -> bool:
        return self.exit_time is None


@dataclass(frozen=True)
class OrderRecord:
    """One order as the strategy logged it; ``executed_*`` are None and ``price`` NaN until filled.

    ``ref`` counts orders from 1 over consecutive runs (backtrader's own refs are process-wide).
    """

    created_time: pd.Timestamp
    executed_time: pd.Timestamp | None
    type: str
    price: float
    side: str
    role: str
    size: float
    order_price: float
    status: str
    reason: str | None
    ref: int
    created_bar: int
    executed_bar: int | None


TRADE_COLUMNS = [f.name for f in fields(TradeRecord)]
ORDER_COLUMNS = [f.name for f in fields(OrderRecord)]


@functools.cache
def _kinds(record_type: type) -> dict[str, type]:
    """Field name → base type (int, float, str, pd.Timestamp) and whether it may be None."""
    out = {}
    for name, hint in get_type_hints(record_type).items():
        args = [a for a in get_args(hint) if a is not type(None)] if isinstance(
            hint, types.UnionType) else [hint]
        out[name] = args[0]
    return out


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (
        isinstance(value, float) and value != value)


def to_frame(records: Iterable[TradeRecord] | Iterable[OrderRecord],
             record_type: type | None = None, time_dtype: Any = "datetime64[ns, UTC]",
             ) -> pd.DataFrame:
    """Records → a frame with one column per field (``TRADE_COLUMNS`` or ``ORDER_COLUMNS``).

    Integer fields that may be None become pandas' nullable ``Int64`` where a value is missing
    (``executed_bar`` always), times ``time_dtype``. ``record_type`` is needed only when empty.
    Built column by column (a paper step calls this twice per bar: no row-wise frame).
    """
    records = list(records)
    kind = record_type or (type(records[0]) if records else None)
    if kind not in (TradeRecord, OrderRecord):
        raise ValueError("to_frame needs TradeRecord or OrderRecord items (or record_type=)")
    data: dict[str, Any] = {}
    for name, base in _kinds(kind).items():
        values = [getattr(r, name) for r in records]
        if base is pd.Timestamp:
            data[name] = pd.array([pd.NaT if v is None else v for v in values], dtype=time_dtype)
        elif base is int:
            missing = [_missing(v) for v in values]
            if any(missing) or name == "executed_bar":
                data[name] = pd.array([pd.NA if m else int(v) for v, m in
                                       zip(values, missing, strict=True)], dtype="Int64")
            else:
                data[name] = np.array(values, dtype="int64")
        elif base is float:
            data[name] = np.array([np.nan if v is None else v for v in values], dtype=float)
        else:
            data[name] = pd.Series(values, dtype=object if not values else None)
    return pd.DataFrame(data)


def from_frame(frame: pd.DataFrame, record_type: type | None = None,
               ) -> list[TradeRecord] | list[OrderRecord]:
    """A trades or orders frame → records (the type is told by the columns unless given)."""
    kind = record_type or (TradeRecord if "entry_time" in frame.columns else OrderRecord)
    kinds = _kinds(kind)
    missing = [c for c in kinds if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks columns {missing} of {kind.__name__}")
    out = []
    for row in frame[list(kinds)].itertuples(index=False):
        values = {}
        for (name, base), v in zip(kinds.items(), row, strict=True):
            if base is float:
                values[name] = float(v)
            elif v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and np.isnan(v)):
                values[name] = None
            elif base is int:
                values[name] = int(v)
            elif base is str:
                values[name] = str(v)
            else:
                values[name] = pd.Timestamp(v)
        out.append(kind(**values))
    return out


# --- state and result ------------------------------------------------------------------------
@dataclass(frozen=True)
class EngineState:
    """Where a run can be resumed: the last close at which the account held nothing but cash.

    ``flat_time``/``flat_bar``: that bar (None/-1: never flat, resume from ``start_time``);
    ``cash``: the broker's value at that close, bit-exact; ``n_trades``/``n_orders``: trades closed
    and orders created up to then; ``params``/``costs``: what the run used (a resume must match).
    """

    flat_time: pd.Timestamp | None
    flat_bar: int
    cash: float
    n_trades: int
    n_orders: int
    start_time: pd.Timestamp
    initial_cash: float
    params: dict
    costs: dict
    version: int = 1

    def to_dict(self) -> dict:
        """JSON-ready: timestamps as ISO strings, cash as a float (JSON keeps it bit-exact)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["flat_time"] = None if self.flat_time is None else self.flat_time.isoformat()
        d["start_time"] = self.start_time.isoformat()
        d["params"], d["costs"] = dict(self.params), dict(self.costs)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> EngineState:
        """Inverse of ``to_dict``; unknown keys are refused."""
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown EngineState fields {sorted(unknown)}")
        d = dict(d)
        d["flat_time"] = None if d["flat_time"] is None else _timestamp(d["flat_time"])
        d["start_time"] = _timestamp(d["start_time"])
        d["cash"], d["initial_cash"] = float(d["cash"]), float(d["initial_cash"])
        return cls(**d)


def _timestamp(text: str) -> pd.Timestamp:
    t = pd.Timestamp(text)
    return t.tz_convert("UTC") if t.tz is not None else t


@dataclass(frozen=True)
class EngineResult:
    """What ``simulate`` produced; see the module docstring for conventions.

    The trades and orders are kept as typed records; ``trades`` and ``orders`` are their frames,
    built on first use (a paper step reads the records and never needs the frames)."""

    trade_records: tuple[TradeRecord, ...]   # closed trades
    order_records: tuple[OrderRecord, ...]   # every order created
    equity: pd.Series                    # one value per simulated bar
    state: EngineState                   # where to resume from
    open_trade: TradeRecord | None = None    # finalize=False only
    pending: tuple[OrderRecord, ...] = ()    # finalize=False only: orders still alive
    resumed_from: EngineState | None = None
    meta: dict = field(default_factory=dict)
    time_dtype: Any = "datetime64[ns, UTC]"  # of the frames' time columns (the candles' index)

    @functools.cached_property
    def trades(self) -> pd.DataFrame:
        """Closed trades, ``TRADE_COLUMNS``."""
        return to_frame(self.trade_records, TradeRecord, self.time_dtype)

    @functools.cached_property
    def orders(self) -> pd.DataFrame:
        """Every order created, ``ORDER_COLUMNS``."""
        return to_frame(self.order_records, OrderRecord, self.time_dtype)


# --- the engine ------------------------------------------------------------------------------
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


class ConvertingCommInfo(bt.CommInfoBase):
    """Futures-like accounting whose price moves (in the quote currency) are converted to the
    account currency at the rate of the bar they are booked on (``rates``, one per bar)."""

    def __init__(self, rates: np.ndarray | None = None) -> None:
        super().__init__()
        self.rates = rates
        self.feed = None

    def _rate(self) -> float:
        if self.rates is None:
            return 1.0
        return float(self.rates[len(self.feed) - 1])

    def profitandloss(self, size, price, newprice):
        return super().profitandloss(size, price, newprice) * self._rate()

    def cashadjust(self, size, price, newprice):
        return super().cashadjust(size, price, newprice) * self._rate()


def rule_arrays(candles: pd.DataFrame, params: FractalParams,
                ) -> tuple[np.ndarray | None, np.ndarray]:
    """Per-bar inputs of the rules over all of ``candles``: the ATR (None when no rule reads it)
    and whether the bar's hour allows an entry. Each value uses bars up to its own only, so a
    resumed run that is given the history before its resume point sees the same numbers."""
    atr = atr_array(candles, params.atr_period) if needs_atr(params) else None
    return atr, hour_mask(candles.index, parse_hours(params.hours))


def simulate(candles: pd.DataFrame, probs: pd.DataFrame | None,
             params: FractalParams = FractalParams(), costs: Costs = Costs(),
             cash: float = 100_000.0, predictor: Callable[[int], np.ndarray] | None = None, *,
             finalize: bool = True, state: EngineState | None = None,
             rates: np.ndarray | None = None) -> EngineResult:
    """Trade ``candles`` (bid prices) on ``probs`` or ``predictor``; optionally resume ``state``.

    ``predictor(t)`` is called at the close of the bar at position ``t`` of ``candles`` (as passed),
    and ``probs`` may then be None. With ``state``, ``candles`` must contain ``state.flat_time``
    (or ``state.start_time`` when it is None); the run starts at the bar after it with
    ``state.cash`` (``cash`` is ignored), and ``params``/``costs`` must be those of the state.

    ``rates`` (one per bar of ``candles``): account currency per unit of the quote currency at
    each bar's close; every price move is booked at the rate of its bar (None: the quote currency
    is the account currency). Money amounts (cash, equity, P&L, costs) are then in the account
    currency; commission is given in it.

    ATR rules read the ATR of ``candles`` as passed: give a resumed run the bars before its
    resume point too (at least ``params.atr_period``) for the ATR of an uninterrupted run.
    """
    aligned = align_probs(candles, probs if predictor is None else None)
    start = _resume_position(candles, params, costs, state)
    bars = candles.iloc[start:]
    if state is None and len(bars) < 2:
        raise ValueError("need at least 2 candles to backtest")
    if len(bars) == 0:
        raise ValueError(f"no candles after the resume point {state.flat_time}")
    base = 0 if state is None else state.flat_bar + 1
    start_cash = float(cash) if state is None else state.cash
    if state is None:
        state = EngineState(flat_time=None, flat_bar=-1, cash=start_cash, n_trades=0, n_orders=0,
                            start_time=bars.index[0], initial_cash=start_cash,
                            params=params.to_dict(), costs=costs.to_dict())
        resumed_from = None
    else:
        resumed_from = state

    spreads = costs.spread_array(bars)
    if rates is not None:
        rates = np.asarray(rates, dtype=float)
        if rates.shape != (len(candles),) or not (np.isfinite(rates) & (rates > 0)).all():
            raise ValueError("rates must hold one positive finite number per candle")
        rates = rates[start:]
    frame = bars[OHLCV].astype(float).copy()
    frame[list(PROB_COLUMNS)] = aligned.to_numpy()[start:]
    frame.index = frame.index.tz_convert(None) if frame.index.tz is not None else frame.index
    step = predictor
    if predictor is not None and start:
        def step(t: int) -> np.ndarray:
            return predictor(start + t)

    cerebro = bt.Cerebro(stdstats=False, runonce=True, preload=True)
    broker = BidAskBroker()
    broker.configure(spreads, costs.slippage, params.stops_in_entry_bar)
    broker.set_cash(start_cash)
    # Futures-like accounting (cash marked to market each bar, value = equity). The margin per
    # unit is a negligible constant so the broker never refuses an order for margin: leverage is
    # capped by the strategy's sizing (max_leverage), from data up to the signal bar only.
    comminfo = ConvertingCommInfo(rates, stocklike=False, commtype=bt.CommInfoBase.COMM_FIXED,
                                  commission=costs.commission, margin=1e-9, mult=1.0)
    broker.addcommissioninfo(comminfo)
    cerebro.setbroker(broker)
    feed = ProbsData(dataname=frame)
    comminfo.feed = feed
    cerebro.adddata(feed)
    atr, hour_ok = rule_arrays(candles, params)
    cerebro.addstrategy(FractalStrategy, fractal=params, predictor=step, spreads=spreads,
                        rates=rates, atr=None if atr is None else atr[start:],
                        hour_ok=hour_ok[start:])
    strat = cerebro.run()[0]

    index = bars.index
    equity = pd.Series(strat.equity, index=index, name="equity").ffill().fillna(start_cash)
    logs = list(strat.trade_log)
    open_trade, pending = None, ()
    book = Booking(bars, rates)
    if strat.open_trade is not None and finalize:
        end = _end_fill(bars, spreads, costs, strat.open_trade, book)
        logs.append({**strat.open_trade, "exit": end, "exit_reason": "end"})
        equity.iloc[-1] -= end["closing_cost"]
    elif strat.open_trade is not None:
        open_trade = trade_record(strat.open_trade, index, base, book)
    trade_records = tuple(trade_record(t, index, base, book) for t in logs)
    refs = sorted(strat.order_log)
    order_records = [_order_record(strat.order_log[ref], state.n_orders + k + 1, index, base)
                     for k, ref in enumerate(refs)]
    if not finalize:
        pending = tuple(r for ref, r in zip(refs, order_records, strict=True)
                        if strat.orders[ref].alive())
    if strat.flat is not None:
        i, value, n_trades, n_orders = strat.flat
        state = EngineState(flat_time=index[i], flat_bar=base + i, cash=float(value),
                            n_trades=state.n_trades + n_trades,
                            n_orders=state.n_orders + n_orders, start_time=state.start_time,
                            initial_cash=state.initial_cash, params=params.to_dict(),
                            costs=costs.to_dict())
    meta = {"bars": len(bars), "first_bar": base,
            "mode": "predictor" if predictor else "batched", "finalized": finalize}
    return EngineResult(trade_records=trade_records, order_records=tuple(order_records),
                        equity=equity, state=state, open_trade=open_trade, pending=pending,
                        resumed_from=resumed_from, meta=meta, time_dtype=index.dtype)


def merge(previous: EngineResult, resumed: EngineResult) -> EngineResult:
    """One result from a run and the run resumed from its state, as if run without a break.

    Keeps ``previous``'s trades closed, orders created and equity up to ``previous.state.flat_time``
    and appends ``resumed``'s; raises ValueError when ``resumed`` did not start from that state.
    """
    s = previous.state
    if resumed.resumed_from != s:
        raise ValueError("resumed was not run with state=previous.state")
    if s.flat_time is None:
        trades, orders, equity = (), (), previous.equity.iloc[:0]
    else:
        trades = tuple(t for t in previous.trade_records if t.exit_time <= s.flat_time)
        orders = tuple(o for o in previous.order_records if o.created_time <= s.flat_time)
        equity = previous.equity[previous.equity.index <= s.flat_time]
    if len(trades) != s.n_trades or len(orders) != s.n_orders:
        raise ValueError("previous does not hold the trades and orders its state counts")
    meta = {**resumed.meta, "bars": len(equity) + resumed.meta.get("bars", len(resumed.equity)),
            "first_bar": previous.meta.get("first_bar", 0)}
    return EngineResult(trade_records=trades + resumed.trade_records,
                        order_records=orders + resumed.order_records,
                        equity=_concat(equity, resumed.equity), state=resumed.state,
                        open_trade=resumed.open_trade, pending=resumed.pending,
                        resumed_from=previous.resumed_from, meta=meta,
                        time_dtype=resumed.time_dtype)


def _concat(a: pd.Series, b: pd.Series) -> pd.Series:
    parts = [p for p in (a, b) if len(p)] or [b]
    return pd.concat(parts) if len(parts) > 1 else parts[0].copy()


def _resume_position(candles: pd.DataFrame, params: FractalParams, costs: Costs,
                     state: EngineState | None) -> int:
    """Position in ``candles`` of the first bar to simulate."""
    if state is None:
        return 0
    # states saved before a rule field existed hold its default
    saved = {**FractalParams().to_dict(), **state.params}
    if saved != params.to_dict() or state.costs != costs.to_dict():
        raise ValueError("state was saved with other params or costs; resume with the same ones")
    anchor = state.flat_time if state.flat_time is not None else state.start_time
    if anchor not in candles.index:
        raise ValueError(f"candles must contain the bar at {anchor} (the state's resume point); "
                         f"they run from {candles.index[0]} to {candles.index[-1]}")
    pos = candles.index.get_loc(anchor)
    return pos + 1 if state.flat_time is not None else pos


class Booking:
    """Price moves → account currency, booked bar by bar as the broker books them."""

    def __init__(self, bars: pd.DataFrame, rates: np.ndarray | None) -> None:
        self.close = bars["close"].to_numpy(dtype=float)
        self.rates = rates
        if rates is not None:
            self.moves = np.diff(self.close, prepend=self.close[0]) * rates
            self.marked = np.cumsum(self.moves)  # Σ_{s ≤ t} (close_s − close_{s−1}) · rate_s

    def rate(self, bar: int) -> float:
        return 1.0 if self.rates is None else float(self.rates[bar])

    def move(self, e, p_entry, x, p_exit):
        """Account-currency value of a price move from ``p_entry`` in bar ``e`` to ``p_exit``
        in bar ``x`` (per unit, long; numbers or arrays): marked to each close at that bar's
        rate, as the broker books it. For one trade the sum runs over the trade's own bars, so
        the result does not depend on where the simulated segment starts (a resumed run gives
        the same numbers to the last bit)."""
        if self.rates is None:
            return np.asarray(p_exit) - np.asarray(p_entry)
        if np.ndim(e) == 0 and np.ndim(x) == 0:
            e, x = int(e), int(x)
            if x == e:
                return (p_exit - p_entry) * self.rates[e]
            inside = float(np.sum(self.moves[e + 1:x]))
            return ((self.close[e] - p_entry) * self.rates[e] + inside
                    + (p_exit - self.close[x - 1]) * self.rates[x])
        e, x = np.asarray(e), np.asarray(x)
        before = np.maximum(x - 1, 0)
        spread_over = ((self.close[e] - p_entry) * self.rates[e]
                       + self.marked[before] - self.marked[e]
                       + (p_exit - self.close[before]) * self.rates[x])
        return np.where(x == e, (np.asarray(p_exit) - p_entry) * self.rates[e], spread_over)


def _end_fill(bars: pd.DataFrame, spreads: np.ndarray, costs: Costs, open_trade: dict,
              book: Booking) -> dict:
    """Close an open trade at the last close (what the mark-to-market equity does not include)."""
    last = len(bars) - 1
    direction = open_trade["direction"]
    size = open_trade["entry"]["size"]
    close = float(bars["close"].iloc[-1])
    spread = float(spreads[last]) if direction < 0 else 0.0
    price = close + spread - direction * costs.slippage
    comm = costs.commission * size
    closing_cost = (spread + costs.slippage) * size * book.rate(last) + comm
    return {"bar": last, "price": price, "size": size, "spread": spread,
            "slip": costs.slippage, "comm": comm, "closing_cost": closing_cost}


def trade_record(t: dict, index: pd.DatetimeIndex, base: int, book: Booking) -> TradeRecord:
    """A strategy trade log (bars local to this run) → a record (bars counted from the first run);
    money in the account currency."""
    entry, exit_ = t["entry"], t.get("exit")
    d, size = t["direction"], entry["size"]
    r_in = book.rate(entry["bar"])
    if exit_ is None:
        commission = entry["comm"]
        spread_cost, slippage_cost = entry["spread"] * size * r_in, entry["slip"] * size * r_in
        nan = float("nan")
        return TradeRecord(
            signal_time=index[t["signal_bar"]], entry_time=index[entry["bar"]], exit_time=None,
            direction=d, size=size, entry_price=entry["price"], exit_price=nan, pnl_gross=nan,
            costs=commission + spread_cost + slippage_cost, pnl_net=nan, return_pct=nan,
            bars_held=None, exit_reason=None, signal_bar=base + t["signal_bar"],
            entry_bar=base + entry["bar"], exit_bar=None, commission=commission,
            spread_cost=spread_cost, slippage_cost=slippage_cost)
    r_out = book.rate(exit_["bar"])
    net_move = float(book.move(entry["bar"], entry["price"], exit_["bar"], exit_["price"])) * d * size
    commission = entry["comm"] + exit_["comm"]
    spread_cost = (entry["spread"] * r_in + exit_["spread"] * r_out) * size
    slippage_cost = (entry["slip"] * r_in + exit_["slip"] * r_out) * size
    costs = commission + spread_cost + slippage_cost
    pnl_net = net_move - commission
    return TradeRecord(
        signal_time=index[t["signal_bar"]], entry_time=index[entry["bar"]],
        exit_time=index[exit_["bar"]], direction=d, size=size, entry_price=entry["price"],
        exit_price=exit_["price"], pnl_gross=pnl_net + costs, costs=costs, pnl_net=pnl_net,
        return_pct=100.0 * pnl_net / (entry["price"] * size * r_in),
        bars_held=exit_["bar"] - entry["bar"], exit_reason=t["exit_reason"],
        signal_bar=base + t["signal_bar"], entry_bar=base + entry["bar"],
        exit_bar=base + exit_["bar"], commission=commission, spread_cost=spread_cost,
        slippage_cost=slippage_cost)


def _order_record(row: dict, ref: int, index: pd.DatetimeIndex, base: int) -> OrderRecord:
    done = row["executed_bar"] is not None
    return OrderRecord(
        created_time=index[row["created_bar"]],
        executed_time=index[row["executed_bar"]] if done else None, type=row["type"],
        price=float(row["price"]), side=row["side"], role=row["role"], size=float(row["size"]),
        order_price=float(row["order_price"]), status=row["status"], reason=row["reason"],
        ref=ref, created_bar=base + row["created_bar"],
        executed_bar=base + row["executed_bar"] if done else None)


def records_of(result: EngineResult) -> tuple[list[TradeRecord], list[OrderRecord]]:
    """The trades and orders of ``result`` as typed records."""
    return from_frame(result.trades, TradeRecord), from_frame(result.orders, OrderRecord)


__all__ = ["ORDER_COLUMNS", "TRADE_COLUMNS", "Booking", "EngineResult", "EngineState", "OrderRecord", "trade_record",
           "TradeRecord", "align_probs", "from_frame", "merge", "records_of", "rule_arrays", "simulate",
           "to_frame"]
