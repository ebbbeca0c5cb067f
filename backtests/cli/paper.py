"""`attnbt paper init|step|run|status|list|report`: the backtest's strategy on fresh data."""

from __future__ import annotations

import json
import signal
import threading
from typing import Annotated

import pandas as pd
import typer
from rich.markup import escape
from rich.table import Table

from backtests.cli.common import (
    DATA,
    AccountOpt,
    CashOpt,
    CommissionOpt,
    ConfigOpt,
    DayfirstOpt,
    FixedThresholdOpt,
    MaxHoldOpt,
    PipOpt,
    PointOpt,
    RiskOpt,
    RunOpt,
    RunsOpt,
    SettingsArg,
    ShortOpt,
    SizingOpt,
    SlippageOpt,
    SpreadOpt,
    SpreadPipsOpt,
    StopBufferOpt,
    TakeProfitOpt,
    TrustUnhashedOpt,
    Typer,
    TzOpt,
    UnitsOpt,
    command_line,
    console,
    err_console,
    overrides_from,
    run_experiment,
    trading_overrides,
)
from data.errors import AttnbtError

app = Typer(help="Paper trading: the backtest's strategy stepped bar by bar on fresh data, "
                  "with a journal that loses nothing.", no_args_is_help=True)
NameArg = Annotated[str, typer.Argument(help="Account name.")]


@app.command("init")
def init_cmd(
    name: NameArg,
    source: Annotated[str, typer.Option("--source", help="A CSV file another program appends to "
                                        "(any format `attnbt data show` reads), or "
                                        "yahoo:SYMBOL:INTERVAL (e.g. yahoo:EURUSD=X:1h).")],
    settings: SettingsArg = None,
    run: RunOpt = "latest",
    start: Annotated[str | None, typer.Option("--from", help="'first': trade the source's "
                                              "history too; a bar time: from that bar; default: "
                                              "only the bars appended after now.")] = None,
    tz: TzOpt = None, point: PointOpt = None, dayfirst: DayfirstOpt = None,
    instrument: Annotated[str | None, typer.Option(
        "--instrument", help="The pair traded, e.g. USDCHF (default: the pair the source's name "
        "holds, else the model's: the one its training data names).",
        rich_help_panel=DATA)] = None, account_currency: AccountOpt = None,
    cash: CashOpt = None, threshold: FixedThresholdOpt = None, short: ShortOpt = None,
    take_profit_r: TakeProfitOpt = None, max_hold: MaxHoldOpt = None,
    stop_buffer: StopBufferOpt = None, sizing: SizingOpt = None, units: UnitsOpt = None,
    risk: RiskOpt = None, spread: SpreadOpt = None, spread_pips: SpreadPipsOpt = None,
    pip: PipOpt = 0.0001, commission: CommissionOpt = None, slippage: SlippageOpt = None,
    max_gap: Annotated[str | None, typer.Option("--max-gap", help="Longest pause between two "
                                                "bars (weekends not counted) before the account "
                                                "waits, e.g. 2d or 6h; default: learned from the "
                                                "source's history (1 to 4 days).")] = None,
    config: ConfigOpt = None, runs_dir: RunsOpt = None, trust_unhashed: TrustUnhashedOpt = False,
) -> None:
    """Create an account pinned to a model (by its hash), strategy parameters and costs."""
    from backtests.paper import init, parse_max_gap

    parse_max_gap(max_gap)             # refused before anything is loaded (init checks it too)
    options = overrides_from(dict(locals()), exclude=("tz", "point", "dayfirst", "run", "start"))
    options = trading_overrides(options, spread, spread_pips, pip, threshold)
    exp = run_experiment(run, runs_dir, config, options, settings)
    if exp.backtest.auto_threshold:
        raise AttnbtError("--threshold auto is a backtest option; give the threshold a paper "
                          "account trades with (e.g. the one `attnbt backtest --threshold auto` "
                          "chose)")
    with err_console.status("creating the account"):
        account = init(name, run, source, runs_dir=runs_dir,
                       start="after" if start is None else start, tz=tz or "UTC", point=point,
                       dayfirst=dayfirst, params=exp.strategy, costs=exp.costs,
                       cash=exp.backtest.cash, max_gap=max_gap,
                       command=command_line(), instrument=exp.data.instrument,
                       account_currency=exp.data.account_currency,
                       trust_unhashed=trust_unhashed)
    cfg = account.settings
    first = cfg.created_at_bar or "the bars appended from now on"
    console.print(f"paper account [bold]{escape(name)}[/bold]: {escape(cfg.model)} "
                  f"(run {cfg.train_run}, model {cfg.model_hash}) on "
                  f"{escape(cfg.source)}; trades from {escape(str(first))}")
    per_year = ("statistics annualised at the paper period's own bars per year"
                if cfg.bars_per_year is None else f"statistics annualised at "
                f"{cfg.bars_per_year:,.0f} bars a year (the source's history)")
    console.print(f"instrument {escape(str(cfg.instrument))} (from {escape(cfg.instrument_from)}; "
                  f"--instrument changes it), {escape(cfg.account_currency)} account, {per_year}",
                  soft_wrap=True)
    console.print(f"next: attnbt paper step {escape(name)}")


