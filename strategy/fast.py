"""The compiled simulator: the fractal strategy's rules in numba, trade for trade as backtrader.

``simulate_fast`` takes what ``strategy.engine.simulate`` takes (candles as bid prices, class
probabilities, ``FractalParams``, ``Costs``, cash, per-bar account-currency ``rates``) and returns
the same trades frame and equity curve, about three orders of magnitude faster. backtrader stays
the engine of record: the model a backtest report is about, walk-forward's test backtests and
paper trading run on it. This one serves sweeps (whose winners are re-run on backtrader),
threshold choice, meta-labelling, and a report's reference strategies (the rule baselines, the
other ``vs`` models and the oracle, through ``backtests.simulation.run_reference``), for speed:
those enter on many bars and backtrader's order handling dominated a report's time. Equality
with backtrader is a property test over random candles, signals, costs and every rule
(tests/strategy/test_fast.py). The kernel does backtrader's arithmetic in backtrader's order
(the broker's margin flows, ``_close``, ``_held_value``; the executed price of an order,
``_executed``), so its trades and equity are backtrader's to the last bit, not only within the
tolerance of that test (tests/backtests/test_reference_engine.py asserts it for a report's
references). ``unsupported`` names a setting this kernel does not read (none today), on which a
caller that may choose runs backtrader instead.

The kernel follows the bar-by-bar order of backtrader's loop: at bar t the broker fills the orders
sent at the close of t − 1 (an exit first, then an entry, both at the open), then tries the held
position's stop and target (stop first; bid prices for sells, ask = bid + spread for buys), marks
the position to the close at that bar's rate, and then the strategy decides at the close (exits,
trailing stop, entries with their filters and sizing; see ``strategy.fractal``).

Compiled code is cached under the project's cache directory (``$ATTNBT_CACHE/numba``, by default
``~/.cache/attnbt/numba``), never inside the installed package.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd


def _numba_cache_dir() -> str:
    from data.yahoo import cache_root

    return str(cache_root() / "numba")


os.environ.setdefault("NUMBA_CACHE_DIR", _numba_cache_dir())

import numba  # noqa: E402  (the cache directory must be set first)
from numba import njit  # noqa: E402

from strategy.fractal import PROB_COLUMNS, Costs, FractalParams  # noqa: E402
from strategy.rules import (  # noqa: E402
    SIZING_CODE,
    STOP_CODE,
    STOP_KINDS,
    TRAIL_CODE,
    TRAIL_KINDS,
    atr_array,
    hour_mask,
    needs_atr,
    parse_barriers,
    parse_hours,
    parse_rule,
)

if numba.config.CACHE_DIR != os.environ["NUMBA_CACHE_DIR"]:
    numba.config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]

# The settings the kernel reads (``run_prepared``), and those the engine ignores as well; a
# setting outside both, not at its default, is one the kernel would not honour (``unsupported``).
PARAMS_READ = frozenset({
    "threshold", "allow_short", "stop_buffer", "take_profit_r", "exit_on_opposite", "max_hold",
    "sizing", "units", "risk_fraction", "max_leverage", "stops_in_entry_bar", "stop",
    "take_profit_atr", "trail", "atr_period", "pip", "min_stop_spreads", "hours", "min_margin",
    "kelly_fraction", "barriers"})
PARAMS_IGNORED = frozenset({"meta", "meta_threshold", "meta_folds", "meta_epochs"})
COSTS_READ = frozenset({"spread", "default_spread", "commission", "slippage"})

# backtrader's margin per unit (strategy.engine.simulate's commission info): the broker takes it
# from cash on entry and gives it back on exit; the kernel books the same amounts in the same
# order, so that its equity is backtrader's to the last bit.
BROKER_MARGIN = 1e-9

REASONS = ("stop", "target", "opposite", "max_hold", "end")
R_STOP, R_TARGET, R_OPPOSITE, R_MAX_HOLD, R_END = range(5)
# per-trade integer columns and float columns of the kernel's output
I_SIGNAL, I_ENTRY, I_EXIT, I_DIR, I_REASON = range(5)
F_SIZE, F_PIN, F_POUT, F_SP_IN, F_SL_IN, F_CM_IN, F_SP_OUT, F_SL_OUT, F_CM_OUT = range(9)


@njit(cache=True)
def _plan(d, p_dir, margin, close, high, low, spread, atr, hour_ok, equity, rate,
          stop_code, stop_k, stop_buffer, tp_r, tp_atr, min_stop_spreads, min_margin,
          sizing, units, risk_fraction, max_leverage, kelly_fraction, pip):
    """strategy.rules.plan_entry: (size, stop, target_r, target_dist (NaN: none)); size 0 = skip."""
    if not hour_ok:
        return 0.0, 0.0, 0.0, np.nan
    if min_margin > 0 and margin < min_margin:
        return 0.0, 0.0, 0.0, np.nan
    uses_atr = stop_code == 1 or tp_atr > 0
    if uses_atr and not np.isfinite(atr):
        return 0.0, 0.0, 0.0, np.nan
    ref = close + spread if d > 0 else close
    if stop_code == 0:
        stop = low - stop_buffer if d > 0 else high + stop_buffer
    else:
        dist0 = stop_k * atr if stop_code == 1 else stop_k * pip
        stop = ref - d * dist0
    dist = abs(ref - stop)
    if min_stop_spreads > 0 and dist < min_stop_spreads * spread:
        return 0.0, 0.0, 0.0, np.nan
    target_dist = tp_atr * atr if tp_atr > 0 else np.nan
    target_r = 0.0 if tp_atr > 0 else tp_r
    if sizing == 0:
        size = units
    else:
        share = risk_fraction
        if sizing == 2:
            if tp_atr > 0:
                b = target_dist / dist if dist > 0 else 0.0
            else:
                b = target_r if target_r > 0 else 1.0
            if b <= 0:
                return 0.0, 0.0, 0.0, np.nan
            kelly = p_dir - (1.0 - p_dir) / b
            if kelly <= 0:
                return 0.0, 0.0, 0.0, np.nan
            share = min(kelly_fraction * kelly, risk_fraction)
        risk = dist * rate
        cap = 0.95 * max_leverage * equity / (close * rate)
        size = cap if risk <= 0 else min(share * equity / risk, cap)
        size = np.floor(size * (1 + 1e-12))
    if not size > 0:
        return 0.0, 0.0, 0.0, np.nan
    return size, stop, target_r, target_dist


@njit(cache=True)
def _close(cash, signed_size, price, mark, rate, comm):
    """backtrader's broker closing a futures-like position (``BackBroker._execute``): the margin
    comes back, the commission goes, then the move since the last mark at this bar's rate."""
    cash += abs(signed_size) * BROKER_MARGIN
    cash -= comm
    return cash + signed_size * (price - mark) * rate


