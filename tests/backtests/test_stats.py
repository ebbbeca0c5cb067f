"""The statistics catalogue's strict JSON: one cleaner (``stats.jsonable``) for every file and
the registry, infinite values written one way ("inf"/"-inf") in report.json, the registry
summary, walk-forward's and the sweep's JSON, and read back by ``stats.json_number``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_walkforward_data import synthetic, write_csv

import data
from backtests.analysis import catalog as stats
from backtests.store import Registry


def _strict(text: str) -> object:
    def refuse(token: str) -> None:
        raise ValueError(f"non-standard JSON token {token}")
    return json.loads(text, parse_constant=refuse)


def test_the_cleaner_rules():
    clean = stats.jsonable
    assert clean(float("nan")) is None and clean(np.float32("nan")) is None
    assert clean(float("inf")) == "inf" and clean(-np.inf) == "-inf"
    assert clean(np.float64(1.5)) == 1.5 and type(clean(np.float64(1.5))) is float
    assert clean(np.int64(3)) == 3 and type(clean(np.int64(3))) is int
    assert clean(np.bool_(True)) is True and clean(True) is True
    assert clean(pd.Timestamp("2024-01-02 03:00", tz="UTC")) == "2024-01-02T03:00:00+00:00"
    assert clean(pd.Timedelta(hours=5)) == "0 days 05:00:00"
    assert clean(pd.NaT) is None and clean(pd.NA) is None and clean(None) is None
    assert clean(Path("a/b.csv")) == "a/b.csv" and clean("x") == "x"
    nested = {1: (np.int64(2), [np.inf, {"k": np.array([np.nan, 1.0])}]), "s": "t"}
    assert clean(nested) == {"1": [2, ["inf", {"k": [None, 1.0]}]], "s": "t"}
    json.dumps(clean(nested), allow_nan=False)            # strict JSON, no error


def test_reading_back_infinite_values_old_and_new():
    assert stats.json_number("inf") == math.inf and stats.json_number("-inf") == -math.inf
    assert stats.json_number(None) is None            # an older file's null where inf was
    assert stats.json_number(2.5) == 2.5 and stats.json_number("text") == "text"


def _walkforward_csv(tmp_path):
    return write_csv(synthetic(1300, seed=1), tmp_path / "walk.csv")


@pytest.mark.slow   # a few seconds: runs in `make test`, not in the fast subset
def test_an_infinite_profit_factor_is_written_the_same_in_every_file(tmp_path, monkeypatch):
    """report.json, the registry summary, a walk-forward task file and walkforward.json, and
    sweep.json all write inf as "inf" (before one cleaner: "inf" in two, null in the others)."""
    from backtests import sweep as swm
    from backtests import walkforward as wfm
    from backtests.config import Experiment
    from backtests.execution.driver import TASK_DIR
    from backtests.reports.backtest import write_report
    from backtests.simulation import run_backtest
    from backtests.sweep import study as sweep_study
    from backtests.walkforward import driver
    from backtests.walkforward import tasks as T
    from strategy.fractal import FractalParams

    inf = float("inf")
    # report.json and the registry summary of a backtest
    candles = data.load("sample:EURUSD_H1").iloc[:300]
    probs = pd.DataFrame(np.random.default_rng(0).dirichlet([4, 1, 1], size=len(candles)),
                         index=candles.index, columns=["p_none", "p_buy", "p_sell"])
    result = run_backtest(candles, probs, FractalParams(stop_buffer=0.0002))
    result.stats["profit_factor"] = inf
    write_report(tmp_path / "report", result, candles, title="t")
    report = _strict((tmp_path / "report" / "report.json").read_text())
    reg = Registry(tmp_path / "runs")
    run = reg.create("backtest")
    reg.finish(run, stats.summary("backtest", result.stats))
    summary = reg.get(run.id)["summary"]

    # a walk-forward of a rule baseline (no training): its tasks' backtests made lossless
    real_bt, real_costs = T.run_backtest, driver._costs_charged

    def lossless(*a, **kw):
        bt = real_bt(*a, **kw)
        bt.stats["profit_factor"] = inf
        return bt

    monkeypatch.setattr(T, "run_backtest", lossless)
    monkeypatch.setattr(driver, "_costs_charged",                  # per source
                        lambda *a, **kw: {s: {**c, "profit_factor": inf}
                                          for s, c in real_costs(*a, **kw).items()})
    csv = _walkforward_csv(tmp_path)
    base = Experiment().override({"runtime.runs_dir": str(tmp_path / "wf")})
    wf = wfm.WalkForward(base=base, sources=[csv], models=wfm.parse_models("rule"), seeds=[0],
                         plan=wfm.FoldPlan(train_bars=500, val_bars=200, test_bars=200),
                         workers=1, device="cpu")
    out = wfm.run(wf)
    task_files = sorted((out.run.path / TASK_DIR).glob("*.json"))
    task = _strict(task_files[0].read_text())
    walkforward = _strict((out.run.path / "walkforward.json").read_text())

    # a sweep of the same rule baseline, its costs block given an infinite ratio
    real_costs_of = sweep_study.costs_of
    monkeypatch.setattr(sweep_study, "costs_of",
                        lambda *a, **kw: {**real_costs_of(*a, **kw), "profit_factor": inf})
    sb = Experiment().override({"runtime.runs_dir": str(tmp_path / "sw"),
                                "data.source": str(csv)})
    sw = swm.Sweep(base=sb, source=str(csv), models=wfm.parse_models("rule"), seeds=[0],
                   grid=swm.parse_grid(["threshold=0.5,0.6"], sb),
                   plan=wfm.FoldPlan(train_bars=500, val_bars=200, test_bars=200), top=1)
    sweep = _strict((swm.run(sw).run.path / "sweep.json").read_text())

    written = {"report.json": report["stats"]["profit_factor"],
               "registry summary": summary["profit_factor"],
               "walk-forward task file": task["stats"]["profit_factor"],
               "walkforward.json": next(iter(walkforward["costs_charged"].values()))[
                   "profit_factor"],
               "sweep.json": sweep["costs_charged"]["profit_factor"]}
    assert set(written.values()) == {"inf"}, written
    assert stats.json_number(task["stats"]["profit_factor"]) == inf


def test_no_module_defines_its_own_json_cleaner():
    """Every writer imports ``catalog.jsonable``; no other module keeps a cleaner of its own."""
    root = Path(stats.__file__).parents[1]
    found = []
    for file in sorted(root.rglob("*.py")):
        if file == Path(stats.__file__):
            continue
        text = file.read_text()
        found += [f"{file.relative_to(root)}: {own!r}" for own in
                  ("def jsonable", "def _jsonable", "def _clean(", "def _clean_dict", "def plain")
                  if own in text]
    assert not found, f"use backtests.analysis.catalog.jsonable instead of {found}"
