"""Write a backtest's folder: trades.csv, equity.csv, report.json, report.html and report.png.

report.html is interactive and self-contained: Bokeh's JavaScript is inlined (no CDN, no server),
so it opens offline from the file; candles with trades (hover a trade for its numbers), the
model's probabilities, equity curves and drawdown share one zoomable time axis. report.png is the
static fallback (equity and trades, matplotlib Agg) for consoles and READMEs; the page shows it
too when scripts are off. report.json is strict JSON with stable keys: NaN becomes null, ±inf the
strings "inf"/"-inf", timestamps ISO strings, durations their pandas string.

The pieces (figures, tables, the page) are shared with ``backtests.compare``.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from backtests.analysis.catalog import format_value as _fmt
from backtests.analysis.catalog import jsonable, stat
from backtests.analysis.catalog import rows as stat_rows
from backtests.analysis.performance import drawdown
from backtests.simulation import BacktestResult
from data.atomic import atomic_write
from strategy.fractal import Costs

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;
color:#222;background:#fff;max-width:1200px}
h1{font-size:1.45em;margin-bottom:4px}h2{font-size:1.15em;margin-top:28px;
border-bottom:1px solid #ccc;padding-bottom:3px}
table{border-collapse:collapse;font-size:.86em;margin:8px 0}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:right;vertical-align:top}
th{background:#f0f3f7;white-space:normal;max-width:9em}
td:first-child,th:first-child{text-align:left}
img{max-width:100%;height:auto;display:block;margin:8px 0}
.note{color:#555;font-size:.88em}
.verdict{font-size:1.08em;padding:8px 12px;border-left:5px solid #888;background:#f6f6f6}
.verdict.skill{border-color:#1a9850}.verdict.weak{border-color:#e6a700}
.verdict.none,.verdict.worse{border-color:#c0392b}
.cols{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
.chart{display:block;margin:8px 0;min-height:50px}
.scroll{max-height:420px;overflow:auto;border:1px solid #ddd}
.scroll table{margin:0}.scroll th{position:sticky;top:0}
th.sort{cursor:pointer}th.sort:after{content:" ⇅";color:#999}
td.best{font-weight:bold;background:#e3f4e1}tr.differs td:first-child:after{content:" ≠";color:#c0392b}
.warn{color:#b03a2e}
"""

# Sort a table by a clicked header (numbers by data-v, else text); no library.
SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th,i){th.classList.add('sort');
    th.addEventListener('click',function(){
      var b=t.tBodies[0],rows=Array.from(b.rows),asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';
      rows.sort(function(x,y){var a=x.cells[i].dataset.v,c=y.cells[i].dataset.v;
        var r=(a!==undefined&&c!==undefined)?(parseFloat(a)-parseFloat(c)):
          x.cells[i].textContent.localeCompare(y.cells[i].textContent);
        return asc?r:-r;});
      rows.forEach(function(r){b.appendChild(r);});});});});
"""

PALETTE = ("#1f5fa8", "#e6550d", "#31a354", "#756bb1", "#d6616b", "#17becf", "#8c6d31",
           "#7f7f7f")
BUY_AND_HOLD_COLOUR = "#888888"


def format_stats_table(stats: dict) -> list[tuple[str, str]]:
    """(heading with unit, formatted value) rows, in the order of ``backtests.analysis.catalog.STATS``."""
    return [(definition.heading, definition.format(value)) for definition, value in stat_rows(stats)]


def out_folder(path: Path, mkdir: bool = False) -> None:
    """Make sure an ``--out`` file can be written where asked: its folder must exist, or be
    created because the user said so (``--mkdir``); a mistyped folder is never made silently."""
    from data.errors import AttnbtError

    folder = Path(path).parent
    if folder.is_dir():
        return
    if folder.exists():
        raise AttnbtError(f"{path}: {folder} is not a folder; choose another --out")
    if not mkdir:
        raise AttnbtError(f"{path}: the folder {folder} does not exist; create it, or give "
                          "--mkdir to have it created")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AttnbtError(f"{path}: cannot create the folder {folder} ({exc.strerror})") from None


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


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
    return _png(fig)


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
    return _png(fig)


def plot_confusion(confusion: np.ndarray, labels: tuple[str, ...] = ("none", "buy", "sell")) -> bytes:
    """A confusion matrix (rows true, columns predicted) with counts and row shares."""
    cm = np.asarray(confusion, dtype=float)
    shares = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(4.6, 4))
    ax = fig.subplots()
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    names = list(labels)[: cm.shape[0]]
    ax.set_xticks(range(cm.shape[1]), names[: cm.shape[1]])
    ax.set_yticks(range(cm.shape[0]), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{int(cm[i, j])}\n{shares[i, j]:.0%}", ha="center", va="center",
                    color="white" if shares[i, j] > .5 else "black", fontsize=9)
    return _png(fig)


def _table(rows: list[dict]) -> str:
    """An HTML table of dict rows; columns are the union of keys in first-seen order."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(row.get(c)))}</td>" for c in columns) + "</tr>"
        for row in rows)
    return (f"<div style='overflow-x:auto'><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>")



