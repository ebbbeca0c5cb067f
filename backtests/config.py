"""One experiment config: frozen, typed, validated once, with an id.

An :class:`Experiment` holds every setting of a run in sections:

=============  ==========================================  =========================
section        what                                        in the config id?
=============  ==========================================  =========================
``data``       source, timezone, sort, point, day order,    yes
               instrument, account currency, period
``split``      train/validation fractions or end dates,    yes
               embargo bars
``dataset``    window, feature set, label kind             yes
``model``      network kind and preset                     yes
``train``      epochs, batch, lr, weight decay, patience,  yes, except ``device``
               seed, class weighting, grad clip, bf16,     (the run records it);
               compile, torch threads, device, sample      ``weighting``/``calibration``
               weighting, calibration                      only when set (``ID_SINCE``)
``strategy``   signal threshold and exit/sizing rules      yes
``costs``      spread, commission, slippage                yes
``backtest``   cash, period, auto threshold, random draws  yes
``runtime``    runs folder, workers                        no: they do not change results
=============  ==========================================  =========================

``NOT_IN_ID`` lists the excluded keys; everything else determines results and goes into the id,
except that a key added after ids were first recorded (``ID_SINCE``) enters it only when it is
set to something other than its default, so older ids stay what they were.
Defaults live here and in the section classes, nowhere else: the CLI's options default to
"not given" and only override what the user typed.

Overrides are ``section.field=value`` strings, type-checked against the field; a field name that
is unique across the config may stand alone (``threshold=0.6`` for ``strategy.threshold=0.6``).
Config files are TOML with the same sections; unknown sections or keys are refused.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import tomllib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from backtests.currency import check_instrument
from data.dataset import DatasetSpec
from data.errors import AttnbtError
from data.features import feature_names
from data.labels import horizon, is_trade_outcome
from models.config import WEIGHTINGS, TrainConfig
from models.presets import GBM_KIND
from models.presets import PRESETS as MODEL_PRESETS
from models.rules import KIND as RULE_KIND
from models.rules import rule_params
from strategy.fractal import Costs, FractalParams
from strategy.rules import parse_barriers

PERIODS = ("train", "val", "test", "all")
NOT_IN_ID = ("train.device", "runtime.runs_dir", "runtime.workers")
# Keys added after config ids were first recorded: at this value (their default) a key is left
# out of the id, so every id recorded before it existed stays (and the trials deduplicated on it);
# any other value enters the id. These defaults must therefore never change (a run at the old
# default would share the new one's id). Paper accounts leave them out of their stored settings.
ID_SINCE: dict[str, Any] = {"train.weighting": "none", "train.calibration": "none",
                            "strategy.barriers": "auto", "strategy.meta": False,
                            "strategy.meta_threshold": None, "strategy.meta_folds": 3,
                            "strategy.meta_epochs": None, "data.pool": False,
                            "backtest.threshold_grid": "absolute"}


class ConfigError(AttnbtError):
    """A setting that is unknown, mistyped or out of range; the message names its key."""


@dataclass(frozen=True)
class DataConfig:
    """Where the candles come from and how to read them."""

    source: str = "sample:EURUSD_H1"
    tz: str = "UTC"                      # zone of naive timestamps in the file
    sort: bool = False                   # sort unsorted input instead of refusing it
    point: float | None = None           # MT5 point size (price units per spread point)
    dayfirst: bool | None = None         # day/month order of ambiguous dates (None: from data)
    instrument: str | None = None        # e.g. EURUSD; None: from the source's name
    account_currency: str = "USD"
    start: str | None = None             # first bar used (UTC), None: the first
    end: str | None = None               # last bar used (UTC), None: the last
    pool: bool = False                   # walk-forward: one model on several sources' windows


@dataclass(frozen=True)
class SplitConfig:
    """The chronological train / validation / test split of the bars used."""

    train: float = 0.6                   # fraction of the bars
    val: float = 0.2
    train_end: str | None = None         # dates instead of fractions (both or neither)
    val_end: str | None = None
    embargo: int = 0                     # bars dropped after each boundary besides purging


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "attention"              # attention | dense | conv | lstm | rule (a baseline)
    preset: str = "article"


@dataclass(frozen=True)
class BacktestSettings:
    cash: float = 100_000.0
    period: str = "test"                 # train | val | test | all (the model's split)
    start: str | None = None             # overrides period
    end: str | None = None
    auto_threshold: bool = False         # choose the threshold on the model's validation bars
    threshold_grid: str = "absolute"     # the thresholds tried there: absolute | quantile
    random_draws: int = 1000             # random-entry draws for the p-value
    random_seed: int = 0


@dataclass(frozen=True)
class RuntimeSettings:
    """Where and how runs execute; never changes a result."""

    runs_dir: str | None = None
    workers: int = 1


@dataclass(frozen=True)
class FoldsConfig:
    """How a walk-forward or a sweep cuts each source's bars into folds: the keys ``folds.*``
    (``backtests.walkforward.FoldPlan`` is built from them and checks them together).

    Not a section of :class:`Experiment`: a config file has no ``[folds]`` table yet (the
    studies take these settings from their command's options), and folds never enter a config
    id (each task's id holds its own fold's dates).
    """

    train_bars: int = 2000
    val_bars: int = 500
    test_bars: int = 500
    step_bars: int | None = None       # default: test_bars
    expanding: bool = False
    embargo_bars: int = 0


FOLDS_KEYS = tuple(f"folds.{f.name}" for f in fields(FoldsConfig))


@dataclass(frozen=True)
class Experiment:
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    strategy: FractalParams = field(default_factory=FractalParams)
    costs: Costs = field(default_factory=Costs)
    backtest: BacktestSettings = field(default_factory=BacktestSettings)
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)

    def __post_init__(self) -> None:
        validate(self)

    # --- identity ------------------------------------------------------------------------------
    def to_dict(self, *, for_id: bool = False) -> dict:
        out = {}
        for f in fields(self):
            section = getattr(self, f.name)
            values = {g.name: getattr(section, g.name) for g in fields(section)}
            if for_id:
                values = {k: v for k, v in values.items() if f"{f.name}.{k}" not in NOT_IN_ID
                          and not _at_id_default(f"{f.name}.{k}", v, self)}
                if not values:
                    continue
            out[f.name] = values
        return out

    @property
    def id(self) -> str:
        """Hash of every result-determining field (all sections but ``NOT_IN_ID``)."""
        return config_id(self.to_dict(for_id=True))

    @property
    def train_id(self) -> str:
        """Hash of the fields that determine a trained model (data to training settings)."""
        d = self.to_dict(for_id=True)
        return config_id({k: d[k] for k in ("data", "split", "dataset", "model", "train")})

    @classmethod
    def from_dict(cls, d: dict, *, where: str = "config") -> Experiment:
        """Build from nested dicts (a TOML file, a saved run); unknown keys are refused."""
        if not isinstance(d, dict):
            raise ConfigError(f"{where}: expected a table of sections, got {type(d).__name__}")
        sections = {f.name: f for f in fields(cls)}
        kwargs = {}
        for name, values in d.items():
            if name not in sections:
                raise ConfigError(f"{where}: unknown section [{name}]; sections are "
                                  f"{', '.join(sections)}")
            if not isinstance(values, dict):
                raise ConfigError(f"{where}: [{name}] must be a table of settings")
            section_cls = _section_class(name)
            known = {g.name for g in fields(section_cls)}
            unknown = sorted(set(values) - known)
            if unknown:
                raise ConfigError(f"{where}: unknown key {name}.{unknown[0]}; [{name}] takes "
                                  f"{', '.join(sorted(known))}")
            typed = {k: _coerce(f"{name}.{k}", v, _field_type(section_cls, k))
                     for k, v in values.items()}
            kwargs[name] = _build_section(name, section_cls, typed)
        return cls(**kwargs)

    def override(self, assignments: list[str] | dict[str, Any]) -> Experiment:
        """A copy with ``key=value`` overrides applied (dotted or unique leaf keys)."""
        items = (assignments.items() if isinstance(assignments, dict)
                 else [_split_assignment(a) for a in assignments])
        changes: dict[str, dict[str, Any]] = {}
        for key, raw in items:
            section, name = resolve_key(key)
            value = raw
            if isinstance(raw, str):
                value = parse_value(f"{section}.{name}", raw,
                                    _field_type(_section_class(section), name))
            else:
                value = _coerce(f"{section}.{name}", raw, _field_type(_section_class(section), name))
            changes.setdefault(section, {})[name] = value
        kwargs = {}
        for section, values in changes.items():
            current = getattr(self, section)
            merged = {g.name: getattr(current, g.name) for g in fields(current)} | values
            kwargs[section] = _build_section(section, type(current), merged)
        return replace(self, **kwargs)


def _at_id_default(key: str, value: Any, exp: Experiment) -> bool:
    """Left out of the id: a later key at its default, where that default means what attnbt did
    before the key existed. ``strategy.barriers=auto`` trades a triple-barrier model with its
    label's exits (before the key: the strategy's own), so with ``triple:`` (and ``horizon:``)
    labels it enters."""
    if key == "strategy.barriers" and is_trade_outcome(exp.dataset.labels):
        return False
    return key in ID_SINCE and value == ID_SINCE[key]


def _build_section(name: str, cls: type, values: dict) -> Any:
    for key, value in values.items():   # ranges first, so the error names the key
        _check_value(f"{name}.{key}", value)
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"[{name}]: {exc}") from None


def config_id(payload: dict) -> str:
    """12 hex digits of the SHA-256 of canonical JSON (sorted keys, repr of floats)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def load_toml(path: str | Path) -> Experiment:
    """An experiment from a TOML file; unknown sections or keys are a ConfigError."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            d = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable TOML file ({exc})") from None
    return Experiment.from_dict(d, where=str(path))


# --- keys and values ---------------------------------------------------------------------------
@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """``typing.get_type_hints`` of a config class, once (a sweep overrides thousands of times)."""
    return typing.get_type_hints(cls)


def _section_class(name: str) -> type:
    return _hints(Experiment)[name]


def _field_type(cls: type, name: str) -> Any:
    return _hints(cls)[name]


@functools.cache
def _keys() -> tuple[str, ...]:
    return tuple(f"{s.name}.{g.name}" for s in fields(Experiment)
                 for g in fields(_section_class(s.name)))


def all_keys() -> list[str]:
    """Every ``section.field`` key of the config."""
    return list(_keys())


def resolve_key(key: str) -> tuple[str, str]:
    """(section, field) of a dotted key or a unique leaf name."""
    keys = all_keys()
    if "." in key:
        if key not in keys:
            raise ConfigError(f"unknown setting {key!r}", see="config keys")
        section, name = key.split(".", 1)
        return section, name
    matches = [k for k in keys if k.split(".", 1)[1] == key]
    if not matches:
        raise ConfigError(f"unknown setting {key!r}", see="config keys")
    if len(matches) > 1:
        raise ConfigError(f"{key!r} is ambiguous: say {' or '.join(matches)}")
    section, name = matches[0].split(".", 1)
    return section, name


def _split_assignment(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{text!r} is not a key=value setting")
    return key.strip(), value.strip()


def _unwrap(tp: Any) -> tuple[list[Any], bool]:
    """(member types, optional) of a possibly Optional/Union type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = list(typing.get_args(tp))
        optional = type(None) in args
        return [a for a in args if a is not type(None)], optional
    return [tp], False


