"""Trade predicted fractals: class probabilities → entries, stops, targets and time exits.

At the close of bar t the strategy reads ``[p_none, p_buy, p_sell]`` for bar t, either as extra lines
of the data feed (batched mode, ``ProbsData``) or by calling ``predictor(t)`` (one window at a time).
A buy signal is ``p_buy >= threshold`` with ``p_buy`` the arg-max (numpy's arg-max: ties go to
none, then buy); sell likewise. NaN probabilities give no signal.

Orders (one position at a time, never pyramided; a signal in the held direction is ignored):
- flat + signal → market bracket: entry at the open of t+1, stop by ``stop`` (default ``bar``:
  ``low[t] - stop_buffer`` for a long, ``high[t] + stop_buffer`` for a short; ``atr:K`` / ``pips:N``:
  that distance from the expected fill), take-profit at ``take_profit_r`` × |fill − stop| from the
  fill (none when 0) or, when ``take_profit_atr`` > 0, at that many ATRs of the signal bar from the
  fill instead. ``barriers = atr:K_UP:K_DN`` replaces both by a triple-barrier label's barriers:
  an upper one K_UP ATRs of the signal bar above the entry bar's (bid) open and a lower one K_DN
  ATRs below it, priced once the entry has filled; a long's target is the upper barrier and its
  stop the lower one, a short's the reverse (``auto``: the model's labels decide, see
  ``strategy.rules.label_exits``: a ``horizon:H`` model gets a time exit after H bars, no target
  and a protective ATR stop far out; at the strategy level it is ``none``). Stop and target are
  active from the fill onward (``stops_in_entry_bar``), so a wrong fractal can be stopped in the
  entry bar; when both are touched in one bar the stop wins.
- entry filters (``strategy.rules``): the signal bar's UTC hour in ``hours``, a probability margin
  over the runner-up class of at least ``min_margin``, a stop distance of at least
  ``min_stop_spreads`` × that bar's spread; an ATR rule in its warm-up skips the entry.
- sizing: ``fixed`` units, ``risk`` (lose ``risk_fraction`` of equity at the stop) or ``kelly``
  (risk share ``min(kelly_fraction × f*, risk_fraction)`` with f* = p − (1 − p)/b, p the class
  probability, b the target/stop ratio; no trade when f* ≤ 0); leverage capped at ``max_leverage``.
- held + opposite signal (``exit_on_opposite``) → close at the next open and, when that side is
  allowed and the filters pass, reverse at the same open. With ``allow_short=False`` a sell signal
  only closes a long.
- held for ``max_hold`` bars (counted from the entry bar) → close at the next open.
- trailing stop (``trail``: ``r:K``, ``atr:K``, ``pips:N``): at each close while held, the stop
  moves to ``close − D`` (long; ask close + D for a short) when that is tighter; active from the
  next bar.
Prices are bid prices: see ``strategy.broker`` for how spread and slippage are applied to fills.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

import backtrader as bt
import numpy as np
import pandas as pd

from strategy.rules import parse_barriers, plan_entry, trail_distance

PROB_COLUMNS = ("p_none", "p_buy", "p_sell")


@dataclass(frozen=True)
class FractalParams:
    """How signals become orders (see the module docstring)."""

    threshold: float = 0.5
    allow_short: bool = True
    stop_buffer: float = 0.0          # price units beyond the signal bar's extreme
    take_profit_r: float = 2.0        # target at k × risk from the fill; 0 disables
    exit_on_opposite: bool = True
    max_hold: int = 24                # bars; 0 disables
    sizing: Literal["fixed", "risk", "kelly"] = "fixed"
    units: float = 10_000.0           # size for "fixed"
    risk_fraction: float = 0.01       # share of equity lost at the stop ("risk"; cap for "kelly")
    max_leverage: float = 30.0        # notional / equity cap for "risk" and "kelly" sizing
    stops_in_entry_bar: bool = True   # False: stop/target active only from the bar after entry
    stop: str = "bar"                 # bar | atr:K | pips:N (strategy.rules)
    take_profit_atr: float = 0.0      # > 0: target K × ATR from the fill, instead of take_profit_r
    trail: str = "none"               # none | r:K | atr:K | pips:N trailing stop
    atr_period: int = 14              # bars of the ATR every ATR rule reads
    pip: float = 0.0001               # price units of a pip (pips:N rules)
    min_stop_spreads: float = 0.0     # skip entries whose stop is closer than K × spread
    hours: str = ""                   # A-B: enter only at signal-bar UTC hours A ≤ h < B
    min_margin: float = 0.0           # skip signals less than this above the runner-up class
    kelly_fraction: float = 0.5       # share of full Kelly for "kelly" sizing
    barriers: str = "auto"            # auto | none | atr:K_UP:K_DN (strategy.rules.parse_barriers)
    # meta-labelling (walk-forward's second arm, backtests/meta.py); the engine ignores these
    meta: bool = False                # also trade primary + meta model
    meta_threshold: float | None = None  # keep a signal when P(net win) >= this (None: choose
    #                                      it on the validation part)
    meta_folds: int = 3               # nested folds of the training part
    meta_epochs: int | None = None    # epochs of the inner primaries (None: train.epochs)

    def __post_init__(self) -> None:
        from strategy.rules import (
            STOP_KINDS,
            TRAIL_KINDS,
            parse_barriers,
            parse_hours,
            parse_rule,
        )

        if self.sizing not in ("fixed", "risk", "kelly"):
            raise ValueError(f"sizing must be 'fixed', 'risk' or 'kelly', not {self.sizing!r}")
        if self.max_hold < 0 or self.take_profit_r < 0 or self.stop_buffer < 0:
            raise ValueError("max_hold, take_profit_r and stop_buffer must be >= 0")
        if self.units <= 0 or not 0 < self.risk_fraction < 1 or self.max_leverage <= 0:
            raise ValueError("units and max_leverage must be > 0, risk_fraction in (0, 1)")
        parse_rule(self.stop, STOP_KINDS, "stop")
        parse_rule(self.trail, TRAIL_KINDS, "trail")
        parse_hours(self.hours)
        if not (self.take_profit_atr >= 0 and self.min_stop_spreads >= 0
                and 0 <= self.min_margin <= 1):
            raise ValueError("take_profit_atr and min_stop_spreads must be >= 0, min_margin in "
                             "[0, 1]")
        if not (self.atr_period >= 1 and self.pip > 0 and 0 < self.kelly_fraction <= 1):
            raise ValueError("atr_period must be >= 1, pip > 0, kelly_fraction in (0, 1]")
        parse_barriers(self.barriers)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Costs:
    """Trading costs. Prices in the candles are bids; a buy pays the ask = bid + spread.

    ``spread``: price units; None → the candles' ``spread`` column when present, else
    ``default_spread`` (1 pip on EURUSD). ``commission``: money per unit traded, charged on each
    side (entry and exit), e.g. 3.5 USD per 100k EURUSD per side = 0.000035. ``slippage``: price
    units against the trader on market and stop fills (not on take-profit limit fills).
    """

    spread: float | None = None
    default_spread: float = 0.0001
    commission: float = 0.0
    slippage: float = 0.0

    def __post_init__(self) -> None:
        for name in ("default_spread", "commission", "slippage"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.spread is not None and self.spread < 0:
            raise ValueError("spread must be >= 0")

    def spread_array(self, candles: pd.DataFrame) -> np.ndarray:
        """The spread (price units) of every bar."""
        if self.spread is not None:
            return np.full(len(candles), float(self.spread))
        if "spread" in candles.columns:
            return candles["spread"].to_numpy(dtype=float, na_value=self.default_spread)
        return np.full(len(candles), float(self.default_spread))

    def to_dict(self) -> dict:
        return asdict(self)


class ProbsData(bt.feeds.PandasData):
    """Candles plus the model's class probabilities as extra lines (batched mode)."""

    lines = PROB_COLUMNS
    params = (
        ("datetime", None), ("open", "open"), ("high", "high"), ("low", "low"),
        ("close", "close"), ("volume", "volume"), ("openinterest", None),
        ("p_none", "p_none"), ("p_buy", "p_buy"), ("p_sell", "p_sell"),
    )

    def start(self) -> None:
        super().start()
        # Read rows from numpy arrays, not with per-cell ``iloc`` as PandasData does (~10x faster).
        frame = self.p.dataname
        mapped = [(name, col) for name, col in self._colmapping.items()
                  if name != "datetime" and col is not None]
        values = frame.iloc[:, [col for _, col in mapped]].to_numpy(dtype=float)   # one copy
        self._columns = [(getattr(self.lines, name), values[:, k])
                         for k, (name, _) in enumerate(mapped)]
        index = pd.DatetimeIndex(frame.index)
        index = index.tz_convert(None) if index.tz is not None else index
        # backtrader's date2num: days since 0001-01-01 plus one (1970-01-01 is day 719163)
        seconds = index.as_unit("s").asi8.astype(float)
        self._dtnums = 719163.0 + seconds / 86400.0

    def _load(self) -> bool:
        self._idx += 1
        if self._idx >= len(self._dtnums):
            return False
        i = self._idx
        for line, values in self._columns:
            line[0] = values[i]
        self.lines.datetime[0] = self._dtnums[i]
        return True