# --- facts: what was traded, how, and what it cost -------------------------------------------

PARAM_UNITS = {
    "threshold": "probability", "allow_short": "", "stop_buffer": "price units",
    "take_profit_r": "× risk", "exit_on_opposite": "", "max_hold": "bars", "sizing": "",
    "units": "units per trade (fixed sizing)", "risk_fraction": "share of equity (risk sizing)",
    "max_leverage": "× equity (risk and Kelly sizing)", "stops_in_entry_bar": "",
    "stop": "bar | atr:K | pips:N", "take_profit_atr": "× ATR (replaces take_profit_r when > 0)",
    "trail": "none | r:K | atr:K | pips:N", "atr_period": "bars", "pip": "price units",
    "min_stop_spreads": "× spread", "hours": "UTC hours A-B of the signal bar",
    "min_margin": "probability over the runner-up", "kelly_fraction": "× Kelly (Kelly sizing)",
}


def costs_charged(candles: pd.DataFrame, costs: Costs, trades: pd.DataFrame) -> dict:
    """The costs as actually charged: where the spread came from, its mean and range over the
    bars, commission and slippage, and the money each took from the trades."""
    spread = costs.spread_array(candles)
    if costs.spread is not None:
        where = "fixed (given)"
    elif "spread" in candles.columns:
        missing = int(candles["spread"].isna().sum())
        where = "the data's per-bar spread column" + (
            f" ({missing} missing bars at the default {costs.default_spread:g})" if missing else "")
    else:
        where = f"default {costs.default_spread:g} (the data has no spread column)"

    def total(col: str) -> float:
        return float(trades[col].sum()) if col in trades and len(trades) else 0.0

    return {
        "spread_source": where,
        "spread_mean": float(np.mean(spread)) if len(spread) else None,
        "spread_min": float(np.min(spread)) if len(spread) else None,
        "spread_max": float(np.max(spread)) if len(spread) else None,
        "spread_fixed": costs.spread, "default_spread": costs.default_spread,
        "spread_point": candles.attrs.get("point_evidence"),  # how the file's points were read
        "commission_per_unit_per_side": costs.commission, "slippage": costs.slippage,
        "total_spread_cost": total("spread_cost"), "total_commission": total("commission"),
        "total_slippage_cost": total("slippage_cost"), "total_costs": total("costs"),
        "units": {"spread": "price units", "slippage": "price units per fill",
                  "commission_per_unit_per_side": "money per unit per side",
                  "totals": "money (account currency)"},
    }


def costs_rows(c: dict) -> list[dict]:
    """``costs_charged`` as readable settings rows with units."""
    spread = (f"{c['spread_fixed']:g} (fixed)" if c["spread_fixed"] is not None
              else f"per bar from {c['spread_source']}: mean {_fmt(c['spread_mean'])}, "
                   f"range {_fmt(c['spread_min'])} … {_fmt(c['spread_max'])}")
    return [
        {"setting": "spread [price units]", "value": spread},
        *([{"setting": "spread point", "value": c["spread_point"]}] if c.get("spread_point") else []),
        {"setting": "commission [money per unit per side]",
         "value": c["commission_per_unit_per_side"]},
        {"setting": "slippage [price units per market/stop fill]", "value": c["slippage"]},
        {"setting": "charged: spread [money]", "value": c["total_spread_cost"]},
        {"setting": "charged: commission [money]", "value": c["total_commission"]},
        {"setting": "charged: slippage [money]", "value": c["total_slippage_cost"]},
        {"setting": "charged: all costs [money]", "value": c["total_costs"]},
    ]


