"""What a sweep shows: a heatmap of two axes, the table of every combination, the best one's
equity beside buy-and-hold and random entries, and the verdict (``report.html``)."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from backtests.analysis.performance import COST_TOTALS
from backtests.reports.figures import bokeh_parts, equity_figures, heatmap_figure
from backtests.reports.page import img, page, png, settings_table, sortable_table


def heatmap_frame(table: pd.DataFrame, x: str, y: str, value: str = "sharpe",
                  x_values: list | None = None, y_values: list | None = None) -> pd.DataFrame:
    """Mean of ``value`` over every other axis, for each (``y``, ``x``) cell, rows and columns
    in the grid's order. The mean, not the best: the best cell of a heatmap of maxima is the
    search's luck, not the rule's."""
    x, y = x.split(".")[-1], y.split(".")[-1]
    for axis in (x, y):
        if axis not in table.columns:
            raise KeyError(axis)
    frame = table.groupby([y, x], sort=False)[value].mean().unstack(x)
    return frame.reindex(index=y_values or list(frame.index),
                         columns=x_values or list(frame.columns))


def render_heatmap_png(heat: pd.DataFrame, x: str, y: str) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1.2 + 0.9 * heat.shape[1], 1.0 + 0.55 * heat.shape[0]))
    ax = fig.subplots()
    values = heat.to_numpy(dtype=float)
    lim = np.nanmax(np.abs(values)) if np.isfinite(values).any() else 1.0
    im = ax.imshow(values, cmap="RdYlGn", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(heat.shape[1]), [str(c) for c in heat.columns])
    ax.set_yticks(range(heat.shape[0]), [str(i) for i in heat.index])
    ax.set_xlabel(x.split(".")[-1])
    ax.set_ylabel(y.split(".")[-1])
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8)
    ax.set_title("out-of-sample Sharpe (annualised), mean over the other axes", fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return png(fig, dpi=110)


def render_equity_png(equity: pd.DataFrame) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.2))
    ax = fig.subplots()
    for name in equity.columns:
        ax.plot(np.arange(len(equity)), equity[name].to_numpy(), label=name.replace("_", " "),
                lw=1.2 if name == "best" else 0.9)
    ax.set_xlabel("out-of-sample bar (test parts of all folds, stitched)")
    ax.set_ylabel("equity")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return png(fig, dpi=110)


def render_html(payload: dict, table: pd.DataFrame, heat_png: bytes | None,
                equity: pd.DataFrame, heat: pd.DataFrame | None = None) -> str:
    """A self-contained page (no network; Bokeh inlined): verdict, settings, heatmap, the best
    combination's equity beside the benchmarks, checks, every combination (sortable).

    ``heat``: the heatmap's frame (``heatmap_frame``) for the interactive heatmap; the PNG
    stands in when scripts are off."""
    s = payload["settings"]
    esc = html.escape
    parts = [
        f"<h1>Sweep {esc(payload['run'])}</h1>",
        f"<p class='verdict'><b>{esc(payload['verdict'])}</b></p>",
        "<h2>Settings</h2>" + settings_table(s),
        f"<p class='note'>{payload['combinations']:,} combinations, {payload['tasks_done']:,} of "
        f"{payload['tasks']:,} tasks; every combination × seed is a trial in the registry.</p>",
    ]
    figs = {}
    hm = payload.get("heatmap") or {}
    if heat is not None and hm:
        figs["heatmap"] = heatmap_figure(heat, hm["x"], hm["y"])
    curves = [("best combination" if name == "best" else name.replace("_", " "),
               equity[name].dropna()) for name in equity.columns]
    if len(equity):
        figs.update(equity_figures(curves, title="Best combination out of sample: return [%] "
                                   "(test parts of all folds, stitched)"))
    script, divs = bokeh_parts(figs) if figs else ("", {})
    if heat_png is not None:
        parts.append("<h2>Heatmap</h2>" + divs.get("heatmap", "")
                     + "<noscript>" + img(heat_png, "heatmap") + "</noscript>")
    parts.append("<h2>Best combination out of sample</h2><p class='note'>Buy-and-hold on its "
                 "own panel; the x axis counts test bars (dates below).</p>"
                 + "".join(divs.get(k, "") for k in ("equity", "drawdown", "sharpe", "benchmark"))
                 + "<noscript>" + img(render_equity_png(equity), "equity") + "</noscript>")
    parts.append("<h2>Checks</h2><ul>")
    for name, r in payload["spa"].items():
        parts.append(f"<li>SPA (all combinations) vs {name.replace('_', ' ')}: p = "
                     f"{_num(r.get('p_value'))}</li>")
    for t in payload["backtrader"]:
        parts.append(f"<li>#{t['rank']} {esc(t['rules'])} re-run on backtrader over "
                     f"{t['tasks']} tasks: {'agrees' if t['agree'] else 'DIFFERS'} (max "
                     f"equity difference {t['max_equity_diff']:.1e} of cash)</li>")
    parts.append("</ul>")
    c = payload.get("costs_charged")
    if c:
        from backtests.reports.walkforward import costs_html

        varied = (f" The grid varies {esc(', '.join(c['varied_by_grid']))}: each "
                  "combination charges its own." if c["varied_by_grid"] else "")
        parts.append(f"<h2>Costs charged</h2><p>The best combination's, on the test parts of "
                     f"all folds (its trades re-run on backtrader).{varied}</p>"
                     + costs_html(c, {c["combination"]: {k: c[k] for k in COST_TOTALS}},
                                  who="combination"))
    if payload["failures"]:
        parts.append("<h2>Failed tasks</h2><ul>" + "".join(
            f"<li>{esc(json_like(f['task']))}: {esc(f['error'])}</li>"
            for f in payload["failures"]) + "</ul>")
    parts.append("<h2>Every combination</h2><p class='note'>Click a column heading to sort.</p>"
                 + sortable_table(combination_rows(table)))
    return page(f"sweep {payload['run']}", parts, script)


def combination_rows(table: pd.DataFrame) -> list[dict]:
    """The sweep table's rows for display: whole-number columns (ranks, counts) as integers, so
    they read 1,250 and not 1.25e+03 (``catalog.format_value`` does the rest)."""
    whole = {c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])
             and not pd.api.types.is_bool_dtype(table[c])
             and (table[c].dropna() % 1 == 0).all()
             and (c in ("rank", "seeds", "folds", "trials") or c.startswith("n_")
                  or "trades" in c or pd.api.types.is_integer_dtype(table[c]))}
    return [{k: (int(v) if k in whole and pd.notna(v) else v) for k, v in rec.items()}
            for rec in table.to_dict("records")]


def json_like(d) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items()) if isinstance(d, dict) else str(d)


def _num(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


__all__ = ["combination_rows", "heatmap_frame", "render_equity_png", "render_heatmap_png",
           "render_html"]