@njit(cache=True)
def _held_value(size, unrealized):
    """What an open position adds to the broker's value (``BackBroker._get_value``): its margin,
    less and then plus its unrealized P&L."""
    return (size * BROKER_MARGIN - unrealized) + unrealized


@njit(cache=True)
def _executed(price, size):
    """An order's executed price as backtrader records it: the size-weighted mean of its one
    fill, (size × price) / size, which may differ from ``price`` in the last bit
    (``backtrader.order.OrderData.addbit``). The position itself is booked at ``price``."""
    return (size * price) / size


@njit(cache=True)
def _book(ti, tf, k, signal_bar, entry_bar, exit_bar, direction, reason, size, p_in, p_out,
          spread_in, slip_in, comm_in, spread_out, slip_out, comm_out):
    """Row ``k`` of the trade arrays (columns I_* and F_*)."""
    ti[k, I_SIGNAL], ti[k, I_ENTRY], ti[k, I_EXIT] = signal_bar, entry_bar, exit_bar
    ti[k, I_DIR], ti[k, I_REASON] = direction, reason
    tf[k, F_SIZE], tf[k, F_PIN], tf[k, F_POUT] = size, p_in, p_out
    tf[k, F_SP_IN], tf[k, F_SL_IN], tf[k, F_CM_IN] = spread_in, slip_in, comm_in
    tf[k, F_SP_OUT], tf[k, F_SL_OUT], tf[k, F_CM_OUT] = spread_out, slip_out, comm_out


