"""The `attnbt` command line. The only place that parses arguments, prints, or exits."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from data.errors import AttnbtError

app = typer.Typer(help="Backtest an attention network that reads candles, against the simpler "
                  "networks before it.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
data_app = typer.Typer(help="Load, fetch and inspect candle data.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console()
err_console = Console(stderr=True)

Source = Annotated[str, typer.Argument(help="sample:EURUSD_H1, sample:GOOG_D1, a CSV path, or "
                                       "yahoo:SYMBOL:INTERVAL (the local cache)")]
TzOpt = Annotated[str, typer.Option("--tz", help="Timezone of naive timestamps in the file.")]
SortOpt = Annotated[bool, typer.Option("--sort", help="Sort unsorted input instead of failing.")]


def _load(source: str, tz: str = "UTC", sort: bool = False):
    from data import load

    return load(source, tz=tz, sort=sort)


@data_app.command("show")
def data_show(source: Source, tz: TzOpt = "UTC", sort: SortOpt = False,
              labels: Annotated[str, typer.Option(help="Label kind: 3bar or 5bar.")] = "3bar",
              rows: Annotated[int, typer.Option(help="Rows to print from each end.")] = 3) -> None:
    """Print rows, range, timeframe, gaps and the label balance of a source."""
    from backtests.summary import describe_frame

    candles = _load(source, tz, sort)
    info = describe_frame(candles, labels)
    _print_summary(info)
    console.print(candles.head(rows).to_string())
    console.print("...")
    console.print(candles.tail(rows).to_string(header=False))


def _print_summary(info: dict) -> None:
    table = Table(title=f"{info['source']}", show_header=False)
    table.add_row("rows", f"{info['rows']:,}")
    table.add_row("range", f"{info['start']} → {info['end']} (UTC)")
    table.add_row("timeframe", info["timeframe"])
    table.add_row("columns", ", ".join(info["columns"])
                  + ("  (volume absent in source: zeros)" if info["volume_missing"] else ""))
    gaps = f"{info['gaps']} longer than one bar"
    if info["largest_gaps"]:
        gaps += "; largest: " + "; ".join(f"{a} → {b}" for a, b, _ in info["largest_gaps"])
    table.add_row("gaps", gaps)
    lab, share = info["labels"], info["label_share"]
    table.add_row(f"labels ({info['label_kind']})",
                  f"none {lab['none']:,} ({share['none']:.1%}), buy {lab['buy']:,} "
                  f"({share['buy']:.1%}), sell {lab['sell']:,} ({share['sell']:.1%}); "
                  f"{lab['both_as_none']} outside bars counted as none, {lab['unknown']} unknown")
    console.print(table)


@data_app.command("fetch")
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


@app.command()
def demo() -> None:
    """Run the main job on the embedded EURUSD H1 sample."""
    from backtests.summary import describe_frame

    candles = _load("sample:EURUSD_H1")
    _print_summary(describe_frame(candles))


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2."""
    try:
        app(standalone_mode=False)
    except AttnbtError as exc:
        err_console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        sys.exit(code or 0)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
