"""compare.html: finished runs side by side, rendered from ``backtests.compare``'s result.

Render only: the statistics rows (best per row marked), the flagged differences, the tests and
the rule baselines come in ``result``; the runs' equity and per-trade P&L in ``records``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from backtests.analysis.catalog import format_value, stat
from backtests.analysis.performance import period_returns
from backtests.reports.figures import bokeh_parts, equity_figures, pnl_figure
from backtests.reports.page import page, returns_table, table


def flag_summary(result: dict) -> list[str]:
    """One line per group in which the runs differ, naming the keys."""
    groups: dict[str, list[str]] = {}
    for d in result["flagged"]:
        groups.setdefault(d["group"], []).append(d["key"].split(".", 1)[1])
    words = {"data": "different data", "period": "different period", "costs": "different costs",
             "params": "different strategy parameters", "model": "different models"}
    return [f"{words[g]}: {', '.join(keys)}" for g, keys in groups.items()]


def render_compare(records: Sequence, result: dict, title: str | None = None) -> str:
    """compare.html: the table, each run's return in % with drawdowns and rolling Sharpe, P&L
    distributions, period returns per run, the parameter differences and the test.

    ``records``: the runs (``backtests.compare.Comparable``: ``name``, ``cash``, ``equity``,
    ``pnl``); ``result``: ``backtests.compare.compare``'s."""
    esc = html.escape
    title = title or "Compare: " + " vs ".join(r.name for r in records)
    curves = [(r.name, r.equity) for r in records if len(r.equity)]
    figs = equity_figures(curves, title="Return [%] of each run from its own starting cash")
    if any(len(r.pnl) for r in records):
        figs["pnl"] = pnl_figure({r.name: r.pnl for r in records})
    script, divs = bokeh_parts(figs)

    parts = [f"<h1>{esc(title)}</h1>"]
    flags = flag_summary(result)
    if flags:
        parts.append("<p class='verdict none'><b>These runs are not like for like</b> — "
                     + "; ".join(esc(f) for f in flags)
                     + ". Rows marked ≠ below differ; compare with that in mind.</p>")
    else:
        parts.append("<p class='verdict skill'>Like for like: same data, period, costs and "
                     "strategy parameters.</p>")
    for s in result["significance"]:
        parts.append(f"<p class='note'>{esc(s['text'])}.</p>")
    cols = list(result["columns"])
    head = "".join(f"<th>{esc(result['columns'][c])}</th>" for c in cols)
    body = []
    for row in result["rows"]:
        arrow = {"higher": " ↑", "lower": " ↓"}.get(row["better"] or "", "")
        cells = "".join(
            f"<td class='{'best' if c in row['best'] else ''}'>"
            f"{esc(format_value(row['values'].get(c), stat(row['key']).kind))}</td>"
            for c in cols)
        body.append(f"<tr><td>{esc(row['heading'])}{arrow}</td>{cells}</tr>")
    parts.append("<h2>Statistics</h2><p class='note'>Best value per row in bold green (↑ higher "
                 "is better, ↓ lower is better)."
                 + (" The article's figures are in-sample and never marked best." if
                    result["article"] else "") + "</p>"
                 f"<table><tr><th>statistic</th>{head}</tr>{''.join(body)}</table>")
    rules = result.get("rule_baselines") or {}
    if rules.get("rows"):
        parts.append("<h2>Rule baselines</h2><p class='note'>One-line rules that need no "
                     "training (e.g. rule/newhl: a fractal whenever the bar made a new high or "
                     "low), traded by each backtest on its own bars with the same threshold "
                     "choice, rules and costs: the null a network must beat.</p>"
                     + "".join(f"<p class='note'>{esc(v['text'])}.</p>" for v in rules["versus"])
                     + table([{k: (v if k in ("run", "rule") else format_value(v, stat(k).kind))
                               for k, v in row.items()} for row in rules["rows"]]))
    parts.append("<h2>Equity and drawdown</h2><p class='note'>One bar-index axis over every "
                 "run's bars (dates below; gaps take no room).</p>"
                 + "".join(divs.get(k, "") for k in ("equity", "drawdown", "sharpe",
                                                     "benchmark")))
    if "pnl" in divs:
        parts.append("<h2>Per-trade P&amp;L</h2>" + divs["pnl"])
    parts.append("<h2>Period returns</h2>")
    for r in records:
        freq, rets = period_returns(r.equity, r.cash)
        parts.append(returns_table(freq, rets, f"{r.name} ({freq}ly, %)"))
    flagged = [{"setting": d["key"], **{result["columns"][k]: v for k, v in d["values"].items()}}
               for d in result["flagged"]]
    parts.append("<h2>Where the runs differ</h2>" + (table(flagged) if flagged else
                                                      "<p class='note'>nowhere</p>"))
    models = [{"model": d["key"], **{result["columns"][k]: v for k, v in d["values"].items()}}
              for d in result["differences"] if d["group"] == "model"]
    parts.append("<h2>Models</h2>" + table(models))
    same = [{"setting": d["key"], "value": next(iter(d["values"].values()))}
            for d in result["differences"] if not d["differs"] and d["group"] != "model"]
    parts.append("<h2>What they share</h2>" + table(same))
    return page(title, parts, script)


__all__ = ["flag_summary", "render_compare"]
