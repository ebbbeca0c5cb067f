"""`python -m backtests` is the `attnbt` command."""

from backtests.cli import main

main()