def params_rows(params: dict) -> list[dict]:
    return [{"setting": f"{k} [{PARAM_UNITS[k]}]" if PARAM_UNITS.get(k) else k, "value": v}
            for k, v in params.items()]


# --- verdict ---------------------------------------------------------------------------------

MIN_TRADES_FOR_VERDICT = 10


def verdict(stats: dict, baselines: dict | None = None, in_sample: bool = False,
            versus_rules: dict | None = None) -> dict:
    """A one-line judgement, in words, from the return and the p-value against random entries
    of the same shape (one-sided: the share of random draws that did at least as well).

    Rules: no trades → nothing to judge; under 10 trades → too few to judge; no random-entry
    test → not tested; p < 0.05 → "evidence of skill" (and, when the return is still ≤ 0, that it
    does not pay its costs); p < 0.10 → weak evidence; p ≥ 0.95 → worse than random entries;
    otherwise no evidence of skill. In-sample bars prefix a warning that it proves nothing.
    Rule baselines traded on the same bars (``kind`` "rule") add the best one's return, and
    ``versus_rules`` (``models.evaluate.versus_rules``) the hit rate against the best rule's:
    the null for "does it predict fractals" is a trivial rule, not chance.
    """
    ret = stats.get("total_return_pct")
    n = int(stats.get("n_trades") or 0)
    rnd = (baselines or {}).get("random_entries") or {}
    p, median = rnd.get("p_value"), rnd.get("median_return_pct")
    bh = ((baselines or {}).get("buy_and_hold") or {}).get("total_return_pct")

    def pct(v: float | None) -> str:
        return "—" if v is None else f"{v:+.2f} %".replace("-", "−")

    vs = f"return {pct(ret)} vs random entries' median {pct(median)}"
    if n == 0:
        level, text = "no_trades", "No trades: the model's probabilities never crossed the " \
                                   "threshold on these bars; nothing to judge"
    elif n < MIN_TRADES_FOR_VERDICT:
        level, text = "too_few", f"Too few trades ({n}) to judge: return {pct(ret)}"
    elif p is None or median is None:
        level, text = "untested", f"Not tested against random entries: return {pct(ret)}"
    elif p < 0.05:
        level = "skill"
        text = (f"Evidence of skill after costs: {vs} (p = {p:.3f})" if ret is not None and ret > 0
                else f"Better timing than random entries but still losing after costs: {vs} "
                     f"(p = {p:.3f})")
    elif p < 0.10:
        level, text = "weak", f"Weak evidence of skill, not significant at 5 %: {vs} (p = {p:.2f})"
    elif p >= 0.95:
        level, text = "worse", f"Worse than random entries after costs: {vs} (p = {p:.2f})"
    else:
        level, text = "none", f"No evidence of skill after costs: {vs} (p = {p:.2f})"
    if bh is not None and n:
        text += f"; buy and hold {pct(bh)}"
    rules = {k: b for k, b in (baselines or {}).items()
             if b.get("kind") == "rule" and b.get("total_return_pct") is not None}
    best_rule = max(rules.values(), key=lambda b: b["total_return_pct"]) if rules else None
    if best_rule is not None:
        text += (f"; best rule baseline {best_rule.get('name', '?')} {pct(best_rule['total_return_pct'])}"
                 f" ({best_rule.get('n_trades') or 0} trades)")
    if versus_rules:
        text += ". Signals: " + versus_rules["text"]
    if in_sample:
        text = "IN-SAMPLE (these bars were used in training, so this proves nothing): " + text
    return {"level": level, "text": text + ".", "p_value": p, "return_pct": ret,
            "random_median_pct": median, "buy_and_hold_pct": bh, "n_trades": n,
            "in_sample": bool(in_sample),
            "best_rule": None if best_rule is None else best_rule.get("name"),
            "best_rule_return_pct": None if best_rule is None else best_rule["total_return_pct"],
            "versus_rules": versus_rules}


# --- period returns --------------------------------------------------------------------------

