"""The one error the data layer raises for bad input."""

from __future__ import annotations

from collections.abc import Sequence


class AttnbtError(Exception):
    """Base of every error that is the user's to fix; the CLI prints it as one line.

    Core code names config keys (``folds.test_bars``), never command-line flags, and never an
    ``attnbt`` command: a command that helps is given as ``see`` (e.g. ``"runs list"``), and the
    CLI, the only code that knows flags and commands, words both (``(option --test-bars)``,
    ``(see `attnbt runs list`)``).
    """

    def __init__(self, *args: object, see: str | None = None) -> None:
        super().__init__(*args)
        self.see = see


class DataError(AttnbtError, ValueError):
    """Input data broke a rule; the message names the source, the row(s) and the rule."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        rows: Sequence[int] | None = None,
        rule: str | None = None,
        see: str | None = None,
    ) -> None:
        self.source = source
        self.rows = [int(r) for r in rows] if rows is not None else []
        self.rule = rule
        parts = []
        if source:
            parts.append(str(source))
        if self.rows:
            parts.append(describe_rows(self.rows))
        if rule:
            parts.append(rule)
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message, see=see)


def describe_rows(rows: Sequence[int], limit: int = 5) -> str:
    """'line 7' / 'lines 7, 9, 12 (+4 more)'."""
    rows = list(rows)
    shown = ", ".join(str(r) for r in rows[:limit])
    more = f" (+{len(rows) - limit} more)" if len(rows) > limit else ""
    return f"{'line' if len(rows) == 1 else 'lines'} {shown}{more}"
