"""Write a backtest's folder: trades.csv, equity.csv, report.json, report.html and report.png.

report.html is interactive and self-contained: Bokeh's JavaScript is inlined (no CDN, no server),
so it opens offline from the file; candles with trades (hover a trade for its numbers), the
model's probabilities, equity curves and drawdown share one zoomable time axis. report.png is the
static fallback (equity and trades, matplotlib Agg) for consoles and READMEs; the page shows it
too when scripts are off. report.json is strict JSON with stable keys: NaN becomes null, ±inf the
strings "inf"/"-inf", timestamps ISO strings, durations their pandas string.

Render only: the numbers come from ``backtests.analysis`` (costs charged, period returns and
curves from ``performance``, the verdict from ``significance.backtest_verdict``), the page kit
from ``page`` and the figures from ``figures``.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

from backtests.analysis.catalog import format_value, jsonable, stat
from backtests.analysis.catalog import rows as stat_rows
from backtests.analysis.performance import (
    costs_charged,
    curve_summary,
    drawdown,
    leverage_used,
    period_returns,
)
from backtests.analysis.significance import backtest_verdict
from backtests.currency import price_digits, rates
from backtests.reports.figures import (
    bar_axis,
    bokeh_parts,
    equity_figures,
    pnl_figure,
    price_figure,
    probs_figure,
    reliability_png,
    static_png,
    trades_strip,
)
from backtests.reports.page import img, page, returns_table, sortable_table, table
from backtests.simulation import BacktestResult
from data.atomic import atomic_write


def format_stats_table(stats: dict) -> list[tuple[str, str]]:
    """(heading with unit, formatted value) rows, in the order of ``backtests.analysis.catalog.STATS``."""
    return [(definition.heading, definition.format(value)) for definition, value in stat_rows(stats)]


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



def costs_rows(c: dict) -> list[dict]:
    """``backtests.analysis.performance.costs_charged`` as readable settings rows with units."""
    fmt = format_value
    spread = (f"{c['spread_fixed']:g} (fixed)" if c["spread_fixed"] is not None
              else f"per bar from {c['spread_source']}: mean {fmt(c['spread_mean'])}, "
                   f"range {fmt(c['spread_min'])} … {fmt(c['spread_max'])}")
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


# --- rows of the page's tables -------------------------------------------------------------

PRICE_COLUMNS = ("entry price", "exit price")


def trade_rows(trades: pd.DataFrame, digits: int | None = None) -> list[dict]:
    """The trade list's rows; prices rounded to ``digits`` decimals (the instrument's, see
    ``backtests.currency.price_digits``; None: 6 significant digits)."""
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
                v = round(float(v), digits) if digits is not None else float(f"{float(v):.6g}")
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
            note = (f"{b.get('draws', '?')} draws; 5–95 %: "
                    f"{format_value(b.get('p5_return_pct'))} … "
                    f"{format_value(b.get('p95_return_pct'))}; "
                    f"{stat('p_value').label}: {format_value(p)}")
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


def leverage_of(result: BacktestResult, candles: pd.DataFrame, conv=None) -> dict:
    """``analysis.performance.leverage_used`` of a result, with the quote→account rates of
    ``conv`` (a ``backtests.currency.Conversion``; None: P&L in the account currency)."""
    bar_rates = rates(candles, conv) if conv is not None else None
    series = None if bar_rates is None else pd.Series(bar_rates, index=candles.index)
    return leverage_used(result.trades, result.equity, result.params, series)


# --- the backtest report ---------------------------------------------------------------------

def render_report(result: BacktestResult, candles: pd.DataFrame, *,
                  title: str = "Backtest", comparison: list[dict] | None = None,
                  baselines: dict | None = None, confusion: np.ndarray | None = None,
                  attention_pngs: list[tuple[str, bytes]] | None = None,
                  extra: dict | None = None, probs: pd.DataFrame | None = None,
                  curves: dict[str, dict] | None = None, facts: dict | None = None,
                  in_sample: bool | None = False,
                  versus_rules: dict | None = None,
                  calibration: dict | None = None) -> dict[str, str | bytes]:
    """The report's files: trades.csv, equity.csv, report.json, report.html (text) and
    report.png (bytes).

    ``probs``: the model's probabilities on these bars (the strip under the price). ``curves``:
    other equity curves on the same bars and cash, ``{key: {"label", "equity"}}`` (the ``--vs``
    models as ``model:<id>``, ``buy_and_hold``), drawn over the model's. ``facts``: what was
    traded (instrument, source, timeframe, model, train_run, model_hash, config_id, ...).
    ``calibration``: the model's ``method`` (train.calibration), Brier scores (``brier``,
    ``brier_none`` …) and ``reliability`` numbers on the period's labelled windows.
    """
    facts = dict(facts or {})
    digits = price_digits(candles, facts.get("instrument"))
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
    lev = facts.get("leverage") or leverage_of(result, candles, facts.get("conversion"))
    judged = backtest_verdict(result.stats, baselines, in_sample, versus_rules)
    freq, rets = period_returns(result.equity, result.cash)
    index = result.equity.index
    payload = {
        "title": title, "verdict": judged,
        "instrument": facts.get("instrument"), "instrument_from": facts.get("instrument_from"),
        "price_digits": digits, "source": facts.get("source"),
        "timeframe": facts.get("timeframe"), "account_currency": facts.get("account_currency"),
        "pnl_conversion": facts.get("pnl_conversion"),
        "period": {"start": index[0] if len(index) else None,
                   "end": index[-1] if len(index) else None, "bars": len(index),
                   "name": facts.get("period")},
        "model": {k: facts.get(k) for k in ("model", "train_run", "model_hash", "config_id")},
        "stats": result.stats, "leverage": lev, "params": result.params.to_dict(),
        "costs": result.costs.to_dict(), "costs_charged": charged, "cash": result.cash,
        "meta": result.meta,
        "exit_reasons": result.trades["exit_reason"].value_counts().to_dict(),
        "comparison": comparison, "baselines": baselines,
        "period_returns_freq": freq,
        "monthly_returns": {k: float(v) for k, v in rets.items()} if freq == "month" else None,
        "weekly_returns": {k: float(v) for k, v in rets.items()} if freq == "week" else None,
        "equity_curves": curve_summary(curves),
        "confusion": None if confusion is None else np.asarray(confusion).tolist(),
        "calibration": calibration,
        "attention_maps": [name for name, _ in attention_pngs or []], "extra": extra,
    }
    files["report.json"] = json.dumps(jsonable(payload), indent=2, allow_nan=False)
    png = static_png(result.equity, result.trades, candles, result.cash)
    files["report.png"] = png

    esc = html.escape
    script, divs = bokeh_parts(report_figures(result, candles, probs, curves, digits=digits))

    parts = [f"<h1>{esc(title)}</h1>",
             f"<p class='verdict {judged['level']}'>{esc(judged['text'])}</p>"]
    if lev["warning"]:
        parts.append(f"<p class='verdict worse leverage'><b>Leverage:</b> {esc(lev['warning'])}</p>")
    start = format_value(index[0]) if len(index) else "—"
    end = format_value(index[-1]) if len(index) else "—"
    instrument = facts.get("instrument")
    if instrument and facts.get("instrument_from"):
        instrument = f"{instrument} (from {facts['instrument_from']})"
    traded = [{"fact": "instrument", "value": instrument},
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
               else "out-of-sample" if in_sample is False
               else "your signals: only you know whether they were fitted on these bars"},
              {"fact": f"starting cash [{facts.get('account_currency') or 'money'}]",
               "value": result.cash}]
    stat_table = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>"
                         for k, v in format_stats_table(result.stats))
    parts.append("<div class='cols'><div><h2>What was traded</h2>" + table(traded)
                 + "</div><div><h2>Statistics</h2><table>" + stat_table + "</table></div>"
                 + "<div><h2>Costs charged</h2>" + table(costs_rows(charged)) + "</div></div>")
    reasons = ", ".join(f"{k}: {v}" for k, v in payload["exit_reasons"].items()) or "none"
    parts.append(f"<h2>Price, trades, probabilities and equity</h2><p class='note'>"
                 f"{len(candles):,} bars, {len(result.trades):,} trades (exits — {esc(reasons)})."
                 " Drag to pan, scroll to zoom (all charts move together), hover a trade's "
                 "entry for its numbers, click a legend entry to hide or show it. The x axis "
                 "counts bars (dates below), so weekends and gaps take no room. Equity is shown "
                 "as the return in % from the starting cash; buy-and-hold has its own panel. "
                 "Fills at the next "
                 "bar's open; buys at the ask (bid + spread); a trade still open after the last "
                 "bar is closed at the last close (exit reason <i>end</i>).</p>")
    parts.append("".join(divs.get(k, "") for k in ("price", "trades", "probs", "equity",
                                                   "drawdown", "sharpe", "benchmark")))
    parts.append("<noscript>" + img(png, "equity and trades (static)") + "</noscript>")
    if baselines:
        parts.append("<h2>Baselines (same bars, same costs)</h2>"
                     + table(baseline_rows(baselines)))
    parts.append(f"<h2>{'Monthly' if freq == 'month' else 'Weekly'} returns</h2>"
                 + returns_table(freq, rets))
    parts.append("<h2>Trades</h2><div class='cols'>" + divs.get("pnl", "") + "</div>"
                 "<p class='note'>Click a column heading to sort.</p>"
                 + sortable_table(trade_rows(result.trades, digits),
                                  formats=dict.fromkeys(PRICE_COLUMNS, f"{{:.{digits}f}}")))
    if comparison:
        parts.append("<h2>Against the earlier article</h2>" + table(comparison))
    if confusion is not None:
        parts.append("<h2>Confusion matrix (test bars)</h2>" + confusion_table(confusion))
    if calibration and calibration.get("reliability"):
        parts.append(calibration_section(calibration))
    if attention_pngs:
        parts.append("<h2>Attention maps</h2>")
        for name, image in attention_pngs:
            parts.append(f"<p class='note'>{esc(name)}</p>" + img(image, name))
    parts.append("<h2>Strategy settings</h2>" + table(params_rows(result.params.to_dict())))
    if extra:
        parts.append("<h2>Extra</h2>" + table([{"key": k, "value": v if not isinstance(
            v, dict | list) else json.dumps(jsonable(v))} for k, v in extra.items()]))
    files["report.html"] = page(title, parts, script)
    return files


def calibration_section(c: dict) -> str:
    """Brier scores and the reliability diagram of the model's probabilities on the period."""
    rows = [{"score": "Brier (multi-class, 0 best, 2 worst)", "value": c.get("brier")}]
    rows += [{"score": f"Brier, {name} vs rest", "value": c.get(f"brier_{name}")}
             for name in ("none", "buy", "sell")]
    return ("<h2>Calibration (labelled windows of the period)</h2><p class='note'>"
            f"train.calibration = {html.escape(str(c.get('method') or 'none'))} (a map fitted on "
            "the model's validation part, applied to every probability traded here). On the "
            "diagram a calibrated model's points lie on the diagonal: of the windows given "
            "about 0.6, about 60 % are of that class. Counts per bin below each panel.</p>"
            + table(rows) + img(reliability_png(c["reliability"], "reliability on the period"),
                                "reliability diagram"))


