"""Odd options are refused with one clear line, exit code 2 and nothing written (issue 16 §6).

Each case goes through ``backtests.cli.main`` in this process, as `attnbt` runs it (a traceback
would escape ``main`` and fail the test), and most also through the typed layer a Python caller
uses. Where a case needs a trained run, a small one is trained once for the module.
"""

from __future__ import annotations

import math
import sys

import pytest

from backtests.cli import main
from backtests.config import ConfigError, Experiment, load_toml
from data.errors import AttnbtError


def attnbt(capsys, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `attnbt ARGS`."""
    sys.argv = ["attnbt", *args]
    with pytest.raises(SystemExit) as done:
        main()
    out, err = capsys.readouterr()
    return done.value.code, out, err


def refused(result: tuple[int, str, str], *needles: str) -> str:
    code, _, err = result
    assert code == 2, f"exit {code}, stderr: {err}"
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def nothing_in(folder) -> bool:
    return not folder.exists() or not any(folder.iterdir())


@pytest.fixture
def runs(tmp_path, monkeypatch):
    folder = tmp_path / "runs"
    monkeypatch.setenv("ATTNBT_RUNS", str(folder))
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A runs folder with one attention model trained for one epoch on four months of the
    sample."""
    from backtests.workflows import train_run

    root = tmp_path_factory.mktemp("options_runs")
    exp = Experiment().override({"model.kind": "attention", "train.epochs": 1, "train.seed": 0,
                                 "data.start": "2017-06-01", "data.end": "2017-09-30",
                                 "runtime.runs_dir": str(root)})
    run, _ = train_run(exp)
    return root, run.id


@pytest.fixture
def trained_runs(trained, monkeypatch):
    root, run_id = trained
    monkeypatch.setenv("ATTNBT_RUNS", str(root))
    return root, run_id


def run_ids(root) -> set[str]:
    from backtests.store import Registry

    return {r["id"] for r in Registry(root).list()}


def _feed(folder):
    """A CSV feed of 300 hourly bars (the sample's), written here."""
    import data

    path = folder / "feed.csv"
    bars = data.load("sample:EURUSD_H1").iloc[:300]
    bars.index = bars.index.tz_localize(None)
    bars.to_csv(path, index_label="time")
    return path


# --- tracebacks ---------------------------------------------------------------------------------
@pytest.mark.slow   # needs the module's trained model (seconds to train)
def test_evaluate_an_unknown_period(capsys, trained_runs):
    root, run_id = trained_runs
    before = run_ids(root)
    refused(attnbt(capsys, "evaluate", "--run", run_id, "--period", "nosuch"),
            "backtest.period = 'nosuch'", "train, val, test, all", "(option --period)")
    assert run_ids(root) == before


@pytest.mark.parametrize("command", [["walkforward", "--models", "dense"],
                                     ["sweep", "--grid", "threshold=0.5,0.6"]])
@pytest.mark.parametrize("seeds", [str(2**70), "0", "-3", "1001"])
def test_seeds_out_of_range(capsys, runs, command, seeds):
    from backtests.walkforward.tasks import MAX_SEEDS

    if seeds == "1001":
        seeds = str(MAX_SEEDS + 1)
    refused(attnbt(capsys, *command, "--dry-run", "--seeds", seeds), f"`seeds` (option --seeds) {seeds}",
            f"1 to {MAX_SEEDS}")
    assert nothing_in(runs)


def test_seed_lists_are_checked_on_the_python_path():
    from backtests import walkforward as wfm
    from backtests.walkforward.tasks import MAX_SEEDS

    for seeds in ([], [0, 0], [2**70], list(range(MAX_SEEDS + 1))):
        with pytest.raises(ConfigError):
            wfm.WalkForward(base=Experiment(), sources=["sample:EURUSD_H1"],
                            models=[("dense", "matched")], seeds=seeds)


# --- silently accepted nonsense ---------------------------------------------------------------------
def _too_many_workers() -> int:
    from backtests.execution import WORKERS_PER_CORE, default_workers

    return WORKERS_PER_CORE * default_workers() + 1


@pytest.mark.parametrize("command", [["walkforward", "--models", "dense"],
                                     ["sweep", "--grid", "threshold=0.5,0.6"]])
@pytest.mark.parametrize("workers", ["0", "-1", "too many", str(10**9)])
def test_workers_out_of_range(capsys, runs, command, workers):
    if workers == "too many":
        workers = str(_too_many_workers())
    line = refused(attnbt(capsys, *command, "--dry-run", "--workers", workers),
                   f"runtime.workers {workers}", "(option --workers)")
    assert ("1 or more" in line) if int(workers) < 1 else ("per core" in line)
    assert nothing_in(runs)


def test_workers_bound_on_the_python_path():
    from backtests import walkforward as wfm
    from backtests.execution import check_workers

    assert check_workers(_too_many_workers() - 1) == _too_many_workers() - 1
    assert check_workers(10**6, here=False) == 10**6      # a Ray cluster brings its own CPUs
    for workers in (0, -1, _too_many_workers()):
        with pytest.raises(ConfigError, match="runtime.workers"):
            wfm.WalkForward(base=Experiment(), sources=["sample:EURUSD_H1"],
                            models=[("dense", "matched")], seeds=[0], workers=workers)


@pytest.mark.parametrize("command", [["walkforward", "--models", "dense"],
                                     ["sweep", "--grid", "threshold=0.5,0.6"]])
def test_test_parts_too_short_for_the_statistics(capsys, runs, command):
    from backtests.walkforward.tasks import MIN_TEST_BARS

    for bars in ("1", str(MIN_TEST_BARS - 1)):
        refused(attnbt(capsys, *command, "--dry-run", "--test-bars", bars),
                f"folds.test_bars {bars}", f"at least {MIN_TEST_BARS} bars",
                "(option --test-bars)")
    assert nothing_in(runs)


def test_test_bars_minimum_on_the_python_path():
    from backtests.walkforward import FoldPlan
    from backtests.walkforward.tasks import MIN_TEST_BARS

    assert FoldPlan(test_bars=MIN_TEST_BARS).test_bars == MIN_TEST_BARS
    with pytest.raises(ConfigError, match="folds.test_bars 1:"):
        FoldPlan(test_bars=1)


def test_a_sweep_too_big_is_refused_before_any_combination_is_built(capsys, runs, monkeypatch):
    from backtests import sweep as swm
    from backtests.sweep import grid as sweep_grid
    from backtests.sweep import study as sweep_study

    def built(*_a, **_k):
        raise AssertionError("a combination was built")

    monkeypatch.setattr(sweep_grid, "_product", built)
    monkeypatch.setattr(sweep_study, "rule_sets", built)
    n = math.isqrt(swm.MAX_COMBINATIONS) + 1          # n × n > the limit, each axis under it
    thresholds = ",".join(f"{(i + 1) / (n + 2):.6f}" for i in range(n))
    targets = ",".join(str(i) for i in range(n))
    line = refused(attnbt(capsys, "sweep", "--dry-run", "--grid", f"threshold={thresholds}",
                          "--grid", f"take_profit_r={targets}"),
                   f"{n * n:,} combinations", f"at most {swm.MAX_COMBINATIONS:,}")
    assert f"{n} threshold × {n} take_profit_r" in line
    assert nothing_in(runs)


def test_models_count_towards_the_sweep_limit(capsys, runs, monkeypatch):
    from backtests import sweep as swm
    from backtests.sweep import grid as sweep_grid

    monkeypatch.setattr(sweep_grid, "MAX_COMBINATIONS", 4)
    grid = ["--grid", "threshold=0.5,0.6", "--grid", "stop=bar,atr:1"]     # 4 per model
    refused(attnbt(capsys, "sweep", "--dry-run", "--models", "dense,conv", *grid),
            "8 combinations (2 models × 2 threshold × 2 stop)", "at most 4")
    assert nothing_in(runs)
    exp = Experiment()
    with pytest.raises(ConfigError, match="8 combinations"):
        swm.Sweep(base=exp, source="sample:EURUSD_H1", models=[("dense", "matched"),
                                                                ("conv", "article")],
                  seeds=[0], grid=swm.parse_grid(grid[1::2], exp))


@pytest.mark.slow   # needs the module's trained model (seconds to train)
@pytest.mark.parametrize("gap,says", [("nan", "positive duration"), ("-1d", "positive duration"),
                                      ("0", "positive duration"), ("", "positive duration"),
                                      ("soon", "not a duration")])
def test_paper_max_gap_nonsense(capsys, trained_runs, tmp_path, gap, says):
    from backtests.paper import account_dir

    root, run_id = trained_runs
    before = run_ids(root)
    refused(attnbt(capsys, "paper", "init", "acct", "--run", run_id, "--source",
                   str(_feed(tmp_path)), "--max-gap", gap), f"paper.max_gap {gap!r}", says,
            "(option --max-gap)")
    assert not account_dir("acct", root).exists() and run_ids(root) == before


@pytest.mark.slow   # needs the module's trained model (seconds to train)
def test_paper_max_gap_shorter_than_a_bar(capsys, trained_runs, tmp_path):
    from backtests.paper import account_dir, parse_max_gap

    root, run_id = trained_runs
    before = run_ids(root)
    feed = _feed(tmp_path)
    refused(attnbt(capsys, "paper", "init", "acct", "--run", run_id, "--source", str(feed),
                   "--max-gap", "30min"), "paper.max_gap '30min' is shorter than one bar",
            "0 days 01:00:00", "(option --max-gap)")
    assert not account_dir("acct", root).exists() and run_ids(root) == before
    assert str(parse_max_gap("2d")) == "2 days 00:00:00" and parse_max_gap(None) is None


@pytest.mark.slow   # needs the module's trained model (seconds to train)
def test_paper_from_empty(capsys, trained_runs, tmp_path):
    from backtests.paper import account_dir

    root, run_id = trained_runs
    before = run_ids(root)
    refused(attnbt(capsys, "paper", "init", "acct", "--run", run_id, "--source",
                   str(_feed(tmp_path)), "--from", ""), "paper.start (option --from) is empty")
    assert not account_dir("acct", root).exists() and run_ids(root) == before


@pytest.mark.slow   # needs the module's trained model (seconds to train)
@pytest.mark.parametrize("value,says", [
    ("NOSUCH", "not a pair of known currencies"), ("USDXYZ", "custom:USDXYZ"),
    ("", "data.instrument is empty"), ("eurusd", "in capitals: EURUSD"),
    ("custom:EURUSD", "is a currency pair"), ("custom:", "custom:SYMBOL")])
def test_backtest_unknown_instrument(capsys, trained_runs, value, says):
    root, run_id = trained_runs
    before = run_ids(root)
    line = refused(attnbt(capsys, "backtest", "--run", run_id, "--instrument", value,
                          "--random-draws", "5"), says, "(option --instrument)")
    if "known currencies" in line:
        assert "CHF" in line and "USD" in line and f"custom:{value}" in line
    assert run_ids(root) == before


def test_instruments_on_the_python_path():
    from backtests.currency import conversion

    for ok in ("EURUSD", "EUR/USD", "custom:SPY", "custom:BRK.B", None):
        assert Experiment().override({"data.instrument": ok}).data.instrument == ok
    for bad in ("NOSUCH", "EURXYZ", "custom:GBPUSD", "custom:a b"):
        with pytest.raises(ConfigError, match="data.instrument"):
            Experiment().override({"data.instrument": bad})
    spy = conversion("prices.csv", "custom:SPY", "USD")
    assert (spy.instrument, spy.quote, spy.rule) == ("SPY", None, "none")
    assert conversion("prices.csv", "USD/CHF", "USD").rule == "1/close"


@pytest.mark.slow   # needs the module's trained model (seconds to train)
def test_backtest_from_empty(capsys, trained_runs):
    root, run_id = trained_runs
    before = run_ids(root)
    refused(attnbt(capsys, "backtest", "--run", run_id, "--from", "", "--random-draws", "5"),
            "backtest.start is empty", "(option --from)")
    refused(attnbt(capsys, "evaluate", "--run", run_id, "--from", ""), "start time is empty")
    assert run_ids(root) == before


def test_empty_settings_on_the_python_path(tmp_path):
    for key in ("backtest.start", "data.instrument", "data.source", "data.tz", "split.val_end"):
        with pytest.raises(ConfigError, match=f"{key} is empty"):
            Experiment().override({key: "  "})
        with pytest.raises(ConfigError, match=f"{key} is empty"):
            Experiment().override([f"{key}="])
    toml = tmp_path / "c.toml"
    toml.write_text('[backtest]\nstart = ""\n')
    with pytest.raises(ConfigError, match="backtest.start is empty"):
        load_toml(toml)
    assert Experiment().override({"backtest.start": "none"}).backtest.start is None
    assert Experiment().override({"strategy.hours": ""}).strategy.hours == ""


@pytest.mark.slow   # needs the module's trained model (seconds to train)
def test_runs_list_unknown_sort_key(capsys, trained_runs):
    refused(attnbt(capsys, "runs", "list", "--sort", "nosuch"), "--sort 'nosuch'",
            "config_id", "hit_pct")
    for key in ("hit_pct", "created", "sharpe"):
        code, out, err = attnbt(capsys, "runs", "list", "--sort", key, "--json")
        assert code == 0, err


def test_runs_list_unknown_sort_key_without_runs(capsys, runs):
    refused(attnbt(capsys, "runs", "list", "--sort", "nosuch"), "none in these runs")


# --- output folders -----------------------------------------------------------------------------------
@pytest.mark.slow   # a few seconds: runs in `make test`, not in the fast subset
def test_predict_out_into_a_missing_folder(capsys, trained_runs, tmp_path):
    root, run_id = trained_runs
    out = tmp_path / "missing" / "deeper" / "p.csv"
    refused(attnbt(capsys, "predict", "--run", run_id, "--out", str(out)),
            f"the folder {out.parent} does not exist", "--mkdir")
    assert not (tmp_path / "missing").exists()
    code, _, err = attnbt(capsys, "predict", "--run", run_id, "--out", str(out), "--mkdir")
    assert code == 0, err
    assert out.read_text().startswith("time,p_none,p_buy,p_sell")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    refused(attnbt(capsys, "predict", "--run", run_id, "--out", str(blocker / "p.csv"),
                   "--mkdir"), "is not a folder")


@pytest.mark.slow   # a few seconds: runs in `make test`, not in the fast subset
def test_attention_out_into_a_missing_folder(capsys, trained_runs, tmp_path):
    root, run_id = trained_runs
    out = tmp_path / "missing" / "m.png"
    refused(attnbt(capsys, "attention", "--run", run_id, "--out", str(out)), "does not exist",
            "--mkdir")
    assert not (tmp_path / "missing").exists()
    code, _, err = attnbt(capsys, "attention", "--run", run_id, "--out", str(out), "--mkdir")
    assert code == 0 and out.read_bytes()[:4] == b"\x89PNG", err


@pytest.mark.slow   # needs the module's trained model (seconds to train)
def test_compare_out_into_a_missing_folder(capsys, trained_runs, tmp_path):
    from backtests.compare import run_compare, write_html

    root, _ = trained_runs
    out = tmp_path / "missing" / "c.html"
    refused(attnbt(capsys, "compare", "aaaa", "bbbb", "--out", str(out)),
            f"the folder {out.parent} does not exist", "--mkdir")
    with pytest.raises(AttnbtError, match="does not exist"):   # before any run is looked up
        run_compare(["nope1", "nope2"], root, out=out)
    assert not out.parent.exists()
    assert write_html(out, "<html></html>", mkdir=True).read_text() == "<html></html>"


def test_walkforward_doc_into_a_missing_folder(capsys, runs, tmp_path):
    refused(attnbt(capsys, "walkforward", "--dry-run", "--doc", str(tmp_path / "no" / "d.md")),
            "does not exist")
    assert not (tmp_path / "no").exists()
