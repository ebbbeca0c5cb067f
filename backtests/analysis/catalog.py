"""The one table of named statistics: key, label, unit, format and which direction is better.

Every place that shows or stores a statistic (console, report.html/json, the registry's run
summaries, compare) reads its label, unit and format from here, so a key means the same thing
everywhere and a renamed label breaks nothing that reads keys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

Better = Literal["higher", "lower", None]


@dataclass(frozen=True)
class Stat:
    key: str
    label: str
    unit: str = ""                       # "%", "bars", "money", "" (plain number)
    kind: str = "float"                  # float | int | time | duration | pct
    better: Better = None                # which direction is the better one, if any

    @property
    def heading(self) -> str:
        """The label with its unit, e.g. 'Return [%]'."""
        return f"{self.label} [{self.unit}]" if self.unit else self.label

    def format(self, value: object) -> str:
        return format_value(value, self.kind)


STATS: tuple[Stat, ...] = (
    # period
    Stat("start", "Start", kind="time"),
    Stat("end", "End", kind="time"),
    Stat("bars", "Bars", kind="int"),
    # trading
    Stat("exposure_pct", "Exposure", "%"),
    Stat("final_equity", "Final equity", "money", better="higher"),
    Stat("total_return_pct", "Return", "%", better="higher"),
    Stat("annual_return_pct", "Return (ann.)", "%", better="higher"),
    Stat("cagr_pct", "CAGR", "%", better="higher"),
    Stat("volatility_ann_pct", "Volatility (ann.)", "%", better="lower"),
    Stat("exposure_adjusted_return_pct", "Exposure-adjusted return (CAGR / exposure)", "%",
         better="higher"),
    Stat("max_drawdown_pct", "Max. drawdown", "%", better="higher"),
    Stat("max_drawdown_duration_bars", "Max. drawdown duration", "bars", kind="int",
         better="lower"),
    Stat("max_drawdown_duration", "Max. drawdown duration", kind="duration", better="lower"),
    Stat("longest_flat_bars", "Longest flat period (no new equity high)", "bars", kind="int",
         better="lower"),
    Stat("longest_flat", "Longest flat period (no new equity high)", kind="duration",
         better="lower"),
    Stat("sharpe", "Sharpe ratio", better="higher"),
    Stat("sortino", "Sortino ratio", better="higher"),
    Stat("calmar", "Calmar ratio (CAGR / max. drawdown)", better="higher"),
    Stat("n_trades", "Trades", kind="int"),
    Stat("win_rate_pct", "Win rate", "%", better="higher"),
    Stat("profit_factor", "Profit factor", better="higher"),
    Stat("expectancy", "Expectancy (per trade)", "money", better="higher"),
    Stat("avg_win", "Avg. win", "money", better="higher"),
    Stat("avg_loss", "Avg. loss", "money", better="higher"),
    Stat("best_trade", "Best trade", "money", better="higher"),
    Stat("worst_trade", "Worst trade", "money", better="higher"),
    Stat("avg_holding_bars", "Avg. holding", "bars"),
    Stat("sqn", "SQN", better="higher"),
    Stat("bars_per_year", "Bars per year (annualisation)"),
    Stat("p_value", "p-value vs random entries", better="lower"),
    # classification (the article's metrics and ours)
    Stat("accuracy", "Accuracy", better="higher"),
    Stat("macro_f1", "Macro F1", better="higher"),
    Stat("error", "Error (RMSE)", better="lower"),
    Stat("hit_pct", "Hit", "%", better="higher"),
    Stat("missed_pct", "Missed", "%", better="lower"),
    # training
    Stat("epochs_run", "Epochs run", kind="int"),
    Stat("best_epoch", "Best epoch", kind="int"),
    Stat("seconds", "Training time", "s"),
)
BY_KEY = {s.key: s for s in STATS}

# The summary kept in the registry for each run kind (stable keys, all in STATS).
SUMMARY_KEYS = {
    "train": ("accuracy", "macro_f1", "error", "hit_pct", "missed_pct", "best_epoch",
              "epochs_run", "seconds"),
    "backtest": ("n_trades", "win_rate_pct", "total_return_pct", "profit_factor",
                 "max_drawdown_pct", "sharpe", "p_value", "hit_pct", "missed_pct"),
}


def stat(key: str) -> Stat:
    """The definition of ``key``; an unknown key gets a plain one (label = key)."""
    return BY_KEY.get(key) or Stat(key, key)


def summary(kind: str, values: dict) -> dict:
    """The registry summary of a run of ``kind``: its SUMMARY_KEYS present in ``values``."""
    return {k: plain(values[k]) for k in SUMMARY_KEYS.get(kind, ()) if k in values}


def rows(values: dict, keys: tuple[str, ...] | None = None) -> list[tuple[Stat, object]]:
    """(definition, value) in table order: known keys first, then any others."""
    keys = keys or tuple(values)
    known = [(s, values[s.key]) for s in STATS if s.key in values and s.key in keys]
    seen = {s.key for s, _ in known}
    return known + [(stat(k), values[k]) for k in keys if k not in seen and k in values]


def plain(value: object) -> object:
    """A scalar as plain Python for in-memory use (numpy scalars unwrapped, times as ISO text);
    NaN and inf stay floats. Files get ``jsonable``."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, pd.Timedelta):
        return str(value)
    return value


def jsonable(value: object) -> object:
    """``value`` as strict JSON (the one cleaner every JSON file and the registry use).

    NaN, NaT and NA become null; +/-inf become the strings ``"inf"``/``"-inf"`` (a profit factor
    without a losing trade keeps its meaning; ``json_number`` reads them back); numpy scalars
    and arrays become Python numbers and lists, tuples lists, dict keys text, Timestamps ISO
    text, anything else ``str(value)``.
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if all(type(v) is float and -math.inf < v < math.inf for v in value):
            return list(value)   # finite floats (a sweep's returns: millions): as they are
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return None
        return ("inf" if v > 0 else "-inf") if math.isinf(v) else v
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, str):
        return value
    return str(value)


def json_number(value: object) -> object:
    """A value read from a file ``jsonable`` wrote: ``"inf"``/``"-inf"`` back to floats; other
    values unchanged (files written before one cleaner may hold null where inf was)."""
    if isinstance(value, str) and value in ("inf", "-inf"):
        return math.inf if value == "inf" else -math.inf
    return value


def format_value(value: object, kind: str = "float") -> str:
    """A value for a table: '—' for missing, thousands separators, 4 significant digits, and
    never scientific notation (a magnitude under 0.0001 reads ``< 0.0001``; the files keep it)."""
    if value is None or value is pd.NaT:
        return "—"
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, pd.Timedelta):
        return str(value)
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return "—"
        if math.isinf(v):
            return "∞" if v > 0 else "-∞"
        if kind == "int" and v.is_integer():
            return f"{int(v):,}"
        if 0 < abs(v) < 1e-4:               # no scientific notation in a table
            return "< 0.0001" if v > 0 else "> -0.0001"
        return f"{v:,.2f}" if abs(v) >= 100 else f"{v:.4g}"
    return str(value)


__all__ = ["BY_KEY", "STATS", "SUMMARY_KEYS", "Stat", "format_value", "json_number", "jsonable",
           "plain", "rows", "stat",
           "summary"]
