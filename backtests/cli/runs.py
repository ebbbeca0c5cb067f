"""`attnbt runs list|show|rm`: the run registry."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from backtests.analysis.catalog import format_value, stat
from backtests.cli.common import RunsOpt, Typer, console
from data.errors import AttnbtError

app = Typer(help="The run registry: list, show and remove runs.")


def _check_kind(kind: str | None) -> None:
    from backtests.store import KINDS

    if kind is not None and kind not in KINDS:
        raise AttnbtError(f"unknown run kind {kind!r}; choose {', '.join(KINDS)}")


def _check_sort(sort: str, rows: list[dict]) -> None:
    """Refuse a sort key that is neither a registry column nor a statistic (of the statistics
    table or of these runs' summaries): it would sort nothing and say nothing."""
    from backtests.analysis.catalog import BY_KEY
    from backtests.store import COLUMNS

    columns = [c for c in COLUMNS if c != "summary"]
    found = sorted({k for r in rows for k in r["summary"]})
    if sort not in columns and sort not in BY_KEY and sort not in found:
        stats = ", ".join(found) if found else "none in these runs"
        raise AttnbtError(f"--sort {sort!r} is not a column ({', '.join(columns)}) or a "
                          f"statistic of these runs ({stats})")


@app.callback(invoke_without_command=True)
def runs_default(ctx: typer.Context, runs_dir: RunsOpt = None) -> None:
    """List runs (same as `attnbt runs list`)."""
    if ctx.invoked_subcommand is None:
        list_cmd(runs_dir=runs_dir)


@app.command("list")
def list_cmd(
    kind: Annotated[str | None, typer.Option(help="train | backtest | walkforward | sweep | "
                                             "paper")] = None,
    data: Annotated[str | None, typer.Option("--data", help="Only runs whose data source "
                                             "contains this text.")] = None,
    model: Annotated[str | None, typer.Option(help="Only runs whose model contains this "
                                              "text.")] = None,
    sort: Annotated[str | None, typer.Option(help="Sort by a statistic key (e.g. win_rate_pct, "
                                             "sharpe) or a column (created).")] = None,
    ascending: Annotated[bool, typer.Option("--ascending", help="Smallest first.")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many rows.")] = None,
    status: Annotated[str | None, typer.Option(help="Only runs with this status: running | "
                                               "done | failed | interrupted | dead (running, "
                                               "but its process has ended).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    runs_dir: RunsOpt = None,
) -> None:
    """List runs in the registry, newest first (or sorted by a statistic)."""
    from backtests.store import Registry

    _check_kind(kind)
    sort = {"win_rate": "win_rate_pct", "return": "total_return_pct"}.get(sort, sort)
    reg = Registry(runs_dir)
    if sort is not None:
        _check_sort(sort, reg.list(kind=kind, data=data, model=model))
    rows = reg.list(kind=kind, data=data, model=model, sort=sort, descending=not ascending,
                    limit=limit, status=status)
    if as_json:
        console.print_json(json.dumps(rows, default=str))
        return
    if not rows:
        console.print("no runs" + (" match" if (kind or data or model or status) else " yet"))
        return
    table = Table()
    for col in ("id", "kind", "status", "model", "data", "config", "summary"):
        table.add_column(col, overflow="fold")
    for r in rows:
        summ = ", ".join(f"{stat(k).label}={format_value(v)}"
                         for k, v in list(r["summary"].items())[:5])
        shown = shown_status(r) + (" (folder missing)" if r.get("missing") else "")
        table.add_row(r["id"], r["kind"], escape(shown), r["model"] or "", escape(r["data"] or ""),
                      r.get("config_id") or "", escape(summ))
    console.print(table)


def shown_status(row: dict) -> str:
    """The status as a reader needs it: a running run whose owner cannot be checked says why."""
    if row.get("liveness") != "unverifiable":
        return row["status"]
    if row.get("owner_host"):
        return f"running? (on host {row['owner_host']}: cannot be checked from here)"
    return "running? (no owner recorded: cannot be checked)"


@app.command("show")
def show_cmd(run: Annotated[str, typer.Argument(help="Run id or unique prefix (4+ "
                                                "characters), or 'latest'.")],
             as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
             runs_dir: RunsOpt = None) -> None:
    """A run's config (and its id), statistics and files."""
    from backtests.store import Registry

    info = Registry(runs_dir).get(run)
    if as_json:
        console.print_json(json.dumps(info, default=str))
        return
    table = Table(title=f"{info['kind']} run {info['id']}", show_header=False)
    table.add_row("status", escape(shown_status(info)))
    if info.get("status") in ("running", "dead") and info.get("owner_pid") is not None:
        table.add_row("owner", f"process {info['owner_pid']} on {escape(info['owner_host'])}"
                      + (" (ended)" if info["status"] == "dead" else ""))
    for key in ("created", "finished", "model", "data", "fingerprint", "parent",
                "config_id", "command"):
        if info.get(key):
            table.add_row(key, escape(str(info[key])))
    meta = info.get("meta") or {}
    if meta.get("model_hash"):
        table.add_row("model_hash", meta["model_hash"])
    for key, value in (info.get("summary") or {}).items():
        table.add_row(stat(key).heading, format_value(value))
    table.add_row("files", ", ".join(info.get("files") or []) or "(folder missing)")
    console.print(table)
    config = meta.get("config")
    if config:
        from backtests.config import Experiment, as_toml

        try:
            console.print(escape(as_toml(Experiment.from_dict(config, where="run.json"))))
        except AttnbtError:
            console.print_json(json.dumps(config, default=str))


@app.command("rm")
def rm_cmd(runs: Annotated[list[str], typer.Argument(help="Run ids or unique prefixes.")],
           yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
           runs_dir: RunsOpt = None) -> None:
    """Remove runs: their folders and registry rows (the trials table keeps its records)."""
    from backtests.store import Registry

    reg = Registry(runs_dir)
    found = [reg.resolve(r) for r in runs]
    ids = list(dict.fromkeys(r.id for r in found))
    if not yes:
        listing = ", ".join(ids)
        if not typer.confirm(f"remove {len(ids)} run(s): {listing}?", default=False):
            console.print("nothing removed")
            raise typer.Exit(1)
    removed = reg.remove(ids)
    console.print(f"removed {len(removed)} run(s): {', '.join(removed)}")