def print_step(r) -> None:
    console.print(f"[bold]{escape(r.name)}[/bold] {escape(r.status)}: {escape(r.message)}",
                  soft_wrap=True)
    for t, s in r.signals[-10:]:
        console.print(f"  signal {'buy' if s > 0 else 'sell'} at {t}")
    for o in r.orders:
        console.print(f"  order #{o['ref']} {o['role']} {o['side']} {o['type']} {o['size']:g} "
                      f"at {o['created_time']} ({o['status']})")
    for o in r.fills:
        console.print(f"  fill #{o['ref']} {o['role']} {o['side']} {o['size']:g} @ "
                      f"{o['price']:.{r.price_digits}f} at {o['executed_time']}")
    for t in r.trades:
        console.print(f"  trade closed {'long' if t['direction'] > 0 else 'short'} "
                      f"{t['entry_time']} → {t['exit_time']} ({t['exit_reason']}): "
                      f"net {t['pnl_net']:,.2f}")
    for e in r.events:
        if e["kind"] != "gap accepted":
            console.print(f"  event {e['kind']} at {e['time']}: "
                          f"{escape(json.dumps(e['detail'], default=str))}")
    if r.status == "waiting":
        console.print(f"  to trade on across the gap: attnbt paper step {escape(r.name)} "
                      "--accept-gap")


@app.command("step")
def step_cmd(
    name: NameArg,
    accept_gap: Annotated[bool, typer.Option("--accept-gap", help="Trade on across a gap the "
                                             "account is waiting on.")] = False,
    wait: Annotated[float, typer.Option(help="Seconds to wait for a step already running on "
                                        "this account before refusing.")] = 10.0,
    runs_dir: RunsOpt = None,
) -> None:
    """Process the bars that closed since the last step and record what happened."""
    from backtests.paper import step

    print_step(step(name, runs_dir, accept_gap=accept_gap, wait=wait))


def next_wake(now: pd.Timestamp, every: pd.Timedelta, delay: pd.Timedelta) -> pd.Timestamp:
    """The next bar close (a multiple of ``every`` since the epoch) plus ``delay``, after now."""
    base = now.floor(every) + delay
    return base if base > now else base + every


