"""The report folder: strict JSON, CSVs, and an HTML page that works offline and renders."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

import data
from backtests.analysis.baselines import buy_and_hold_equity
from backtests.analysis.catalog import jsonable
from backtests.analysis.performance import costs_charged, period_returns
from backtests.reports.backtest import format_stats_table, write_report
from backtests.simulation import run_backtest
from strategy.fractal import Costs, FractalParams


def _strict(text: str) -> dict:
    def refuse(token: str) -> None:
        raise ValueError(f"non-standard JSON token {token}")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory, drawing):
    with drawing():
        return _report_dir(tmp_path_factory)


def _report_dir(tmp_path_factory):
    candles = data.load("sample:EURUSD_H1").iloc[:800]
    rng = np.random.default_rng(0)
    probs = pd.DataFrame(rng.dirichlet([4, 1, 1], size=len(candles)), index=candles.index,
                         columns=["p_none", "p_buy", "p_sell"])
    result = run_backtest(candles, probs, FractalParams(stop_buffer=0.0002))
    bh, _ = buy_and_hold_equity(candles, result.costs, result.cash)
    result.stats["profit_factor"] = float("inf")   # make sure inf and NaN survive as JSON
    result.stats["sortino"] = float("nan")
    attention = [("window 1", _tiny_png())]
    out = tmp_path_factory.mktemp("report")
    path = write_report(
        out, result, candles, title="Test <report>",
        comparison=[{"network": "Part 8 attention", "hit_pct": 22.5},
                    {"network": "ours", "hit_pct": 31.0, "missed_pct": 40.0}],
        baselines={"buy_and_hold": {"label": "buy and hold", "total_return_pct": 1.5,
                                    "sharpe": 0.2},
                   "random_entries": {"label": "random entries", "p_value": 0.04,
                                      "median_return_pct": -0.3}},
        confusion=np.array([[50, 5, 5], [10, 20, 3], [12, 2, 25]]),
        attention_pngs=attention, extra={"model": "attention", "seed": 1}, probs=probs,
        curves={"buy_and_hold": {"label": "buy and hold", "equity": bh}},
        facts={"instrument": "EURUSD", "source": "sample:EURUSD_H1", "timeframe": "1h",
               "model": "attention/article", "model_label": "attention (test)",
               "train_run": "feedbeef", "model_hash": "0123abcd"})
    return out, path, result


def _tiny_png() -> bytes:
    import io

    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.imshow(np.arange(16).reshape(4, 4))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


@pytest.mark.slow   # a few seconds: runs in `make test`, not in the fast subset
def test_files_and_strict_json(report_dir):
    out, path, result = report_dir
    assert path == out / "report.html"
    payload = _strict((out / "report.json").read_text())
    assert payload["stats"]["n_trades"] == len(result.trades)
    assert payload["stats"]["profit_factor"] == "inf"
    assert payload["stats"]["sortino"] is None
    assert payload["stats"]["final_equity"] == pytest.approx(result.stats["final_equity"])
    assert payload["params"]["threshold"] == 0.5
    assert payload["confusion"][1] == [10, 20, 3]
    trades = pd.read_csv(out / "trades.csv")
    assert len(trades) == len(result.trades)
    assert {"entry_time", "exit_time", "pnl_net", "exit_reason"} <= set(trades.columns)
    equity = pd.read_csv(out / "equity.csv")
    assert len(equity) == len(result.equity)
    assert {"equity", "drawdown_pct", "equity:buy_and_hold"} <= set(equity.columns)
    # what was traded and how, in stable keys
    assert (payload["instrument"], payload["source"], payload["timeframe"]) == \
        ("EURUSD", "sample:EURUSD_H1", "1h")
    assert payload["model"]["model_hash"] == "0123abcd"
    assert payload["costs_charged"]["spread_mean"] == pytest.approx(0.0001)
    assert payload["costs_charged"]["total_costs"] == pytest.approx(result.trades["costs"].sum())
    assert payload["verdict"]["level"] == "skill" and "p = 0.040" in payload["verdict"]["text"]
    assert payload["period_returns_freq"] == "week" and payload["weekly_returns"]
    assert set(payload["equity_curves"]) == {"model", "buy_and_hold"}
    assert payload["equity_curves"]["model"]["final"] == pytest.approx(result.equity.iloc[-1])
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_is_self_contained(report_dir):
    _, path, _ = report_dir
    page = path.read_text()
    # the static fallback (noscript) and one attention map
    assert len(re.findall(r"<img [^>]*src=\"data:image/png;base64,", page)) == 2
    assert_offline(page)
    assert "Test &lt;report&gt;" in page
    assert "Bokeh" in page and "chart-price" in page and "chart-equity" in page
    for text in ("instrument", "EURUSD", "sample:EURUSD_H1", "0123abcd", "Costs charged",
                 "mean 0.0001", "Weekly returns", "P&amp;L net [money]", "class='sortable'",
                 "Evidence of skill after costs"):
        assert text in page, text
    # baselines appear by their labels with readable, unit-bearing headings
    for text in ("Win rate", "Part 8 attention", "missed_pct", "buy and hold", "random entries",
                 "p-value vs random entries", "Return [%]"):
        assert text in page


def test_format_stats_table_and_jsonable():
    rows = format_stats_table({"win_rate_pct": 55.123, "profit_factor": float("inf"),
                               "sharpe": float("nan"), "custom": 3})
    assert rows == [("Sharpe ratio", "—"), ("Win rate [%]", "55.12"), ("Profit factor", "∞"),
                    ("custom", "3")]   # the table's order, unknown keys last
    assert jsonable({"a": np.float64("nan"), "b": [np.int64(2), -np.inf],
                     "t": pd.Timestamp("2024-01-01", tz="UTC")}) == \
        {"a": None, "b": [2, "-inf"], "t": "2024-01-01T00:00:00+00:00"}


def assert_offline(page: str) -> None:
    """Nothing in the page loads from the network: no script/link/img/iframe tag with an http(s)
    or protocol-relative src/href (URLs inside the inlined JavaScript's code are not tags)."""
    tags = re.sub(r"<script\b[^>]*>.*?</script>", "<script></script>", page, flags=re.S | re.I)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", tags, re.I)
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.I)
    assert not re.search(r"<link[^>]*\bhref\s*=", page, re.I)