@njit(cache=True)
def kernel(o, h, lo, c, spread, rate, sig, p_dir, margin, atr, hour_ok,
            cash, slip, commission, finalize,
            allow_short, exit_on_opposite, max_hold, stops_in_entry_bar,
            stop_code, stop_k, stop_buffer, tp_r, tp_atr, trail_code, trail_k,
            min_stop_spreads, min_margin, sizing, units, risk_fraction, max_leverage,
            kelly_fraction, pip, want_trades, barriers, k_up, k_dn):
    n = len(o)
    equity = np.empty(n)
    cap = n + 1 if want_trades else 1
    ti = np.zeros((cap, 5), np.int64)
    tf = np.zeros((cap, 9))
    nt = 0
    count = 0
    # position
    pos = 0
    size = 0.0
    mark = 0.0
    fill = 0.0
    pin = 0.0
    e_bar = 0
    s_bar = 0
    sp_in = 0.0
    sl_in = 0.0
    cm_in = 0.0
    stop = 0.0
    tp = np.nan
    risk0 = 0.0
    # orders sent at the last close
    pend_exit = -1          # exit reason, -1: none
    pend_dir = 0
    pend_size = 0.0
    pend_stop = 0.0
    pend_tr = 0.0
    pend_td = np.nan
    pend_sd = np.nan        # an atr/pips stop's distance (NaN: a bar stop)
    pend_sig = 0
    for t in range(n):
        sp = spread[t]
        r = rate[t]
        # 1. fills at the open: an exit, then an entry
        if pend_exit >= 0 and pos != 0:
            x = o[t] + sp + slip if pos < 0 else o[t] - slip
            cm = commission * size
            cash = _close(cash, pos * size, x, mark, r, cm)
            if want_trades:
                _book(ti, tf, nt, s_bar, e_bar, t, pos, pend_exit, size, pin, _executed(x, size),
                      sp_in, sl_in, cm_in, sp if pos < 0 else 0.0, slip, cm)
                nt += 1
            count += 1
            pos = 0
        pend_exit = -1
        if pend_dir != 0:
            d = pend_dir
            fill = o[t] + sp + slip if d > 0 else o[t] - slip
            size = pend_size
            pin = _executed(fill, size)      # the order's price (its trade, risk and target)
            cm_in = commission * size
            cash -= size * BROKER_MARGIN     # the broker's margin, then the commission
            cash -= cm_in
            sp_in = sp if d > 0 else 0.0
            sl_in = slip
            pos = d
            mark = fill                      # the position's price (its P&L)
            e_bar = t
            s_bar = pend_sig
            stop = pend_stop
            base = pin
            if barriers:         # stop and target from this bar's bid open (strategy.broker)
                base = o[t]
                if np.isfinite(pend_sd):
                    stop = o[t] - d * pend_sd
            risk0 = abs(pin - stop)
            if np.isfinite(pend_td):
                tp = base + d * pend_td
            elif pend_tr > 0:
                tp = base + d * (pend_tr * abs(base - stop))
            else:
                tp = np.nan
            pend_dir = 0
        # 2. the held position's stop, then its target
        if pos != 0 and (e_bar < t or stops_in_entry_bar):
            x = np.nan
            reason = -1
            if pos > 0:      # sell stop / sell limit on bid prices
                if o[t] <= stop:
                    x, reason = o[t] - slip, R_STOP
                elif lo[t] <= stop:
                    x, reason = stop - slip, R_STOP
                elif np.isfinite(tp):
                    if o[t] >= tp:
                        x, reason = o[t], R_TARGET
                    elif h[t] >= tp:
                        x, reason = tp, R_TARGET
            else:            # buy stop / buy limit on ask prices
                if o[t] + sp >= stop:
                    x, reason = o[t] + sp + slip, R_STOP
                elif h[t] + sp >= stop:
                    x, reason = stop + slip, R_STOP
                elif np.isfinite(tp):
                    if o[t] + sp <= tp:
                        x, reason = o[t] + sp, R_TARGET
                    elif lo[t] + sp <= tp:
                        x, reason = tp, R_TARGET
            if reason >= 0:
                cm = commission * size
                cash = _close(cash, pos * size, x, mark, r, cm)
                if want_trades:
                    _book(ti, tf, nt, s_bar, e_bar, t, pos, reason, size, pin, _executed(x, size),
                          sp_in, sl_in, cm_in, sp if pos < 0 else 0.0,
                          slip if reason == R_STOP else 0.0, cm)
                    nt += 1
                count += 1
                pos = 0
        # 3. mark to the close
        if pos != 0:
            cash += pos * size * (c[t] - mark) * r
            mark = c[t]
            value = cash + _held_value(size, pos * size * (c[t] - fill) * r)
        else:
            value = cash
        equity[t] = value
        # 4. the strategy at the close
        s = sig[t]
        enter = 0
        if pos != 0:
            why = -1
            if exit_on_opposite and s == -pos:
                why = R_OPPOSITE
            elif max_hold > 0 and t - e_bar + 1 >= max_hold:
                why = R_MAX_HOLD
            if why >= 0:
                pend_exit = why
                if why == R_OPPOSITE and (s == 1 or allow_short):
                    enter = s
            elif trail_code != 0:
                if trail_code == 1:
                    dd = trail_k * risk0
                elif trail_code == 2:
                    dd = trail_k * atr[t]
                else:
                    dd = trail_k * pip
                if np.isfinite(dd):
                    if pos > 0:
                        level = c[t] - dd
                        if level > stop:
                            stop = level
                    else:
                        level = c[t] + sp + dd
                        if level < stop:
                            stop = level
        elif s == 1 or (s == -1 and allow_short):
            enter = s
        if enter != 0:
            sc, sk, ta = stop_code, stop_k, tp_atr
            if barriers:     # a long's stop is the lower barrier, a short's the upper one
                sc = 1
                sk = k_dn if enter > 0 else k_up
                ta = k_up if enter > 0 else k_dn
            q, st, tr, td = _plan(enter, p_dir[t], margin[t], c[t], h[t], lo[t], sp, atr[t],
                                  hour_ok[t], value, r, sc, sk, stop_buffer, tp_r,
                                  ta, min_stop_spreads, min_margin, sizing, units,
                                  risk_fraction, max_leverage, kelly_fraction, pip)
            if q > 0 and t < n - 1:
                pend_dir, pend_size, pend_stop, pend_tr, pend_td, pend_sig = enter, q, st, tr, td, t
                pend_sd = np.nan
                if sc == 1:
                    pend_sd = sk * atr[t]
                elif sc == 2:
                    pend_sd = sk * pip
    # a trade still open after the last bar: closed at the last close (finalize)
    if finalize and pos != 0:
        last = n - 1
        sp = spread[last] if pos < 0 else 0.0
        x = c[last] + sp - pos * slip
        cm = commission * size
        equity[last] -= (sp + slip) * size * rate[last] + cm
        if want_trades:
            _book(ti, tf, nt, s_bar, e_bar, last, pos, R_END, size, pin, x, sp_in, sl_in, cm_in,
                  sp, slip, cm)
            nt += 1
        count += 1
    return equity, ti[:nt], tf[:nt], count


