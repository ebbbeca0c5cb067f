"""What users run: the CLI, backtests, reports, comparison, walk-forward and paper trading.

Public surface (imported on first use, so that `attnbt --help` stays quick): the experiment
config (``Experiment``), the run store (``Registry``), the one statistics table (``STATS``), the
workflows (``train_run``, ``train_model``, ``score``, ``evaluate_run``) and ``backtest``.
"""

from __future__ import annotations

import importlib

_PUBLIC = {
    "Experiment": "backtests.config", "ConfigError": "backtests.config",
    "load_toml": "backtests.config", "Registry": "backtests.store", "Run": "backtests.store",
    "RunError": "backtests.store", "StoreError": "backtests.store", "STATS": "backtests.analysis.catalog",
    "Stat": "backtests.analysis.catalog", "train_run": "backtests.workflows",
    "train_model": "backtests.workflows", "train_many": "backtests.workflows",
    "resume_run": "backtests.workflows", "score": "backtests.workflows",
    "evaluate_run": "backtests.workflows", "predict_run": "backtests.workflows",
    "backtest": "backtests.backtest", "compute_backtest": "backtests.backtest",
    "backtest_experiment": "backtests.backtest", "run_backtest": "backtests.simulation",
    "compute_stats": "backtests.analysis.performance", "run_tasks": "backtests.execution",
    "make_executor": "backtests.execution",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'backtests' has no attribute {name!r}")