def signal_from_probs(p: np.ndarray, threshold: float) -> int:
    """+1 buy, -1 sell, 0 nothing, from ``[p_none, p_buy, p_sell]``."""
    if p is None or len(p) != 3 or not np.all(np.isfinite(p)):
        return 0
    top = int(np.argmax(p))
    if top == 1 and p[1] >= threshold:
        return 1
    if top == 2 and p[2] >= threshold:
        return -1
    return 0


def signals_from_frame(probs: pd.DataFrame, threshold: float = 0.5) -> np.ndarray:
    """Vectorised ``signal_from_probs`` over a probs frame (same rule, for baselines and tests)."""
    p = probs[list(PROB_COLUMNS)].to_numpy(dtype=float)
    ok = np.isfinite(p).all(axis=1)
    top = np.argmax(np.where(ok[:, None], p, 0.0), axis=1)
    best = p[np.arange(len(p)), top]
    out = np.zeros(len(p), dtype=np.int8)
    out[ok & (top == 1) & (best >= threshold)] = 1
    out[ok & (top == 2) & (best >= threshold)] = -1
    return out


class FractalStrategy(bt.Strategy):
    """Acts at the close of each bar on that bar's class probabilities (module docstring)."""

    params = (
        ("fractal", None),     # FractalParams
        ("predictor", None),   # Callable[[int], np.ndarray] → one-window-at-a-time mode
        ("spreads", None),     # np.ndarray of per-bar spreads (for risk sizing estimates)
        ("rates", None),       # np.ndarray: account currency per unit of quote currency, per bar
        ("atr", None),         # np.ndarray: ATR per bar (strategy.rules.atr_array), ATR rules only
        ("hour_ok", None),     # np.ndarray of bool: the bar's hour lets an entry through
    )

    def __init__(self) -> None:
        self.fp: FractalParams = self.p.fractal or FractalParams()
        self.predictor: Callable[[int], np.ndarray] | None = self.p.predictor
        if self.predictor is None and not hasattr(self.data.lines, "p_buy"):
            raise ValueError("no probabilities: feed ProbsData or pass predictor=")
        self.n = self.data.buflen()
        self.equity = np.full(self.n, np.nan)
        self.order_log: dict[int, dict] = {}
        self.trade_log: list[dict] = []
        self.open_trade: dict | None = None
        self.children: list[bt.Order] = []
        self.orders: dict[int, bt.Order] = {}      # ref → the live order object
        self.unsettled: set[int] = set()           # refs not yet notified as done
        # (bar, value, trades, orders) at the last close flat with no order alive or unsettled:
        # nothing but cash carries past such a bar, so a run can resume from it (strategy.engine)
        self.flat: tuple[int, float, int, int] | None = None
        self.pending_stop = np.nan                 # the stop of the last entry sent

    # --- decisions ---------------------------------------------------------------------------
    def probabilities(self, i: int) -> np.ndarray:
        if self.predictor is not None:
            return np.asarray(self.predictor(i), dtype=float)
        d = self.data
        return np.array([d.p_none[0], d.p_buy[0], d.p_sell[0]])

    def next(self) -> None:
        i = len(self) - 1
        p = self.probabilities(i)
        sig = signal_from_probs(p, self.fp.threshold)
        held = self.position.size
        if held:
            direction = 1 if held > 0 else -1
            reason = None
            if self.fp.exit_on_opposite and sig == -direction:
                reason = "opposite"
            elif self.fp.max_hold and i - self.open_trade["entry_bar"] + 1 >= self.fp.max_hold:
                reason = "max_hold"
            if reason:
                self.exit_position(i, reason)
                if reason == "opposite" and (sig == 1 or self.fp.allow_short):
                    self.enter(i, sig, p)
            else:
                self.trail(i, direction)
        elif sig == 1 or (sig == -1 and self.fp.allow_short):
            self.enter(i, sig, p)
        value = self.broker.getvalue()
        self.equity[i] = value
        if not self.position.size and not self.unsettled:
            self.flat = (i, value, len(self.trade_log), len(self.order_log))

    def _at(self, values: np.ndarray | None, i: int, default: float) -> float:
        return float(values[i]) if values is not None else default

    def trail(self, i: int, direction: int) -> None:
        """Move the live stop child to ``close − D`` (long) when tighter; active from bar i+1."""
        stop = next((c for c in self.children if c.alive() and c.exectype == bt.Order.Stop), None)
        if stop is None or self.open_trade is None:
            return
        D = trail_distance(self.fp, initial_risk=self.open_trade["risk"],
                           atr=self._at(self.p.atr, i, np.nan))
        if D is None:
            return
        close = self.data.close[0]
        if direction > 0:
            level = close - D
            if level > stop.created.price:
                stop.created.price = level
        else:
            level = close + self._at(self.p.spreads, i, 0.0) + D
            if level < stop.created.price:
                stop.created.price = level

    def enter(self, i: int, direction: int, p: np.ndarray) -> None:
        d = self.data
        plan = plan_entry(self.fp, direction, p, close=d.close[0], high=d.high[0], low=d.low[0],
                          spread=self._at(self.p.spreads, i, 0.0),
                          atr=self._at(self.p.atr, i, np.nan),
                          hour_ok=bool(self.p.hour_ok[i]) if self.p.hour_ok is not None else True,
                          equity=self.broker.getvalue(), rate=self._at(self.p.rates, i, 1.0))
        if plan is None:
            return
        stop = plan.stop
        has_target = plan.target_dist is not None or plan.target_r > 0
        from_open = plan.from_open
        info = {"tp_r": plan.target_r, "tp_dist": plan.target_dist, "stop": stop,
                "from_open": from_open}
        bracket = self.buy_bracket if direction > 0 else self.sell_bracket
        # the take-profit price is a placeholder here: the broker re-prices it from the fill (or,
        # with barriers, from the fill bar's open, as it does the stop)
        stop_info = ({"open_dist": plan.stop_dist}
                     if from_open and plan.stop_dist is not None else {})
        orders = bracket(size=plan.size, exectype=bt.Order.Market, stopprice=stop,
                         stopargs=stop_info,
                         limitprice=stop + direction * 1e-9 if has_target else None,
                         limitexec=bt.Order.Limit if has_target else None,
                         limitargs=info if has_target else {})
        main, *children = [o for o in orders if o is not None]
        self.children = children
        self.log_order(main, i, "entry", None)
        for child in children:
            role = "stop" if child.exectype == bt.Order.Stop else "target"
            self.log_order(child, i, role, role)
        self.pending_stop = stop

    def exit_position(self, i: int, reason: str) -> None:
        for child in self.children:
            if child.alive():
                self.cancel(child)
        self.children = []
        order = self.close()
        if order is not None:
            self.log_order(order, i, "exit", reason)

    # --- bookkeeping -------------------------------------------------------------------------
    def log_order(self, order: bt.Order, i: int, role: str, reason: str | None) -> None:
        self.order_log[order.ref] = {
            "ref": order.ref, "created_bar": i, "executed_bar": None,
            "type": order.getordername(), "side": "buy" if order.isbuy() else "sell",
            "role": role, "reason": reason, "size": abs(order.size),
            "order_price": np.nan if order.exectype == bt.Order.Market else order.created.price,
            "price": np.nan, "status": order.getstatusname(),
        }
        self.orders[order.ref] = order
        self.unsettled.add(order.ref)

    def notify_order(self, order: bt.Order) -> None:
        row = self.order_log.get(order.ref)
        if row is None:
            return
        row["status"] = order.getstatusname()
        if not order.alive():
            self.unsettled.discard(order.ref)
        if order.exectype != bt.Order.Market:
            row["order_price"] = order.created.price
        if order.status != bt.Order.Completed:
            return
        bar, spread, slip = self.broker.fills[order.ref]
        row["executed_bar"], row["price"] = bar, order.executed.price
        fill = {"bar": bar, "price": order.executed.price, "size": abs(order.executed.size),
                "spread": spread, "slip": slip, "comm": order.executed.comm}
        if row["role"] == "entry":
            stop = self.pending_stop
            if parse_barriers(self.fp.barriers):   # the broker priced it from the open
                stop = next((c.created.price for c in self.children
                             if c.exectype == bt.Order.Stop), stop)
            self.open_trade = {"signal_bar": row["created_bar"], "entry_bar": bar,
                               "direction": 1 if order.isbuy() else -1, "entry": fill,
                               "risk": abs(order.executed.price - stop)}
        elif self.open_trade is not None:
            self.trade_log.append({**self.open_trade, "exit": fill, "exit_reason": row["reason"]})
            self.open_trade = None
            if row["role"] in ("stop", "target"):
                self.children = []