@dataclass(frozen=True)
class Prepared:
    """Per-bar arrays of one candle frame, reusable across rule combinations and thresholds."""

    index: pd.DatetimeIndex
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    probs: np.ndarray          # n × 3 (NaN where missing)
    rates: np.ndarray


def prepare(candles: pd.DataFrame, probs: pd.DataFrame | None,
            rates: np.ndarray | None = None) -> Prepared:
    """The arrays the kernel reads (probabilities aligned on the candles as the engine does)."""
    from strategy.engine import align_probs

    if len(candles) < 2:
        raise ValueError("need at least 2 candles to backtest")
    aligned = align_probs(candles, probs).to_numpy(dtype=float)
    if rates is None:
        r = np.ones(len(candles))
    else:
        r = np.asarray(rates, dtype=float)
        if r.shape != (len(candles),) or not (np.isfinite(r) & (r > 0)).all():
            raise ValueError("rates must hold one positive finite number per candle")
    col = {k: np.ascontiguousarray(candles[k].to_numpy(dtype=float))
           for k in ("open", "high", "low", "close")}
    return Prepared(pd.DatetimeIndex(candles.index), col["open"], col["high"], col["low"],
                    col["close"], aligned, r)


def signal_arrays(p: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(signal, probability of the signalled class, top − runner-up) per bar, by the rule of
    ``strategy.fractal.signal_from_probs`` (numpy's arg-max: ties to none, then buy; NaN rows:
    no signal, margin 0)."""
    return _signals(np.ascontiguousarray(p, dtype=np.float64), float(threshold))


@njit(cache=True)
def _signals(p, threshold):
    n = p.shape[0]
    sig = np.zeros(n, np.int64)
    p_dir = np.zeros(n)
    margin = np.zeros(n)
    for i in range(n):
        a, b, c = p[i, 0], p[i, 1], p[i, 2]
        if not (np.isfinite(a) and np.isfinite(b) and np.isfinite(c)):
            continue
        top, best = 0, a
        if b > best:
            top, best = 1, b
        if c > best:
            top, best = 2, c
        median = max(min(a, b), min(max(a, b), c))
        margin[i] = best - median
        if top == 1 and best >= threshold:
            sig[i], p_dir[i] = 1, b
        elif top == 2 and best >= threshold:
            sig[i], p_dir[i] = -1, c
    return sig, p_dir, margin


@dataclass(frozen=True)
class FastResult:
    """Equity per bar and the trades (``trades`` is None when not asked for)."""

    equity: np.ndarray
    n_trades: int
    trades_int: np.ndarray | None = None
    trades_float: np.ndarray | None = None


def run_prepared(prep: Prepared, params: FractalParams, costs: Costs, cash: float = 100_000.0,
                 *, finalize: bool = True, trades: bool = True,
                 spreads: np.ndarray | None = None, atr: np.ndarray | None = None,
                 hour_ok: np.ndarray | None = None, candles: pd.DataFrame | None = None,
                 ) -> FastResult:
    """Run the kernel on prepared arrays. ``spreads``/``atr``/``hour_ok`` may be given (reused
    across calls); otherwise they are computed from ``candles``."""
    if spreads is None:
        spreads = costs.spread_array(candles)
    if atr is None:
        atr = (atr_array(candles, params.atr_period) if needs_atr(params)
               else np.full(len(prep.close), np.nan))
    if hour_ok is None:
        hour_ok = hour_mask(prep.index, parse_hours(params.hours))
    sig, p_dir, margin = signal_arrays(prep.probs, params.threshold)
    stop_kind, stop_k = parse_rule(params.stop, STOP_KINDS, "stop")
    trail_kind, trail_k = parse_rule(params.trail, TRAIL_KINDS, "trail")
    barriers = parse_barriers(params.barriers)
    equity, ti, tf, count = kernel(
        prep.open, prep.high, prep.low, prep.close, np.ascontiguousarray(spreads, dtype=float),
        prep.rates, sig, p_dir, margin, np.ascontiguousarray(atr, dtype=float),
        np.ascontiguousarray(hour_ok, dtype=np.bool_), float(cash), float(costs.slippage),
        float(costs.commission), bool(finalize), bool(params.allow_short),
        bool(params.exit_on_opposite), int(params.max_hold), bool(params.stops_in_entry_bar),
        STOP_CODE[stop_kind], float(stop_k), float(params.stop_buffer),
        float(params.take_profit_r), float(params.take_profit_atr), TRAIL_CODE[trail_kind],
        float(trail_k), float(params.min_stop_spreads), float(params.min_margin),
        SIZING_CODE[params.sizing], float(params.units), float(params.risk_fraction),
        float(params.max_leverage), float(params.kelly_fraction), float(params.pip), bool(trades),
        barriers is not None, *(barriers or (0.0, 0.0)))
    return FastResult(equity, int(count), ti if trades else None, tf if trades else None)


def unsupported(params: FractalParams, costs: Costs) -> str | None:
    """The first setting of ``params``/``costs`` the kernel does not read (``PARAMS_READ``,
    ``COSTS_READ``) that is not at its default, as ``Class.field=value``; None when the kernel
    trades these settings as backtrader does (every setting of today's ``FractalParams`` and
    ``Costs``: tests/strategy/test_fast.py). Callers that may use either engine
    (``backtests.simulation.run_reference``) run backtrader when this names one."""
    for obj, known in ((params, PARAMS_READ | PARAMS_IGNORED), (costs, COSTS_READ)):
        default = type(obj)()
        for f in fields(obj):
            if f.name not in known and getattr(obj, f.name) != getattr(default, f.name):
                return f"{type(obj).__name__}.{f.name}={getattr(obj, f.name)!r}"
    return None


def simulate_fast(candles: pd.DataFrame, probs: pd.DataFrame | None,
                  params: FractalParams = FractalParams(), costs: Costs = Costs(),
                  cash: float = 100_000.0, *, finalize: bool = True,
                  rates: np.ndarray | None = None) -> tuple[pd.DataFrame, pd.Series]:
    """(trades, equity) as ``strategy.engine.simulate`` gives them (same columns and values)."""
    prep = prepare(candles, probs, rates)
    res = run_prepared(prep, params, costs, cash, finalize=finalize, candles=candles)
    return trades_frame(res, candles, rates), pd.Series(res.equity, index=candles.index,
                                                         name="equity")


def trades_frame(res: FastResult, candles: pd.DataFrame,
                 rates: np.ndarray | None = None) -> pd.DataFrame:
    """The kernel's trades as ``strategy.engine`` records them (TRADE_COLUMNS)."""
    from strategy.engine import Booking, TradeRecord, to_frame, trade_record

    book = Booking(candles, None if rates is None else np.asarray(rates, dtype=float))
    index = pd.DatetimeIndex(candles.index)
    records = []
    for (sb, eb, xb, d, why), (size, pin, pout, spi, sli, cmi, spo, slo, cmo) in zip(
            res.trades_int, res.trades_float, strict=True):
        log = {"signal_bar": int(sb), "entry_bar": int(eb), "direction": int(d),
               "entry": {"bar": int(eb), "price": float(pin), "size": float(size),
                         "spread": float(spi), "slip": float(sli), "comm": float(cmi)},
               "exit": {"bar": int(xb), "price": float(pout), "size": float(size),
                        "spread": float(spo), "slip": float(slo), "comm": float(cmo)},
               "exit_reason": REASONS[int(why)]}
        records.append(trade_record(log, index, 0, book))
    return to_frame(records, TradeRecord, index.dtype)


__all__ = ["COSTS_READ", "FastResult", "PARAMS_IGNORED", "PARAMS_READ", "PROB_COLUMNS",
           "Prepared", "REASONS", "prepare", "run_prepared", "signal_arrays", "simulate_fast",
           "trades_frame", "unsupported"]