@app.command("run")
def run_cmd(
    name: NameArg,
    every: Annotated[str, typer.Option("--every", help="Step at each bar close of this size, "
                                       "e.g. 1h, 15min, 1d.")] = "1h",
    delay: Annotated[str, typer.Option("--delay", help="After the bar close, e.g. 30s (Yahoo "
                                       "takes a moment to publish a bar).")] = "30s",
    runs_dir: RunsOpt = None,
) -> None:
    """Step on a schedule until Ctrl-C or SIGTERM (which end it between steps)."""
    from backtests.paper import step

    try:
        every_td, delay_td = pd.Timedelta(every), pd.Timedelta(delay)
    except ValueError as exc:
        raise typer.BadParameter(f"not a duration: {exc}") from None
    if every_td <= pd.Timedelta(0):
        raise typer.BadParameter("--every must be positive")
    stop = threading.Event()

    def ask_stop(signum, frame) -> None:
        stop.set()

    old = {s: signal.signal(s, ask_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        print_step(step(name, runs_dir))
        while not stop.is_set():
            now = pd.Timestamp.now(tz="UTC")
            wake = next_wake(now, every_td, delay_td)
            console.print(f"next step at {wake:%Y-%m-%d %H:%M:%S} UTC")
            if stop.wait((wake - now).total_seconds()):
                break
            try:
                print_step(step(name, runs_dir))
            except AttnbtError as exc:   # the source failed this time: try again next bar
                err_console.print(f"error: {exc}", markup=False, highlight=False)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    console.print(f"stopped; the journal of {escape(name)} is complete up to the last step")


def describe_order(o: dict, digits: int = 5) -> str:
    """'#3 entry buy Market at market', '#5 stop sell Stop @ 1.08123' (prices at ``digits``
    decimals); a take-profit waiting for its entry's fill has no price yet."""
    if o["order_price"] is not None:
        at = f"@ {o['order_price']:.{digits}f}"
    elif o["type"] == "Market":
        at = "at market"
    else:
        at = "priced from the entry's fill"
    return f"#{o['ref']} {o['role']} {o['side']} {o['type']} {at}"


@app.command("status")
def status_cmd(name: NameArg,
               as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
               runs_dir: RunsOpt = None) -> None:
    """Position, open orders, equity and the last bar seen."""
    from backtests.paper import status

    s = status(name, runs_dir)
    if as_json:
        console.print_json(json.dumps(s, default=str))
        return
    table = Table(title=f"paper account {escape(name)}", show_header=False)
    for key in ("source", "instrument", "model", "model_hash", "train_run", "steps", "bars",
                "last_bar", "equity", "equity_time", "closed_trades", "realised_pnl", "revised_bars"):
        v = s[key]
        table.add_row(key, escape(f"{v:,.2f}" if isinstance(v, float) else str(v)))
    p = s["position"]
    table.add_row("position", "flat" if p is None else
                  escape(f"{'long' if p['direction'] > 0 else 'short'} {p['size']:g} from "
                         f"{p['entry_time']} @ {p['entry_price']:.{s['price_digits']}f}"))
    orders = ", ".join(describe_order(o, s["price_digits"]) for o in s["open_orders"])
    table.add_row("open orders", escape(orders or "none"))
    if s["waiting_on_gap"]:
        table.add_row("waiting", escape(json.dumps(s["waiting_on_gap"])))
    console.print(table)


@app.command("list")
def list_cmd(runs_dir: RunsOpt = None) -> None:
    """The paper accounts of the runs folder."""
    from backtests.paper import list_accounts

    rows = list_accounts(runs_dir)
    if not rows:
        console.print("no paper accounts yet (see `attnbt paper init --help`)")
        return
    table = Table()
    for col in ("name", "source", "model", "bars", "last bar", "equity", "trades"):
        table.add_column(col)
    for r in rows:
        if "error" in r:
            table.add_row(escape(r["name"]), escape(r["error"]), "", "", "", "", "")
            continue
        table.add_row(escape(r["name"]), escape(r["source"]), escape(r["model"]),
                      str(r["bars"]), str(r["last_bar"]), f"{r['equity']:,.2f}",
                      str(r["closed_trades"]))
    console.print(table)


@app.command("report")
def report_cmd(name: NameArg, runs_dir: RunsOpt = None) -> None:
    """The backtest report over the paper period (report.html, trades.csv, equity.csv)."""
    from backtests.paper import report

    console.print(f"report: [bold]{report(name, runs_dir)}[/bold]")
