"""Paper trading: an account per folder stepping the backtest's engine on fresh bars (:mod:`.trading`)."""

from backtests.paper.trading import (
    CRASH_ENV,
    CRASH_POINTS,
    JOURNAL,
    SCHEMA_VERSION,
    Account,
    PaperBusy,
    PaperError,
    PaperView,
    StepResult,
    account_dir,
    default_fetcher,
    gap_allowance,
    init,
    list_accounts,
    paper_record,
    paper_result,
    parse_max_gap,
    read_account,
    report,
    status,
    step,
    step_crashing_at,
    weekday_gap,
)

__all__ = ["CRASH_ENV", "CRASH_POINTS", "JOURNAL", "SCHEMA_VERSION", "Account", "PaperBusy",
           "PaperError", "PaperView", "StepResult", "account_dir", "default_fetcher",
           "gap_allowance", "init", "list_accounts", "paper_record", "paper_result",
           "parse_max_gap", "read_account", "report", "status", "step", "step_crashing_at", "weekday_gap"]
