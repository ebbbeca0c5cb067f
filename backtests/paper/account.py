"""A paper account's settings, pinned at ``init``: typed and frozen.

On disk they are the ``config`` column of the journal's ``account`` row: one JSON object whose
keys are the fields of :class:`AccountSettings` in their order (``format`` only for a CSV
source), exactly as attnbt has always written it. The row is written once, at init, and never
rewritten; accounts made before ``instrument`` and ``account_currency`` were pinned read as
``None`` and ``"USD"``, those made before ``instrument_from``, ``bars_per_year`` and ``price_digits`` as ``None``
(their statistics then annualise at the bars per year of the paper period itself).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

import pandas as pd

from backtests.config import ID_SINCE
from data.errors import AttnbtError
from strategy.fractal import Costs, FractalParams


class PaperError(AttnbtError):
    """A paper account that is unknown, misconfigured, busy or whose model changed."""


class PaperBusy(PaperError):
    """Another step holds the account."""


# settings an account made by an older attnbt may lack, and what they meant then
LEGACY_DEFAULTS: dict[str, Any] = {"format": None, "instrument": None, "account_currency": "USD",
                                   "instrument_from": None, "bars_per_year": None,
                                   "price_digits": None}
ADDED_LATER = ("instrument_from", "bars_per_year", "price_digits")   # written only when set (older rows lack them)


@dataclass(frozen=True)
class AccountSettings:
    """What an account trades and how (fields in the order they are written on disk)."""

    source: str                  # the resolved CSV path, or yahoo:SYMBOL:INTERVAL
    kind: str                    # "csv" or "yahoo"
    tz: str                      # CSV reading options pinned at init (Yahoo: UTC, None, None)
    point: float | None
    dayfirst: bool | None
    encoding: str | None         # CSV: utf-8 or cp1252
    format: str | None           # CSV: the dialect data.sources read (not written for Yahoo)
    head: str                    # CSV: the bytes before the first data row, in hex
    train_run: str
    train_path: str
    model: str
    model_hash: str
    params: FractalParams
    costs: Costs
    cash: float
    start: str                   # "after", "first" or the bar time given at init
    timeframe_s: float
    gap_allowance_s: float       # the longest pause (weekends not counted) traded across
    spread: bool                 # the source has a spread column
    instrument: str | None
    account_currency: str
    history_bars: int
    created_at_bar: str | None   # the first bar traded, None: the bars appended after init
    registry_run: str
    instrument_from: str | None   # where ``instrument`` came from (said at init and in the report)
    bars_per_year: float | None   # annualisation, inferred at init from the source's history
    price_digits: int | None      # decimals prices are printed at (None: 5)

    @property
    def timeframe(self) -> pd.Timedelta:
        return pd.Timedelta(seconds=self.timeframe_s)

    @property
    def gap_allowance(self) -> pd.Timedelta:
        return pd.Timedelta(seconds=self.gap_allowance_s)

    def to_dict(self) -> dict[str, Any]:
        """The settings as stored: plain JSON values, ``format`` only for a CSV source, the
        settings added later only where set."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "format" and self.kind != "csv":
                continue
            if f.name in ADDED_LATER and getattr(self, f.name) is None:
                continue     # an older account's row stays as it was written
            value = getattr(self, f.name)
            out[f.name] = value.to_dict() if isinstance(value, FractalParams | Costs) else value
        # strategy keys added later (config.ID_SINCE) stay out at their defaults, so an
        # account's stored text reads and writes as it was
        out["params"] = {k: v for k, v in out["params"].items()
                         if not (f"strategy.{k}" in ID_SINCE and v == ID_SINCE[f"strategy.{k}"])}
        return out

    def to_json(self) -> str:
        """The ``config`` text of the ``account`` row."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> AccountSettings:
        """Settings from their stored form; a key this attnbt does not know, a missing one or a
        value it cannot read is a PaperError (nothing is guessed)."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(stored) - set(names))
        if unknown:
            raise PaperError(f"the account's settings hold {', '.join(unknown)}, which this "
                             "attnbt does not know (made by a newer one?): upgrade attnbt")
        values = {**LEGACY_DEFAULTS, **stored}
        missing = [n for n in names if n not in values]
        if missing:
            raise PaperError(f"the account's settings lack {', '.join(missing)}; the journal is "
                             "damaged: init a new account")
        try:
            values["params"] = FractalParams(**values["params"])
            values["costs"] = Costs(**values["costs"])
        except (TypeError, ValueError) as exc:
            raise PaperError(f"the account's strategy settings cannot be read ({exc}); init a "
                             "new account") from None
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> AccountSettings:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class Account:
    """An account: its name, when it was made and its settings (the ``account`` row)."""

    name: str
    created: str
    settings: AccountSettings

    @property
    def params(self) -> FractalParams:
        return self.settings.params

    @property
    def costs(self) -> Costs:
        return self.settings.costs

    @property
    def timeframe(self) -> pd.Timedelta:
        return self.settings.timeframe


__all__ = ["LEGACY_DEFAULTS", "Account", "AccountSettings", "PaperBusy", "PaperError"]
