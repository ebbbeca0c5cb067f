"""What users run: the CLI, backtests, reports, comparison, walk-forward and paper trading."""
