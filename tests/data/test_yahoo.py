"""Yahoo Finance through an injected downloader shaped like yfinance 0.2.5x+/1.x (no network)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from candle_helpers import assert_canonical

from data import DataError, load
from data.yahoo import cache_path, fetch, flatten_yfinance

SYMBOL = "EURUSD=X"
NOW = pd.Timestamp("2025-06-30 12:00", tz="UTC")


def market(start: str = "2025-05-01", end: str = "2025-06-30 12:00") -> pd.DataFrame:
    """Hourly FX bars, closed from Friday 21:00 to Sunday 21:00 UTC, as plain OHLCV."""
    index = pd.date_range(start, end, freq="h", tz="UTC", inclusive="left")
    dow, hour = index.day_of_week, index.hour
    open_market = ~((dow == 5) | ((dow == 4) & (hour >= 21)) | ((dow == 6) & (hour < 21)))
    index = index[open_market]
    rng = np.random.default_rng(0)
    close = 1.13 + np.cumsum(rng.normal(0, 0.0008, len(index)))
    open_ = np.r_[close[0], close[:-1]]
    return pd.DataFrame({
        "Open": open_, "High": np.maximum(open_, close) + 0.0004,
        "Low": np.minimum(open_, close) - 0.0004, "Close": close, "Volume": 0}, index=index)


def yfinance_shaped(bars: pd.DataFrame, symbol: str = SYMBOL) -> pd.DataFrame:
    """What ``yf.download(symbol, auto_adjust=False, multi_level_index=True)`` returns."""
    out = pd.DataFrame({
        ("Adj Close", symbol): bars["Close"], ("Close", symbol): bars["Close"],
        ("High", symbol): bars["High"], ("Low", symbol): bars["Low"],
        ("Open", symbol): bars["Open"], ("Volume", symbol): bars["Volume"].astype("int64"),
    }, index=bars.index.tz_convert("Europe/London").rename("Datetime"))
    out.columns = pd.MultiIndex.from_tuples(out.columns, names=["Price", "Ticker"])
    return out


class FakeYahoo:
    """Answers like yfinance (start inclusive, end exclusive) and records what it was asked."""

    def __init__(self, bars: pd.DataFrame | None = None, error: Exception | None = None):
        self.bars = market() if bars is None else bars
        self.error = error
        self.calls: list[dict] = []

    def __call__(self, tickers, start=None, end=None, interval="1d", **kwargs):
        self.calls.append({"symbol": tickers, "start": pd.Timestamp(start),
                           "end": pd.Timestamp(end), "interval": interval, **kwargs})
        if self.error is not None:
            raise self.error
        part = self.bars[(self.bars.index >= start) & (self.bars.index < end)]
        return yfinance_shaped(part, tickers)

    @property
    def asked(self) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
        return [(c["start"], c["end"]) for c in self.calls]


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_flatten_yfinance_shape():
    raw = yfinance_shaped(market("2025-06-02", "2025-06-03"))
    assert isinstance(raw.columns, pd.MultiIndex) and raw.columns.names == ["Price", "Ticker"]
    flat = flatten_yfinance(raw, SYMBOL)
    assert list(flat.columns) == ["open", "high", "low", "close", "volume"]
    assert str(flat.index.tz) == "UTC" and flat.index[0] == ts("2025-06-02 00:00")


def test_first_fetch_writes_the_cache(tmp_path):
    fake = FakeYahoo()
    frame = fetch(SYMBOL, "1h", "2025-06-02", "2025-06-14", cache_dir=tmp_path,
                  downloader=fake, now=NOW)
    assert fake.asked == [(ts("2025-06-02"), ts("2025-06-14"))]
    call = fake.calls[0]
    assert call["symbol"] == SYMBOL and call["interval"] == "1h"
    assert call["auto_adjust"] is False and call["progress"] is False
    assert call["multi_level_index"] is True
    assert_canonical(frame)
    assert cache_path(SYMBOL, "1h", tmp_path).exists()
    want = market().loc["2025-06-02":"2025-06-13 23:00"]
    assert len(frame) == len(want)
    np.testing.assert_array_equal(frame["close"].to_numpy(), want["Close"].to_numpy())
    assert frame.index.equals(want.index)


def test_second_fetch_tops_up_only_the_missing_range(tmp_path):
    fake = FakeYahoo()
    first = fetch(SYMBOL, "1h", "2025-06-02", "2025-06-14", cache_dir=tmp_path,
                  downloader=fake, now=NOW)
    last = first.index[-1]
    assert last == ts("2025-06-13 20:00")  # Friday's last bar
    both = fetch(SYMBOL, "1h", "2025-06-02", "2025-06-21", cache_dir=tmp_path,
                 downloader=fake, now=NOW)
    # only the tail, from the last cached bar (it may have been partial) to the new end
    assert fake.asked[1:] == [(last, ts("2025-06-21"))]
    assert_canonical(both)
    want = market().loc["2025-06-02":"2025-06-20 23:00"]
    assert both.index.equals(want.index)
    # asking again for what is cached downloads nothing
    fetch(SYMBOL, "1h", "2025-06-03", "2025-06-10", cache_dir=tmp_path, downloader=fake, now=NOW)
    assert len(fake.calls) == 2


def test_earlier_start_tops_up_the_head(tmp_path):
    fake = FakeYahoo()
    fetch(SYMBOL, "1h", "2025-06-09", "2025-06-14", cache_dir=tmp_path, downloader=fake, now=NOW)
    frame = fetch(SYMBOL, "1h", "2025-06-02", "2025-06-13", cache_dir=tmp_path,
                  downloader=fake, now=NOW)
    assert fake.asked[1:] == [(ts("2025-06-02"), ts("2025-06-09"))]
    assert frame.index[0] == ts("2025-06-02") and frame.index[-1] == ts("2025-06-13 20:00")
    assert frame.index.is_unique


def test_a_start_on_the_weekend_is_not_asked_for_again(tmp_path):
    fake = FakeYahoo()
    frame = fetch(SYMBOL, "1h", "2025-06-07", "2025-06-12", cache_dir=tmp_path,
                  downloader=fake, now=NOW)  # Saturday: the first bar is Sunday 21:00
    assert frame.index[0] == ts("2025-06-08 21:00")
    fetch(SYMBOL, "1h", "2025-06-07", "2025-06-12", cache_dir=tmp_path, downloader=fake, now=NOW)
    assert len(fake.calls) == 1


def test_fresh_bars_replace_the_cached_last_bar(tmp_path):
    bars = market()
    fake = FakeYahoo(bars)
    fetch(SYMBOL, "1h", "2025-06-02", "2025-06-03", cache_dir=tmp_path, downloader=fake, now=NOW)
    revised = bars.copy()
    revised.loc[ts("2025-06-02 23:00"), ["High", "Close"]] += 0.01  # the partial bar completed
    fake.bars = revised
    frame = fetch(SYMBOL, "1h", "2025-06-02", "2025-06-04", cache_dir=tmp_path, downloader=fake,
                  now=NOW)
    assert frame.loc[ts("2025-06-02 23:00"), "close"] == revised.loc[ts("2025-06-02 23:00"),
                                                                      "Close"]


def test_load_reads_the_cache_without_a_downloader(tmp_path):
    fetched = fetch(SYMBOL, "1h", "2025-06-02", "2025-06-14", cache_dir=tmp_path,
                    downloader=FakeYahoo(), now=NOW)
    frame = load(f"yahoo:{SYMBOL}:1h", cache_dir=tmp_path)
    assert_canonical(frame)
    pd.testing.assert_frame_equal(frame, fetched[frame.columns], check_freq=False)
    assert frame.attrs["source"] == f"yahoo:{SYMBOL}:1h"
    assert frame.index.dtype == "datetime64[ns, UTC]"
    # the interval defaults to 1h
    assert len(load(f"yahoo:{SYMBOL}", cache_dir=tmp_path)) == len(frame)


def test_load_of_something_never_fetched(tmp_path):
    with pytest.raises(DataError, match="not in the cache") as never:
        load("yahoo:EURUSD=X:1h", cache_dir=tmp_path)
    assert never.value.see == "data fetch EURUSD=X --interval 1h"


def test_damaged_cache_is_a_data_error(tmp_path):
    path = cache_path(SYMBOL, "1h", tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="cannot be read"):
        load(f"yahoo:{SYMBOL}:1h", cache_dir=tmp_path)
    with pytest.raises(DataError, match="cannot be read"):
        fetch(SYMBOL, "1h", "2025-06-02", "2025-06-14", cache_dir=tmp_path,
              downloader=FakeYahoo(), now=NOW)


def test_empty_answer_is_a_data_error(tmp_path):
    fake = FakeYahoo(market().iloc[:0])
    with pytest.raises(DataError, match="no bars"):
        fetch("NOPE", "1h", "2025-06-02", "2025-06-14", cache_dir=tmp_path, downloader=fake,
              now=NOW)
    assert not cache_path("NOPE", "1h", tmp_path).exists()


@pytest.mark.parametrize("error", [ConnectionError("connection reset"), ValueError("bad JSON"),
                                   KeyError("chart")])
def test_download_failure_is_a_data_error_and_keeps_the_cache(tmp_path, error):
    fetch(SYMBOL, "1h", "2025-06-02", "2025-06-14", cache_dir=tmp_path, downloader=FakeYahoo(),
          now=NOW)
    path = cache_path(SYMBOL, "1h", tmp_path)
    before = path.read_bytes()
    with pytest.raises(DataError, match=type(error).__name__) as info:
        fetch(SYMBOL, "1h", "2025-06-02", "2025-06-21", cache_dir=tmp_path,
              downloader=FakeYahoo(error=error), now=NOW)
    assert info.value.rule == "network"
    assert path.read_bytes() == before
    assert len(load(f"yahoo:{SYMBOL}:1h", cache_dir=tmp_path)) > 0


def test_hourly_start_older_than_730_days(tmp_path):
    fake = FakeYahoo()
    with pytest.raises(DataError, match="730 days"):
        fetch(SYMBOL, "1h", "2022-01-01", cache_dir=tmp_path, downloader=fake, now=NOW)
    assert fake.calls == []
    # daily bars have no such limit
    fetch(SYMBOL, "1d", "2022-01-01", "2025-06-14", cache_dir=tmp_path,
          downloader=FakeYahoo(market().resample("D").first().dropna()), now=NOW)


def test_unknown_interval(tmp_path):
    with pytest.raises(DataError, match="unknown interval '2h'"):
        fetch(SYMBOL, "2h", cache_dir=tmp_path, downloader=FakeYahoo(), now=NOW)


def test_start_must_be_before_end(tmp_path):
    with pytest.raises(DataError, match="not before"):
        fetch(SYMBOL, "1h", "2025-06-10", "2025-06-09", cache_dir=tmp_path,
              downloader=FakeYahoo(), now=NOW)


def test_default_range_is_the_allowed_window_and_naive_now_is_utc(tmp_path):
    fake = FakeYahoo()
    fetch(SYMBOL, "1h", cache_dir=tmp_path, downloader=fake, now=pd.Timestamp("2025-06-30 12:00"))
    assert fake.asked == [(NOW - pd.Timedelta(days=730), NOW)]


def test_bad_bars_from_yahoo_are_reported_not_cached(tmp_path):
    bars = market()
    bars.loc[ts("2025-06-03 10:00"), "High"] = 1.0  # high below open and close
    with pytest.raises(DataError, match="high below open/close"):
        fetch(SYMBOL, "1h", "2025-06-02", "2025-06-14", cache_dir=tmp_path,
              downloader=FakeYahoo(bars), now=NOW)
    assert not cache_path(SYMBOL, "1h", tmp_path).exists()


class OfflineYahoo:
    """What ``yf.download`` does without a network: it logs the failure through the "yfinance"
    logger, lets its HTTP stack warn, and answers with an empty frame."""

    def __call__(self, tickers, **kwargs):
        import logging
        import warnings

        log = logging.getLogger("yfinance")
        log.error("\n1 Failed download:")
        log.error(f"['{tickers}']: DNSError('Failed to perform, curl: (6) Could not resolve "
                  "host: query2.finance.yahoo.com. See https://curl.se/libcurl/c/"
                  "libcurl-errors.html first for more details.')")
        logging.getLogger("urllib3").warning("Retrying after connection broken")
        warnings.warn("unverified HTTPS request", UserWarning, stacklevel=2)
        return pd.DataFrame()


class DNSError(Exception):
    """Shaped like ``curl_cffi.requests.exceptions.DNSError`` (not an OSError)."""


@pytest.mark.parametrize("downloader", [
    OfflineYahoo(),
    FakeYahoo(error=DNSError("Failed to perform, curl: (6) Could not resolve host: "
                             "query2.finance.yahoo.com")),
])
def test_offline_fetch_says_so_in_one_line_without_library_noise(tmp_path, downloader, caplog,
                                                                 recwarn):
    with pytest.raises(DataError, match="network is unreachable") as info:
        fetch(SYMBOL, "1h", "2025-06-02", "2025-06-14", cache_dir=tmp_path,
              downloader=downloader, now=NOW)
    assert info.value.rule == "network" and "\n" not in str(info.value)
    assert caplog.records == [] and len(recwarn) == 0
    assert not cache_path(SYMBOL, "1h", tmp_path).exists()
