"""Yahoo Finance candles through yfinance, with an on-disk Parquet cache.

The first ``fetch`` downloads; later runs read the cache offline (``yahoo:SYMBOL:INTERVAL``), and a
later ``fetch`` tops the cache up with only the bars it lacks.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from data.atomic import atomic_write
from data.errors import DataError
from data.validate import to_utc, validate_frame

# Yahoo serves intraday history only this far back (days before today).
INTERVAL_LIMIT_DAYS = {"1m": 7, "2m": 60, "5m": 60, "15m": 60, "30m": 60, "90m": 60,
                       "60m": 730, "1h": 730}
INTERVALS = (*INTERVAL_LIMIT_DAYS, "1d", "5d", "1wk", "1mo", "3mo")

Downloader = Callable[..., pd.DataFrame]


def cache_root(cache_dir: Path | None = None) -> Path:
    """The cache directory: the argument, ``$ATTNBT_CACHE`` or ``~/.cache/attnbt``."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("ATTNBT_CACHE", Path.home() / ".cache" / "attnbt"))


def cache_path(symbol: str, interval: str, cache_dir: Path | None = None) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in symbol)
    return cache_root(cache_dir) / "yahoo" / f"{safe}_{interval}.parquet"


def load_cached(symbol: str, interval: str = "1h", cache_dir: Path | None = None) -> pd.DataFrame:
    """The cached candles of ``symbol`` (no network); a clear error if never fetched."""
    source = f"yahoo:{symbol}:{interval}"
    path = cache_path(symbol, interval, cache_dir)
    if not path.exists():
        raise DataError("not in the cache; fetch it first (needs the network once)", source=source,
                        rule="not cached", see=f"data fetch {symbol} --interval {interval}")
    frame = validate_frame(_read_cache(path, source), source=f"{source} ({path})")
    frame.attrs["source"] = source
    return frame


def _read_cache(path: Path, source: str) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises its own types for damaged files
        raise DataError(f"the cache file {path} cannot be read ({type(exc).__name__}); delete it "
                        "and fetch again", source=source, rule="damaged cache") from None


def fetch(symbol: str, interval: str = "1h", start: str | pd.Timestamp | None = None,
          end: str | pd.Timestamp | None = None, *, cache_dir: Path | None = None,
          downloader: Downloader | None = None, now: pd.Timestamp | None = None) -> pd.DataFrame:
    """Download ``symbol`` into the cache (only the bars missing from it) and return the cache."""
    source = f"yahoo:{symbol}:{interval}"
    if interval not in INTERVALS:
        raise DataError(f"unknown interval {interval!r}; use one of {', '.join(INTERVALS)}",
                        source=source, rule="bad interval")
    now = to_utc(now) if now is not None else pd.Timestamp.now(tz="UTC")
    end_ts = to_utc(end) if end is not None else now
    limit = INTERVAL_LIMIT_DAYS.get(interval)
    earliest = now - pd.Timedelta(days=limit) if limit else None
    start_ts = to_utc(start) if start is not None else (earliest or end_ts - pd.Timedelta(days=3650))
    if earliest is not None and start_ts < earliest - pd.Timedelta(hours=1):
        raise DataError(
            f"Yahoo serves {interval} bars only for the last {limit} days; start on or "
            f"after {earliest.date()} or a daily interval", source=source, rule="interval limit")
    if start_ts >= end_ts:
        raise DataError(f"start {start_ts} is not before end {end_ts}", source=source,
                        rule="bad range")

    path = cache_path(symbol, interval, cache_dir)
    cached = _read_cache(path, source) if path.exists() else None
    pieces = []
    if cached is None or cached.empty:
        pieces.append(_download(symbol, interval, start_ts, end_ts, downloader, source))
        covered_from = start_ts
    else:
        # The cache covers from the earliest start asked for, not only from its first bar: a
        # range that began on a weekend or a holiday is not asked for again.
        covered_from = min(cached.index[0], to_utc(cached.attrs.get("requested_start",
                                                                  cached.index[0])))
        if start_ts < covered_from:
            pieces.append(_download(symbol, interval, start_ts, covered_from, downloader, source,
                                    allow_empty=True))
            covered_from = start_ts
        # Bars before the end asked for last time (and before that moment) are complete.
        covered_to = to_utc(cached.attrs.get("covered_to", cached.index[-1]))
        if end_ts > max(covered_to, cached.index[-1]):
            # re-fetch the last cached bar: it may have been partial
            pieces.append(_download(symbol, interval, cached.index[-1], end_ts, downloader, source,
                                    allow_empty=True))
        else:
            end_ts = max(covered_to, cached.index[-1])
    merged = _merge(cached, pieces)
    merged = validate_frame(merged, source=source)
    merged.attrs["requested_start"] = covered_from.isoformat()
    merged.attrs["covered_to"] = min(end_ts, now).isoformat()
    atomic_write(path, merged.to_parquet)
    merged.attrs["source"] = source
    return merged


