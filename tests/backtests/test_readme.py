"""The README's commands work as printed.

Every `attnbt …` line of the README's shell blocks is parsed by the real command-line interface
(the command and subcommand exist, every option is known and its value has the right type), as
typer parses it before a command runs: a renamed or removed option fails here, naming the line.
The paper-trading walkthrough, the block that once crashed at `paper status`, then runs as
printed (its `attnbt train` line, "or any trained run", is the session's trained run; `paper
run`, which runs until Ctrl-C, is left out).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def shell_blocks(text: str) -> list[list[str]]:
    """The README's ```bash blocks as lists of commands (continued lines joined, comments and
    blank lines dropped)."""
    blocks = []
    for body in re.findall(r"^```(?:bash|sh)\n(.*?)^```", text, flags=re.M | re.S):
        joined = re.sub(r"\\\n\s*", " ", body)
        lines = []
        for line in joined.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                lines.append(line)
        blocks.append(lines)
    return blocks


def attnbt_lines() -> list[str]:
    return [line for block in shell_blocks(README.read_text(encoding="utf-8"))
            for line in block if line.startswith("attnbt ")]


def parse(args: list[str]) -> str:
    """Parse ``attnbt ARGS`` the way the console script does, without running the command;
    return the command path that would run. A usage error raises typer's (click's) exception,
    whose ``format_message()`` is what the console script prints."""
    from backtests.cli import app

    command = typer.main.get_command(app)
    ctx = command.make_context("attnbt", list(args), resilient_parsing=False)
    path = ["attnbt"]
    while hasattr(command, "resolve_command"):           # a group: find its subcommand
        protected = getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", [])
        name, command, rest = command.resolve_command(ctx, [*protected, *ctx.args])
        path.append(name)
        ctx = command.make_context(name, rest, parent=ctx, resilient_parsing=False)
    return " ".join(path)


def usage_error(exc: BaseException) -> bool:
    return hasattr(exc, "format_message") and getattr(exc, "exit_code", 0) == 2


def test_the_readme_has_the_commands_this_test_reads():
    lines = attnbt_lines()
    assert len(lines) >= 30, lines
    for command in ("data show", "train", "backtest", "walkforward", "sweep", "compare",
                    "paper init", "paper step", "paper status", "runs list"):
        assert any(line.startswith(f"attnbt {command} ") for line in lines), command


@pytest.mark.parametrize("line", attnbt_lines())
def test_every_readme_command_parses(line, tmp_path, monkeypatch):
    """``...`` in a line stands for the options of the line above it: the rest is parsed."""
    monkeypatch.chdir(tmp_path)
    for name in ("exp.toml", "export.csv", "live.csv"):     # files the commands name
        (tmp_path / name).write_text("")
    args = [a for a in shlex.split(line)[1:] if a != "..."]
    try:
        ran = parse(args)
    except Exception as exc:
        if not usage_error(exc):
            raise
        pytest.fail(f"README: `{line}` does not parse: {exc.format_message()}")
    assert ran == "attnbt " + " ".join(args[:len(ran.split()) - 1]), ran


def test_a_stale_option_would_fail_the_parse():
    """The check above can fail: a misspelt option or command is refused by the parse."""
    for args, says in ((["backtest", "--run", "RUN", "--thershold", "0.5"], "--thershold"),
                       (["runs", "lsit"], "lsit"), (["backtest", "--random-draws", "x"], "--random-draws")):
        with pytest.raises(Exception) as caught:
            parse(args)
        assert usage_error(caught.value) and says in caught.value.format_message(), caught.value


def paper_walkthrough() -> list[str]:
    blocks = shell_blocks(README.read_text(encoding="utf-8"))
    (block,) = [b for b in blocks if any(line.startswith("attnbt paper init demo") for line in b)]
    return block


@pytest.mark.slow
def test_the_paper_walkthrough_runs_as_printed(cli, trained_run_alone, tmp_path):
    """The block from `attnbt train` to `attnbt compare paper:demo …`, in a fresh folder: the
    `attnbt` lines through the console script's entry point in this process, the `python` lines
    as processes. `paper run` (until Ctrl-C) and the background `&` line are left out; the
    `attnbt train` line, whose comment says "or any trained run", is the session's trained run
    (an attention model, alone in this test's runs folder: `attnbt train` itself is tested in
    tests/backtests/test_cli_models.py, and training here was half this test's CPU), and
    `compare` gets the id of a backtest of it."""
    runs = trained_run_alone.root
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    ran, backtest_id = [], None
    for line in paper_walkthrough():
        words = shlex.split(line)
        if words[:3] == ["attnbt", "paper", "run"] or words[-1] == "&":
            continue
        if words[:2] == ["attnbt", "compare"]:
            assert "paper:demo" in words
            words = ["attnbt", "compare", "paper:demo", backtest_id]
        if words[:2] == ["attnbt", "train"]:
            assert "# or any trained run" in README.read_text(encoding="utf-8")
            done = cli("runs", "list", runs_dir=runs, cwd=tmp_path)   # what "latest" names
            assert trained_run_alone.id in done.stdout, done.stdout
        elif words[0] == "attnbt":
            done = cli(*words[1:], runs_dir=runs, cwd=tmp_path)
        else:
            assert words[0] == "python", line
            done = subprocess.run([sys.executable, *words[1:]], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"`{line}` failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        ran.append(" ".join(words[:3]))
        if words[:2] == ["attnbt", "train"]:            # the backtest that compare is given
            # ATTNBT_RUNS alone: the model's recorded settings name the folder it was trained
            # in, and the backtest is recorded where the model was found (this one)
            bt = cli("backtest", "--run", "latest", "--random-draws", "20", runs_dir=runs,
                     cwd=tmp_path)
            assert bt.returncode == 0, bt.stderr
            backtest_id = re.search(r"backtest run\s+([0-9a-f]{16})", bt.stdout).group(1)
    assert {"attnbt paper init", "attnbt paper step", "attnbt paper status",
            "attnbt paper report", "attnbt compare paper:demo"} <= set(ran), ran
