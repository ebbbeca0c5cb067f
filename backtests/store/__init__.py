"""The run store: run folders (:mod:`.runs`), their owners (:mod:`.owners`), the SQLite registry and trials
(:mod:`.registry`), and the one SQLite set-up (:mod:`.sqlitedb`) shared with the paper journals."""

from backtests.store.registry import COLUMNS, KINDS, SCHEMA_VERSION, STATUSES, Registry
from backtests.store.runs import Run, RunError, StoreError, runs_root

__all__ = ["COLUMNS", "KINDS", "SCHEMA_VERSION", "STATUSES", "Registry", "Run", "RunError", "StoreError", "runs_root"]
