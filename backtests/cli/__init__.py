"""The `attnbt` command line: the only place that parses arguments, prints, or exits.

One module per command group (``data``, ``models``, ``backtest``, ``compare``, ``runs``,
``config``, ``demo``); option groups are defined once in ``common``.
"""

from __future__ import annotations

import re
import signal
import sys
from typing import Annotated

import typer

from backtests.cli import backtest as _backtest
from backtests.cli import compare as _compare
from backtests.cli import config as _config
from backtests.cli import data as _data
from backtests.cli import demo as _demo
from backtests.cli import models as _models
from backtests.cli import paper as _paper
from backtests.cli import runs as _runs
from backtests.cli import sweep as _sweep
from backtests.cli import walkforward as _walkforward
from backtests.cli.common import OPTION_OF, Typer, err_console
from data.errors import AttnbtError

app = Typer(help="Backtest an attention network that reads candles, against the simpler "
                  "networks before it.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)


def _version(value: bool) -> None:
    if value:
        import importlib.metadata as md

        try:
            version = md.version("attnbt")
        except md.PackageNotFoundError:
            version = "unknown (not installed)"
        print(f"attnbt {version}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False
          ) -> None:
    """Backtest an attention network that reads candles, against the simpler networks."""


app.add_typer(_data.app, name="data")
app.add_typer(_runs.app, name="runs")
app.add_typer(_config.app, name="config")
app.add_typer(_paper.app, name="paper")
_models.register(app)
_backtest.register(app)
_compare.register(app)
_demo.register(app)
_walkforward.register(app)
_sweep.register(app)


# Arguments of commands that are not config keys: core messages name them `in backticks`.
ARGUMENT_OPTIONS = {"trust_unhashed": "--trust-unhashed", "vs": "--vs", "out": "--out", "mkdir": "--mkdir",
                    "grid": "--grid", "models": "--models", "presets": "--presets", "seeds": "--seeds",
                    "executor": "--executor", "address": "--address", "force": "--force",
                    "bars": "--bars", "seed": "--seed", "planted": "--planted"}


def _with_option_names(message: str) -> str:
    """Name the command-line option of each config key the message mentions (at the end for
    the key the message starts with, beside the others), and of each `argument` in backticks."""
    message = re.sub(r"`([a-z_]+)`", lambda m: (f"{m.group(0)} (option {ARGUMENT_OPTIONS[m.group(1)]})"
                                                if m.group(1) in ARGUMENT_OPTIONS else m.group(0)), message)
    m = re.match(r"^([a-z_]+\.[a-z_]+)\b", message)
    if m and m.group(1) in OPTION_OF:
        return f"{message} (option {OPTION_OF[m.group(1)]})"
    seen: set[str] = set()

    def name(m: re.Match) -> str:
        key = m.group(1)
        if key in OPTION_OF and key not in seen:
            seen.add(key)
            return f"{key} (option {OPTION_OF[key]})"
        return key

    return re.sub(r"(?<![\w.])([a-z_]+\.[a-z_]+)(?![\w(])", name, message)


def describe_error(exc: AttnbtError) -> str:
    """An error's message as the user reads it: config keys with their options, and the
    ``attnbt`` command that helps (``exc.see``)."""
    text = _with_option_names(str(exc))
    see = getattr(exc, "see", None)
    return f"{text} (see `attnbt {see}`)" if see else text


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2; Ctrl-C and SIGTERM
    end the command between steps with exit code 130 (runs in progress are marked interrupted)."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        app()  # standalone: typer prints usage errors itself and exits 2
    except AttnbtError as exc:
        err_console.print(f"error: {describe_error(exc)}", markup=False,
                          highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt as exc:
        hint = getattr(exc, "hint", None)
        err_console.print(f"interrupted{'; ' + hint if hint else ''}", markup=False,
                          highlight=False, soft_wrap=True)
        sys.exit(130)


__all__ = ["ARGUMENT_OPTIONS", "app", "describe_error", "main"]
