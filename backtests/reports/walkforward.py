"""The walk-forward report (self-contained HTML, PNGs inline) and the study page (markdown)."""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path

import pandas as pd

from backtests.analysis.performance import COST_TOTALS
from backtests.analysis.significance import VERDICT_RULE
from backtests.reports.backtest import costs_rows
from backtests.reports.figures import (
    bokeh_parts,
    equity_figures,
    fold_grid,
    reliability_png,
)
from backtests.reports.page import (
    grid_table,
    img,
    page,
    png,
    settings_table,
    sortable_table,
)
from data.atomic import atomic_write


def equity_png(equity: pd.DataFrame) -> bytes:
    """Stitched out-of-sample equity of every model (mean over seeds)."""
    from matplotlib.figure import Figure  # (not pyplot: no global backend, nothing to close)

    fig = Figure(figsize=(11, 4))
    ax = fig.subplots()
    for name in equity:
        ax.plot(range(len(equity)), equity[name].to_numpy(), label=name, lw=1)
    ax.set_title("stitched out-of-sample equity (test parts of all folds, mean of seeds)")
    ax.set_xlabel("test bar (folds back to back)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return png(fig, dpi=90)


def fold_curves(results: dict, tasks) -> dict[int, dict[str, pd.Series]]:
    """{fold: {model (source): return [%] from the cash over the fold's test bars, mean over
    seeds}}."""
    by_fold: dict[int, dict[str, list]] = {}
    one_source = len({t.source for t in tasks}) == 1
    for t in tasks:
        if t.id in results:
            r = results[t.id]
            curve = pd.Series(r["equity"], index=pd.DatetimeIndex(r["times"]), dtype=float)
            name = t.model if one_source else f"{t.model} ({t.source})"
            by_fold.setdefault(t.fold_no, {}).setdefault(name, []).append(
                100.0 * (curve / float(r["cash"]) - 1.0))
    return {fold: {name: pd.concat(curves, axis=1).mean(axis=1) for name, curves in m.items()}
            for fold, m in by_fold.items()}


def _fmt(v, digits: int = 2) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def _ms(d: dict, digits: int = 1) -> str:
    """mean ± sd [CI] of a per-seed figure."""
    if d is None or d.get("mean") is None:
        return "—"
    sd = f" ± {d['sd']:,.{digits}f}" if d.get("sd") is not None else ""
    ci = d.get("ci") or [None, None]
    ci_s = f" [{ci[0]:,.{digits}f}, {ci[1]:,.{digits}f}]" if ci[0] is not None else ""
    return f"{d['mean']:,.{digits}f}{sd}{ci_s}"


MODEL_COLUMNS = ("model", "seeds", "hit % (mean ± sd [95 % CI])", "base hit %", "missed %",
                 "macro F1", "Brier", "return % (stitched)", "Sharpe (ann.)", "PSR", "DSR",
                 "DSR trials", "trades")


def model_rows(models: dict) -> list[list[str]]:
    rows = []
    for name, m in models.items():
        a = m["across_seeds"]
        label = f"{name} (reference, not charged)" if m.get("reference") else name
        rows.append([label, str(len(m["seeds"])), _ms(a["hit_pct"]), _ms(a["base_hit_pct"]),
                     _ms(a["missed_pct"]), _ms(a["macro_f1"], 3), _ms(a.get("brier"), 3),
                     _fmt(m["total_return_pct"]), _fmt(m["sharpe"]), _fmt(m["psr"], 3),
                     _fmt(m["dsr"], 3), str(m["dsr_trials"]), _ms(a["n_trades"], 0)])
    return rows


def calibration_html(models: dict) -> str:
    """Reliability diagrams of each model's test windows (every fold and seed pooled) beside
    the Brier scores of the Models table; empty for results recorded without them."""
    figs = [(name, m) for name, m in models.items() if m.get("reliability")]
    if not figs:
        return ""
    out = ["<h2>Calibration</h2><p class='note'>Brier (Models table): the multi-class Brier "
           "score of the test windows (0 best, 2 worst), mean ± sd over seeds. Below, per model "
           "and class, the observed frequency of the class against the mean predicted "
           "probability in ten bins, with the windows per bin: on the diagonal the "
           "probabilities mean what they say. train.calibration (fitted on each fold's "
           "validation part): " + ", ".join(f"{html.escape(n)} {'/'.join(m.get('calibration') or ['none'])}"
                                            for n, m in figs) + ".</p>"]
    out += [img(reliability_png(m["reliability"], f"{name}: test windows of every fold and "
                                                  "seed"), f"reliability of {name}")
            for name, m in figs]
    return "".join(out)


def costs_setting_rows(c: dict) -> list[list[str]]:
    """A study's costs (``walkforward.results.costs_block``) as (setting, value) rows, worded as the
    backtest report's "Costs charged" table, with the account currency and P&L conversion."""
    rows = [[r["setting"], f"{r['value']:g}" if isinstance(r["value"], float) else str(r["value"])]
            for r in costs_rows({**dict.fromkeys(COST_TOTALS), **c})
            if not r["setting"].startswith("charged")]
    return rows + [["account currency", c["account_currency"]],
                   ["P&L conversion", c["pnl_conversion"]]]


def costs_html(c: dict, charged: dict[str, dict], who: str = "model") -> str:
    """The costs settings table and, per model (or combination), the money charged."""
    cur = html.escape(c["account_currency"])
    header = (who, *(f"{name} [{cur}]" for name in ("spread", "commission", "slippage",
                                                   "all costs")))
    money = [[name, *(_fmt(t.get(k)) for k in COST_TOTALS)] for name, t in charged.items()]
    return (grid_table(("setting", "value"), costs_setting_rows(c))
            + f"<p>Charged, in {cur} per seed over the test parts of all folds:</p>"
            + grid_table(header, money))


def render_html(payload: dict, table: pd.DataFrame, equity: pd.DataFrame, results: dict,
                tasks) -> str:
    """The walk-forward report: settings, verdicts, models, costs, the stitched equity (return,
    drawdown, rolling Sharpe) and every fold's, interactive (Bokeh inlined, offline), and every
    task in a sortable table; the stitched equity as a PNG when scripts are off."""
    s = payload["settings"]
    esc = html.escape
    parts = [f"<h1>Walk-forward {esc(payload['run'])}</h1>"]
    if payload.get("winner"):
        parts.append(f"<p class='verdict'><b>{esc(payload['winner']['text'])}</b></p>")
    for v in payload.get("versus_rules") or []:
        parts.append(f"<p class='verdict'>{esc(v['text'])}</p>")
    for c in payload["comparisons"]:
        parts.append(f"<p class='verdict'>{esc(c['verdict'])}</p>")
    parts.append("<h2>Settings</h2>" + settings_table(s))
    parts.append("<p class='note'>Rule baselines (rule/...): trivial rules, no training, through "
                 "the same threshold choice, rules and costs; a network's skill is its margin over "
                 "the best of them, not over chance (base hit). Hit CI: Student-t over fold means "
                 "of the paired (seed, fold) differences; the intervals across seeds are clipped "
                 "to what the figure can take (a count at 0, a percentage at 0 and 100). "
                 "Sharpe difference: paired stationary block bootstrap of the seed-average "
                 "per-bar returns (2,000 draws, block n^(1/3)). SPA: Hansen's test both ways, "
                 "each model as the other's benchmark. Verdicts: "
                 f"{esc(VERDICT_RULE)}. PSR/DSR: Bailey &amp; López de Prado; DSR "
                 "counts every stitched trial on these bars in the registry.</p>")
    parts.append("<h2>Models</h2>" + grid_table(MODEL_COLUMNS, model_rows(payload["models"])))
    parts.append(calibration_html(payload["models"]))
    costs = payload.get("costs_charged") or {}
    if costs:
        parts.append("<h2>Costs charged</h2>")
    for source, c in costs.items():
        if len(costs) > 1:
            parts.append(f"<h3>{esc(source)}</h3>")
        parts.append(costs_html(c, c["charged_per_seed"]))
    script = ""
    if len(equity):
        cash = payload.get("cash")
        figs = equity_figures([(str(name), equity[name].dropna()) for name in equity],
                              title="Stitched out-of-sample return [%] (test parts of all "
                                    "folds, mean of seeds)", cash=cash)
        figs["folds"] = fold_grid(fold_curves(results, tasks))
        script, divs = bokeh_parts(figs)
        parts.append("<h2>Stitched equity</h2><p class='note'>Drag to pan, scroll to zoom (the "
                     "panels move together), click a legend entry to hide it; the x axis counts "
                     "test bars (dates below), so the gaps between folds take no room.</p>"
                     + "".join(divs[k] for k in ("equity", "drawdown", "sharpe") if k in divs)
                     + "<noscript>" + img(equity_png(equity), "stitched equity") + "</noscript>")
        parts.append("<h2>Folds</h2>" + divs["folds"])
    if payload["failures"]:
        parts.append("<h2>Failed tasks</h2>" + grid_table(
            ("inputs", "error"), [[json_short(f["task"]), f["error"]]
                                  for f in payload["failures"]]))
    parts.append("<h2>Every task</h2><p class='note'>Click a column heading to sort.</p>"
                 + sortable_table(task_table_rows(table)))
    return page(f"walk-forward {payload['run']}", parts, script)


def task_table_rows(table: pd.DataFrame) -> list[dict]:
    """The task table's rows for display: times as dates, counts as integers (thousands
    separators and fixed decimals come from ``catalog.format_value``)."""
    rows = []
    for rec in table.to_dict("records"):
        row = {}
        for k, v in rec.items():
            if k in ("test_start", "test_end") and isinstance(v, str):
                v = pd.Timestamp(v)
            elif k in ("seed", "fold", "n_trades", "epochs_run") and isinstance(v, float) \
                    and v.is_integer():
                v = int(v)
            row[k] = v
        rows.append(row)
    return rows


def json_short(d: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items() if k in ("source", "model", "seed", "fold",
                                                               "id", "test"))


def render_markdown(payload: dict, table: pd.DataFrame, equity: pd.DataFrame, out: Path,
                    command: str = "") -> Path:
    """The attention-vs-dense study page, regenerated from this run (PNG beside it in img/);
    ``command``: the command line the run recorded (the registry's ``command``)."""
    out = Path(out)
    img = out.parent / "img" / "walkforward-equity.png"
    img.parent.mkdir(parents=True, exist_ok=True)
    if len(equity):
        atomic_write(img, equity_png(equity))
    s = payload["settings"]
    f = s["folds"]
    folds = (f"{'expanding' if f['expanding'] else 'rolling'} folds of {f['train_bars']:,} training "
             f"+ {f['val_bars']:,} validation + {f['test_bars']:,} test bars, stepped by "
             f"{f['step_bars']:,}, embargo {f['embargo']}")
    lines = [
        "# Self-attention vs the earlier networks, walk-forward: " + " vs ".join(payload["settings"]["models"]),
        "",
        f"*Generated by the walk-forward run `{payload['run']}` on {dt.date.today():%Y-%m-%d} "
        f"into {out.as_posix()}; every number below was measured in that run. The command in the "
        "Method section regenerates it.*",
        "",
        "## Short answer",
        "",
    ]
    if payload.get("winner"):
        lines += [payload["winner"]["text"], ""]
    lines += [f"- {v['text']}" for v in payload.get("versus_rules") or []]
    lines += [f"- {c['verdict']}" for c in payload["comparisons"]] + [""]
    lines += ["## Models (out-of-sample: test parts of every fold)", "",
              "| " + " | ".join(MODEL_COLUMNS) + " |",
              "|" + "---|" * len(MODEL_COLUMNS)]
    lines += ["| " + " | ".join(r) + " |" for r in model_rows(payload["models"])]
    lines += ["", "Mean ± sd [95 % CI] over seeds; hit, missed and F1 pooled over each seed's "
              "folds; base hit: hit rate of signals drawn at random with the test bars' class "
              "frequencies (chance; the rule/... rows are the null that matters). Brier: the "
              "multi-class Brier score of the test windows (0 best, 2 worst). Return, Sharpe, PSR and DSR: the seed-average stitched "
              "out-of-sample returns.", "", "![stitched equity](img/walkforward-equity.png)", "",
              "## Method", "",
              f"- Data: {', '.join(s['sources'])}; {folds}: each fold "
              "trains on its training part (labels purged at the boundary, embargo as given), "
              "early-stops and picks the signal threshold on its validation part "
              "(`choose_threshold`, the rule of `backtest.auto_threshold`, with the run's costs) and "
              "is traded on the next, unseen test part.",
              f"- Models: {', '.join(s['models'])}; seeds {s['seeds']}; training settings: the "
              "config's defaults.",
              *([f"- References (run, traded and compared on the same folds; not candidates: "
                 f"never the winner, not charged in any DSR): {', '.join(s['references'])}."]
                if s.get("references") else []),
              *(f"- Costs on {source}: " + "; ".join(f"{k} {v}" for k, v in costs_setting_rows(c))
                + "." for source, c in (payload.get("costs_charged") or {}).items()),
              "- Statistics: `backtests/analysis/significance.py` (see docs/walkforward.md for the "
              f"tests and their calibration). Verdicts: {VERDICT_RULE}.",
              *([f"- Command (as the run recorded it): `{command}`."] if command else []), "",
              "## Every fold", "",
              "| " + " | ".join(table.columns[:-1]) + " |", "|" + "---|" * (len(table.columns) - 1)]
    lines += ["| " + " | ".join(_fmt(v) for v in row[:-1]) + " |"
              for row in table.itertuples(index=False)]
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, ("\n".join(lines) + "\n").encode("utf-8"))
    return out


__all__ = ["costs_html", "costs_setting_rows", "equity_png", "fold_curves", "render_html",
           "render_markdown"]
