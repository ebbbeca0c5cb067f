"""Every command's help says what its author wrote: rich must not turn text into emoji or markup."""

from __future__ import annotations

import click
import typer
from rich._emoji_replace import _emoji_replace
from rich.markup import render

from backtests.cli import app


def _commands(group: click.Command, path: tuple[str, ...] = ()):
    yield path, group
    if isinstance(group, click.Group):
        for name, sub in group.commands.items():
            yield from _commands(sub, (*path, name))


def test_no_help_text_is_rewritten_by_rich():
    """``swing:M:H`` was shown as ``swingⓂH`` (``:M:`` is an emoji code); ``[x]`` would vanish as
    markup. Checked on the text of every command, option and argument."""
    changed = []
    for path, cmd in _commands(typer.main.get_command(app)):
        texts = [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params]
        for text in texts:
            shown = render(_emoji_replace(text)).plain
            if shown != text:
                changed.append(f"attnbt {' '.join(path)}: {text!r} is shown as {shown!r}")
    assert not changed, "\n".join(changed)


def test_paper_init_does_not_offer_the_threshold_it_refuses():
    """`paper init --threshold auto` is refused (a paper account trades one fixed threshold), so
    its help must not offer 'auto' as a value the way backtest's does."""
    root = typer.main.get_command(app)
    init = root.commands["paper"].commands["init"]
    backtest = root.commands["backtest"]
    help_of = {c: next(p.help for p in c.params if p.name == "threshold") for c in (init, backtest)}
    assert "or 'auto'" in help_of[backtest]
    assert "or 'auto'" not in help_of[init], help_of[init]


def test_flags_show_no_type_in_help():
    """typer printed ``<bool>`` beside every flag (--sort/--no-sort, --json, --help), as if it
    took a value: no flag of any command or group shows a type; options that take a value do."""
    with_type = []
    for path, cmd in _commands(typer.main.get_command(app)):
        ctx = click.Context(cmd, info_name=path[-1] if path else "attnbt")
        for param in cmd.get_params(ctx):
            if getattr(param, "is_flag", False) and param.display_type_rich(ctx):
                with_type.append(f"attnbt {' '.join(path)} {param.opts[0]}: "
                                 f"{param.display_type_rich(ctx)}")
    assert not with_type, "\n".join(with_type)


def test_backtest_help_shows_flags_as_flags(cli):
    shown = cli("backtest", "--help")
    assert shown.returncode == 0
    lines = {line.split()[1]: line for line in shown.stdout.splitlines()
             if line.startswith("│ --")}
    for flag in ("--sort", "--short", "--trust-unhashed", "--help"):
        assert "<" not in lines[flag], lines[flag]
    assert "--no-sort" in lines["--sort"] and "<float>" in lines["--cash"]
