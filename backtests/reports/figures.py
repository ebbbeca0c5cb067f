"""The figures of the backtest report and the compare page: matplotlib PNGs (the static
fallback) and Bokeh figures (interactive, one shared time axis).

Render only: series and frames in, PNG bytes or Bokeh figures out. ``bokeh_parts`` turns the
figures into the one script and the divs that ``page.page`` places.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from backtests.analysis.performance import drawdown
from backtests.reports.page import png

PALETTE = ("#1f5fa8", "#e6550d", "#31a354", "#756bb1", "#d6616b", "#17becf", "#8c6d31",
           "#7f7f7f")
BUY_AND_HOLD_COLOUR = "#888888"


# --- static PNGs (matplotlib) ----------------------------------------------------------------

def plot_equity(equity: pd.Series, cash: float | None = None) -> bytes:
    """Return in % (from ``cash``, default the first value) and drawdown, one above the other."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(11, 5.5))
    (ax1, ax2) = fig.subplots(2, 1, sharex=True,
                                   gridspec_kw={"height_ratios": [3, 1.3]})
    values = equity.to_numpy(float)
    base = cash or (values[0] if len(values) else 1.0)
    ax1.plot(equity.index, 100.0 * (values / base - 1.0), color="#1f5fa8", lw=1.2)
    ax1.set_ylabel("return [%]")
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
    from matplotlib.figure import Figure
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
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8)   # outside the bars
    ax.grid(alpha=.3)
    ax.set_ylabel("price")
    fig.autofmt_xdate()
    return png(fig)


def static_png(equity: pd.Series, trades: pd.DataFrame, candles: pd.DataFrame,
               cash: float | None = None) -> bytes:
    """The static fallback: return/drawdown above price and trades, one PNG."""
    from PIL import Image

    a = Image.open(io.BytesIO(plot_equity(equity, cash)))
    b = Image.open(io.BytesIO(plot_trades(candles, trades)))
    out = Image.new("RGB", (max(a.width, b.width), a.height + b.height), "white")
    out.paste(a, (0, 0))
    out.paste(b, (0, a.height))
    buf = io.BytesIO()
    out.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


# --- Bokeh figures ---------------------------------------------------------------------------
# Stacked panels share one x range on a bar-index axis labelled with dates (as backtesting.py
# does): no line is drawn across a weekend or a gap in the data. Every stacked panel has the same
# left and right borders and its legend above the plot area (never over the first bars), so the
# frames line up. Beyond MAX_TRADES trades the trades layer starts hidden (one click shows it);
# the trades strip summarises every trade either way.

MIN_BORDER_LEFT = 80
MIN_BORDER_RIGHT = 30
MAX_TRADES = 200
WIN, LOSS = "#1a9850", "#d73027"

# A tick (bar position) → the bar's time; times in ms since the epoch (UTC).
_DATE_TICKS = """
const i = Math.round(tick);
if (i < 0 || i >= ms.length || Math.abs(tick - i) > 1e-6) { return ""; }
const t = new Date(ms[i]).toISOString();
return daily ? t.slice(0, 10) : t.slice(0, 10) + " " + t.slice(11, 16);
"""


CLASS_NAMES = ("none", "buy", "sell")


def reliability_png(rel: dict, title: str = "reliability") -> bytes:
    """The reliability diagram of ``models.evaluate.reliability``'s numbers: per class (one
    panel each), the observed frequency of the class against the mean predicted probability of
    each non-empty bin (a calibrated model lies on the diagonal), and below, the windows per bin
    with their counts written on the bars."""
    bins = rel["bins"]
    edges = np.linspace(0, 1, bins + 1)
    from matplotlib.figure import Figure
    fig = Figure(figsize=(11, 4.6))
    axes = fig.subplots(2, 3, sharex=True, gridspec_kw={"height_ratios": [3, 1.2]})
    for col, name in enumerate(CLASS_NAMES):
        r = rel[name]
        count = np.asarray(r["count"], float)
        full = count > 0
        pred = np.asarray(r["pred_sum"], float)[full] / count[full]
        obs = np.asarray(r["hits"], float)[full] / count[full]
        top, bottom = axes[0, col], axes[1, col]
        top.plot([0, 1], [0, 1], color="#888", lw=.8, ls="--", label="perfectly calibrated")
        top.plot(pred, obs, marker="o", color=PALETTE[col], lw=1.2, label="observed")
        top.set_xlim(0, 1)
        top.set_ylim(0, 1)
        top.set_title(f"p_{name}", fontsize=10)
        top.grid(alpha=.3)
        if col == 0:
            top.set_ylabel("observed frequency")
            top.legend(fontsize=7, loc="upper left")
        bottom.bar(edges[:-1], count, width=1 / bins, align="edge", color=PALETTE[col],
                   alpha=.5, edgecolor="white")
        bottom.set_ylim(0, 1.3 * max(count.max(), 1))
        for i in np.flatnonzero(full):
            bottom.text(edges[i] + 0.5 / bins, count[i], f"{int(count[i])}", ha="center",
                        va="bottom", fontsize=6)
        bottom.set_xlabel("predicted probability")
        if col == 0:
            bottom.set_ylabel("windows")
    fig.suptitle(title, fontsize=11)
    return png(fig)


