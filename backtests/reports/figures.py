"""The figures of the backtest report and the compare page: matplotlib PNGs (the static
fallback) and Bokeh figures (interactive, one shared time axis).

Render only: series and frames in, PNG bytes or Bokeh figures out. ``bokeh_parts`` turns the
figures into the one script and the divs that ``page.page`` places.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from backtests.analysis.performance import drawdown
from backtests.reports.page import png

PALETTE = ("#1f5fa8", "#e6550d", "#31a354", "#756bb1", "#d6616b", "#17becf", "#8c6d31",
           "#7f7f7f")
BUY_AND_HOLD_COLOUR = "#888888"


# --- static PNGs (matplotlib) ----------------------------------------------------------------

def plot_equity(equity: pd.Series) -> bytes:
    """Equity and drawdown, one above the other."""
    fig = Figure(figsize=(11, 5.5))
    (ax1, ax2) = fig.subplots(2, 1, sharex=True,
                                   gridspec_kw={"height_ratios": [3, 1.3]})
    ax1.plot(equity.index, equity.to_numpy(), color="#1f5fa8", lw=1.2)
    ax1.set_ylabel("equity")
    ax1.grid(alpha=.3)
    dd = drawdown(equity)
    ax2.fill_between(dd.index, dd.to_numpy(), 0, color="#c0392b", alpha=.5, lw=0)
    ax2.set_ylabel("drawdown [%]")
    ax2.grid(alpha=.3)
    fig.autofmt_xdate()
    return png(fig)


def plot_trades(candles: pd.DataFrame, trades: pd.DataFrame, max_bars: int = 3000) -> bytes:
    """Close price with entry (triangles) and exit (crosses) markers; the last ``max_bars`` bars."""
    view = candles.iloc[-max_bars:]
    fig = Figure(figsize=(11, 4.5))
    ax = fig.subplots()
    ax.plot(view.index, view["close"].to_numpy(), color="#555", lw=.7, label="close")
    if len(trades):
        t = trades[trades["entry_time"] >= view.index[0]]
        for direction, marker, colour, name in ((1, "^", "#1a9850", "long entry"),
                                                (-1, "v", "#d73027", "short entry")):
            sel = t[t["direction"] == direction]
            ax.scatter(sel["entry_time"], sel["entry_price"], marker=marker, s=28, c=colour,
                       label=name, zorder=3)
        win = t["pnl_net"] > 0
        ax.scatter(t.loc[win, "exit_time"], t.loc[win, "exit_price"], marker="x", s=22,
                   c="#2166ac", label="exit (win)", zorder=3)
        ax.scatter(t.loc[~win, "exit_time"], t.loc[~win, "exit_price"], marker="x", s=22,
                   c="#f46d43", label="exit (loss)", zorder=3)
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=.3)
    ax.set_ylabel("price")
    fig.autofmt_xdate()
    return png(fig)


def static_png(equity: pd.Series, trades: pd.DataFrame, candles: pd.DataFrame) -> bytes:
    """The static fallback: equity/drawdown above price and trades, one PNG."""
    from PIL import Image

    a = Image.open(io.BytesIO(plot_equity(equity)))
    b = Image.open(io.BytesIO(plot_trades(candles, trades)))
    out = Image.new("RGB", (max(a.width, b.width), a.height + b.height), "white")
    out.paste(a, (0, 0))
    out.paste(b, (0, a.height))
    buf = io.BytesIO()
    out.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


# --- Bokeh figures ---------------------------------------------------------------------------

def _naive(index: pd.Index) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(index)
    return idx.tz_convert(None) if idx.tz is not None else idx


def _bar_ms(index: pd.Index) -> float:
    idx = _naive(index)
    if len(idx) < 2:
        return 3_600_000.0
    return float(pd.Series(idx[1:] - idx[:-1]).median().total_seconds() * 1000)


def _figure(title: str, height: int, x_range=None, y_label: str = "", **kw):
    from bokeh.plotting import figure

    opts = {"x_range": x_range} if x_range is not None else {}
    fig = figure(title=title, height=height, sizing_mode="stretch_width", x_axis_type="datetime",
                 tools="xpan,xwheel_zoom,box_zoom,reset,save", active_drag="xpan",
                 active_scroll="xwheel_zoom", **opts, **kw)
    fig.yaxis.axis_label = y_label
    fig.toolbar.logo = None
    return fig


def price_figure(candles: pd.DataFrame, trades: pd.DataFrame, orders: pd.DataFrame | None = None,
                 title: str = "Price (bid), trades, stops and targets — hover a trade",
                 digits: int = 5):
    """Candlesticks with every trade: entry triangle, a line to its exit (green win / red loss),
    its stop (red dashes) and target (green dashes) while it was open; prices hovered at
    ``digits`` decimals."""
    from bokeh.models import ColumnDataSource, HoverTool

    x = _naive(candles.index)
    o, h, lo, c = (candles[k].to_numpy(float) for k in ("open", "high", "low", "close"))
    width = 0.7 * _bar_ms(candles.index)
    fig = _figure(title, 340, y_label="price")
    up = c >= o
    src = ColumnDataSource({"x": x, "open": o, "high": h, "low": lo, "close": c,
                            "top": np.maximum(o, c), "bottom": np.minimum(o, c),
                            "colour": np.where(up, "#26a69a", "#ef5350")})
    fig.segment("x", "high", "x", "low", source=src, color="#555", line_width=1)
    fig.vbar("x", width, "top", "bottom", source=src, fill_color="colour", line_color="colour")
    if len(trades):
        t = trades.copy()
        stop = target = np.full(len(t), np.nan)
        if orders is not None and len(orders) and "role" in orders:
            by_signal = orders.set_index(["created_bar", "role"])["order_price"]
            by_signal = by_signal[~by_signal.index.duplicated()]

            def level(role: str) -> np.ndarray:
                return np.array([by_signal.get((int(b), role), np.nan) for b in t["signal_bar"]],
                                dtype=float)
            stop, target = level("stop"), level("target")
        win = t["pnl_net"].to_numpy(float) > 0
        ent, ext = _naive(t["entry_time"]), _naive(t["exit_time"])
        data = {
            "entry_time": ent, "exit_time": ext, "entry_price": t["entry_price"].to_numpy(float),
            "exit_price": t["exit_price"].to_numpy(float), "stop": stop, "target": target,
            "direction": np.where(t["direction"].to_numpy() > 0, "long", "short"),
            "size": t["size"].to_numpy(float), "pnl_net": t["pnl_net"].to_numpy(float),
            "pnl_gross": t["pnl_gross"].to_numpy(float),
            "costs": t["costs"].to_numpy(float) if "costs" in t else np.zeros(len(t)),
            "bars_held": t["bars_held"].to_numpy(float),
            "exit_reason": t["exit_reason"].astype(str).to_numpy(),
            "colour": np.where(win, "#1a9850", "#d73027"),
            "marker": np.where(t["direction"].to_numpy() > 0, "triangle", "inverted_triangle"),
        }
        ts = ColumnDataSource(data)
        fig.segment("entry_time", "stop", "exit_time", "stop", source=ts, color="#d73027",
                    line_dash="dashed", line_width=1, legend_label="stop")
        fig.segment("entry_time", "target", "exit_time", "target", source=ts, color="#1a9850",
                    line_dash="dashed", line_width=1, legend_label="target")
        fig.segment("entry_time", "entry_price", "exit_time", "exit_price", source=ts,
                    color="colour", line_width=2)
        r = fig.scatter("entry_time", "entry_price", source=ts, marker="marker", size=9,
                        fill_color="colour", line_color="#222", legend_label="entry (▲ long, ▼ short)")
        fig.scatter("exit_time", "exit_price", source=ts, marker="x", size=7, color="#222",
                    legend_label="exit")
        price = "0." + "0" * digits if digits > 0 else "0"
        fig.add_tools(HoverTool(renderers=[r], tooltips=[
            ("trade", "@direction @size{0,0} units"),
            ("entry", f"@entry_time{{%Y-%m-%d %H:%M}} @ @entry_price{{{price}}}"),
            ("exit", f"@exit_time{{%Y-%m-%d %H:%M}} @ @exit_price{{{price}}} (@exit_reason)"),
            ("stop / target", f"@stop{{{price}}} / @target{{{price}}}"),
            ("P&L gross / costs / net", "@pnl_gross{0,0.00} / @costs{0,0.00} / @pnl_net{0,0.00}"),
            ("bars held", "@bars_held")],
            formatters={"@entry_time": "datetime", "@exit_time": "datetime"}))
        fig.legend.location = "top_left"
        fig.legend.click_policy = "hide"
        fig.legend.label_text_font_size = "8pt"
    return fig


def probs_figure(probs: pd.DataFrame, x_range, threshold: float | None = None):
    """The model's p_buy and p_sell per bar, with the signal threshold."""
    fig = _figure("Model probabilities", 130, x_range=x_range, y_label="p", y_range=(0, 1))
    x = _naive(probs.index)
    fig.line(x, probs["p_buy"].to_numpy(float), color="#1a9850", legend_label="p_buy")
    fig.line(x, probs["p_sell"].to_numpy(float), color="#d73027", legend_label="p_sell")
    if threshold is not None:
        from bokeh.models import Span

        fig.add_layout(Span(location=threshold, dimension="width", line_dash="dotted",
                            line_color="#333"))
    fig.legend.location = "top_left"
    fig.legend.orientation = "horizontal"
    fig.legend.label_text_font_size = "8pt"
    return fig