def parse_value(key: str, text: str, tp: Any) -> Any:
    """A command-line string as a value of type ``tp`` (``none`` for an optional field)."""
    members, optional = _unwrap(tp)
    if not text.strip() and key not in BLANK_OK:
        raise ConfigError(f"{key} is empty; give a value" + (", or none to leave it unset"
                                                             if optional else ""))
    if optional and text.lower() in ("none", "null"):
        return None
    for member in members:
        try:
            if member is bool:
                low = text.lower()
                if low in ("true", "yes", "1", "on"):
                    return True
                if low in ("false", "no", "0", "off"):
                    return False
                raise ValueError
            if member is int:
                return int(text)
            if member is float:
                return float(text)
            if typing.get_origin(member) is Literal:
                if text in typing.get_args(member):
                    return text
                raise ValueError
            if member is str:
                return text
        except ValueError:
            continue
    raise ConfigError(f"{key}: {text!r} is not {_type_name(tp)}")


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """A value read from TOML/JSON checked against ``tp`` (ints are accepted for floats)."""
    members, optional = _unwrap(tp)
    if value is None and optional:
        return None
    for member in members:
        if member is bool and isinstance(value, bool):
            return value
        if member is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if member is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if member is str and isinstance(value, str):
            return value
        if typing.get_origin(member) is Literal and value in typing.get_args(member):
            return value
    raise ConfigError(f"{key}: {value!r} is not {_type_name(tp)}")


