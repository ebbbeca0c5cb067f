"""Every picture the product writes is drawn: a real PNG of its size, not blank.

Tests elsewhere build the figures of the reports they check but rasterise them only when marked
``draws`` (tests/conftest.py): their checks are numbers and text. These tests rasterise each
picture once, from real data (the sample's candles and a backtest of them), so a figure that
fails to draw, or draws nothing, fails here.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import data
from backtests.reports.figures import plot_equity, plot_trades, reliability_png, static_png
from backtests.reports.sweep import render_equity_png, render_heatmap_png
from backtests.reports.walkforward import equity_png
from backtests.simulation import run_backtest
from models.evaluate import reliability
from models.plots import attention_png, learning_curves_png
from strategy.fractal import FractalParams

# drawing every picture from a real backtest: about 4 s, so in `make test`, not the fast subset
pytestmark = [pytest.mark.draws, pytest.mark.slow]


def picture(png: bytes, min_w: int, min_h: int) -> Image.Image:
    """The PNG opened, at least ``min_w`` × ``min_h`` pixels and holding more than two colours
    (an empty canvas has one, text on it two)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(png))
    image.load()
    w, h = image.size
    assert w >= min_w and h >= min_h, f"{w}×{h} pixels, want at least {min_w}×{min_h}"
    colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is None or len(colours) > 2, f"{len(colours)} colours: a blank picture"
    return image


@pytest.fixture(scope="module")
def traded():
    candles = data.load("sample:EURUSD_H1").iloc[:600]
    rng = np.random.default_rng(0)
    probs = pd.DataFrame(rng.dirichlet([4, 1, 1], size=len(candles)), index=candles.index,
                         columns=["p_none", "p_buy", "p_sell"])
    result = run_backtest(candles, probs, FractalParams())
    assert len(result.trades) > 5
    return candles, probs, result


def test_the_backtest_report_pictures(traded):
    candles, probs, result = traded
    picture(plot_equity(result.equity, result.cash), 800, 350)
    picture(plot_trades(candles, result.trades), 800, 300)
    both = picture(static_png(result.equity, result.trades, candles, result.cash), 800, 650)
    assert both.mode == "RGB"
    labels = np.random.default_rng(1).integers(0, 3, len(probs))
    picture(reliability_png(reliability(labels, probs.to_numpy()), "reliability"), 800, 300)


def test_the_model_pictures(traded):
    candles, _, _ = traded
    history = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [1.0, 0.9, 0.85],
                            "val_loss": [1.05, 0.95, 0.97], "val_hit_pct": [30.0, 35.0, 34.0],
                            "val_missed_pct": [60.0, 55.0, 56.0]})
    picture(learning_curves_png(history, "attention/article"), 700, 200)
    maps = [np.random.default_rng(i).dirichlet(np.ones(20), 20) for i in range(2)]
    picture(attention_png(candles.iloc[:20], maps, "buy signal", np.array([0.2, 0.6, 0.2])),
            800, 800)


def test_the_study_pictures():
    curves = pd.DataFrame({"attention": np.linspace(100_000, 101_000, 300),
                           "dense": np.linspace(100_000, 99_500, 300)})
    picture(equity_png(curves), 600, 250)
    picture(render_equity_png(curves.rename(columns={"attention": "best"})), 600, 250)
    heat = pd.DataFrame([[0.5, -0.2], [0.1, np.nan]], index=[0.4, 0.5], columns=["bar", "atr:1"])
    picture(render_heatmap_png(heat, "strategy.stop", "strategy.threshold"), 150, 100)