def period_returns(equity: pd.Series, initial: float | None = None,
                   freq: str | None = None) -> tuple[str, pd.Series]:
    """("month" | "week", returns in % per calendar month, or week for spans under 3 months).

    A period's return is its last equity over the previous period's last (the first period's
    base is ``initial``, default the first equity value)."""
    if len(equity) == 0:
        return "month", pd.Series(dtype=float)
    idx = pd.DatetimeIndex(equity.index)
    naive = pd.Series(equity.to_numpy(float),
                      index=idx.tz_convert(None) if idx.tz is not None else idx)
    if freq is None:
        freq = "month" if (naive.index[-1] - naive.index[0]) >= pd.Timedelta(days=90) else "week"
    ends = naive.resample("ME" if freq == "month" else "W-SUN").last().dropna()
    starts = ends.shift(1)
    starts.iloc[0] = initial if initial is not None else float(naive.iloc[0])
    out = 100.0 * (ends / starts - 1.0)
    out.index = [t.strftime("%Y-%m") if freq == "month" else
                 (t - pd.Timedelta(days=6)).strftime("%Y-%m-%d") for t in ends.index]
    return freq, out


def _heat(v: float | None, scale: float) -> str:
    if v is None or not np.isfinite(v):
        return ""
    a = min(abs(v) / scale, 1.0) * 0.75 if scale > 0 else 0
    rgb = "26,152,80" if v >= 0 else "215,48,39"
    return f" style='background:rgba({rgb},{a:.2f})'"


def returns_table(freq: str, returns: pd.Series, name: str = "") -> str:
    """Monthly returns as a year × month heat table (with the year's compounded total), or
    weekly returns as one row of week-start → return cells."""
    if returns.empty:
        return "<p class='note'>no complete period</p>"
    scale = float(np.nanmax(np.abs(returns.to_numpy()))) or 1.0
    caption = f"<caption style='text-align:left'>{html.escape(name)}</caption>" if name else ""
    if freq == "week":
        head = "".join(f"<th>{html.escape(k)}</th>" for k in returns.index)
        cells = "".join(f"<td{_heat(v, scale)}>{v:+.2f}</td>" for v in returns.to_numpy())
        return (f"<div style='overflow-x:auto'><table>{caption}<tr><th>week of</th>{head}</tr>"
                f"<tr><td>return [%]</td>{cells}</tr></table></div>")
    months = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    by_year: dict[str, dict[int, float]] = {}
    for key, v in returns.items():
        y, m = key.split("-")
        by_year.setdefault(y, {})[int(m)] = float(v)
    rows = []
    for y, vals in by_year.items():
        total = 100.0 * (np.prod([1 + v / 100 for v in vals.values()]) - 1)
        cells = "".join(f"<td{_heat(vals.get(m), scale)}>"
                        f"{'' if m not in vals else f'{vals[m]:+.2f}'}</td>" for m in range(1, 13))
        rows.append(f"<tr><td>{y}</td>{cells}<td><b>{total:+.2f}</b></td></tr>")
    head = "".join(f"<th>{m}</th>" for m in months)
    return (f"<div style='overflow-x:auto'><table>{caption}<tr><th>return [%]</th>{head}"
            f"<th>Year</th></tr>{''.join(rows)}</table></div>")


