"""Walk-forward evaluation: every (source, model, seed, fold) trained, thresholded on its
validation part and traded on its unseen test part; stitched out-of-sample equity; PSR, DSR,
paired tests and SPA (``backtests.analysis.significance``); verdicts in words.

- ``tasks``: the task plan and the per-task computation (pool workers run it);
- ``results``: stitching, per-model figures, comparisons, verdicts (pure);
- ``driver``: the study (plan, what each task adds, record), run by the one study driver
  ``backtests.execution.driver`` (resume, compute, per-task files; the only writer);
- ``backtests.reports.walkforward``: report.html and the study page.

``walkforward_record(run)`` reads a finished walk-forward run back for ``attnbt compare``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from backtests.analysis.catalog import json_number
from backtests.walkforward.driver import SCHEMA, WalkForward, plan, run, trials_added
from backtests.walkforward.tasks import DEFAULT_BARS, FoldPlan, Task, parse_models


def walkforward_record(run_or_path) -> dict:
    """Per model of a walk-forward run: ``{stats, equity, params, costs, data, period}``.

    ``stats``: the stitched (seed-average) out-of-sample figures and PSR/DSR; ``equity``: that
    equity curve (pd.Series); ``params``: the strategy (threshold ``"auto"`` when chosen per
    fold); ``costs``; ``data``: the source; ``period``: first and last test bar.
    """
    path = Path(getattr(run_or_path, "path", run_or_path))
    payload = json.loads((path / "walkforward.json").read_text(encoding="utf-8"))
    if payload.get("schema") != SCHEMA:
        raise ValueError(f"{path}/walkforward.json has schema {payload.get('schema')}, "
                         f"this attnbt reads {SCHEMA}")
    equity = pd.read_csv(path / "equity.csv", index_col="time", parse_dates=["time"])
    out = {}
    for name, m in payload["models"].items():
        a = m["across_seeds"]
        stats = {k: json_number(m.get(k)) for k in ("total_return_pct", "sharpe", "max_drawdown_pct", "psr",
                                       "dsr", "dsr_trials", "dsr_sr_var", "skew", "kurtosis",
                                       "n_obs")}
        stats |= {k: json_number(a[k]["mean"]) for k in ("hit_pct", "missed_pct", "macro_f1", "n_trades",
                                            "win_rate_pct")}
        stats |= {"start": m["start"], "end": m["end"], "seeds": len(m["seeds"]),
                  "folds": m["folds"]}
        params = dict(payload["strategy"])
        if payload["settings"]["threshold"] == "auto":
            params["threshold"] = "auto"
        out[name] = {"stats": stats, "equity": equity[name].dropna().rename("equity"),
                     "params": params, "costs": payload["costs"], "data": m["source"],
                     "period": {"start": m["start"], "end": m["end"]}}
    return out


__all__ = ["DEFAULT_BARS", "SCHEMA", "FoldPlan", "Task", "WalkForward", "parse_models", "plan",
           "run", "trials_added", "walkforward_record"]
