"""Shared fixtures: the real EURUSD H1 sample and one small trained run (session-wide)."""

from __future__ import annotations

import pytest

import data


def pytest_collection_modifyitems(items):
    """A test that uses the trained model trains (once per session): it is a slow test."""
    for item in items:
        if "trained_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def eurusd():
    return data.load("sample:EURUSD_H1")


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="session")
def trained_run(eurusd, runs_dir):
    """An attention/article model trained for a few epochs on the sample (seeded)."""
    from backtests.config import Experiment
    from backtests.workflows import train_run

    exp = Experiment().override({"model.kind": "attention", "model.preset": "article",
                                 "dataset.features": "scaled", "train.epochs": 3,
                                 "train.seed": 1, "runtime.runs_dir": str(runs_dir)})
    run, _ = train_run(exp, candles=eurusd)
    return run


def experiment(runs_dir=None, **settings):
    """An Experiment with ``settings`` (unique leaf keys) and the runs folder."""
    from backtests.config import Experiment

    extra = {"runtime.runs_dir": str(runs_dir)} if runs_dir is not None else {}
    return Experiment().override({**settings, **extra})
