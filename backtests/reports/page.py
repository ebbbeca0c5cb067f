"""The one HTML page kit of every report and the compare page: page frames, tables, PNGs.

Render only: rows (dicts or lists), series and figures in, HTML text or PNG bytes out. One
frame, ``page``, for every report (backtest, compare, walk-forward, sweep): Bokeh's JavaScript
inlined when there are charts, sortable tables, PNGs inline; it works offline from the file.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import pandas as pd

from backtests.analysis.catalog import format_value

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


# --- frames ----------------------------------------------------------------------------------

def page(title: str, body: list[str], script: str = "") -> str:
    """A complete interactive page; Bokeh's own JavaScript inlined only when there are charts."""
    head = ""
    if script:
        from bokeh.resources import Resources

        head = Resources(mode="inline", components=["bokeh"]).render_js()
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{CSS}</style>{head}</head><body>"
            + "".join(body) + f"{script}<script>{SORT_JS}</script></body></html>")


# --- PNGs ------------------------------------------------------------------------------------

def png(fig, dpi: int = 100) -> bytes:
    """A matplotlib figure as PNG bytes (tight bounding box)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def img(data: bytes, alt: str) -> str:
    """PNG bytes as an inline <img> (a data: URL, so the page needs no other file)."""
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


# --- tables ----------------------------------------------------------------------------------

def table(rows: list[dict]) -> str:
    """An HTML table of dict rows; columns are the union of keys in first-seen order, values
    formatted by ``backtests.analysis.catalog.format_value``."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(format_value(row.get(c)))}</td>" for c in columns)
        + "</tr>" for row in rows)
    return (f"<div style='overflow-x:auto'><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>")


def grid_table(header, rows) -> str:
    """An HTML table of a header and list rows, each cell its ``str``."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def sortable_table(rows: list[dict], max_rows: int | None = None,
                   formats: dict[str, str] | None = None) -> str:
    """A table whose columns sort when their header is clicked (numbers numerically);
    ``formats``: a format string per column for its numbers (e.g. ``{:.5f}`` for prices)."""
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
            shown = (formats[c].format(v) if formats and c in formats and attr
                     else format_value(v))
            cells.append(f"<td{attr}>{html.escape(shown)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<div class='scroll'><table class='sortable'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>")


def _seq(v) -> str:
    return ", ".join(f"{x:,}" if isinstance(x, int) and not isinstance(x, bool) else str(x)
                     for x in v) if isinstance(v, list | tuple) else str(v)


def folds_text(f: dict) -> str:
    """A walk-forward plan (``folds`` settings) in words."""
    return (f"{'expanding' if f.get('expanding') else 'rolling'}: {f['train_bars']:,} training + "
            f"{f['val_bars']:,} validation + {f['test_bars']:,} test bars, stepped by "
            f"{f['step_bars']:,}, embargo {f.get('embargo', 0):,} bars")


def settings_table(settings: dict) -> str:
    """A study's settings (walk-forward, sweep) as a readable two-column table: lists as
    comma-separated values, the fold plan in words, a grid one axis per row."""
    words = {"sources": "data", "source": "data", "models": "models", "seeds": "seeds",
             "folds": "folds", "threshold": "signal threshold"}
    rows = []
    for key, v in settings.items():
        if key == "folds" and isinstance(v, dict):
            rows.append({"setting": "folds", "value": folds_text(v)})
        elif key == "grid" and isinstance(v, dict):
            rows += [{"setting": f"grid: {k.split('.', 1)[-1]}", "value": _seq(vals)}
                     for k, vals in v.items()]
        elif key == "threshold" and v == "auto":
            rows.append({"setting": words[key], "value": "auto (chosen on each fold's "
                         "validation part with the run's costs)"})
        else:
            rows.append({"setting": words.get(key, key), "value": _seq(v)})
    body = "".join(f"<tr><td>{html.escape(r['setting'])}</td><td style='text-align:left'>"
                   f"{html.escape(r['value'])}</td></tr>" for r in rows)
    return f"<table class='settings'><tr><th>setting</th><th>value</th></tr>{body}</table>"


def _heat(v: float | None, scale: float) -> str:
    if v is None or not np.isfinite(v):
        return ""
    a = min(abs(v) / scale, 1.0) * 0.75 if scale > 0 else 0
    rgb = "26,152,80" if v >= 0 else "215,48,39"
    return f" style='background:rgba({rgb},{a:.2f})'"


def returns_table(freq: str, returns: pd.Series, name: str = "") -> str:
    """Monthly returns as a year × month heat table (with the year's compounded total), or
    weekly returns as one row of week-start → return cells
    (``backtests.analysis.performance.period_returns``)."""
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


__all__ = ["CSS", "SORT_JS", "folds_text", "grid_table", "settings_table", "img", "page", "png", "returns_table", "sortable_table",
           "table"]
