"""Trivial rule baselines: "models" that need no training, the right null for the networks.

A 3-bar fractal at bar t needs High[t] > High[t-1] (the past half) and High[t] > High[t+1] (the
future half). The rule ``newhl`` predicts the fractal whenever the past half holds: a new high
over the previous bar → sell (a high fractal), a new low → buy, both (an outside bar) or neither
→ none, as the labels treat outside bars. ``newhl-range`` (``newhl-range:K``) fires only on bars
whose range High − Low is at least K × ATR(14) (K = 1 by default). For 5-bar labels "previous"
means the previous two bars (the past half of that label); swing labels use the 3-bar rule.

Output per bar: ``[p_none, p_buy, p_sell]`` from bars <= t only (ATR is MT5's iATR(14), a mean of
true ranges up to t). The score is graded so that choosing a signal threshold on validation bars
means something for the rule too: when the rule fires, the signalled class gets
``0.5 + 0.5 × min(1, breakout / ATR)`` (breakout: how far the new extreme passes the previous
one), ``p_none`` the rest; otherwise ``p_none`` = 1. The arg-max is thus exactly the rule (every
firing bar scores above 0.5), and a threshold of 0.5 + 0.5·b trades only breakouts of at least b
ATRs, as a network's threshold trades only its surer signals. The score is not a calibrated
probability (``kelly`` sizing reads it as one). Bars inside the ATR warm-up are NaN (no signal),
as a network's first bars are.

A rule is named like a network, ``rule/newhl``: ``attnbt walkforward --models``, ``sweep
--models`` and ``backtest --vs`` take it, and ``evaluate`` and ``backtest`` show the
``BASELINE_RULES`` beside every model on the same bars.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

KIND = "rule"
PRESETS = ("newhl", "newhl-range")
DEFAULT_RANGE_ATR = 1.0
ATR_PERIOD = 14
BASELINE_RULES = ("newhl", "newhl-range")   # shown beside every model
PROB_COLUMNS = ("p_none", "p_buy", "p_sell")
DESCRIPTIONS = {"newhl": "new high (low) over the previous bar",
                "newhl-range": "new high (low) on a bar whose range is at least {k:g} ATR"}
PRESET_CHOICES = "newhl, newhl-range or newhl-range:K (range at least K ATRs)"


@dataclass(frozen=True)
class RuleConfig:
    """A rule baseline's settings (``preset`` is its one name)."""

    preset: str = "newhl"
    min_range_atr: float = 0.0
    atr_period: int = ATR_PERIOD

    @classmethod
    def preset_config(cls, preset: str, n_features: int = 0, window: int = 0) -> RuleConfig:
        """The rule named ``preset`` (the registry's signature; features and window unused)."""
        return cls(preset, rule_params(preset))

    @property
    def name(self) -> str:
        return f"{KIND}/{self.preset}"

    @property
    def description(self) -> str:
        base = self.preset.split(":")[0]
        return DESCRIPTIONS[base].format(k=self.min_range_atr)


def rule_params(preset: str) -> float:
    """The minimum range in ATRs of a rule preset (0 for ``newhl``); ValueError for a name that
    is not a rule or not written in its one form (``newhl-range`` for K = 1)."""
    base, *args = preset.split(":") if isinstance(preset, str) else ("",)
    if base == "newhl" and not args:
        return 0.0
    if base != "newhl-range" or len(args) > 1:
        raise ValueError(f"unknown rule {preset!r}; choose {PRESET_CHOICES}")
    try:
        k = float(args[0]) if args else DEFAULT_RANGE_ATR
    except ValueError:
        raise ValueError(f"rule {preset!r}: K must be a number of ATRs, e.g. "
                         "newhl-range:1.5") from None
    if not (math.isfinite(k) and 0 < k <= 100):
        raise ValueError(f"rule {preset!r}: K must be in (0, 100] ATRs")
    name = range_preset(k)
    if preset != name:
        raise ValueError(f"write rule {preset!r} as {name!r} (one name per rule)")
    return k


def range_preset(k: float) -> str:
    """The one name of the range rule with K = ``k``."""
    text = repr(float(k)).removesuffix(".0")
    return "newhl-range" if k == DEFAULT_RANGE_ATR else f"newhl-range:{text}"


def is_rule(name: str) -> bool:
    """Whether a model name (``rule/newhl``, ``rule``) names a rule baseline."""
    return isinstance(name, str) and name.split("/", 1)[0] == KIND


def parse_rule(name: str) -> RuleConfig:
    """``rule/newhl`` (or ``rule/newhl-range:2``; plain ``rule`` is ``rule/newhl``) → its
    config; ValueError for anything else."""
    kind, _, preset = name.partition("/")
    if kind != KIND:
        raise ValueError(f"{name!r} is not a rule baseline; rules are rule/{PRESET_CHOICES}")
    return RuleConfig.preset_config(preset or PRESETS[0])


def lookback(labels: str) -> int:
    """Bars before t the rule compares with: the past half of the label's fractal."""
    return 2 if labels == "5bar" else 1


def rule_probs(candles: pd.DataFrame, rule: RuleConfig | str, labels: str = "3bar") -> pd.DataFrame:
    """``[p_none, p_buy, p_sell]`` of the rule for every bar (NaN in its warm-up); bar t reads
    bars <= t only."""
    from data.features import atr

    cfg = rule if isinstance(rule, RuleConfig) else RuleConfig.preset_config(rule)
    k = lookback(labels)
    high = candles["high"].to_numpy(np.float64)
    low = candles["low"].to_numpy(np.float64)
    n = len(high)
    a = atr(candles["high"].astype("float64"), candles["low"].astype("float64"),
            candles["close"].astype("float64"), cfg.atr_period).to_numpy()
    prev_high, prev_low = np.full(n, np.nan), np.full(n, np.nan)
    for s in range(1, k + 1):     # the highest high / lowest low of bars t-k … t-1
        ph = np.r_[np.full(min(s, n), np.nan), high[:n - s]]
        pl = np.r_[np.full(min(s, n), np.nan), low[:n - s]]
        prev_high = ph if s == 1 else np.maximum(prev_high, ph)
        prev_low = pl if s == 1 else np.minimum(prev_low, pl)
    known = np.isfinite(a) & np.isfinite(prev_high) & (a > 0)
    with np.errstate(invalid="ignore"):
        up, down = high > prev_high, low < prev_low
        fires = known & (up != down)
        if cfg.min_range_atr > 0:
            fires &= (high - low) >= cfg.min_range_atr * a
        breakout = np.where(up, high - prev_high, prev_low - low)
        score = 0.5 + 0.5 * np.minimum(1.0, breakout / np.where(known, a, 1.0))
    out = np.full((n, 3), np.nan)
    out[known] = [1.0, 0.0, 0.0]
    side = np.where(up, 2, 1)                 # a new high → sell (high fractal), a low → buy
    rows = np.flatnonzero(fires)
    out[rows, 0] = 1.0 - score[rows]
    out[rows, side[rows]] = score[rows]
    return pd.DataFrame(out, index=candles.index, columns=list(PROB_COLUMNS))


__all__ = ["BASELINE_RULES", "KIND", "PRESETS", "RuleConfig", "is_rule", "lookback",
           "parse_rule", "range_preset", "rule_params", "rule_probs"]
