"""Which instrument is traded, and how its P&L becomes money in the account currency.

An FX pair ``BASEQUOTE`` (e.g. EURUSD) makes P&L in the quote currency. With the account in:
- the quote currency (EURUSD, account USD): no conversion;
- the base currency (USDCHF, account USD): P&L in CHF converted at each bar's close, 1 / close;
- a third currency (EURGBP, account USD): a conversion series would be needed; refused.
An instrument that is not a six-letter pair (a stock, an index) is taken as quoted in the account
currency, and the report says so. Given by the user (``--instrument``), such an instrument is
written ``custom:SYMBOL``, so that a mistyped pair is refused rather than traded unconverted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from data.errors import DataError

CURRENCIES = {"USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "NZD", "SEK", "NOK", "DKK", "PLN",
              "HUF", "CZK", "TRY", "ZAR", "MXN", "SGD", "HKD", "CNH", "CNY", "RUB", "INR", "XAU",
              "XAG", "BTC", "ETH"}
_PAIR = re.compile(r"(?<![A-Z])([A-Z]{3})/?([A-Z]{3})(?![A-Z])")
CUSTOM = "custom:"       # --instrument custom:SPY: not a currency pair, priced in the account currency


@dataclass(frozen=True)
class Conversion:
    instrument: str | None       # e.g. "USDCHF"; None when not known
    quote: str | None            # the currency P&L is made in
    account: str
    rule: str                    # "none" | "1/close"

    def describe(self) -> str:
        if self.quote is None:
            return (f"{self.instrument or 'instrument unknown'}: not a currency pair; prices "
                    f"taken as quoted in the account currency ({self.account})")
        if self.rule == "none":
            return f"{self.instrument}: P&L in {self.quote} = the account currency"
        return (f"{self.instrument}: P&L in {self.quote} converted to {self.account} at each "
                f"bar's close (1 / close)")


TIMEFRAME_SUFFIXES = ("M1", "M5", "M15", "M30", "H1", "H4", "D1", "W1", "MN1")


def check_instrument(given: str | None) -> None:
    """Refuse (ValueError) a given instrument that is neither a pair of known currencies
    (``EURUSD``, ``EUR/USD``) nor marked ``custom:SYMBOL``; None (from the source's name) passes."""
    if given is None:
        return
    body = given.removeprefix(CUSTOM)
    pair = re.fullmatch(r"([A-Za-z]{3})/?([A-Za-z]{3})", body)
    known = pair is not None and pair[1].upper() in CURRENCIES and pair[2].upper() in CURRENCIES
    if known and body != body.upper():
        raise ValueError(f"{given!r}; write the pair in capitals: {body.upper()}")
    if body != given:
        if not re.fullmatch(r"[A-Za-z0-9./^&_-]{1,16}", body):
            raise ValueError(f"{given!r}; write custom:SYMBOL with 1 to 16 letters, digits or "
                             ". / ^ & _ -")
        if known:
            raise ValueError(f"{given!r} is a currency pair; give it as {body} (its P&L is "
                             "converted as a pair's)")
        return
    if not known:
        symbol = re.sub(r"[^A-Za-z0-9./^&_-]", "", given)[:16] or "SPY"
        raise ValueError(f"{given!r} is not a pair of known currencies "
                         f"({', '.join(sorted(CURRENCIES))}) such as EURUSD or EUR/USD; an "
                         "instrument priced in the account currency (a stock, an index) is "
                         f"written custom:{symbol}")


def instrument_of(source: str | None, given: str | None = None) -> str | None:
    """The instrument: ``given``, else a currency pair named in the source (``sample:EURUSD_H1``,
    ``yahoo:USDCHF=X:1h``, ``exports/GBPUSD_M5.csv``), else the symbol it names (``yahoo:SPY:1d``
    → SPY, ``prices_D1.csv`` → prices); None without a source."""
    if given:
        if given.startswith(CUSTOM):
            return given.removeprefix(CUSTOM)
        return given.replace("/", "").upper()
    if not source:
        return None
    pair = pair_named(source)
    if pair:
        return pair
    kind, sep, rest = str(source).partition(":")
    if sep and kind == "yahoo":
        return rest.split(":")[0]
    name = rest if sep and kind == "sample" else Path(str(source)).stem
    head, _, tail = name.rpartition("_")
    return head if head and tail.upper() in TIMEFRAME_SUFFIXES else name


def pair_named(source: str | None) -> str | None:
    """The currency pair a source's name holds (``sample:EURUSD_H1``, ``yahoo:USDCHF=X:1h``,
    ``exports/GBPUSD_M5.csv`` → EURUSD, USDCHF, GBPUSD), else None (``live.csv``)."""
    if not source:
        return None
    kind, sep, rest = str(source).partition(":")
    text = rest if sep and kind in ("sample", "yahoo") else Path(str(source)).name
    for base, quote in _PAIR.findall(text.upper().replace("_", " ").replace("=", " ")):
        if base in CURRENCIES and quote in CURRENCIES:
            return base + quote
    return None


def conversion(source: str | None, instrument: str | None, account: str) -> Conversion:
    """How P&L becomes account money for this instrument, or a DataError for a cross."""
    account = account.upper()
    inst = instrument_of(source, instrument)
    if inst is None or len(inst) != 6 or inst[:3] not in CURRENCIES or inst[3:] not in CURRENCIES:
        return Conversion(inst, None, account, "none")
    base, quote = inst[:3], inst[3:]
    if quote == account:
        return Conversion(inst, quote, account, "none")
    if base == account:
        return Conversion(inst, quote, account, "1/close")
    raise DataError(f"{inst} makes P&L in {quote}, and the account is in {account}: converting "
                    f"needs a {quote}{account} price series, which attnbt does not take yet; set "
                    f"the account currency to {quote} or {base}", rule="account currency")


def conversion_of(data, source: str | None = None) -> Conversion:
    """The conversion an experiment's data settings (``DataConfig``: source, instrument,
    account currency) ask for; ``source`` replaces theirs. Backtest, walk-forward and sweep book
    P&L by this one rule (paper trading pins the same three settings)."""
    return conversion(source or data.source, data.instrument, data.account_currency)


def price_digits(candles: pd.DataFrame | None, instrument: str | None = None) -> int:
    """Decimals to print this instrument's prices at: those of its data when its prices sit on
    a grid of 10^-d for d ≤ 6 (the MT5 point, or the finest precision most prices use: 5 for the
    EURUSD sample, 3 for a USDJPY export); else a currency pair's convention (5 decimals, 3 with
    a JPY quote); else 5 significant digits of the median close (2 decimals for a price of 450)."""
    from data.points import infer_point

    point = None if candles is None else candles.attrs.get("point")
    if point is None and candles is not None and len(candles):
        try:
            point = infer_point(candles.iloc[-5000:], max_digits=6)
        except DataError:
            point = None          # float noise (a Yahoo series): not on a decimal grid
    if point is not None and 0 < point <= 1:
        return int(round(-np.log10(point)))
    inst = instrument_of(None, instrument) if instrument else None
    if inst and len(inst) == 6 and inst[:3] in CURRENCIES and inst[3:] in CURRENCIES:
        return 3 if inst[3:] == "JPY" else 5
    if candles is not None and len(candles):
        level = float(np.nanmedian(np.abs(candles["close"].to_numpy(dtype=float))))
        if np.isfinite(level) and level > 0:
            return int(min(8, max(0, 4 - np.floor(np.log10(level)))))
    return 5


def rates(candles: pd.DataFrame, conv: Conversion) -> np.ndarray | None:
    """Account currency per unit of quote currency at each bar's close (None: no conversion)."""
    if conv.rule == "none":
        return None
    return 1.0 / candles["close"].to_numpy(dtype=float)


__all__ = ["CUSTOM", "TIMEFRAME_SUFFIXES", "Conversion", "check_instrument", "conversion",
           "conversion_of", "instrument_of", "pair_named", "price_digits", "rates"]