def flatten_yfinance(frame: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """yfinance's (Price, Ticker) MultiIndex columns → plain lower-case OHLCV columns."""
    if isinstance(frame.columns, pd.MultiIndex):
        tickers = frame.columns.get_level_values(-1)
        if symbol in set(tickers):
            frame = frame.xs(symbol, axis=1, level=-1)
        else:
            frame = frame.droplevel(-1, axis=1)
    frame = frame.rename(columns=lambda c: str(c).strip().lower())
    frame = frame.loc[:, ~frame.columns.duplicated()]
    keep = [c for c in ("open", "high", "low", "close", "volume") if c in frame]
    out = frame[keep].astype("float64")
    index = pd.DatetimeIndex(out.index)
    out.index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    return out


# What a failed connection says, through requests, urllib3, curl_cffi (yfinance ≥ 0.2.5x) or the OS.
_OFFLINE = re.compile(
    r"resolve host|name resolution|name or service not known|nodename nor servname|getaddrinfo"
    r"|failed to connect|failed to establish|network is unreachable|no route to host"
    r"|connection (?:refused|reset|aborted)|timed? ?out|curl: \((?:5|6|7|28|35|56)\)"
    r"|connectionerror|dnserror|max retries", re.IGNORECASE)
# Loggers that yfinance and its HTTP stack write to while downloading.
_NOISY_LOGGERS = ("yfinance", "curl_cffi", "urllib3", "requests", "peewee")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.messages.append(record.getMessage())
        except Exception:  # a malformed record must not break the fetch
            self.messages.append(str(record.msg))


@contextmanager
def _quiet() -> Iterator[list[str]]:
    """Keep yfinance's logging and warnings out of the terminal; yield what they said."""
    handler = _Collect()
    saved = []
    for name in _NOISY_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.handlers[:], logger.propagate))
        logger.handlers, logger.propagate = [handler], False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield handler.messages
            handler.messages.extend(str(w.message) for w in caught)
    finally:
        for logger, handlers, propagate in saved:
            logger.handlers, logger.propagate = handlers, propagate


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _offline(source: str, said: str) -> DataError:
    return DataError(f"cannot reach Yahoo Finance: the network is unreachable or Yahoo did not "
                     f"answer ({_one_line(said, 120)})", source=source, rule="network")


def _download(symbol, interval, start, end, downloader, source, allow_empty=False):
    """One yfinance request; its noise is kept quiet and failures become one-line DataErrors."""
    with _quiet() as said:
        if downloader is None:
            import yfinance as yf

            downloader = yf.download
        try:
            raw = downloader(symbol, start=start, end=end, interval=interval, auto_adjust=False,
                             progress=False, multi_level_index=True)
        except Exception as exc:  # yfinance raises many network/JSON error types
            what = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, ConnectionError | TimeoutError) or _OFFLINE.search(what):
                raise _offline(source, what) from None
            raise DataError(f"could not download from Yahoo Finance ({_one_line(what)})",
                            source=source, rule="network") from None
    if raw is None or raw.empty:
        # yfinance logs a failed request and answers with an empty frame
        offline = next((m for m in said if _OFFLINE.search(m)), None)
        if offline is not None:
            raise _offline(source, offline)
        if allow_empty:
            return None
        told = next((m for m in reversed(said) if m.strip()), None)
        raise DataError(f"Yahoo Finance returned no bars for {start} → {end}; check the symbol "
                        "and the dates" + (f" (yfinance: {_one_line(told)})" if told else ""),
                        source=source, rule="empty answer")
    return flatten_yfinance(raw, symbol)


def _merge(cached: pd.DataFrame | None, pieces: list[pd.DataFrame | None]) -> pd.DataFrame:
    frames = [p for p in pieces if p is not None]
    if cached is not None:
        frames.insert(0, cached[[c for c in cached.columns if c in frames[0].columns]]
                      if frames else cached)
    if not frames:
        return cached
    merged = pd.concat(frames)
    # Fresh bars win over cached ones at the same timestamp (Yahoo's last bar may be partial).
    merged = merged[~merged.index.duplicated(keep="last")]
    return merged.sort_index()