def _type_name(tp: Any) -> str:
    members, optional = _unwrap(tp)
    names = []
    for m in members:
        if typing.get_origin(m) is Literal:
            names.append(" | ".join(repr(a) for a in typing.get_args(m)))
        else:
            names.append({bool: "true/false", int: "a whole number", float: "a number",
                          str: "text"}.get(m, str(m)))
    return " or ".join(names) + (" (or none)" if optional else "")


# --- validation: every field's range, once ------------------------------------------------------
# key → (low, high, low inclusive, high inclusive); numbers must also be finite.
RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "data.point": (0, 1e6, False, True),
    "split.train": (0, 1, False, False),
    "split.val": (0, 1, False, False),
    "split.embargo": (0, 1e9, True, True),
    "dataset.window": (2, 10_000, True, True),
    "train.epochs": (1, 1e6, True, True),
    "train.batch_size": (1, 1 << 24, True, True),
    "train.lr": (0, 10, False, True),
    "train.weight_decay": (0, 10, True, True),
    "train.patience": (1, 1e6, True, True),
    "train.seed": (0, 2**32 - 1, True, True),
    "train.max_grad_norm": (0, 1e9, True, True),
    "train.threads": (1, 1024, True, True),
    "strategy.threshold": (0, 1, True, True),
    "strategy.stop_buffer": (0, 1e9, True, True),
    "strategy.take_profit_r": (0, 1e6, True, True),
    "strategy.max_hold": (0, 1e9, True, True),
    "strategy.units": (0, 1e15, False, True),
    "strategy.risk_fraction": (0, 1, False, False),
    "strategy.max_leverage": (0, 1e6, False, True),
    "strategy.take_profit_atr": (0, 1e6, True, True),
    "strategy.atr_period": (1, 10_000, True, True),
    "strategy.pip": (0, 1e6, False, True),
    "strategy.min_stop_spreads": (0, 1e6, True, True),
    "strategy.min_margin": (0, 1, True, True),
    "strategy.kelly_fraction": (0, 1, False, True),
    "strategy.meta_threshold": (0, 1, False, False),
    "strategy.meta_folds": (2, 20, True, True),
    "strategy.meta_epochs": (1, 1e6, True, True),
    "costs.spread": (0, 1e9, True, True),
    "costs.default_spread": (0, 1e9, True, True),
    "costs.commission": (0, 1e9, True, True),
    "costs.slippage": (0, 1e9, True, True),
    "backtest.cash": (0, 1e15, False, True),
    "backtest.random_draws": (1, 1_000_000, True, True),
    "backtest.random_seed": (0, 2**32 - 1, True, True),
    "runtime.workers": (1, 1024, True, True),
}
CHOICES: dict[str, tuple[str, ...]] = {
    "model.kind": tuple(MODEL_PRESETS),
    "train.class_weighting": ("balanced", "none"),
    "train.weighting": WEIGHTINGS,
    "train.calibration": ("none", "isotonic", "platt"),
    "train.device": ("auto", "cpu", "cuda"),
    "strategy.sizing": ("fixed", "risk", "kelly"),
    "backtest.period": PERIODS,
    "backtest.threshold_grid": ("absolute", "quantile"),   # simulation.THRESHOLD_GRIDS
}
# Named settings with a grammar (``swing:2``) are checked by the function that reads them.
CHECKS: dict[str, Callable[[Any], object]] = {"dataset.labels": horizon,
                                              "dataset.features": feature_names,
                                              "strategy.barriers": parse_barriers,
                                              "data.instrument": check_instrument}
