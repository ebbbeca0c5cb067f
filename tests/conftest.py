"""Shared fixtures: the real EURUSD H1 sample and one small trained run (session-wide)."""

from __future__ import annotations

import pytest

import data


@pytest.fixture(scope="session")
def eurusd():
    return data.load("sample:EURUSD_H1")


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="session")
def trained_run(eurusd, runs_dir):
    """An attention/article model trained for a few epochs on the sample (seeded)."""
    from backtests.pipeline import train_run
    from data import DatasetSpec
    from models.train import TrainConfig

    run, metrics = train_run("sample:EURUSD_H1", kind="attention", preset="article",
                             spec=DatasetSpec(features="scaled"), candles=eurusd,
                             cfg=TrainConfig(epochs=3, seed=1), runs_dir=runs_dir)
    return run