def test_instrument_costs_and_period_returns():
    from backtests.currency import instrument_of

    assert instrument_of("sample:EURUSD_H1") == "EURUSD"
    assert instrument_of("yahoo:SPY:1d") == "SPY"
    assert instrument_of("/data/GBPUSD_M15.csv") == "GBPUSD"
    assert instrument_of("prices.csv") == "prices"
    idx = pd.date_range("2024-01-01", periods=4, freq="h", tz="UTC")
    candles = pd.DataFrame({"close": 1.1, "spread": [0.0001, 0.0003, np.nan, 0.0002]}, index=idx)
    trades = pd.DataFrame({"spread_cost": [1.0, 2.0], "commission": [0.5, 0.5],
                           "slippage_cost": [0.0, 0.0], "costs": [1.5, 2.5]})
    c = costs_charged(candles, Costs(), trades)       # the file's own per-bar spread
    assert "per-bar spread column" in c["spread_source"] and "1 missing" in c["spread_source"]
    assert c["spread_min"] == pytest.approx(0.0001) and c["spread_max"] == pytest.approx(0.0003)
    assert c["spread_mean"] == pytest.approx(0.000175) and c["total_costs"] == 4.0
    assert "fixed" in costs_charged(candles, Costs(spread=0.0002), trades)["spread_source"]
    # monthly over a long span: compounding months gives the total
    days = pd.date_range("2024-01-01", "2024-06-30", freq="D", tz="UTC")
    eq = pd.Series(np.linspace(100, 130, len(days)), index=days)
    freq, rets = period_returns(eq, 100.0)
    assert freq == "month" and list(rets.index[:2]) == ["2024-01", "2024-02"]
    assert np.prod(1 + rets.to_numpy() / 100) == pytest.approx(1.3)
    freq, rets = period_returns(eq.iloc[:40], 100.0)
    assert freq == "week" and rets.index[0] == "2024-01-01"


# --- headless Chromium: pixels drawn, no JavaScript errors, nothing from the network ----------

PROBE = """<script>
window.__errors=[];
window.addEventListener('error',function(e){window.__errors.push(String(e.message||e));});
window.addEventListener('unhandledrejection',function(e){window.__errors.push('rejection: '+
  String(e.reason));});
(function(){var ce=console.error;console.error=function(){
  window.__errors.push(Array.prototype.join.call(arguments,' '));ce.apply(console,arguments);};})();
window.addEventListener('load',function(){setTimeout(function(){var rects={};
  document.querySelectorAll('div.chart').forEach(function(d){var r=d.getBoundingClientRect();
    rects[d.id]=[r.left,r.top+window.scrollY,r.width,r.height];});
  var p=document.createElement('pre');p.id='probe';p.textContent=JSON.stringify(
    {errors:window.__errors,rects:rects,bokeh:typeof Bokeh});document.body.appendChild(p);},1500);});
</script>"""


