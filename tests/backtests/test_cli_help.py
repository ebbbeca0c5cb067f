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
