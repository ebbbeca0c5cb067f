"""Write a backtest's folder: trades.csv, equity.csv, report.json and a self-contained report.html.

The HTML works offline: inline CSS, no scripts, every figure a base64 PNG drawn with matplotlib's
Agg backend. report.json is strict JSON: NaN becomes null, ±inf the strings "inf"/"-inf",
timestamps ISO strings, durations their pandas string.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from backtests.engine import BacktestResult
from backtests.metrics import drawdown
from backtests.stats import format_value as _fmt
from backtests.stats import rows as stat_rows
from backtests.stats import stat

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;
color:#222;background:#fff;max-width:1150px}
h1{font-size:1.5em;margin-bottom:4px}h2{font-size:1.15em;margin-top:28px;
border-bottom:1px solid #ccc;padding-bottom:3px}
table{border-collapse:collapse;font-size:.88em;margin:8px 0}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f0f3f7}td:first-child,th:first-child{text-align:left}
img{max-width:100%;height:auto;display:block;margin:8px 0}
.note{color:#555;font-size:.88em}
"""


def format_stats_table(stats: dict) -> list[tuple[str, str]]:
    """(heading with unit, formatted value) rows, in the order of ``backtests.stats.STATS``."""
    return [(definition.heading, definition.format(value)) for definition, value in stat_rows(stats)]


def jsonable(value: object) -> object:
    """A value made strict-JSON safe (recursively)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return None
        return ("inf" if v > 0 else "-inf") if math.isinf(v) else v
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if value is None or isinstance(value, str):
        return value
    if value is pd.NaT:
        return None
    return str(value)


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


BASELINE_KEYS = ("total_return_pct", "annual_return_pct", "max_drawdown_pct", "sharpe",
                 "exposure_pct", "n_trades", "win_rate_pct", "profit_factor", "expectancy",
                 "median_return_pct", "p5_return_pct", "p95_return_pct", "p_value")


def _baseline_rows(baselines: dict) -> list[dict]:
    """One row per baseline (keyed by kind; shown by its label), headline statistics only."""
    out = []
    for key, value in baselines.items():
        row = {"baseline": value.get("label", key)}
        for k in BASELINE_KEYS:
            if k in value:
                row[stat(k).heading] = value[k]
        out.append(row)
    return out


def render_report(result: BacktestResult, candles: pd.DataFrame, *,
                  title: str = "Backtest", comparison: list[dict] | None = None,
                  baselines: dict | None = None, confusion: np.ndarray | None = None,
                  attention_pngs: list[tuple[str, bytes]] | None = None,
                  extra: dict | None = None) -> dict[str, str]:
    """The report's files as text: trades.csv, equity.csv, report.json and report.html."""
    files = {"trades.csv": result.trades.to_csv(index=False)}
    eq = pd.DataFrame({"equity": result.equity, "drawdown_pct": drawdown(result.equity)})
    eq.index.name = "time"
    files["equity.csv"] = eq.to_csv()

    payload = {
        "title": title, "stats": result.stats, "params": result.params.to_dict(),
        "costs": result.costs.to_dict(), "cash": result.cash, "meta": result.meta,
        "exit_reasons": result.trades["exit_reason"].value_counts().to_dict(),
        "comparison": comparison, "baselines": baselines,
        "confusion": None if confusion is None else np.asarray(confusion).tolist(),
        "attention_maps": [name for name, _ in attention_pngs or []], "extra": extra,
    }
    files["report.json"] = json.dumps(jsonable(payload), indent=2, allow_nan=False)

    esc = html.escape
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{esc(title)}"
             f"</title><style>{CSS}</style></head><body><h1>{esc(title)}</h1>"]
    reasons = ", ".join(f"{k}: {v}" for k, v in payload["exit_reasons"].items()) or "none"
    parts.append(f"<p class='note'>{len(candles):,} bars, {len(result.trades)} trades "
                 f"(exits — {esc(reasons)}). Fills at the next bar's open; buys at the ask "
                 "(bid + spread); a trade still open after the last bar is closed at the last "
                 "close (exit reason <i>end</i>).</p>")
    stat_rows = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>"
                        for k, v in format_stats_table(result.stats))
    parts.append(f"<h2>Statistics</h2><table>{stat_rows}</table>")
    parts.append("<h2>Equity and drawdown</h2>" + _img(plot_equity(result.equity), "equity"))
    parts.append("<h2>Price, entries and exits</h2>"
                 + _img(plot_trades(candles, result.trades), "trades"))
    if baselines:
        parts.append("<h2>Baselines</h2>" + _table(_baseline_rows(baselines)))
    if comparison:
        parts.append("<h2>Against the earlier article</h2>" + _table(comparison))
    if confusion is not None:
        parts.append("<h2>Confusion matrix</h2>" + _img(plot_confusion(confusion), "confusion"))
    if attention_pngs:
        parts.append("<h2>Attention maps</h2>")
        for name, png in attention_pngs:
            parts.append(f"<p class='note'>{esc(name)}</p>" + _img(png, name))
    settings = [{"setting": k, "value": v} for k, v in
                {**result.params.to_dict(), **{f"costs.{k}": v
                                               for k, v in result.costs.to_dict().items()}}.items()]
    parts.append("<h2>Settings</h2>" + _table(settings))
    if extra:
        parts.append("<h2>Extra</h2>" + _table([{"key": k, "value": v if not isinstance(
            v, dict | list) else json.dumps(jsonable(v))} for k, v in extra.items()]))
    parts.append("</body></html>")
    files["report.html"] = "".join(parts)
    return files


def write_report(out_dir: str | Path, result: BacktestResult, candles: pd.DataFrame,
                 **kwargs) -> Path:
    """Write the report's files into ``out_dir`` (each atomically); return report.html's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in render_report(result, candles, **kwargs).items():
        tmp = out / (name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out / name)
    return out / "report.html"