def chromium_or_skip() -> str:
    """The chromium binary; skip without it, except on CI (CI set), where that is a failure."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but chromium is not installed: the rendering test must run")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return chromium


def render_in_chromium(page: Path, workdir: Path) -> dict:
    """Open ``page`` (with an error probe injected) in headless Chromium with every host name
    unresolvable (network off): returns {errors, rects (chart divs' boxes), shot (pixels)}."""
    chromium = chromium_or_skip()
    probe = workdir / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("<head>", "<head>" + PROBE, 1),
                     encoding="utf-8")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", "--force-device-scale-factor=1",
             "--host-resolver-rules=MAP * ~NOTFOUND", "--window-size=1280,2600",
             "--virtual-time-budget=10000"]

    def run(*extra: str) -> subprocess.CompletedProcess:
        profile = tempfile.mkdtemp(dir=workdir)
        return subprocess.run([chromium, *flags, f"--user-data-dir={profile}", *extra,
                               probe.as_uri()], capture_output=True, text=True, timeout=240)

    dom = run("--dump-dom")
    m = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.S)
    assert m, f"the page never finished loading: {dom.stderr[-2000:]}"
    found = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    shot = workdir / "shot.png"
    run(f"--screenshot={shot}")
    assert shot.exists(), "chromium wrote no screenshot"
    found["shot"] = mpimg.imread(shot)[..., :3]
    return found


def assert_drawn(found: dict, charts: list[str]) -> None:
    """No JavaScript errors, Bokeh loaded, and each chart's box on the screenshot is drawn on:
    many non-white pixels and many colours (an empty Bokeh canvas is a white box)."""
    assert found["errors"] == [], found["errors"]
    assert found["bokeh"] == "object"
    pixels = found["shot"]
    for name in charts:
        x, y, w, h = (int(round(v)) for v in found["rects"][f"chart-{name}"])
        assert w > 100 and h > 50, (name, w, h)
        box = pixels[y:y + h, x:x + w]
        assert box.shape[0] > 40, f"chart {name} is below the screenshot"
        ink = (box.min(axis=2) < 0.85).mean()
        colours = len(np.unique((box * 255).astype(np.uint8).reshape(-1, 3), axis=0))
        assert ink > 0.02 and colours > 30, (name, ink, colours)


@pytest.mark.slow
def test_report_renders_in_headless_chromium(report_dir, tmp_path):
    _, path, _ = report_dir
    found = render_in_chromium(path, tmp_path)
    assert_drawn(found, ["price", "trades", "probs", "equity", "drawdown", "sharpe", "benchmark"])
    # the strategy's return curve spans a visible share of its panel (buy-and-hold has its own)
    x, y, w, h = (int(round(v)) for v in found["rects"]["chart-equity"])
    box = (found["shot"][y:y + h, x:x + w] * 255).astype(int)
    blue = np.abs(box - np.array([0x1f, 0x5f, 0xa8])).sum(axis=2) < 40   # PALETTE[0]
    rows = np.nonzero(blue)[0]
    assert len(rows) > 200, "the strategy's curve is not drawn"
    span = (np.percentile(rows, 97) - np.percentile(rows, 3)) / h
    assert span > 0.3, f"the strategy's curve spans {span:.0%} of its panel"
    # the panels line up: the same left and right edges on the page
    edges = {(round(found["rects"][f"chart-{k}"][0]), round(found["rects"][f"chart-{k}"][2]))
             for k in ("price", "trades", "probs", "equity", "drawdown")}
    assert len(edges) == 1, edges


def test_trade_list_prints_prices_at_the_instruments_precision(report_dir):
    """EURUSD prices were printed to 3 decimals (1.072, 4 significant digits): the trade list
    and the hover show the data's 5; the cell keeps the exact price for sorting."""
    out, path, result = report_dir
    assert _strict((out / "report.json").read_text())["price_digits"] == 5
    page = path.read_text()
    table = page[page.index("class='sortable'"):]
    first = result.trades.iloc[0]
    for price in (first["entry_price"], first["exit_price"]):
        assert re.search(rf"<td data-v='[0-9.e+-]+'>{price:.5f}</td>", table), price
    assert "@entry_price{0.00000}" in page


def test_price_digits_follow_the_data_then_the_instrument(eurusd):
    from backtests.currency import price_digits

    candles = eurusd.iloc[:300]
    prices = ["open", "high", "low", "close"]
    jpy = candles.copy()
    jpy[prices] = (jpy[prices] * 140).round(3)
    noisy = candles.copy()
    noisy[prices] = candles[prices] * (1 + 1.234567e-7)       # a Yahoo series' float noise
    stock = noisy.copy()
    stock[prices] = noisy[prices] * 400
    assert price_digits(candles, "EURUSD") == 5 and price_digits(jpy, None) == 3
    assert price_digits(noisy, "EURUSD") == 5 and price_digits(noisy, "USDJPY") == 3
    assert price_digits(stock, "SPY") == 2
