"""The report folder: strict JSON, CSVs, and an HTML page that works offline and renders."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

import data
from backtests.engine import run_backtest
from backtests.report import format_stats_table, jsonable, write_report
from strategy.fractal import FractalParams


def _strict(text: str) -> dict:
    def refuse(token: str) -> None:
        raise ValueError(f"non-standard JSON token {token}")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    candles = data.load("sample:EURUSD_H1").iloc[:800]
    rng = np.random.default_rng(0)
    probs = pd.DataFrame(rng.dirichlet([4, 1, 1], size=len(candles)), index=candles.index,
                         columns=["p_none", "p_buy", "p_sell"])
    result = run_backtest(candles, probs, FractalParams(stop_buffer=0.0002))
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
        attention_pngs=attention, extra={"model": "attention", "seed": 1})
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


def test_html_is_self_contained(report_dir):
    _, path, _ = report_dir
    page = path.read_text()
    # equity, trades, confusion and one attention map
    assert page.count("data:image/png;base64,") == 4
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "http://" not in page and "https://" not in page
    assert "Test &lt;report&gt;" in page
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


@pytest.mark.slow
def test_report_renders_in_headless_chromium(report_dir, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    _, path, _ = report_dir
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                    f"--screenshot={shot}", "--window-size=1200,2000", path.as_uri()],
                   capture_output=True, timeout=90, check=False)
    assert shot.exists(), "chromium wrote no screenshot"
    pixels = mpimg.imread(shot)[..., :3]
    colours = np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 200          # charts, not a blank or error page
    assert pixels.std() > 0.05
    assert (pixels.mean(axis=2) < 0.5).mean() > 0.005   # some dark ink (text, lines)
