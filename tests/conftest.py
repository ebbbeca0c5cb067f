"""Shared fixtures: the real EURUSD H1 sample, one small trained run (session-wide), attnbt run
in this process; and the Hypothesis profiles that size the property tests."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

# Under pytest-xdist (`make test` runs one test worker per core) each worker computes with one
# thread, as the project's own pools do: set before numpy or torch load their thread pools.
# The processes a test starts inherit it.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import pytest
from hypothesis import settings

# A property test names its number of examples for the "thorough" profile (Hypothesis' default of
# 100 examples); the "ci" profile, the default of `make test`, runs a quarter of that number
# (the examples stay derandomized: the same ones every run). HYPOTHESIS_PROFILE=thorough runs all.
settings.register_profile("thorough", max_examples=100)
settings.register_profile("ci", max_examples=25)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# The files that take the longest, longest first (wall time measured on the 2-core machine,
# docs/benchmarks.md "The test suite"). `make test` hands whole files to its workers in collection
# order (`--dist loadfile --no-loadscope-reorder`), so these start first and the run does not end
# with one worker on a long file while the other has nothing left (the longest-processing-time
# rule). A file missing from the list keeps its place after them; the order inside a file is kept.
LONGEST_FIRST = (
    "backtests/test_ray_two_nodes.py", "benchmarks/test_smoke.py", "backtests/test_paper.py",
    "backtests/test_backtest.py", "backtests/test_walkforward.py", "backtests/test_cli_runs.py",
    "backtests/test_rule_baselines.py", "benchmarks/test_invocation.py",
    "backtests/test_ray_executor.py", "backtests/test_compare.py",
    "backtests/test_api_notebook.py", "backtests/test_sweep.py", "backtests/test_executor.py",
    "strategy/test_engine_resume.py", "data/test_fuzz.py", "backtests/test_label_exits_studies.py",
    "backtests/test_cli_models.py", "backtests/test_study_currency.py",
    "backtests/test_significance.py",
)


# Pictures: matplotlib's rasterising (``Figure.savefig``) and Bokeh's serialising
# (``bokeh.embed.components``) are about a seventh of the suite's CPU, and almost every test that
# makes a report checks its numbers and text, not its pixels. So a test builds every figure as the
# product does (all our plotting code runs, with the test's data) but only a test marked ``draws``
# rasterises and serialises them; the others get a fixed 1×1 PNG for each picture and, for the
# Bokeh charts, an empty script and one empty ``<div>`` per chart. Each picture and each page's
# charts have ``draws`` tests (docs/architecture.md "Tests" names them);
# ``ATTNBT_TEST_DRAW=all`` draws in every test. Processes a test starts (the console script)
# always draw, except the example notebook's Jupyter kernel, which test_api_notebook gives these
# replacements; the benchmark smoke runs (test_smoke) run in the test's process.
_DRAW = {"now": True}


def _draw_only_where_checked() -> None:
    from matplotlib.figure import Figure
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    tiny = buf.getvalue()
    savefig = Figure.savefig

    def maybe_savefig(self, fname, *args, **kwargs):
        fmt = kwargs.get("format") or (str(fname).rsplit(".", 1)[-1] if isinstance(
            fname, (str, os.PathLike)) else "png")
        if _DRAW["now"] or fmt != "png":
            return savefig(self, fname, *args, **kwargs)
        if isinstance(fname, (str, os.PathLike)):
            with open(fname, "wb") as fh:
                fh.write(tiny)
        else:
            fname.write(tiny)

    Figure.savefig = maybe_savefig

    import bokeh.embed

    components = bokeh.embed.components

    def maybe_components(models, *args, **kwargs):
        if _DRAW["now"] or not isinstance(models, dict):
            return components(models, *args, **kwargs)
        return "", {name: f"<div data-test-chart='{name}'></div>" for name in models}

    bokeh.embed.components = maybe_components


@contextlib.contextmanager
def _drawing():
    before = _DRAW["now"]
    _DRAW["now"] = True
    try:
        yield
    finally:
        _DRAW["now"] = before


@pytest.fixture(scope="session")
def drawing():
    """``with drawing(): ...`` draws whatever the running test's marker: for a module- or
    session-wide fixture whose pictures or charts its tests check."""
    return _drawing


def pytest_configure(config):
    # (not in pytest-xdist's controller, which runs no test: importing matplotlib and Bokeh
    # there only delays the workers' start)
    controller = (not hasattr(config, "workerinput") and bool(getattr(config.option,
                  "numprocesses", None)) and getattr(config.option, "dist", "no") != "no")
    if os.environ.get("ATTNBT_TEST_DRAW") != "all" and not controller:
        _draw_only_where_checked()


def pytest_runtest_setup(item):
    # (with ATTNBT_TEST_DRAW=all nothing was replaced, so this flag is never read)
    _DRAW["now"] = item.get_closest_marker("draws") is not None


def _file_rank(item) -> int:
    path = item.nodeid.split("::", 1)[0].removeprefix("tests/")
    return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_collection_modifyitems(items):
    """A test that uses the trained model trains (once per session): it is a slow test. The
    longest files go first (``LONGEST_FIRST``; a stable sort keeps every other order)."""
    for item in items:
        if "trained_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
    items.sort(key=_file_rank)


@pytest.fixture(scope="session")
def eurusd():
    import data

    return data.load("sample:EURUSD_H1")


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


def _train_small_run(runs_dir, candles):
    from backtests.config import Experiment
    from backtests.workflows import train_run

    exp = Experiment().override({"model.kind": "attention", "model.preset": "article",
                                 "dataset.features": "scaled", "train.epochs": 3,
                                 "train.seed": 1, "runtime.runs_dir": str(runs_dir)})
    run, _ = train_run(exp, candles=candles)
    return run


def _adopt(run, runs_dir):
    """The finished run ``run`` copied into the runs folder ``runs_dir``: its folder, and its
    registry row (the whole registry when ``runs_dir`` has none yet)."""
    import shutil
    import sqlite3
    from contextlib import closing

    from backtests.store import Registry
    from backtests.store.runs import Run

    shutil.copytree(run.path, runs_dir / run.id)
    target = Registry(runs_dir).path
    with closing(sqlite3.connect(Registry(run.root).path)) as src:
        if not target.exists():
            with closing(sqlite3.connect(target)) as dst:
                src.backup(dst)
        else:
            with closing(sqlite3.connect(target, timeout=60)) as dst, dst:
                row = src.execute("SELECT * FROM runs WHERE id=?", (run.id,)).fetchone()
                dst.execute(f"INSERT INTO runs VALUES ({','.join('?' * len(row))})", row)
    return Run(run.id, run.kind, runs_dir / run.id, runs_dir)


@pytest.fixture(scope="session")
def trained_run(runs_dir, tmp_path_factory, worker_id, request):
    """An attention/article model trained for a few epochs on the sample (seeded), in this
    session's ``runs_dir``.

    Trained once per test session: under pytest-xdist the first worker that needs it trains it
    into a folder all workers share (the parent of each worker's base temporary folder), under
    a file lock, and every worker copies the finished run into its own runs folder."""
    if worker_id == "master":
        return _train_small_run(runs_dir, request.getfixturevalue("eurusd"))
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent
    with FileLock(str(shared / "trained_run.lock")):
        done = shared / "trained_run.json"
        if done.exists():
            from backtests.store import Registry

            run = Registry(shared / "trained_run").resolve(done.read_text())
        else:
            run = _train_small_run(shared / "trained_run", request.getfixturevalue("eurusd"))
            done.write_text(run.id)
    return _adopt(run, runs_dir)


@pytest.fixture
def trained_run_alone(trained_run, tmp_path):
    """The session's trained run (``trained_run``) copied into a runs folder of its own,
    ``tmp_path / "alone"``, whose registry holds that one run and no trial: for a test that runs
    a command on "the latest run" without training one of its own (`attnbt train` itself is
    tested in tests/backtests/test_cli_models.py). Its recorded settings still name the runs
    folder it was trained in (``runtime.runs_dir``); a backtest of it is recorded where it was
    found, this folder (test_backtest_runs_dir.py)."""
    import shutil
    import sqlite3
    from contextlib import closing

    from backtests.store import Registry
    from backtests.store.runs import Run

    runs_dir = tmp_path / "alone"
    runs_dir.mkdir()
    shutil.copytree(trained_run.path, runs_dir / trained_run.id)
    with closing(sqlite3.connect(Registry(trained_run.root).path, timeout=60)) as src, \
            closing(sqlite3.connect(Registry(runs_dir).path)) as dst:
        src.backup(dst)
        with dst:
            dst.execute("DELETE FROM runs WHERE id != ?", (trained_run.id,))
            for table in ("trials", "trials_duplicates", "comparisons"):
                dst.execute(f"DELETE FROM {table}")
    return Run(trained_run.id, trained_run.kind, runs_dir / trained_run.id, runs_dir)


def experiment(runs_dir=None, **settings):
    """An Experiment with ``settings`` (unique leaf keys) and the runs folder."""
    from backtests.config import Experiment

    extra = {"runtime.runs_dir": str(runs_dir)} if runs_dir is not None else {}
    return Experiment().override({**settings, **extra})


@dataclass
class Done:
    """What an `attnbt` command left: its exit code and what it printed (as subprocess.run's
    CompletedProcess names them)."""

    returncode: int
    stdout: str
    stderr: str

    @classmethod
    def of_exit(cls, code, out: str, err: str) -> Done:
        """As a process would end with ``sys.exit(code)``: a message is printed to stderr and
        exits 1, None exits 0."""
        if isinstance(code, str):
            return cls(1, out, err + code + "\n")
        return cls(code or 0, out, err)


def attnbt_here(*args: str, runs_dir=None) -> Done:
    """`attnbt ARGS` through ``backtests.cli.main`` in this process, for a module- or
    session-wide fixture (the ``cli`` fixture serves one test): what it printed is caught with
    ``contextlib.redirect_stdout``/``redirect_stderr`` instead of ``capsys``."""
    import contextlib

    from backtests.cli import main

    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as m:
        m.setattr(sys, "argv", ["attnbt", *map(str, args)])
        m.setenv("COLUMNS", "200")
        if runs_dir is not None:
            m.setenv("ATTNBT_RUNS", str(runs_dir))
        m.setattr(sys, "stdin", io.StringIO(""))
        sigterm = signal.getsignal(signal.SIGTERM)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                    pytest.raises(SystemExit) as done:
                main()
        finally:
            signal.signal(signal.SIGTERM, sigterm)
    code = done.value.code
    if isinstance(code, str):
        return Done(1, out.getvalue(), err.getvalue() + code + "\n")
    return Done(code or 0, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def cli_wide():
    """``attnbt_here``, for fixtures of a module or the session (``cli`` serves one test)."""
    return attnbt_here


@pytest.fixture
def cli(capsys, monkeypatch):
    """cli(*args, runs_dir=None, env=None, stdin=None, cwd=None) -> Done: `attnbt ARGS` run in
    this process through ``backtests.cli.main``, as the console script runs it.

    A traceback cannot pass unseen: an exception that escapes ``main`` fails the test. Each
    kind of end-to-end claim keeps one test through a real ``python -m backtests`` process;
    the other cases use this (starting a process per case costs seconds and checks nothing more).
    """
    from backtests.cli import main

    def run(*args: str, runs_dir=None, env=None, stdin=None, cwd=None) -> Done:
        with monkeypatch.context() as m:
            m.setattr(sys, "argv", ["attnbt", *map(str, args)])
            m.setenv("COLUMNS", "200")
            if runs_dir is not None:
                m.setenv("ATTNBT_RUNS", str(runs_dir))
            for key, value in (env or {}).items():
                m.setenv(key, str(value))
            if cwd is not None:
                m.chdir(cwd)
            m.setattr(sys, "stdin", io.StringIO(stdin or ""))
            capsys.readouterr()
            sigterm = signal.getsignal(signal.SIGTERM)
            try:
                with pytest.raises(SystemExit) as done:
                    main()
            finally:
                signal.signal(signal.SIGTERM, sigterm)
            out, err = capsys.readouterr()
        return Done.of_exit(done.value.code, out, err)

    return run


@pytest.fixture
def run_script(capsys, monkeypatch):
    """run_script(name, *args) -> Done: ``python benchmarks/NAME ARGS`` from the repository
    root, in this process (``runpy``, as ``__main__``; tests/benchmarks/test_smoke.py says why).
    torch's thread count, which a script sets, is put back afterwards; an exception that escapes
    the script fails the test."""
    import runpy

    import torch

    root = Path(__file__).resolve().parents[1]

    def run(name: str, *args: str) -> Done:
        threads = torch.get_num_threads()
        with monkeypatch.context() as m:
            m.chdir(root)
            m.setattr(sys, "argv", [f"benchmarks/{name}", *args])
            m.setattr(sys, "path", list(sys.path))
            m.setenv("MPLBACKEND", "Agg")
            capsys.readouterr()
            code = None
            try:
                runpy.run_path(str(root / "benchmarks" / name), run_name="__main__")
            except SystemExit as exc:
                code = exc.code
            finally:
                torch.set_num_threads(threads)
            out, err = capsys.readouterr()
        return Done.of_exit(code, out, err)

    return run