# --- Bokeh figures (shared with compare) -----------------------------------------------------

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
                 title: str = "Price (bid), trades, stops and targets — hover a trade"):
    """Candlesticks with every trade: entry triangle, a line to its exit (green win / red loss),
    its stop (red dashes) and target (green dashes) while it was open."""
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
        fig.add_tools(HoverTool(renderers=[r], tooltips=[
            ("trade", "@direction @size{0,0} units"),
            ("entry", "@entry_time{%Y-%m-%d %H:%M} @ @entry_price{0.00000}"),
            ("exit", "@exit_time{%Y-%m-%d %H:%M} @ @exit_price{0.00000} (@exit_reason)"),
            ("stop / target", "@stop{0.00000} / @target{0.00000}"),
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


def page(title: str, body: list[str], script: str = "") -> str:
    """A complete HTML page; Bokeh's own JavaScript inlined only when there are charts."""
    head = ""
    if script:
        from bokeh.resources import Resources

        head = Resources(mode="inline", components=["bokeh"]).render_js()
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{CSS}</style>{head}</head><body>"
            + "".join(body) + f"{script}<script>{SORT_JS}</script></body></html>")


def sortable_table(rows: list[dict], max_rows: int | None = None) -> str:
    """A table whose columns sort when their header is clicked (numbers numerically)."""
    if not rows:
        return "<p class='note'>none</p>"
    columns = list(rows[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = []
    for row in rows[:max_rows]:
        cells = []
        for c in columns:
            v = row.get(c)
            num = isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
            attr = f" data-v='{float(v)!r}'" if num and np.isfinite(float(v)) else ""
            cells.append(f"<td{attr}>{html.escape(_fmt(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<div class='scroll'><table class='sortable'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>")


def trade_rows(trades: pd.DataFrame) -> list[dict]:
    cols = [("entry_time", "entry"), ("exit_time", "exit"), ("direction", "side"),
            ("size", "size [units]"), ("entry_price", "entry price"),
            ("exit_price", "exit price"), ("pnl_gross", "P&L gross [money]"),
            ("costs", "costs [money]"), ("pnl_net", "P&L net [money]"),
            ("return_pct", "return [%]"), ("bars_held", "bars held"),
            ("exit_reason", "exit reason")]
    out = []
    for rec in trades.to_dict("records"):
        row = {}
        for key, name in cols:
            v = rec.get(key)
            if key == "direction":
                v = "long" if v > 0 else "short"
            elif key in ("entry_time", "exit_time") and v is not None and v is not pd.NaT:
                v = pd.Timestamp(v).strftime("%Y-%m-%d %H:%M")
            elif key in ("entry_price", "exit_price") and v is not None:
                v = float(f"{float(v):.6g}")
            row[name] = v
        out.append(row)
    return out


def confusion_table(confusion: np.ndarray, labels: tuple[str, ...] = ("none", "buy", "sell")) -> str:
    """Counts and row shares, rows the true class, columns the predicted one."""
    cm = np.asarray(confusion, dtype=float)
    shares = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    head = "".join(f"<th>predicted {n}</th>" for n in labels[:cm.shape[1]])
    rows = "".join(
        f"<tr><td>true {labels[i]}</td>" + "".join(
            f"<td style='background:rgba(31,95,168,{0.8 * shares[i, j]:.2f});"
            f"color:{'#fff' if shares[i, j] > .55 else '#222'}'>{int(cm[i, j]):,}"
            f" ({shares[i, j]:.0%})</td>" for j in range(cm.shape[1])) + "</tr>"
        for i in range(cm.shape[0]))
    return f"<table><tr><th>true \\ predicted</th>{head}</tr>{rows}</table>"


def baseline_rows(baselines: dict) -> list[dict]:
    """One row per baseline with a few readable columns (the random entries' distribution and
    p-value in words in one cell, so nothing scrolls off the screen)."""
    out = []
    for key, b in baselines.items():
        if b.get("kind") == "random_entries" or key == "random_entries":
            p = b.get("p_value")
            note = (f"{b.get('draws', '?')} draws; 5–95 %: {_fmt(b.get('p5_return_pct'))} … "
                    f"{_fmt(b.get('p95_return_pct'))}; {stat('p_value').label}: {_fmt(p)}")
            out.append({"baseline": b.get("label", key), "Trades": b.get("n_trades"),
                        "Return [%]": b.get("median_return_pct"), "note": "median; " + note})
            continue
        row = {"baseline": b.get("label", key)}
        for k in ("n_trades", "total_return_pct", "win_rate_pct", "profit_factor",
                  "max_drawdown_pct", "sharpe"):
            if k in b:
                row[stat(k).heading] = b[k]
        out.append(row)
    return out


def curve_summary(curves: dict[str, dict]) -> dict:
    """report.json's ``equity_curves``: per curve its label, first/last time and value."""
    out = {}
    for key, c in curves.items():
        s = c["equity"]
        if len(s) == 0:
            continue
        out[key] = {"label": c["label"], "start": s.index[0], "end": s.index[-1],
                    "initial": float(s.iloc[0]), "final": float(s.iloc[-1]),
                    "total_return_pct": 100.0 * (float(s.iloc[-1]) / float(s.iloc[0]) - 1),
                    "max_drawdown_pct": float(drawdown(s).min())}
    return out


def static_png(result: BacktestResult, candles: pd.DataFrame) -> bytes:
    """The static fallback: equity/drawdown above price and trades, one PNG."""
    from PIL import Image

    a = Image.open(io.BytesIO(plot_equity(result.equity)))
    b = Image.open(io.BytesIO(plot_trades(candles, result.trades)))
    out = Image.new("RGB", (max(a.width, b.width), a.height + b.height), "white")
    out.paste(a, (0, 0))
    out.paste(b, (0, a.height))
    buf = io.BytesIO()
    out.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


# --- the backtest report ---------------------------------------------------------------------

def render_report(result: BacktestResult, candles: pd.DataFrame, *,
                  title: str = "Backtest", comparison: list[dict] | None = None,
                  baselines: dict | None = None, confusion: np.ndarray | None = None,
                  attention_pngs: list[tuple[str, bytes]] | None = None,
                  extra: dict | None = None, probs: pd.DataFrame | None = None,
                  curves: dict[str, dict] | None = None, facts: dict | None = None,
                  in_sample: bool = False,
                  versus_rules: dict | None = None) -> dict[str, str | bytes]:
    """The report's files: trades.csv, equity.csv, report.json, report.html (text) and
    report.png (bytes).

    ``probs``: the model's probabilities on these bars (the strip under the price). ``curves``:
    other equity curves on the same bars and cash, ``{key: {"label", "equity"}}`` (the ``--vs``
    models as ``model:<id>``, ``buy_and_hold``), drawn over the model's. ``facts``: what was
    traded (instrument, source, timeframe, model, train_run, model_hash, config_id, ...).
    """
    facts = dict(facts or {})
    curves = {"model": {"label": facts.get("model_label", "model"), "equity": result.equity},
              **(curves or {})}
    files: dict[str, str | bytes] = {"trades.csv": result.trades.to_csv(index=False)}
    eq = pd.DataFrame({"equity": result.equity, "drawdown_pct": drawdown(result.equity)})
    for key, c in curves.items():
        if key != "model":
            eq[f"equity:{key}"] = c["equity"].reindex(result.equity.index)
    eq.index.name = "time"
    files["equity.csv"] = eq.to_csv()

    charged = costs_charged(candles, result.costs, result.trades)
    judged = verdict(result.stats, baselines, in_sample, versus_rules)
    freq, rets = period_returns(result.equity, result.cash)
    index = result.equity.index
    payload = {
        "title": title, "verdict": judged,
        "instrument": facts.get("instrument"), "source": facts.get("source"),
        "timeframe": facts.get("timeframe"), "account_currency": facts.get("account_currency"),
        "pnl_conversion": facts.get("pnl_conversion"),
        "period": {"start": index[0] if len(index) else None,
                   "end": index[-1] if len(index) else None, "bars": len(index),
                   "name": facts.get("period")},
        "model": {k: facts.get(k) for k in ("model", "train_run", "model_hash", "config_id")},
        "stats": result.stats, "params": result.params.to_dict(),
        "costs": result.costs.to_dict(), "costs_charged": charged, "cash": result.cash,
        "meta": result.meta,
        "exit_reasons": result.trades["exit_reason"].value_counts().to_dict(),
        "comparison": comparison, "baselines": baselines,
        "period_returns_freq": freq,
        "monthly_returns": {k: float(v) for k, v in rets.items()} if freq == "month" else None,
        "weekly_returns": {k: float(v) for k, v in rets.items()} if freq == "week" else None,
        "equity_curves": curve_summary(curves),
        "confusion": None if confusion is None else np.asarray(confusion).tolist(),
        "attention_maps": [name for name, _ in attention_pngs or []], "extra": extra,
    }
    files["report.json"] = json.dumps(jsonable(payload), indent=2, allow_nan=False)
    png = static_png(result, candles)
    files["report.png"] = png

    esc = html.escape
    price = price_figure(candles, result.trades, result.orders)
    figs = {"price": price}
    if probs is not None and len(probs):
        figs["probs"] = probs_figure(probs.reindex(candles.index), price.x_range,
                                     result.params.threshold)
    curve_list = [(c["label"], c["equity"]) for c in curves.values() if len(c["equity"])]
    figs["equity"], figs["drawdown"] = equity_figures(curve_list, price.x_range)
    if len(result.trades):
        figs["pnl"] = pnl_figure({curves["model"]["label"]:
                                  result.trades["pnl_net"].to_numpy(float)})
    script, divs = bokeh_parts(figs)

    parts = [f"<h1>{esc(title)}</h1>",
             f"<p class='verdict {judged['level']}'>{esc(judged['text'])}</p>"]
    start = _fmt(index[0]) if len(index) else "—"
    end = _fmt(index[-1]) if len(index) else "—"
    traded = [{"fact": "instrument", "value": facts.get("instrument")},
              {"fact": "source", "value": facts.get("source")},
              {"fact": "account currency", "value": facts.get("account_currency")},
              {"fact": "P&L conversion", "value": facts.get("pnl_conversion")},
              {"fact": "timeframe", "value": facts.get("timeframe")},
              {"fact": "period", "value": f"{start} → {end} ({len(index):,} bars"
                                          f"{', ' + str(facts['period']) if facts.get('period') else ''})"},
              {"fact": "model", "value": facts.get("model")},
              {"fact": "train run", "value": facts.get("train_run")},
              {"fact": "model hash", "value": facts.get("model_hash")},
              {"fact": "config id", "value": facts.get("config_id")},
              {"fact": "bars", "value": "IN-SAMPLE (overlap training)" if in_sample
               else "out-of-sample"},
              {"fact": f"starting cash [{facts.get('account_currency') or 'money'}]",
               "value": result.cash}]
    stat_table = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>"
                         for k, v in format_stats_table(result.stats))
    parts.append("<div class='cols'><div><h2>What was traded</h2>" + _table(traded)
                 + "</div><div><h2>Statistics</h2><table>" + stat_table + "</table></div>"
                 + "<div><h2>Costs charged</h2>" + _table(costs_rows(charged)) + "</div></div>")
    reasons = ", ".join(f"{k}: {v}" for k, v in payload["exit_reasons"].items()) or "none"
    parts.append(f"<h2>Price, trades, probabilities and equity</h2><p class='note'>"
                 f"{len(candles):,} bars, {len(result.trades)} trades (exits — {esc(reasons)})."
                 " Drag to pan, scroll to zoom (all charts move together), hover a trade's "
                 "entry for its numbers, click a legend entry to hide it. Fills at the next "
                 "bar's open; buys at the ask (bid + spread); a trade still open after the last "
                 "bar is closed at the last close (exit reason <i>end</i>).</p>")
    parts.append(divs["price"] + divs.get("probs", "") + divs["equity"] + divs["drawdown"])
    parts.append("<noscript>" + _img(png, "equity and trades (static)") + "</noscript>")
    if baselines:
        parts.append("<h2>Baselines (same bars, same costs)</h2>"
                     + _table(baseline_rows(baselines)))
    parts.append(f"<h2>{'Monthly' if freq == 'month' else 'Weekly'} returns</h2>"
                 + returns_table(freq, rets))
    parts.append("<h2>Trades</h2><div class='cols'>" + divs.get("pnl", "") + "</div>"
                 "<p class='note'>Click a column heading to sort.</p>"
                 + sortable_table(trade_rows(result.trades)))
    if comparison:
        parts.append("<h2>Against the earlier article</h2>" + _table(comparison))
    if confusion is not None:
        parts.append("<h2>Confusion matrix (test bars)</h2>" + confusion_table(confusion))
    if attention_pngs:
        parts.append("<h2>Attention maps</h2>")
        for name, image in attention_pngs:
            parts.append(f"<p class='note'>{esc(name)}</p>" + _img(image, name))
    parts.append("<h2>Strategy settings</h2>" + _table(params_rows(result.params.to_dict())))
    if extra:
        parts.append("<h2>Extra</h2>" + _table([{"key": k, "value": v if not isinstance(
            v, dict | list) else json.dumps(jsonable(v))} for k, v in extra.items()]))
    files["report.html"] = page(title, parts, script)
    return files


def write_report(out_dir: str | Path, result: BacktestResult, candles: pd.DataFrame,
                 **kwargs) -> Path:
    """Write the report's files into ``out_dir`` (each atomically); return report.html's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, content in render_report(result, candles, **kwargs).items():
        atomic_write(out / name, content if isinstance(content, bytes)
                     else content.encode("utf-8"))
    return out / "report.html"
