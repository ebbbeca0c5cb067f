"""A sweep's grid: ``key=v1,v2,...`` axes of config override keys, split by what they need.

Model-side keys (sections data, split, dataset, model, train) need a model trained per value;
rule-side keys (strategy, costs, backtest) only re-simulate.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from backtests.config import ConfigError, Experiment, resolve_key

MODEL_SECTIONS = ("data", "split", "dataset", "model", "train")
RULE_SECTIONS = ("strategy", "costs", "backtest")
# The most (model, model setting, rule combination) series one sweep may hold. Planning alone
# costs about 3 ms per combination on the 2-core reference machine (10,000 plan in about 30 s),
# each is simulated on every fold and seed and kept as a trial; a bigger search is refused
# before anything is built: split it into sweeps of fewer axes (each still pays for the others).
MAX_COMBINATIONS = 10_000


@dataclass(frozen=True)
class Grid:
    """Axes of a sweep: ``section.field`` → values (typed), split by what they need."""

    model_axes: dict[str, list]
    rule_axes: dict[str, list]

    @property
    def axes(self) -> dict[str, list]:
        return {**self.model_axes, **self.rule_axes}

    def model_combos(self) -> list[dict]:
        return _product(self.model_axes)

    def rule_combos(self) -> list[dict]:
        return _product(self.rule_axes)

    @property
    def size(self) -> int:
        """Model settings × rule combinations, counted without building any."""
        return math.prod(len(v) for v in self.axes.values())


def _product(axes: dict[str, list]) -> list[dict]:
    keys = list(axes)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(
        *(axes[k] for k in keys))]


def parse_grid(items: list[str], base: Experiment) -> Grid:
    """``["threshold=0.5,0.6", "stop=bar,atr:1.5"]`` → a Grid; every value is checked by
    building the experiment it gives, so a bad one fails here with its key named."""
    counts = {item.partition("=")[0].strip(): item.partition("=")[2].count(",") + 1
              for item in items}
    check_size(math.prod(counts.values()), " × ".join(f"{n} {k}" for k, n in counts.items()))
    from backtests.meta import refuse_meta

    refuse_meta(base.strategy, "a sweep")
    model_axes: dict[str, list] = {}
    rule_axes: dict[str, list] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip() or not text.strip():
            raise ConfigError(f"`grid` {item!r}: give key=value1,value2,... e.g. "
                              "threshold=0.5,0.6,0.7")
        section, name = resolve_key(key.strip())
        full = f"{section}.{name}"
        if section not in MODEL_SECTIONS + RULE_SECTIONS or full in ("data.source",
                                                                      "model.kind"):
            raise ConfigError(f"`grid` {full}: not a sweepable setting (use data.source for sources, "
                              "`models` for networks; runtime settings do not change results)")
        if full.startswith("strategy.meta"):
            raise ConfigError(f"`grid` {full}: a sweep re-simulates rule combinations on each "
                              "trained model and trains no meta model; compare meta settings "
                              "in walk-forwards (each one's trials are charged in the DSR)")
        if full in model_axes or full in rule_axes:
            raise ConfigError(f"`grid` {full} is given twice; list all its values once")
        raw = [v.strip() for v in text.split(",")]
        if any(not v for v in raw):
            raise ConfigError(f"`grid` {item!r}: an empty value")
        values = []
        for v in raw:
            exp = base.override({full: v})
            values.append(getattr(getattr(exp, section), name))
        seen: dict[str, str] = {}
        for v, value in zip(raw, values, strict=True):
            if repr(value) in seen:
                same = (f"{seen[repr(value)]} and {v} are the same setting ({_fmt(value)})"
                        if seen[repr(value)] != v else f"{v} is listed twice")
                raise ConfigError(f"`grid` {full}: {same}; list each once (one setting is one "
                                  "trial)")
            seen[repr(value)] = v
        (model_axes if section in MODEL_SECTIONS else rule_axes)[full] = values
    return Grid(model_axes, rule_axes)


def check_size(n: int, what: str) -> None:
    """Refuse a sweep of more than ``MAX_COMBINATIONS`` combinations (``what``: its factors)."""
    if n > MAX_COMBINATIONS:
        raise ConfigError(f"{n:,} combinations ({what}): a sweep holds at most "
                          f"{MAX_COMBINATIONS:,}; give fewer `grid` values or models")


def combo_label(combo: dict) -> str:
    """``stop=atr:1.5 take_profit_r=2`` (leaf names, in axis order)."""
    return " ".join(f"{k.split('.', 1)[1]}={_fmt(v)}" for k, v in combo.items()) or "(base)"


def _fmt(v) -> str:
    return repr(v) if isinstance(v, str) and not v else (f"{v:g}" if isinstance(v, float)
                                                         else str(v))



def default_axes(grid: Grid) -> tuple[str | None, str | None]:
    multi = [k for k, v in grid.axes.items() if len(v) > 1]
    return (multi[0], multi[1]) if len(multi) >= 2 else (None, None)



__all__ = ["MAX_COMBINATIONS", "MODEL_SECTIONS", "RULE_SECTIONS", "Grid", "check_size",
           "combo_label", "default_axes", "parse_grid"]