# Text settings whose empty value means something (no hours filter); any other is refused empty
# rather than read as "not set" (`--from ''` is a mistake, not the whole period).
BLANK_OK = ("strategy.hours",)


def _check_value(key: str, value: Any) -> None:
    """Raise ConfigError when ``value`` is out of ``key``'s range, not one of its choices or
    refused by its check."""
    if key in RANGES and value is not None and not isinstance(value, bool | str):
        lo, hi, lo_in, hi_in = RANGES[key]
        ok = math.isfinite(value) and (lo <= value if lo_in else lo < value) and (
            value <= hi if hi_in else value < hi)
        if not ok:
            lo_s = "[" if lo_in else "("
            hi_s = "]" if hi_in else ")"
            raise ConfigError(f"{key} = {value!r} is out of range {lo_s}{_num(lo)}, {_num(hi)}{hi_s}")
    if key in CHOICES and value not in CHOICES[key]:
        raise ConfigError(f"{key} = {value!r}; choose {', '.join(CHOICES[key])}")
    if key in CHECKS:
        try:
            CHECKS[key](value)
        except ValueError as exc:
            raise ConfigError(f"{key}: {exc}") from None


def check_preset(kind: str, preset: str, where: str = "model.preset") -> None:
    """ConfigError unless ``preset`` is a preset of model ``kind`` (a rule baseline's preset
    may carry its parameter: ``newhl-range:1.5``)."""
    if kind == RULE_KIND:
        try:
            rule_params(preset)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc} (a rule baseline needs no training: name it, e.g. "
                              "rule/newhl, among the models a backtest, walk-forward or sweep "
                              "compares)") from None
        return
    presets = MODEL_PRESETS[kind]
    if preset not in presets:
        hint = (" (gbm is trained per fold by a walk-forward or sweep that names it among its "
                "models, never alone)" if kind == GBM_KIND else "")
        raise ConfigError(f"{where} = {preset!r} is not a preset of {kind}; "
                          f"choose {', '.join(presets)}{hint}")