def _naive(index: pd.Index) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(index)
    return idx.tz_convert(None) if idx.tz is not None else idx


def bar_axis(*indexes: pd.Index) -> pd.DatetimeIndex:
    """The times of the bar-index axis over every index given (naive UTC in ns, sorted,
    unique)."""
    out = pd.DatetimeIndex([], dtype="datetime64[ns]")
    for index in indexes:
        out = out.append(_naive(index).as_unit("ns"))
    return out.unique().sort_values()


def bar_positions(axis: pd.DatetimeIndex, times) -> np.ndarray:
    """The bar positions of ``times`` on ``axis`` (the bar at or after each time)."""
    pos = axis.searchsorted(_naive(pd.Index(times)).as_unit("ns"))
    return np.minimum(pos, max(len(axis) - 1, 0)).astype(float)


def stacked_figure(title: str, height: int, axis: pd.DatetimeIndex, x_range=None,
                   y_label: str = "", **kw):
    """One panel of a stack: bar-index x axis with date labels, shared ``x_range``, the same
    borders as every other panel."""
    from bokeh.models import CustomJSTickFormatter
    from bokeh.plotting import figure

    opts = {"x_range": x_range} if x_range is not None else {}
    fig = figure(title=title, height=height, sizing_mode="stretch_width",
                 tools="xpan,xwheel_zoom,box_zoom,reset,save", active_drag="xpan",
                 active_scroll="xwheel_zoom", min_border_left=MIN_BORDER_LEFT,
                 min_border_right=MIN_BORDER_RIGHT, toolbar_location="right", **opts, **kw)
    ms = (axis.as_unit("ns").asi8 // 1_000_000).astype(float) if len(axis) else np.zeros(0)
    daily = bool(len(axis)) and bool((axis == axis.normalize()).all())
    fig.xaxis.formatter = CustomJSTickFormatter(args={"ms": ms.tolist(), "daily": daily},
                                                code=_DATE_TICKS)
    fig.yaxis.axis_label = y_label
    fig.toolbar.logo = None
    return fig


def legend_above(fig, items=None) -> None:
    """The figure's legend (or one made of ``items``) in one row above the plot area."""
    from bokeh.models import Legend

    legends = list(fig.legend)
    legend = legends[0] if legends else Legend(items=items or [])
    if items:
        legend.items = items
    if legend in fig.center:
        fig.center.remove(legend)
    legend.orientation = "horizontal"
    legend.location = "top_left"
    legend.click_policy = "hide"
    legend.label_text_font_size = "8pt"
    legend.padding = legend.margin = 2
    fig.add_layout(legend, "above")


def price_figure(candles: pd.DataFrame, trades: pd.DataFrame, orders: pd.DataFrame | None = None,
                 title: str = "Price (bid), trades, stops and targets — hover a trade",
                 max_trades: int = MAX_TRADES, digits: int = 5):
    """Candlesticks with every trade: entry triangle, a line to its exit (green win / red loss),
    its stop (red dashes) and target (green dashes) while it was open; prices hovered at
    ``digits`` decimals. The trades are one layer, hidden at first beyond ``max_trades`` (a
    click on its legend entry shows it)."""
    from bokeh.models import ColumnDataSource, HoverTool, LegendItem

    axis = bar_axis(candles.index)
    o, h, lo, c = (candles[k].to_numpy(float) for k in ("open", "high", "low", "close"))
    hidden = len(trades) > max_trades
    if hidden:
        title += (f" — {len(trades):,} trades: the trades layer is off (over {max_trades}); "
                  "click 'trades' above to show it")
    fig = stacked_figure(title, 340, axis, y_label="price")
    up = c >= o
    src = ColumnDataSource({"x": np.arange(len(c), dtype=float), "time": axis, "open": o,
                            "high": h, "low": lo, "close": c,
                            "top": np.maximum(o, c), "bottom": np.minimum(o, c),
                            "colour": np.where(up, "#26a69a", "#ef5350")})
    fig.segment("x", "high", "x", "low", source=src, color="#555", line_width=1)
    fig.vbar("x", 0.7, "top", "bottom", source=src, fill_color="colour", line_color="colour")
    if not len(trades):
        return fig
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
    data = {
        "entry_x": bar_positions(axis, t["entry_time"]),
        "exit_x": bar_positions(axis, t["exit_time"]),
        "entry_time": _naive(t["entry_time"]), "exit_time": _naive(t["exit_time"]),
        "entry_price": t["entry_price"].to_numpy(float),
        "exit_price": t["exit_price"].to_numpy(float), "stop": stop, "target": target,
        "direction": np.where(t["direction"].to_numpy() > 0, "long", "short"),
        "size": t["size"].to_numpy(float), "pnl_net": t["pnl_net"].to_numpy(float),
        "pnl_gross": t["pnl_gross"].to_numpy(float),
        "costs": t["costs"].to_numpy(float) if "costs" in t else np.zeros(len(t)),
        "bars_held": t["bars_held"].to_numpy(float),
        "exit_reason": t["exit_reason"].astype(str).to_numpy(),
        "colour": np.where(win, WIN, LOSS),
        "marker": np.where(t["direction"].to_numpy() > 0, "triangle", "inverted_triangle"),
    }
    ts = ColumnDataSource(data)
    stops = fig.segment("entry_x", "stop", "exit_x", "stop", source=ts, color=LOSS,
                        line_dash="dashed", line_width=1)
    targets = fig.segment("entry_x", "target", "exit_x", "target", source=ts, color=WIN,
                          line_dash="dashed", line_width=1)
    path = fig.segment("entry_x", "entry_price", "exit_x", "exit_price", source=ts,
                       color="colour", line_width=2)
    r = fig.scatter("entry_x", "entry_price", source=ts, marker="marker", size=9,
                    fill_color="colour", line_color="#222")
    exits = fig.scatter("exit_x", "exit_price", source=ts, marker="x", size=7, color="#222")
    layer = [path, r, exits]
    for renderer in (*layer, stops, targets):
        renderer.visible = not hidden
    price = "0." + "0" * digits if digits > 0 else "0"
    fig.add_tools(HoverTool(renderers=[r], tooltips=[
        ("trade", "@direction @size{0,0} units"),
        ("entry", f"@entry_time{{%Y-%m-%d %H:%M}} @ @entry_price{{{price}}}"),
        ("exit", f"@exit_time{{%Y-%m-%d %H:%M}} @ @exit_price{{{price}}} (@exit_reason)"),
        ("stop / target", f"@stop{{{price}}} / @target{{{price}}}"),
        ("P&L gross / costs / net", "@pnl_gross{0,0.00} / @costs{0,0.00} / @pnl_net{0,0.00}"),
        ("bars held", "@bars_held")],
        formatters={"@entry_time": "datetime", "@exit_time": "datetime"}))
    legend_above(fig, [LegendItem(label="trades (▲ long, ▼ short, × exit)", renderers=layer),
                       LegendItem(label="stop", renderers=[stops]),
                       LegendItem(label="target", renderers=[targets])])
    return fig


def trades_strip(candles: pd.DataFrame, trades: pd.DataFrame, x_range):
    """Every trade as a bar from entry to exit (long above, short below; green win, red loss),
    with a count and the win rate in the title: the summary of the trades layer."""
    from bokeh.models import ColumnDataSource, HoverTool

    axis = bar_axis(candles.index)
    n = len(trades)
    pnl = trades["pnl_net"].to_numpy(float) if n else np.zeros(0)
    longs = int((trades["direction"] > 0).sum()) if n else 0
    title = (f"Trades: {n:,} ({longs:,} long, {n - longs:,} short), "
             f"{(pnl > 0).mean() if n else 0:.0%} won, net {pnl.sum():+,.2f}")
    fig = stacked_figure(title, 90, axis, x_range=x_range, y_range=(-1.6, 1.6))
    fig.yaxis.ticker = [-1, 1]
    fig.yaxis.major_label_overrides = {-1: "short", 1: "long"}
    fig.ygrid.visible = False
    if n:
        side = np.where(trades["direction"].to_numpy() > 0, 1.0, -1.0)
        left = bar_positions(axis, trades["entry_time"]) - 0.4
        right = np.maximum(bar_positions(axis, trades["exit_time"]) + 0.4, left + 0.8)
        src = ColumnDataSource({"left": left, "right": right, "bottom": side - 0.45,
                                "top": side + 0.45, "pnl": pnl,
                                "colour": np.where(pnl > 0, WIN, LOSS)})
        q = fig.quad("left", "right", "top", "bottom", source=src, fill_color="colour",
                     line_color="colour", fill_alpha=0.7)
        fig.add_tools(HoverTool(renderers=[q], tooltips=[("P&L net", "@pnl{0,0.00}")]))
    return fig


def probs_figure(probs: pd.DataFrame, x_range, threshold: float | None = None):
    """The model's p_buy and p_sell per bar (bar-index axis: no line across a gap), with the
    signal threshold."""
    from bokeh.models import Span

    axis = bar_axis(probs.index)
    fig = stacked_figure("Model probabilities", 140, axis, x_range=x_range, y_label="p",
                         y_range=(0, 1))
    x = np.arange(len(probs), dtype=float)
    fig.line(x, probs["p_buy"].to_numpy(float), color=WIN, legend_label="p_buy")
    fig.line(x, probs["p_sell"].to_numpy(float), color=LOSS, legend_label="p_sell")
    if threshold is not None:
        fig.add_layout(Span(location=threshold, dimension="width", line_dash="dotted",
                            line_color="#333"))
    legend_above(fig)
    return fig


def is_benchmark(label: str) -> bool:
    """Whether a curve is buy-and-hold (drawn on its own panel)."""
    return label.startswith("buy and hold")


def equity_figures(curves: list[tuple[str, pd.Series]], x_range=None,
                   title: str = "Return [%] from the starting cash",
                   axis: pd.DatetimeIndex | None = None, bars_per_year: float | None = None,
                   cash: float | None = None):
    """{name: figure} of the stacked equity panels: ``equity`` (each strategy's return in %, the
    first drawn thickest), ``drawdown`` (shaded), ``sharpe`` (rolling, annualised) and
    ``benchmark`` (buy-and-hold's return on its own panel, so it never flattens a strategy).

    ``axis``: the bar-index axis (default: every curve's times); ``cash``: the starting cash
    returns are measured from (default: each curve's first value)."""
    from bokeh.models import Span

    from backtests.analysis.performance import rolling_sharpe

    axis = axis if axis is not None else bar_axis(*(s.index for _, s in curves))
    strategies = [(label, s) for label, s in curves if not is_benchmark(label)]
    benchmarks = [(label, s) for label, s in curves if is_benchmark(label)]
    eq = stacked_figure(title, 240, axis, x_range=x_range, y_label="return [%]")
    x_range = x_range or eq.x_range
    dd = stacked_figure("Drawdown [%] (shaded)", 130, axis, x_range=x_range,
                        y_label="drawdown [%]")
    window = None
    sharpe = stacked_figure("Rolling Sharpe ratio (annualised)", 130, axis, x_range=x_range,
                            y_label="Sharpe")
    figs = {"equity": eq, "drawdown": dd, "sharpe": sharpe}
    for i, (label, series) in enumerate(strategies):
        colour = PALETTE[i % len(PALETTE)]
        x = bar_positions(axis, series.index)
        values = series.to_numpy(float)
        eq.line(x, 100.0 * (values / (cash or values[0]) - 1.0), color=colour,
                line_width=2.2 if i == 0 else 1.4, legend_label=label)
        d = drawdown(series).to_numpy(float)
        if i == 0:
            dd.varea(x, d, 0, fill_color="#c0392b", fill_alpha=0.4, legend_label=label)
        else:
            dd.line(x, d, color=colour, line_width=1, legend_label=label)
        window, rs = rolling_sharpe(series, bars_per_year)
        sharpe.line(x, rs.to_numpy(float), color=colour, line_width=1.2, legend_label=label)
    if window:
        sharpe.title.text = f"Rolling Sharpe ratio (annualised, last {window:,} bars)"
    for f in figs.values():
        f.add_layout(Span(location=0, dimension="width", line_color="#999", line_width=1))
    if benchmarks:
        bh = stacked_figure("Buy and hold: return [%] (its own scale)", 150, axis,
                            x_range=x_range, y_label="return [%]")
        for label, series in benchmarks:
            values = series.to_numpy(float)
            bh.line(bar_positions(axis, series.index), 100.0 * (values / (cash or values[0]) - 1.0),
                    color=BUY_AND_HOLD_COLOUR, line_width=1.4, legend_label=label)
        figs["benchmark"] = bh
    for f in figs.values():
        if f.renderers:
            legend_above(f)
    return figs


def fold_grid(by_fold: dict[int, dict[str, pd.Series]], ncols: int = 3):
    """One small panel per fold: each model's return [%] (the series' values) over the fold's test bars (bar-index
    axis with dates), the models' colours the same in every panel, the legend in the first."""
    from bokeh.layouts import gridplot
    from bokeh.plotting import figure

    names = list(dict.fromkeys(n for models in by_fold.values() for n in models))
    colour = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}
    panels = []
    for k, (fold, models) in enumerate(sorted(by_fold.items())):
        axis = bar_axis(*(s.index for s in models.values()))
        fig = stacked_figure(f"fold {fold}: return [%]", 230, axis)
        fig.min_border_left = 50
        for name, series in models.items():
            v = series.to_numpy(float)
            fig.line(bar_positions(axis, series.index), v, color=colour[name], line_width=1.3,
                     legend_label=name)
        if k == 0:
            legend_above(fig)
        else:
            fig.legend.visible = False
        fig.xaxis.major_label_text_font_size = "7pt"
        fig.xaxis.ticker.desired_num_ticks = 3
        panels.append(fig)
    if not panels:
        return figure(height=50)
    for fig in panels:
        fig.sizing_mode = "stretch_width"
    return gridplot(panels, ncols=ncols, sizing_mode="stretch_width", merge_tools=True,
                    toolbar_location="right")


