"""The walk-forward report (self-contained HTML, PNGs inline) and the study page (markdown)."""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from backtests.analysis.performance import COST_TOTALS  # noqa: E402
from backtests.analysis.significance import VERDICT_RULE  # noqa: E402
from backtests.reports.backtest import costs_rows  # noqa: E402
from backtests.reports.page import grid_table, img, png, static_page  # noqa: E402
from data.atomic import atomic_write  # noqa: E402

CSS = ("body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;"
       "font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
       "th{background:#f2f2f2}td:first-child{text-align:left}.v{font-size:15px;margin:.4em 0}")


def _png(fig) -> bytes:
    data = png(fig, dpi=90)
    plt.close(fig)
    return data


def equity_png(equity: pd.DataFrame) -> bytes:
    """Stitched out-of-sample equity of every model (mean over seeds)."""
    fig, ax = plt.subplots(figsize=(11, 4))
    for name in equity:
        ax.plot(range(len(equity)), equity[name].to_numpy(), label=name, lw=1)
    ax.set_title("stitched out-of-sample equity (test parts of all folds, mean of seeds)")
    ax.set_xlabel("test bar (folds back to back)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def folds_png(results: dict, tasks) -> bytes:
    """One panel per fold: each model's test equity (mean over seeds)."""
    by_fold: dict[int, dict[str, list]] = {}
    for t in tasks:
        if t.id in results:
            by_fold.setdefault(t.fold_no, {}).setdefault(f"{t.model} ({t.source})", []).append(
                results[t.id]["equity"])
    n = max(len(by_fold), 1)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_visible(False)
    for ax, (fold, models) in zip(axes.flat, sorted(by_fold.items()), strict=False):
        ax.set_visible(True)
        for name, curves in models.items():
            frame = pd.DataFrame(curves).T
            ax.plot(frame.mean(axis=1).to_numpy(), label=name, lw=1)
        ax.set_title(f"fold {fold}", fontsize=9)
        ax.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=6)
    fig.tight_layout()
    return _png(fig)


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
    sd = f" ± {d['sd']:.{digits}f}" if d.get("sd") is not None else ""
    ci = d.get("ci") or [None, None]
    ci_s = f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci[0] is not None else ""
    return f"{d['mean']:.{digits}f}{sd}{ci_s}"


MODEL_COLUMNS = ("model", "seeds", "hit % (mean ± sd [95 % CI])", "base hit %", "missed %",
                 "macro F1", "return % (stitched)", "Sharpe (ann.)", "PSR", "DSR",
                 "DSR trials", "trades")


def model_rows(models: dict) -> list[list[str]]:
    rows = []
    for name, m in models.items():
        a = m["across_seeds"]
        rows.append([name, str(len(m["seeds"])), _ms(a["hit_pct"]), _ms(a["base_hit_pct"]),
                     _ms(a["missed_pct"]), _ms(a["macro_f1"], 3),
                     _fmt(m["total_return_pct"]), _fmt(m["sharpe"]), _fmt(m["psr"], 3),
                     _fmt(m["dsr"], 3), str(m["dsr_trials"]), _ms(a["n_trades"], 0)])
    return rows


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
    s = payload["settings"]
    parts = [f"<h1>Walk-forward {html.escape(payload['run'])}</h1>",
             f"<p>{html.escape(', '.join(s['sources']))}: {', '.join(s['models'])}; seeds "
             f"{s['seeds']}; folds {html.escape(str(s['folds']))}; threshold {s['threshold']} "
             "(chosen on each fold's validation part with the run's costs).</p>"]
    if payload.get("winner"):
        parts.append(f"<h2>Verdict</h2><p class='v'><b>{html.escape(payload['winner']['text'])}"
                     "</b></p>")
    for v in payload.get("versus_rules") or []:
        parts.append(f"<p class='v'>{html.escape(v['text'])}</p>")
    for c in payload["comparisons"]:
        parts.append(f"<p class='v'>{html.escape(c['verdict'])}</p>")
    parts.append("<p>Rule baselines (rule/...): trivial rules, no training, through the same "
                 "threshold choice, rules and costs; a network's skill is its margin over the "
                 "best of them, not over chance (base hit). Hit CI: Student-t over fold means of the paired (seed, fold) differences. "
                 "Sharpe difference: paired stationary block bootstrap of the seed-average "
                 "per-bar returns (2,000 draws, block n^(1/3)). SPA: Hansen's test both ways, "
                 "each model as the other's benchmark. Verdicts: "
                 f"{html.escape(VERDICT_RULE)}. PSR/DSR: Bailey & López de Prado; DSR "
                 "counts every stitched trial on these bars in the registry.</p>")
    parts.append("<h2>Models</h2>" + grid_table(MODEL_COLUMNS, model_rows(payload["models"])))
    costs = payload.get("costs_charged") or {}
    if costs:
        parts.append("<h2>Costs charged</h2>")
    for source, c in costs.items():
        if len(costs) > 1:
            parts.append(f"<h3>{html.escape(source)}</h3>")
        parts.append(costs_html(c, c["charged_per_seed"]))
    if len(equity):
        parts.append(img(equity_png(equity), "stitched equity"))
        parts.append("<h2>Folds</h2>" + img(folds_png(results, tasks), "fold equity"))
    if payload["failures"]:
        parts.append("<h2>Failed tasks</h2>" + grid_table(
            ("inputs", "error"), [[json_short(f["task"]), f["error"]]
                                  for f in payload["failures"]]))
    parts.append("<h2>Every task</h2>" + grid_table(
        table.columns, [[_fmt(v) for v in row] for row in table.itertuples(index=False)]))
    return static_page(f"walk-forward {payload['run']}", parts, CSS)


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
              "frequencies (chance; the rule/... rows are the null that matters). Return, Sharpe, PSR and DSR: the seed-average stitched "
              "out-of-sample returns.", "", "![stitched equity](img/walkforward-equity.png)", "",
              "## Method", "",
              f"- Data: {', '.join(s['sources'])}; {folds}: each fold "
              "trains on its training part (labels purged at the boundary, embargo as given), "
              "early-stops and picks the signal threshold on its validation part "
              "(`choose_threshold`, the rule of `backtest.auto_threshold`, with the run's costs) and "
              "is traded on the next, unseen test part.",
              f"- Models: {', '.join(s['models'])}; seeds {s['seeds']}; training settings: the "
              "config's defaults.",
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


__all__ = ["costs_html", "costs_setting_rows", "equity_png", "folds_png", "render_html",
           "render_markdown"]
