"""Paper trading: an account per folder stepping the backtest's engine on fresh bars.

- :mod:`.account`: the account's settings, typed and frozen (stored as the journal's JSON);
- :mod:`.journal`: the SQLite journal (schema, migrations, the step's transaction, crash points);
- :mod:`.feed`: the bars (CSV tail, Yahoo) and the gap rules;
- :mod:`.trading`: ``init`` and ``step``;
- :mod:`.view`: ``read_account``, ``status``, ``list_accounts``, ``paper_record``, ``report``.
"""

from backtests.paper.account import Account, AccountSettings, PaperBusy, PaperError
from backtests.paper.feed import default_fetcher, gap_allowance, parse_max_gap, weekday_gap
from backtests.paper.journal import CRASH_ENV, CRASH_POINTS, JOURNAL, SCHEMA_VERSION, account_dir
from backtests.paper.trading import StepResult, init, paper_instrument, step, step_crashing_at
from backtests.paper.view import (
    PaperView,
    list_accounts,
    paper_facts,
    paper_record,
    paper_result,
    read_account,
    report,
    status,
)

__all__ = ["CRASH_ENV", "CRASH_POINTS", "JOURNAL", "SCHEMA_VERSION", "Account", "AccountSettings",
           "PaperBusy", "PaperError", "PaperView", "StepResult", "account_dir", "default_fetcher",
           "gap_allowance", "init", "list_accounts", "paper_facts", "paper_instrument",
           "paper_record", "paper_result",
           "parse_max_gap", "read_account", "report", "status", "step", "step_crashing_at",
           "weekday_gap"]