def equity_figures(curves: list[tuple[str, pd.Series]], x_range=None,
                   title: str = "Equity (same starting cash)"):
    """Equity curves overlaid (the first drawn thickest), and their drawdowns below."""
    from bokeh.models import NumeralTickFormatter

    eq = _figure(title, 260, x_range=x_range, y_label="equity")
    eq.yaxis.formatter = NumeralTickFormatter(format="0,0")
    x_range = x_range or eq.x_range
    dd = _figure("Drawdown", 150, x_range=x_range, y_label="drawdown [%]")
    for i, (label, series) in enumerate(curves):
        colour = BUY_AND_HOLD_COLOUR if label.startswith("buy and hold") else \
            PALETTE[i % len(PALETTE)]
        x = _naive(series.index)
        eq.line(x, series.to_numpy(float), color=colour, line_width=2.2 if i == 0 else 1.4,
                legend_label=label)
        d = drawdown(series).to_numpy(float)
        if i == 0:
            dd.varea(x, d, 0, fill_color=colour, fill_alpha=0.35, legend_label=label)
        else:
            dd.line(x, d, color=colour, line_width=1, legend_label=label)
    for f in (eq, dd):
        f.legend.location = "top_left"
        f.legend.click_policy = "hide"
        f.legend.label_text_font_size = "8pt"
    return eq, dd


