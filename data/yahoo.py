"""Yahoo Finance candles through yfinance, with an on-disk Parquet cache.

The first ``fetch`` downloads; later runs read the cache offline (``yahoo:SYMBOL:INTERVAL``), and a
later ``fetch`` tops the cache up with only the bars it lacks.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from data.errors import DataError
from data.validate import validate_frame

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
    path = cache_path(symbol, interval, cache_dir)
    if not path.exists():
        raise DataError(f"not in the cache; run `attnbt data fetch {symbol} --interval {interval}`",
                        source=f"yahoo:{symbol}:{interval}", rule="not cached")
    frame = pd.read_parquet(path)
    frame.attrs["source"] = f"yahoo:{symbol}:{interval}"
    return frame


def fetch(symbol: str, interval: str = "1h", start: str | pd.Timestamp | None = None,
          end: str | pd.Timestamp | None = None, *, cache_dir: Path | None = None,
          downloader: Downloader | None = None, now: pd.Timestamp | None = None) -> pd.DataFrame:
    """Download ``symbol`` into the cache (only the bars missing from it) and return the cache."""
    source = f"yahoo:{symbol}:{interval}"
    if interval not in INTERVALS:
        raise DataError(f"unknown interval {interval!r}; use one of {', '.join(INTERVALS)}",
                        source=source, rule="bad interval")
    now = (now or pd.Timestamp.now(tz="UTC")).tz_convert("UTC")
    end_ts = _utc(end) if end is not None else now
    limit = INTERVAL_LIMIT_DAYS.get(interval)
    earliest = now - pd.Timedelta(days=limit) if limit else None
    start_ts = _utc(start) if start is not None else (earliest or end_ts - pd.Timedelta(days=3650))
    if earliest is not None and start_ts < earliest - pd.Timedelta(hours=1):
        raise DataError(
            f"Yahoo serves {interval} bars only for the last {limit} days; use --start on or "
            f"after {earliest.date()} or a daily interval", source=source, rule="interval limit")
    if start_ts >= end_ts:
        raise DataError(f"start {start_ts} is not before end {end_ts}", source=source,
                        rule="bad range")

    path = cache_path(symbol, interval, cache_dir)
    cached = pd.read_parquet(path) if path.exists() else None
    pieces = []
    if cached is None or cached.empty:
        pieces.append(_download(symbol, interval, start_ts, end_ts, downloader, source))
    else:
        if start_ts < cached.index[0]:
            pieces.append(_download(symbol, interval, start_ts, cached.index[0], downloader, source,
                                    allow_empty=True))
        if end_ts > cached.index[-1]:  # re-fetch the last cached bar: it may have been partial
            pieces.append(_download(symbol, interval, cached.index[-1], end_ts, downloader, source,
                                    allow_empty=True))
    merged = _merge(cached, pieces)
    merged = validate_frame(merged, source=source)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    merged.to_parquet(tmp)
    os.replace(tmp, path)
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


def _download(symbol, interval, start, end, downloader, source, allow_empty=False):
    if downloader is None:
        import yfinance as yf

        downloader = yf.download
    try:
        raw = downloader(symbol, start=start, end=end, interval=interval, auto_adjust=False,
                         progress=False, multi_level_index=True)
    except Exception as exc:  # yfinance raises many network/JSON error types
        raise DataError(f"could not download from Yahoo Finance ({type(exc).__name__}: {exc})",
                        source=source, rule="network") from None
    if raw is None or raw.empty:
        if allow_empty:
            return None
        raise DataError(f"Yahoo Finance returned no bars for {start} → {end}; check the symbol "
                        "and the dates", source=source, rule="empty answer")
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


def _utc(value) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
