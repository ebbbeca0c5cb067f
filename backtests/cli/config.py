"""`attnbt config keys|show`: the settings an experiment has, and a config file's values."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from backtests.cli.common import SettingsArg, Typer, build_experiment, console

app = Typer(help="Experiment settings: list the keys, show a config and its id.",
                  no_args_is_help=True)


@app.command("keys")
def keys_cmd() -> None:
    """Every setting: its key, type, default and whether it enters the config id."""
    from backtests.config import describe_keys

    table = Table(title="settings (key=value on the command line; [section] key = value in "
                        "a TOML file)")
    for col in ("key", "type", "default", "in config id"):
        table.add_column(col)
    for key, tp, default, in_id in describe_keys():
        table.add_row(key, escape(tp), escape(default), "yes" if in_id else "no")
    console.print(table)


@app.command("show")
def show_cmd(settings: SettingsArg = None,
             config: Annotated[Path | None, typer.Option("--config", "-c",
                                                         help="Config file (TOML).")] = None
             ) -> None:
    """The full config (defaults, then the file, then key=value settings) and its ids."""
    from backtests.config import as_toml

    exp = build_experiment(config, {}, settings)
    console.print(escape(as_toml(exp)))
    console.print(f"config id {exp.id} (training part {exp.train_id})")