def pnl_figure(pnls: dict[str, np.ndarray]):
    """Histogram of per-trade net P&L (money), one series per name."""
    from bokeh.plotting import figure

    fig = figure(title="Per-trade P&L, net of costs", height=240, width=520,
                 tools="pan,box_zoom,reset,save", x_axis_label="P&L per trade [money]",
                 y_axis_label="trades")
    fig.toolbar.logo = None
    values = [v for v in pnls.values() if len(v)]
    if not values:
        return fig
    edges = np.histogram_bin_edges(np.concatenate(values), bins=40)
    for i, (name, v) in enumerate(pnls.items()):
        if len(v):
            counts, _ = np.histogram(v, bins=edges)
            fig.quad(top=counts, bottom=0, left=edges[:-1], right=edges[1:],
                     fill_color=PALETTE[i % len(PALETTE)], fill_alpha=0.5, line_color="white",
                     legend_label=name)
    from bokeh.models import Span

    fig.add_layout(Span(location=0, dimension="height", line_color="#333", line_dash="dotted"))
    fig.legend.label_text_font_size = "8pt"
    return fig


def bokeh_parts(figures: dict[str, object]) -> tuple[str, dict[str, str]]:
    """(one <script> that draws them all, {name: <div class='chart' id='chart-name'>})."""
    from bokeh.embed import components

    script, divs = components(figures)
    return script, {k: f"<div class='chart' id='chart-{k}'>{d}</div>" for k, d in divs.items()}



__all__ = ["BUY_AND_HOLD_COLOUR", "PALETTE", "bokeh_parts", "equity_figures", "plot_equity",
           "plot_trades", "pnl_figure", "price_figure", "probs_figure", "static_png"]