def report_figures(result: BacktestResult, candles: pd.DataFrame, probs: pd.DataFrame | None,
                   curves: dict[str, dict], digits: int | None = None) -> dict[str, object]:
    """The report's Bokeh figures by name (price, trades, probs, equity, drawdown, rolling
    Sharpe, benchmark, pnl) on one bar axis; ``curves``: ``{key: {"label", "equity"}}`` with
    the traded one first as ``model``; prices hovered at ``digits`` decimals (the instrument's;
    None: read from the candles)."""
    digits = price_digits(candles, None) if digits is None else digits
    price = price_figure(candles, result.trades, result.orders, digits=digits)
    figs = {"price": price, "trades": trades_strip(candles, result.trades, price.x_range)}
    if probs is not None and len(probs):
        figs["probs"] = probs_figure(probs.reindex(candles.index), price.x_range,
                                     result.params.threshold)
    curve_list = [(c["label"], c["equity"]) for c in curves.values() if len(c["equity"])]
    figs.update(equity_figures(curve_list, price.x_range, axis=bar_axis(candles.index),
                               bars_per_year=result.stats.get("bars_per_year"),
                               cash=result.cash))
    if len(result.trades):
        figs["pnl"] = pnl_figure({curves["model"]["label"]:
                                  result.trades["pnl_net"].to_numpy(float)})
    return figs


def write_report(out_dir: str | Path, result: BacktestResult, candles: pd.DataFrame,
                 **kwargs) -> Path:
    """Write the report's files into ``out_dir`` (each atomically); return report.html's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, content in render_report(result, candles, **kwargs).items():
        atomic_write(out / name, content if isinstance(content, bytes)
                     else content.encode("utf-8"))
    return out / "report.html"
