"""`attnbt data show|fetch|synth`: load, inspect, download and make candles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from backtests.cli.common import DayfirstOpt, PointOpt, SortOpt, Typer, TzOpt, console

app = Typer(help="Load, fetch and inspect candle data.", no_args_is_help=True)

Source = Annotated[str, typer.Argument(help="sample:EURUSD_H1, sample:GOOG_D1, "
                                       "sample:planted-KIND[:SEED[:BARS[:PLANTED]]], a CSV path, or "
                                       "yahoo:SYMBOL:INTERVAL (the local cache)")]


def load_source(source: str, tz: str | None = None, sort: bool | None = None,
                point: float | None = None, dayfirst: bool | None = None):
    from data import load

    return load(source, tz=tz or "UTC", sort=bool(sort), point=point, dayfirst=dayfirst)


@app.command("show")
def data_show(source: Source, tz: TzOpt = None, sort: SortOpt = None, point: PointOpt = None,
              dayfirst: DayfirstOpt = None,
              labels: Annotated[str, typer.Option(
                  help="Label kind: 3bar, 5bar, swing (a 3-bar fractal followed by a 1-ATR move "
                       "within 24 bars), or swing with the move in ATRs and the horizon in bars: "
                       "swing:2, swing:1.5:48; or triple-barrier trade outcomes with the "
                       "spread charged: triple:K_UP:K_DN:H, e.g. triple:1:1:24; or the sign of a "
                       "trade held H bars after costs: horizon:H, e.g. horizon:6.")] = "3bar",
              rows: Annotated[int, typer.Option(min=0, help="Rows to print from each end.")] = 3
              ) -> None:
    """Print rows, range, timeframe, gaps and the label balance of a source."""
    from data.errors import AttnbtError
    from data.labels import horizon
    from data.summary import describe_frame

    try:
        horizon(labels)
    except ValueError as exc:
        raise AttnbtError(f"--labels: {exc}") from None
    candles = load_source(source, tz, sort, point, dayfirst)
    print_summary(describe_frame(candles, labels))
    console.print(candles.head(rows).to_string())
    console.print("...")
    console.print(candles.tail(rows).to_string(header=False, index_names=False))


def print_summary(info: dict) -> None:
    table = Table(title=f"{info['source']}", show_header=False)
    table.add_row("rows", f"{info['rows']:,}")
    table.add_row("range", f"{info['start']} → {info['end']} (UTC)")
    table.add_row("timeframe", info["timeframe"])
    columns = ", ".join(info["columns"])
    if info.get("volume_from"):
        columns += f"  (volume from {info['volume_from']})"
    elif info["volume_missing"]:
        columns += "  (volume absent in source: zeros)"
    table.add_row("columns", columns)
    if info.get("skipped_blank_lines"):
        lines = ", ".join(map(str, info.get("skipped_blank_line_numbers") or []))
        table.add_row("skipped", f"{info['skipped_blank_lines']} blank lines inside the file"
                      + (f" (lines {lines}{', …' if info['skipped_blank_lines'] > 10 else ''})"
                         if lines else ""))
    if info.get("ignored_columns"):
        table.add_row("ignored columns", ", ".join(info["ignored_columns"]))
    if info.get("point"):
        table.add_row("spread point", escape(info.get("point_evidence") or f"{info['point']:g}")
                      + " (spread converted from points to price units)")
    for warning in info.get("warnings") or []:
        table.add_row("[bold red]warning[/bold red]", escape(warning))
    gaps = f"{info['gaps']} longer than one bar"
    if info["largest_gaps"]:
        gaps += "; largest: " + "; ".join(f"{a} → {b}" for a, b, _ in info["largest_gaps"])
    table.add_row("gaps", gaps)
    lab, share = info["labels"], info["label_share"]
    table.add_row(f"labels ({info['label_kind']})",
                  f"none {lab['none']:,} ({share['none']:.1%}), buy {lab['buy']:,} "
                  f"({share['buy']:.1%}), sell {lab['sell']:,} ({share['sell']:.1%}); "
                  + (f"{lab['both_as_none']} outside bars counted as none, "
                     if "both_as_none" in lab else "") + f"{lab['unknown']} unknown"
                  + (f"; {lab['fractal_not_swing']:,} fractals not swings (none)"
                     if "fractal_not_swing" in lab else ""))
    console.print(table)


@app.command("fetch")
def data_fetch(
    symbol: Annotated[str, typer.Argument(help="Yahoo Finance symbol, e.g. EURUSD=X.")],
    interval: Annotated[str, typer.Option(help="Bar interval (1h, 1d, ...).")] = "1h",
    start: Annotated[str | None, typer.Option(help="First date (UTC).")] = None,
    end: Annotated[str | None, typer.Option(help="Last date (UTC, exclusive).")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Cache folder (default $ATTNBT_CACHE "
                                                   "or ~/.cache/attnbt).")] = None,
) -> None:
    """Download Yahoo Finance candles into the local cache (only what the cache lacks)."""
    from data.yahoo import cache_path, fetch

    with console.status(f"fetching {symbol} {interval} from Yahoo Finance"):
        candles = fetch(symbol, interval, start, end, cache_dir=cache_dir)
    console.print(f"{len(candles):,} bars {candles.index[0]} → {candles.index[-1]} cached in "
                  f"{cache_path(symbol, interval, cache_dir)}; use it as yahoo:{symbol}:{interval}")


@app.command("synth")
def data_synth(
    kind: Annotated[str, typer.Argument(help="The planted world: null, order, regime or "
                                        "session (docs/research.md).", show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="CSV file to write.",
                                      show_default=False)],
    seed: Annotated[int, typer.Option(min=0, help="Random seed.")] = 0,
    bars: Annotated[int, typer.Option(help="Number of H1 bars.")] = 20_000,
    planted: Annotated[float, typer.Option(help="Gross expected return per planted trade, in "
                                           "mean spreads (0: none).")] = 3.0,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out if it exists.")] = False,
) -> None:
    """Write a synthetic H1 FX world with a known planted effect as a CSV attnbt loads."""
    from data.synth import check_out, generate, realised, truth, write_csv

    check_out(out, force)
    candles = generate(kind, seed=seed, bars=bars, planted=planted)
    path = write_csv(candles, out, force=force)
    console.print(f"{len(candles):,} bars {candles.index[0]} → {candles.index[-1]} written to "
                  f"{escape(str(path))}; load it with --data {escape(str(path))}",
                  soft_wrap=True)
    told = truth(kind, planted)
    if kind == "null":
        console.print(f"planted: nothing (mean spread {told['spread_bps']:.2f} bps)")
        return
    seen = realised(candles, kind)
    console.print(f"planted: {told['trade']}: gross {told['gross_bps']:.2f} bps per trade, "
                  f"spread {told['spread_bps']:.2f}, net {told['net_bps']:.2f}", soft_wrap=True)
    console.print(f"measured here: {seen['trades']:,} trades, gross {seen['gross_bps']:.2f} ± "
                  f"{seen['se_bps']:.2f} bps, spread {seen['spread_bps']:.2f}, "
                  f"net {seen['net_bps']:.2f}", soft_wrap=True)
