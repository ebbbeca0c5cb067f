"""backtests.paper: stepping equals the backtest, idempotent, crash-safe, honest about the data."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtests import paper
from data.errors import DataError
from data.sources import sample_path
from strategy.fractal import Costs, FractalParams

PARAMS = FractalParams(stop_buffer=0.0001, max_hold=6, threshold=0.4)
COSTS = Costs(commission=0.00002, slippage=0.00001)
LINES = sample_path("EURUSD_H1").read_text().splitlines(keepends=True)   # header + 5000 bars
ROOT = Path(__file__).resolve().parents[2]


def write(path: Path, end: int, start: int = 0) -> None:
    """Lines start..end of the sample (line 0 is the header) into path (append if start)."""
    with path.open("a" if start else "w") as fh:
        fh.write("".join(LINES[start:end]))


def dump(name: str, runs: Path) -> dict:
    """Every journal row that a step writes, without wall-clock times."""
    with sqlite3.connect(paper.account_dir(name, runs) / paper.JOURNAL) as db:
        out = {t: db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
               for t in ("bars", "orders", "trades", "equity")}
        out["cursor"] = db.execute("SELECT step, last_time, n_bars, offset, guard, "
                                   "engine_state, feature_state, open_trade, pending "
                                   "FROM cursor").fetchall()
        out["events"] = db.execute("SELECT step, kind, time, detail FROM events").fetchall()
        out["steps"] = db.execute("SELECT id, new_bars, first_time, last_time, message "
                                  "FROM steps").fetchall()
    return out


def clone(src: str, dst: str, runs: Path) -> None:
    shutil.rmtree(paper.account_dir(dst, runs), ignore_errors=True)
    shutil.copytree(paper.account_dir(src, runs), paper.account_dir(dst, runs))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, trained_run) -> Path:
    return Path(trained_run.root)


def backtest_of(trained_run, runs: Path, csv: Path, start: str | None, params=PARAMS):
    """The result of the backtest (``compute_backtest``, what `attnbt backtest` runs) on ``csv``.

    Without the baselines it puts beside the result: the rule baselines, the oracle and the
    random entries are three more simulations of the same bars, run after the result and from
    it (they never write into it), and cost three quarters of the backtest here."""
    from unittest import mock

    from backtests import backtest as bt

    exp = bt.backtest_experiment(trained_run.id, runs, {
        "backtest.period": "all", "backtest.start": start, "backtest.random_draws": 1,
        **{f"strategy.{k}": v for k, v in params.to_dict().items()},
        "costs.commission": COSTS.commission, "costs.slippage": COSTS.slippage})
    with mock.patch.object(bt, "BASELINE_RULES", ()), \
            mock.patch.object(bt, "reference_baselines", lambda *a, **k: None):
        return bt.compute_backtest(exp, trained_run.id, source=str(csv), with_report=False).result


def assert_same_as_backtest(view, bt) -> None:
    closed = bt.trades[bt.trades["exit_reason"] != "end"].reset_index(drop=True)
    pd.testing.assert_frame_equal(view.trades, closed, check_exact=True)
    pd.testing.assert_frame_equal(view.orders, bt.orders, check_exact=True)
    if len(closed) == len(bt.trades):
        pd.testing.assert_series_equal(view.equity, bt.equity, check_exact=True, check_freq=False)
    else:   # the backtest closed the open trade at the last close: only that point differs
        pd.testing.assert_series_equal(view.equity.iloc[:-1], bt.equity.iloc[:-1],
                                       check_exact=True, check_freq=False)


# rules that read the ATR (stop, target, trailing stop): a resumed step must see the ATR an
# uninterrupted run computes, so it reads the bars before its resume point too
ATR_PARAMS = replace(PARAMS, stop="atr:1.5", take_profit_atr=2.0, trail="atr:1", max_hold=12)
# the bars in the file at init (one first step of them all with start="first"), then the bars
# stepped in uneven chunks: the window and the ATR need a few dozen, the trades a few hundred
HISTORY, STEPPED = 800, 300


@pytest.mark.parametrize("start,file,params", [
    ("first", "grow.csv", PARAMS), ("after", "grow.csv", PARAMS), ("time", "grow.csv", PARAMS),
    # a USD/XXX pair: P&L converted to the account's USD
    ("first", "USDCHF_H1.csv", PARAMS),
    ("first", "grow.csv", ATR_PARAMS), ("time", "grow.csv", ATR_PARAMS)])
def test_stepping_in_uneven_chunks_equals_the_backtest_and_is_idempotent(
        trained_run, runs, tmp_path, start, file, params):
    csv = tmp_path / file
    write(csv, 1 + HISTORY)
    name = f"same-{start}-{file[:6].lower()}{'-atr' if params is ATR_PARAMS else ''}"
    at = str(pd.Timestamp(LINES[1 + HISTORY - 100].split(",")[0]))
    paper.init(name, trained_run.id, str(csv), runs_dir=runs, params=params, costs=COSTS,
               start=at if start == "time" else start)
    rng = np.random.default_rng(3)
    pos, steps = 1 + HISTORY, 0
    if start != "after":
        assert paper.step(name, runs).new_bars == (HISTORY if start == "first" else 100)
    while pos < 1 + HISTORY + STEPPED:
        k = 1 if steps % 3 == 0 else int(rng.integers(2, 40))   # single bars and chunks
        write(csv, min(pos + k, 1 + HISTORY + STEPPED), pos)
        pos = min(pos + k, 1 + HISTORY + STEPPED)
        r = paper.step(name, runs)
        assert r.status == "traded" and r.new_bars >= 1
        steps += 1
    before = dump(name, runs)
    again = paper.step(name, runs)
    assert again.status == "nothing new" and "no bar closed" in again.message
    assert dump(name, runs) == before                                  # idempotent
    view = paper.read_account(name, runs)
    first = {"first": None, "time": at,
             "after": str(pd.Timestamp(LINES[1 + HISTORY].split(",")[0]))}[start]
    bt = backtest_of(trained_run, runs, csv, first, params)
    assert len(view.trades) > 10 and view.trades["exit_reason"].nunique() >= 2
    assert_same_as_backtest(view, bt)
    # the probabilities the paper account recorded are the backtest's, signals identical
    from models.predict import Predictor
    from strategy.fractal import signals_from_frame

    batch = Predictor.from_run(trained_run.path).predict_frame(_load(csv)).loc[view.probs.index]
    np.testing.assert_allclose(view.probs.to_numpy(), batch.to_numpy(), atol=1e-6, rtol=0)
    assert (signals_from_frame(view.probs, PARAMS.threshold)
            == signals_from_frame(batch, PARAMS.threshold)).all()
    if file.startswith("USDCHF"):   # the conversion was applied (P&L is not price × size)
        t = view.trades.iloc[0]
        plain = (t.exit_price - t.entry_price) * t.direction * t.size - t.commission
        assert abs(t.pnl_net - plain) > 1e-6
    rec = paper.paper_record(name, runs)
    assert set(rec) == {"stats", "equity", "trades", "params", "costs", "data", "period"}
    assert rec["stats"]["n_trades"] == len(view.trades)


def _load(csv: Path) -> pd.DataFrame:
    import data

    return data.load(str(csv))


@pytest.fixture(scope="module")
def crash_base(trained_run, runs, tmp_path_factory) -> tuple[str, Path]:
    """An account with 1,000 bars of history and 60 new ones waiting to be stepped."""
    csv = tmp_path_factory.mktemp("crash") / "grow.csv"
    write(csv, 1 + 1000)
    paper.init("crash-base", trained_run.id, str(csv), runs_dir=runs, params=PARAMS, costs=COSTS)
    write(csv, 1 + 1030, 1 + 1000)
    assert paper.step("crash-base", runs).new_bars == 30
    write(csv, 1 + 1090, 1 + 1030)
    clone("crash-base", "crash-ref", runs)
    paper.step("crash-ref", runs)
    return "crash-base", csv


def _ctx():
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["backtests.paper", "models.predict", "strategy.engine",
                                "backtests.simulation", "data.sources"])
    return ctx


def test_a_crash_at_every_write_point_loses_and_duplicates_nothing(runs, crash_base):
    base, _ = crash_base
    pre, ref = dump(base, runs), dump("crash-ref", runs)
    assert ref["orders"] != pre["orders"] and len(ref["bars"]) == len(pre["bars"]) + 60
    ctx = _ctx()
    for point in paper.CRASH_POINTS:
        clone(base, "crashed", runs)
        child = ctx.Process(target=paper.step_crashing_at, args=(point, "crashed", runs))
        child.start()
        child.join(120)
        assert child.exitcode == 137, point
        assert dump("crashed", runs) == (ref if point == "after_commit" else pre), point
        paper.step("crashed", runs)                       # the next step recovers
        assert dump("crashed", runs) == ref, point


@pytest.mark.slow
def test_sigkill_at_random_moments_of_a_real_step(runs, crash_base):
    base, _ = crash_base
    pre, ref = dump(base, runs), dump("crash-ref", runs)
    ctx = _ctx()
    warm = ctx.Process(target=paper.status, args=(base, runs))   # the fork server starts (and
    warm.start()                                                  # preloads) once, not inside
    warm.join(120)                                                # the step timed below
    clone(base, "killed", runs)
    t0 = time.perf_counter()
    child = ctx.Process(target=paper.step, args=("killed", runs))
    child.start()
    child.join(120)
    duration = time.perf_counter() - t0
    # one random moment in each 25th of the step (stratified: the whole step is covered as
    # evenly as by 50 uniform draws, whose widest gap is about 2/25 of it, at half the kills)
    rng, seen, n = random.Random(7), {"before": 0, "after": 0}, 25
    for i in range(n):
        clone(base, "killed", runs)
        child = ctx.Process(target=paper.step, args=("killed", runs))
        child.start()
        time.sleep(duration * (i + rng.random()) / n)
        try:
            os.kill(child.pid, signal.SIGKILL)
        except ProcessLookupError:   # it finished first
            pass
        child.join(60)
        state = dump("killed", runs)
        assert state in (pre, ref)
        seen["before" if state == pre else "after"] += 1
        if state == pre:
            paper.step("killed", runs)
        assert dump("killed", runs) == ref
    assert seen["before"] >= 10, seen


def test_a_second_step_waits_then_refuses_never_interleaves(runs, crash_base):
    clone(crash_base[0], "busy", runs)
    before = dump("busy", runs)
    with sqlite3.connect(paper.account_dir("busy", runs) / paper.JOURNAL,
                         isolation_level=None) as db:
        db.execute("BEGIN IMMEDIATE")   # a step in progress
        t = time.perf_counter()
        with pytest.raises(paper.PaperBusy, match="another step is running"):
            paper.step("busy", runs, wait=0.3)
        assert time.perf_counter() - t >= 0.25
        db.execute("ROLLBACK")
    assert dump("busy", runs) == before
    assert paper.step("busy", runs).new_bars == 60


def test_the_source_failing_rewritten_or_going_back_leaves_the_journal_untouched(
        trained_run, runs, tmp_path):
    csv = tmp_path / "src.csv"
    write(csv, 1 + 800)
    paper.init("honest", trained_run.id, str(csv), runs_dir=runs, params=PARAMS, costs=COSTS)
    write(csv, 1 + 810, 1 + 800)
    paper.step("honest", runs)
    before = dump("honest", runs)
    saved = csv.read_bytes()
    csv.unlink()
    with pytest.raises(DataError, match="missing file"):
        paper.step("honest", runs)
    csv.write_bytes(saved[:len(saved) // 2])                           # rewritten, shorter
    with pytest.raises(DataError, match="rewritten"):
        paper.step("honest", runs)
    csv.write_bytes(saved.replace(LINES[805].encode(), LINES[805].replace("1.", "2.", 1).encode()))
    with pytest.raises(DataError, match="rewritten"):                  # changed before the offset
        paper.step("honest", runs)
    csv.write_bytes(saved + LINES[700].encode())                        # a bar from the past
    with pytest.raises(DataError, match="back in time"):
        paper.step("honest", runs)
    assert dump("honest", runs) == before
    csv.write_bytes(saved + LINES[811].encode() + LINES[812][:12].encode())   # a half-written line
    r = paper.step("honest", runs)
    assert r.new_bars == 1 and dump("honest", runs) != before


def test_a_gap_is_reported_and_the_account_waits_until_accepted(cli, trained_run, runs,
                                                                tmp_path):
    csv = tmp_path / "gap.csv"
    write(csv, 1 + 600)
    paper.init("gappy", trained_run.id, str(csv), runs_dir=runs, params=PARAMS, costs=COSTS)
    last = pd.Timestamp(LINES[600].split(",")[0])
    fields = LINES[601].rstrip("\n").split(",")
    later = [(last + pd.Timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S"),
             (last + pd.Timedelta(days=10)).strftime("%Y-%m-%d %H:%M:%S")]
    with csv.open("a") as fh:
        for t in later:
            fh.write(",".join([t, *fields[1:]]) + "\n")
    r = paper.step("gappy", runs)
    assert r.status == "waiting" and r.new_bars == 1 and "gap of" in r.message
    assert [e["kind"] for e in r.events] == ["gap"]
    again = paper.step("gappy", runs)
    assert again.status == "waiting" and again.new_bars == 0           # reported once
    assert paper.status("gappy", runs)["waiting_on_gap"] is not None
    out = cli("paper", "step", "gappy", runs_dir=runs)      # the CLI names the way on
    assert out.returncode == 0 and "waiting" in out.stdout
    assert "attnbt paper step gappy --accept-gap" in out.stdout
    assert paper.step("gappy", runs, accept_gap=True).new_bars == 1


@pytest.fixture()
def yahoo(trained_run, runs, tmp_path, monkeypatch, eurusd):
    """A Yahoo account whose fetcher is a list of frames (no network)."""
    from data import yahoo as y

    monkeypatch.setenv("ATTNBT_CACHE", str(tmp_path / "cache"))
    path = y.cache_path("EURUSD=X", "1h")
    path.parent.mkdir(parents=True)
    eurusd.iloc[:900].to_parquet(path)
    name = f"yahoo-{tmp_path.name}"
    paper.init(name, trained_run.id, "yahoo:EURUSD=X:1h", runs_dir=runs, params=PARAMS,
               costs=COSTS)
    return name


def test_yahoo_forming_bar_is_not_traded_and_revisions_are_events(yahoo, runs, eurusd):
    tf = pd.Timedelta(hours=1)
    frame = eurusd.iloc[:920]
    now = frame.index[-1] + pd.Timedelta(minutes=20)                   # the last bar is forming
    r = paper.step(yahoo, runs, now=now, fetcher=lambda s, i: frame)
    assert r.new_bars == 19 and r.last == frame.index[-2]
    before = dump(yahoo, runs)
    assert paper.step(yahoo, runs, now=now, fetcher=lambda s, i: frame).status == "nothing new"
    assert dump(yahoo, runs) == before
    revised = eurusd.iloc[:925].copy()
    revised.iloc[915, revised.columns.get_loc("close")] += 0.0003      # Yahoo rewrote a bar
    revised.iloc[915, revised.columns.get_loc("high")] += 0.0003
    r = paper.step(yahoo, runs, now=revised.index[-1] + tf, fetcher=lambda s, i: revised)
    assert r.new_bars == 6 and [e["kind"] for e in r.events] == ["revised"]
    bars = paper.read_account(yahoo, runs).candles
    assert bars.loc[revised.index[915], "close"] == eurusd.iloc[915]["close"]   # not re-traded
    r = paper.step(yahoo, runs, now=revised.index[-1] + tf, fetcher=lambda s, i: revised)
    assert r.status == "nothing new"                                   # the event is not repeated

    def offline(symbol, interval):
        raise ConnectionError("network is unreachable")

    with pytest.raises(DataError, match="fetch failed"):
        paper.step(yahoo, runs, fetcher=offline)
    older = eurusd.iloc[:910]
    with pytest.raises(DataError, match="back in time"):
        paper.step(yahoo, runs, now=now, fetcher=lambda s, i: older)


def test_a_model_whose_files_changed_is_refused(trained_run, runs, tmp_path):
    copy = tmp_path / "model-copy"
    shutil.copytree(trained_run.path, copy)
    csv = tmp_path / "m.csv"
    write(csv, 1 + 300)
    paper.init("model-pin", str(copy), str(csv), runs_dir=runs)
    write(csv, 1 + 302, 1 + 300)
    weights = copy / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0x01
    weights.write_bytes(bytes(raw))
    before = dump("model-pin", runs)
    with pytest.raises(paper.PaperError, match="model"):
        paper.step("model-pin", runs)
    assert dump("model-pin", runs) == before


def test_an_unhashed_model_needs_trust_at_init_and_then_its_pin_guards_it(trained_run, runs,
                                                                          tmp_path):
    """A model.json without model_hash (saved before hashes) is refused at init unless trusted;
    a trusted account then checks the model against the hash pinned at init on every step."""

    from models.errors import ModelError

    copy = tmp_path / "unhashed"
    shutil.copytree(trained_run.path, copy)
    meta = json.loads((copy / "model.json").read_text())
    meta.pop("model_hash")
    (copy / "model.json").write_text(json.dumps(meta))
    csv = tmp_path / "u.csv"
    write(csv, 1 + 300)
    with pytest.raises(ModelError, match="`trust_unhashed`"):
        paper.init("unhashed", str(copy), str(csv), runs_dir=runs)
    paper.init("unhashed", str(copy), str(csv), runs_dir=runs, trust_unhashed=True)
    write(csv, 1 + 302, 1 + 300)
    assert paper.step("unhashed", runs).new_bars == 2
    raw = bytearray((copy / "model.safetensors").read_bytes())
    raw[-1] ^= 0x01
    (copy / "model.safetensors").write_bytes(bytes(raw))
    write(csv, 1 + 304, 1 + 302)
    with pytest.raises(paper.PaperError, match="not the one this account was created with"):
        paper.step("unhashed", runs)


def _attnbt_in_child(args: list[str], env: dict[str, str]) -> None:
    """`attnbt ARGS` through the entry point in a forked child, ``env`` added to its own."""
    from backtests.cli import main

    os.environ.update(env)
    sys.argv = ["attnbt", *args]
    main()


def test_cli_init_step_status_report_and_the_crash_hook(cli, trained_run, runs, tmp_path,
                                                        eurusd):
    """The commands through attnbt's entry point in this process; the crashing step in a
    child forked from the crash tests' (preloaded) fork server, with the hook set in its
    environment; the loop ended by SIGTERM through a real `python -m backtests`."""
    csv = tmp_path / "cli.csv"
    write(csv, 1 + 700)
    env = {**os.environ, "ATTNBT_RUNS": str(runs)}
    process = [sys.executable, "-m", "backtests", "paper"]

    def attnbt(*args):
        return cli("paper", *args, runs_dir=runs, cwd=ROOT)

    out = attnbt("init", "cli", "--run", trained_run.id, "--source", str(csv),
                 "--commission", "0.00002", "--max-hold", "6")
    assert out.returncode == 0, out.stderr
    # cli.csv names no instrument: the model's (trained on the EURUSD sample), said at init
    assert "instrument EURUSD (from the model's training data (sample:EURUSD_H1)" in out.stdout
    write(csv, 1 + 760, 1 + 700)
    child = _ctx().Process(target=_attnbt_in_child, args=(
        ["paper", "step", "cli"], {"ATTNBT_RUNS": str(runs), "ATTNBT_PAPER_CRASH_AT": "orders"}))
    child.start()
    child.join(120)
    assert child.exitcode == 137
    out = attnbt("step", "cli")
    assert out.returncode == 0 and "60 new bars" in out.stdout, out.stdout + out.stderr
    out = attnbt("status", "cli")
    assert out.returncode == 0 and "last_bar" in out.stdout
    out = attnbt("report", "cli")
    folder = paper.account_dir("cli", runs) / "report"
    assert out.returncode == 0 and (folder / "trades.csv").exists()
    check_paper_report_and_annualisation("cli", runs, folder, trained_run, eurusd)
    out = attnbt("step", "nobody")
    assert out.returncode == 2 and out.stderr.startswith("error:")
    loop = subprocess.Popen([*process, "run", "cli", "--every", "1h"], cwd=ROOT, text=True,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert "next step at" in loop.stdout.readline() + loop.stdout.readline()
    loop.send_signal(signal.SIGTERM)                 # ends it cleanly between steps
    out, err = loop.communicate(timeout=60)
    assert loop.returncode == 0 and "stopped" in out, err


def check_paper_report_and_annualisation(name: str, runs: Path, folder: Path, trained_run,
                                         eurusd):
    """The report's "What was traded" is filled (it was all "—"); 60 paper bars annualise at
    the bars per year of the source's 700-bar history, as a backtest over the sample does,
    not at their own (3,230 where the backtest used 6,261)."""
    from backtests.analysis.performance import infer_bars_per_year
    from backtests.compare import load
    from backtests.store import Registry

    report = json.loads((folder / "report.json").read_text())
    cfg = paper.read_account(name, runs).account.settings
    assert report["instrument"].startswith("EURUSD") and report["timeframe"] == "1h"
    assert report["model"]["model_hash"] == cfg.model_hash
    html = (folder / "report.html").read_text()
    traded = html[html.index("What was traded"):html.index("<h2>Statistics")]
    assert "EURUSD" in traded and "attention/article" in traded and trained_run.id in traded
    assert traded.count("—") == 1          # the config id: a paper account has none
    rec = load(f"paper:{name}", Registry(runs))
    assert rec.data["instrument"] == "EURUSD" and rec.data["timeframe"] == "1h"
    index = eurusd.index
    history = infer_bars_per_year(index[:700])
    assert cfg.bars_per_year == rec.stats["bars_per_year"] == pytest.approx(history)
    assert history == pytest.approx(infer_bars_per_year(index))   # a backtest's, on the sample
    assert rec.stats["bars_per_year"] != pytest.approx(infer_bars_per_year(rec.equity.index))


def test_next_wake_is_the_next_bar_close_plus_the_delay():
    from backtests.cli.paper import next_wake

    now = pd.Timestamp("2024-03-01 10:20", tz="UTC")
    hour, delay = pd.Timedelta("1h"), pd.Timedelta("30s")
    assert next_wake(now, hour, delay) == pd.Timestamp("2024-03-01 11:00:30", tz="UTC")
    assert next_wake(pd.Timestamp("2024-03-01 10:00:10", tz="UTC"), hour, delay) == \
        pd.Timestamp("2024-03-01 10:00:30", tz="UTC")


def test_compare_reads_a_paper_account_beside_a_backtest(trained_run, runs, tmp_path):
    from backtests.compare import load
    from backtests.store import Registry

    csv = tmp_path / "grow.csv"
    write(csv, 1 + 1200)
    paper.init("cmp", trained_run.id, str(csv), runs_dir=runs, params=PARAMS, costs=COSTS,
               start="first")
    paper.step("cmp", runs)
    rec = load("paper:cmp", Registry(runs))
    view = paper.read_account("cmp", runs)
    assert rec.kind == "paper" and rec.stats["n_trades"] == len(view.trades)
    assert rec.model["model_hash"] == view.account.settings.model_hash
    pd.testing.assert_series_equal(rec.equity, view.equity, check_names=False)


def test_max_gap_in_days_as_users_write_it_parses_without_a_deprecation():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")   # pandas 3 deprecates the lower-case "d" unit
        assert paper.parse_max_gap("2d") == pd.Timedelta(days=2)
        assert paper.parse_max_gap("1d12h") == pd.Timedelta(hours=36)


def test_status_shows_a_pending_market_order_and_no_placeholder_price(cli, trained_run, runs,
                                                                      tmp_path):
    """Right after a step whose last bar placed an entry, the entry is a pending market order
    (no price yet) and its take-profit has no price until the entry fills: `paper status` prints
    both (it crashed on the market order) and --json shows null, not the engine's placeholder."""
    probe = tmp_path / "probe.csv"
    write(probe, 1 + 800)
    paper.init("pend-probe", trained_run.id, str(probe), runs_dir=runs, params=PARAMS,
               costs=COSTS, start="first")
    paper.step("pend-probe", runs)
    orders = paper.read_account("pend-probe", runs).orders
    entry = orders[(orders["role"] == "entry") & (orders["created_bar"] > 100)].iloc[0]
    csv = tmp_path / "pend.csv"                        # ends on the bar that placed the entry
    write(csv, 1 + int(entry["created_bar"]) + 1)
    paper.init("pend", trained_run.id, str(csv), runs_dir=runs, params=PARAMS, costs=COSTS,
               start="first")
    paper.step("pend", runs)
    out = cli("paper", "status", "pend", runs_dir=runs)
    assert out.returncode == 0, out.stderr
    assert f"#{entry['ref']} entry {entry['side']} Market at market" in out.stdout
    s = paper.status("pend", runs)
    pending = {o["role"]: o for o in s["open_orders"]}
    assert s["position"] is None and set(pending) == {"entry", "stop", "target"}
    assert pending["entry"]["type"] == "Market" and pending["entry"]["order_price"] is None
    stop = orders.loc[orders["ref"] == entry["ref"] + 1, "order_price"].iloc[0]
    assert pending["stop"]["order_price"] == pytest.approx(stop)
    assert pending["target"]["order_price"] is None      # set from the entry's fill
    out = cli("paper", "status", "pend", "--json", runs_dir=runs)
    shown = {o["role"]: o for o in json.loads(out.stdout)["open_orders"]}
    assert out.returncode == 0 and shown == pending
    written = 1 + int(entry["created_bar"]) + 1
    for end in range(written + 1, written + 40):       # a bar by bar until an entry fills and
        write(csv, end, end - 1)                       # its position outlives the bar
        paper.step("pend", runs)
        s = paper.status("pend", runs)
        if s["position"] is not None:
            break
    pending = {o["role"]: o for o in s["open_orders"]}
    assert s["position"] is not None and set(pending) == {"stop", "target"}
    p = s["position"]
    stop = pending["stop"]["order_price"]
    assert pending["target"]["order_price"] == pytest.approx(
        p["entry_price"] + p["direction"] * PARAMS.take_profit_r * abs(p["entry_price"] - stop))


def test_paper_instrument_is_given_or_named_or_the_models():
    meta = {"data": "sample:EURUSD_H1", "kind": "attention", "config": {"preset": "article"},
            "spec": {"window": 20, "features": "scaled", "labels": "3bar"}}
    pick = paper.paper_instrument
    assert pick("live.csv", "USDCHF", meta) == ("USDCHF", "the instrument given")
    assert pick("yahoo:GBPUSD=X:1h", None, meta)[0] == "GBPUSD"
    assert pick("live.csv", None, meta) == ("EURUSD",
                                            "the model's training data (sample:EURUSD_H1)")
    assert pick("live.csv", None, {**meta, "data": "spy_D1.csv"})[0] == "spy"

