"""`attnbt compare RUN RUN [RUN ...]`: finished runs side by side, and compare.html."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from backtests.cli.common import OUTPUT, MkdirOpt, RunsOpt, command_line, console


def compare_cmd(
    runs: Annotated[list[str], typer.Argument(help="Two or more runs: id, unique prefix (4+ "
                                              "characters) or 'latest'.", show_default=False)],
    article: Annotated[bool, typer.Option("--article", help="Add the article's reported "
                                          "figures as a column (in-sample).")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Write compare.html here instead of "
                                             "a new compare run folder.",
                                             rich_help_panel=OUTPUT)] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out if it exists.",
                                        rich_help_panel=OUTPUT)] = False,
    mkdir: MkdirOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the table as JSON for scripts "
                                          "(one row per statistic); records no compare run "
                                          "(compare.html only with --out).",
                                          rich_help_panel=OUTPUT)] = False,
    runs_dir: RunsOpt = None,
) -> None:
    """Compare finished runs: statistics side by side (best per row marked), the ways they
    differ flagged, a paired significance test where they traded the same bars, compare.html."""
    from backtests.compare import CompareError, OutputExists, run_compare, to_json

    if len(runs) < 2:
        raise CompareError("compare needs at least two runs", see="runs list")
    try:
        outcome = run_compare(list(runs), runs_dir, article=article, out=out, force=force,
                              command=command_line(), mkdir=mkdir, record=not as_json)
    except OutputExists as exc:
        raise CompareError(f"{exc.path} exists; give --force to overwrite it or another --out") \
            from None
    if as_json:
        payload = to_json(outcome.result) | {"html": str(outcome.html) if outcome.html else None}
        print(json.dumps(payload, indent=2, allow_nan=False))
        return
    print_compare(outcome)


def print_compare(outcome) -> None:
    from backtests.analysis.catalog import format_value, stat
    from backtests.reports.compare import flag_summary

    result = outcome.result
    table = Table(title="compare (best per row in bold green; ↑ higher / ↓ lower is better)")
    table.add_column("statistic")
    for name in result["columns"].values():
        table.add_column(escape(name), justify="right")
    for row in result["rows"]:
        arrow = {"higher": " ↑", "lower": " ↓"}.get(row["better"] or "", "")
        cells = []
        for rid in result["columns"]:
            text = escape(format_value(row["values"].get(rid), stat(row["key"]).kind))
            cells.append(f"[bold green]{text}[/bold green]" if rid in row["best"] else text)
        table.add_row(escape(row["heading"]) + arrow, *cells)
    for d in result["flagged"]:
        table.add_row(f"[red]≠ {escape(d['key'])}[/red]",
                      *[escape(format_value(d["values"].get(rid))) if rid in d["values"] else ""
                        for rid in result["columns"]])
    console.print(table)
    flags = flag_summary(result)
    if flags:
        console.print("[bold red]not like for like:[/bold red] " + escape("; ".join(flags)))
    else:
        console.print("like for like: same data, period, costs and strategy parameters")
    for s in result["significance"]:
        console.print(escape(s["text"]))
    for v in (result.get("rule_baselines") or {}).get("versus", []):
        console.print(escape(v["text"]), highlight=False)
    console.print(f"compare: [bold]{outcome.html}[/bold]")


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_cmd)