def heatmap_figure(heat: pd.DataFrame, x: str, y: str,
                   title: str = "Out-of-sample Sharpe (annualised), mean over the other axes"):
    """A heatmap of ``heat`` (rows ``y``, columns ``x``), each cell labelled with its value,
    red below zero and green above on a scale symmetric about zero; hover for the cell."""
    from bokeh.models import ColorBar, ColumnDataSource, HoverTool, LinearColorMapper
    from bokeh.palettes import RdYlGn11
    from bokeh.plotting import figure

    xs, ys = [str(c) for c in heat.columns], [str(i) for i in heat.index]
    values = heat.to_numpy(float)
    finite = values[np.isfinite(values)]
    lim = float(np.abs(finite).max()) if len(finite) and np.abs(finite).max() > 0 else 1.0
    cells = [(xs[j], ys[i], values[i, j]) for i in range(len(ys)) for j in range(len(xs))]
    src = ColumnDataSource({"x": [c[0] for c in cells], "y": [c[1] for c in cells],
                            "value": [c[2] for c in cells],
                            "label": ["" if not np.isfinite(c[2]) else f"{c[2]:.2f}"
                                      for c in cells]})
    mapper = LinearColorMapper(palette=list(reversed(RdYlGn11)), low=-lim, high=lim,
                               nan_color="#eeeeee")
    fig = figure(title=title, x_range=xs, y_range=ys, height=90 + 42 * len(ys),
                 width=min(1100, 160 + 90 * len(xs)), tools="hover,save",
                 x_axis_label=x.split(".")[-1], y_axis_label=y.split(".")[-1])
    fig.toolbar.logo = None
    fig.rect("x", "y", 1, 1, source=src, fill_color={"field": "value", "transform": mapper},
             line_color="white")
    fig.text("x", "y", text="label", source=src, text_align="center", text_baseline="middle",
             text_font_size="9pt")
    fig.select_one(HoverTool).tooltips = [(x.split(".")[-1], "@x"), (y.split(".")[-1], "@y"),
                                          ("value", "@value{0.000}")]
    fig.add_layout(ColorBar(color_mapper=mapper, width=10), "right")
    fig.grid.visible = False
    return fig


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



__all__ = ["BUY_AND_HOLD_COLOUR", "reliability_png", "MAX_TRADES", "MIN_BORDER_LEFT", "MIN_BORDER_RIGHT", "PALETTE",
           "bar_axis", "bar_positions", "bokeh_parts", "equity_figures", "fold_grid",
           "heatmap_figure", "is_benchmark",
           "legend_above", "plot_equity", "plot_trades", "pnl_figure", "price_figure",
           "probs_figure", "stacked_figure", "static_png", "trades_strip"]