def validate(exp: Experiment) -> None:
    """Raise ConfigError naming the first key whose value is out of range."""
    for key in (*RANGES, *CHOICES, *CHECKS):
        section, name = key.split(".")
        _check_value(key, getattr(getattr(exp, section), name))
    check_preset(exp.model.kind, exp.model.preset, "model.preset")
    for key in all_keys():
        section, name = key.split(".")
        value = getattr(getattr(exp, section), name)
        if isinstance(value, str) and not value.strip() and key not in BLANK_OK:
            raise ConfigError(f"{key} is empty; give a value")
    cur = exp.data.account_currency
    if not re.fullmatch(r"[A-Z]{3}", cur):
        raise ConfigError(f"data.account_currency = {cur!r}; give 3 capital letters, e.g. USD")
    if exp.split.train + exp.split.val >= 1:
        raise ConfigError("split.train + split.val must leave room for a test part (< 1)")
    if (exp.split.train_end is None) != (exp.split.val_end is None):
        raise ConfigError("give both split.train_end and split.val_end, or neither")


def _num(v: float) -> str:
    return f"{v:g}" if abs(v) < 1e6 else f"{v:.0e}"


def describe_keys() -> list[tuple[str, str, str, bool]]:
    """(key, type, default, in id) for every setting, for `attnbt config keys`."""
    default = Experiment()
    rows = []
    for key in all_keys():
        section, name = key.split(".")
        tp = _field_type(_section_class(section), name)
        rows.append((key, _type_name(tp), repr(getattr(getattr(default, section), name)),
                     key not in NOT_IN_ID))
    return rows


def as_toml(exp: Experiment) -> str:
    """The config as TOML text (None values are left out: they are the defaults' 'not set')."""
    lines = []
    for section, values in exp.to_dict().items():
        lines.append(f"[{section}]")
        for k, v in values.items():
            if v is None:
                continue
            lines.append(f"{k} = {json.dumps(v) if not isinstance(v, float) else repr(v)}")
        lines.append("")
    return "\n".join(lines)


__all__ = [
    "FOLDS_KEYS", "BacktestSettings", "ConfigError", "DataConfig", "Experiment", "FoldsConfig",
    "ID_SINCE", "ModelConfig", "NOT_IN_ID",
    "RuntimeSettings", "SplitConfig", "all_keys", "as_toml", "config_id",
    "describe_keys", "load_toml", "parse_value", "resolve_key", "validate",
]

