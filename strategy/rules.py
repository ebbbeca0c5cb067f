"""The strategy's searchable rules in one place: their text forms, per-bar inputs and entry plans.

Both engines read the rules from here: ``strategy.fractal`` (backtrader, the engine of record) calls
``plan_entry`` bar by bar; ``strategy.fast`` (the compiled simulator) re-implements the same
arithmetic in numba and is checked trade for trade against backtrader (tests/strategy/test_fast.py).

Text forms (config values, ``--grid`` values):

- stop: ``bar`` (the signal bar's extreme ± ``stop_buffer``), ``atr:K`` (K × ATR of the signal
  bar from the reference price), ``pips:N`` (N × ``pip`` from the reference price);
- trail: ``none``, ``r:K`` (K × the trade's initial risk behind the close), ``atr:K`` (K × that
  bar's ATR behind the close), ``pips:N``;
- hours: ``""`` (any) or ``A-B``: enter only when the signal bar's UTC hour h has A ≤ h < B
  (wrapping past midnight when A > B, e.g. ``22-6``).

The reference price of an entry is its expected fill at the signal bar's close: ask (close +
spread) for a long, bid (close) for a short. The stop distance is |reference − stop|.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

STOP_KINDS = ("bar", "atr", "pips")
TRAIL_KINDS = ("none", "r", "atr", "pips")
# numeric codes shared with the compiled simulator
STOP_CODE = {"bar": 0, "atr": 1, "pips": 2}
TRAIL_CODE = {"none": 0, "r": 1, "atr": 2, "pips": 3}
SIZING_CODE = {"fixed": 0, "risk": 1, "kelly": 2}


def parse_rule(text: str, kinds: tuple[str, ...], what: str) -> tuple[str, float]:
    """``"atr:1.5"`` → ("atr", 1.5); ``"bar"``/``"none"`` → (kind, 0.0). ValueError names the rule."""
    if not isinstance(text, str):
        raise ValueError(f"{what} must be text such as {kinds[0]!r}, not {text!r}")
    kind, sep, value = text.strip().partition(":")
    bare = kinds[0]
    if kind == bare and not sep:
        return bare, 0.0
    examples = ", ".join([bare] + [f"{k}:1.5" for k in kinds[1:]])
    if kind not in kinds[1:] or not sep:
        raise ValueError(f"{what} = {text!r}; give one of {examples}")
    try:
        k = float(value)
    except ValueError:
        raise ValueError(f"{what} = {text!r}: {value!r} is not a number") from None
    if not (math.isfinite(k) and 0 < k <= 1e6):
        raise ValueError(f"{what} = {text!r}: the multiple must be a positive finite number")
    return kind, k


def parse_barriers(text: str) -> tuple[float, float] | None:
    """``"atr:1.5:1"`` → (1.5, 1.0): the upper and lower barrier in ATRs; ``"none"`` and
    ``"auto"`` (resolved by ``label_exits`` where the model's labels are known) → None."""
    if text in ("auto", "none"):
        return None
    parts = text.split(":") if isinstance(text, str) else []
    try:
        if len(parts) != 3 or parts[0] != "atr":
            raise ValueError
        k_up, k_dn = float(parts[1]), float(parts[2])
    except ValueError:
        raise ValueError(f"barriers = {text!r}; give auto, none or atr:K_UP:K_DN (ATRs above "
                         "and below the entry bar's open), e.g. atr:1.5:1") from None
    if not all(math.isfinite(k) and 0 < k <= 100 for k in (k_up, k_dn)):
        raise ValueError(f"barriers = {text!r}: K_UP and K_DN must be in (0, 100] ATRs")
    return k_up, k_dn


EXIT_KEYS = ("stop", "stop_buffer", "take_profit_r", "take_profit_atr", "stops_in_entry_bar",
             "atr_period", "barriers")   # the label's ATR is iATR(14), the default atr_period


def horizon_stop_atrs(h: int) -> int:
    """The protective stop of a ``horizon:H`` trade, in ATRs of the signal bar: 10 × ⌈√H⌉ (10 for
    H = 1, 20 for H = 2 … 4, 30 for H = 5 … 9, 50 for H = 24). The label has no stop; the engine
    sends every entry with one (and ``risk``/``kelly`` sizing divide by its distance), so it sits
    where a move over the H bars held almost never reaches: about ten times the typical move."""
    return 10 * math.ceil(math.sqrt(h))


def label_exits(params, labels: str):
    """The strategy that trades a model trained on ``labels``, with ``barriers = auto``:

    - triple-barrier labels ``triple:K_UP:K_DN:H``: the label's own exits, ``barriers =
      atr:K_UP:K_DN``, and ``max_hold = H + 1`` (the entry bar and the H bars after it);
    - fixed-horizon labels ``horizon:H``: the label's time exit, ``max_hold = H`` (closed at the
      open of bar t+1+H), no target (``take_profit_r = 0``) and a protective stop
      ``atr:K`` far out (``horizon_stop_atrs``: 10 × ⌈√H⌉ ATRs), ``barriers = none``.

    A stop or target key (``EXIT_KEYS``) that differs from its default leaves ``barriers = none``
    and the keys as set (no label stop or target); a ``max_hold`` that differs from its default is
    kept. A value equal to its default counts as not set. Other label kinds have no exits of
    their own: ``params`` is returned unchanged (``auto`` trades as ``none``)."""
    from dataclasses import fields, replace

    from data.labels import horizon_params, is_horizon, is_trade_outcome, triple_params

    if params.barriers != "auto" or not is_trade_outcome(labels):
        return params
    default = {f.name: f.default for f in fields(params)}
    mine = not all(getattr(params, k) == default[k] for k in EXIT_KEYS)
    changes: dict = {"barriers": "none"}
    if is_horizon(labels):
        h = horizon_params(labels)
        if not mine:
            changes.update(stop=f"atr:{horizon_stop_atrs(h)}", take_profit_r=0.0)
    else:
        k_up, k_dn, t_h = triple_params(labels)
        h = t_h + 1
        if not mine:
            changes["barriers"] = f"atr:{_number(k_up)}:{_number(k_dn)}"
    if params.max_hold == default["max_hold"]:
        changes["max_hold"] = h
    return replace(params, **changes)


def _number(x: float) -> str:
    return repr(float(x)).removesuffix(".0")


def parse_hours(text: str) -> tuple[int, int] | None:
    """``""`` → None (any hour); ``"7-17"`` → (7, 17)."""
    if not isinstance(text, str):
        raise ValueError(f"hours must be text such as '7-17', not {text!r}")
    text = text.strip()
    if not text:
        return None
    m = re.fullmatch(r"(\d{1,2})-(\d{1,2})", text)
    if not m:
        raise ValueError(f"hours = {text!r}; give A-B in UTC hours, e.g. 7-17 or 22-6 (or '' for any)")
    a, b = int(m.group(1)), int(m.group(2))
    if not (0 <= a <= 23 and 0 <= b <= 24 and a != b):
        raise ValueError(f"hours = {text!r}; A in 0-23, B in 0-24 and A != B")
    return a, b


def hour_mask(index: pd.DatetimeIndex, hours: tuple[int, int] | None) -> np.ndarray:
    """Bars whose UTC hour lets an entry through (all True when ``hours`` is None)."""
    if hours is None:
        return np.ones(len(index), dtype=bool)
    idx = pd.DatetimeIndex(index)
    h = (idx.tz_convert("UTC") if idx.tz is not None else idx).hour.to_numpy()
    a, b = hours
    return (h >= a) & (h < b) if a < b else (h >= a) | (h < b)


def needs_atr(params) -> bool:
    """Whether any rule of ``params`` reads the ATR."""
    return (parse_rule(params.stop, STOP_KINDS, "stop")[0] == "atr"
            or parse_rule(params.trail, TRAIL_KINDS, "trail")[0] == "atr"
            or params.take_profit_atr > 0 or parse_barriers(params.barriers) is not None)


def atr_array(candles: pd.DataFrame, period: int) -> np.ndarray:
    """ATR (MT5's iATR: simple mean of the true range) of every bar; NaN in the warm-up."""
    from data.features import atr

    return atr(candles["high"].astype(float), candles["low"].astype(float),
               candles["close"].astype(float), period).to_numpy(dtype=float)


@dataclass(frozen=True)
class EntryPlan:
    """What to send at the close of the signal bar: size, stop, target distance (None: none)."""

    size: float
    stop: float
    target_r: float          # k × risk from the fill (0: none); used when target_dist is None
    target_dist: float | None  # fixed distance from the fill (ATR targets)
    stop_dist: float | None = None  # an atr/pips stop's distance (None: a bar stop)
    from_open: bool = False  # stop and target measured from the entry bar's open (barriers)


def probability_margin(p: np.ndarray) -> float:
    """The top class probability minus the runner-up's."""
    s = np.sort(np.asarray(p, dtype=float))
    return float(s[2] - s[1])


def plan_entry(params, direction: int, p: np.ndarray, *, close: float, high: float, low: float,
               spread: float, atr: float, hour_ok: bool, equity: float, rate: float = 1.0,
               ) -> EntryPlan | None:
    """The entry rules at a signal bar's close; None when a filter or the sizing skips it.

    ``p`` = [p_none, p_buy, p_sell] of the signal bar; ``atr`` its ATR (NaN in the warm-up: any
    ATR rule then skips the entry); ``rate`` = account currency per unit of quote currency.
    """
    if not hour_ok:
        return None
    if params.min_margin > 0 and probability_margin(p) < params.min_margin:
        return None
    barriers = parse_barriers(params.barriers)
    if barriers is None:
        stop_kind, stop_k = parse_rule(params.stop, STOP_KINDS, "stop")
        tp_atr = params.take_profit_atr
    else:     # a long's stop is the lower barrier and its target the upper one; a short's reverse
        k_up, k_dn = barriers
        stop_kind, stop_k = "atr", (k_dn if direction > 0 else k_up)
        tp_atr = k_up if direction > 0 else k_dn
    uses_atr = stop_kind == "atr" or tp_atr > 0
    if uses_atr and not np.isfinite(atr):
        return None
    ref = close + spread if direction > 0 else close
    stop_dist = None
    if stop_kind == "bar":
        stop = low - params.stop_buffer if direction > 0 else high + params.stop_buffer
    else:
        stop_dist = stop_k * atr if stop_kind == "atr" else stop_k * params.pip
        stop = ref - direction * stop_dist
    dist = abs(ref - stop)
    if params.min_stop_spreads > 0 and dist < params.min_stop_spreads * spread:
        return None
    target_dist = tp_atr * atr if tp_atr > 0 else None
    target_r = 0.0 if target_dist is not None else params.take_profit_r
    if params.sizing == "fixed":
        size = float(params.units)
    else:
        share = params.risk_fraction
        if params.sizing == "kelly":
            prob = float(p[1] if direction > 0 else p[2])
            if target_dist is not None:
                b = target_dist / dist if dist > 0 else 0.0
            else:
                b = target_r if target_r > 0 else 1.0
            if b <= 0:
                return None
            kelly = prob - (1.0 - prob) / b
            if kelly <= 0:
                return None
            share = min(params.kelly_fraction * kelly, params.risk_fraction)
        risk = dist * rate                                  # account currency per unit
        cap = 0.95 * params.max_leverage * equity / (close * rate)
        size = cap if risk <= 0 else min(share * equity / risk, cap)
        size = float(np.floor(size * (1 + 1e-12)))  # 1000/0.001 is 999999.99...
    if size <= 0:
        return None
    return EntryPlan(size=size, stop=float(stop), target_r=float(target_r),
                     target_dist=None if target_dist is None else float(target_dist),
                     stop_dist=None if stop_dist is None else float(stop_dist),
                     from_open=barriers is not None)


def trail_distance(params, *, initial_risk: float, atr: float) -> float | None:
    """How far behind the close the trailing stop sits at a bar (None: no trailing now)."""
    kind, k = parse_rule(params.trail, TRAIL_KINDS, "trail")
    if kind == "none":
        return None
    if kind == "r":
        return k * initial_risk
    if kind == "atr":
        return k * atr if np.isfinite(atr) else None
    return k * params.pip


__all__ = ["EXIT_KEYS", "SIZING_CODE", "STOP_CODE", "STOP_KINDS", "TRAIL_CODE", "TRAIL_KINDS",
           "EntryPlan", "atr_array", "horizon_stop_atrs", "hour_mask", "label_exits", "needs_atr",
           "parse_barriers", "parse_hours", "parse_rule", "plan_entry",
           "probability_margin", "trail_distance"]
