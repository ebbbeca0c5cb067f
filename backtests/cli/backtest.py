"""`attnbt backtest`: trade a trained run's predicted fractals and write the report."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from backtests.cli.common import (
    AccountOpt,
    CashOpt,
    CommissionOpt,
    ConfigOpt,
    DataOpt,
    DayfirstOpt,
    FromOpt,
    InstrumentOpt,
    MaxHoldOpt,
    PeriodOpt,
    PipOpt,
    PointOpt,
    RiskOpt,
    RunOpt,
    RunsOpt,
    SettingsArg,
    ShortOpt,
    SizingOpt,
    SlippageOpt,
    SortOpt,
    SpreadOpt,
    SpreadPipsOpt,
    StopBufferOpt,
    TakeProfitOpt,
    ThresholdOpt,
    ToOpt,
    TrustUnhashedOpt,
    TzOpt,
    UnitsOpt,
    command_line,
    console,
    err_console,
    fmt,
    overrides_from,
    run_experiment,
    trading_overrides,
)


def backtest_cmd(
    settings: SettingsArg = None,
    run: RunOpt = "latest", data: DataOpt = None, tz: TzOpt = None, sort: SortOpt = None,
    point: PointOpt = None, dayfirst: DayfirstOpt = None, instrument: InstrumentOpt = None,
    account_currency: AccountOpt = None, period: PeriodOpt = None, start: FromOpt = None, end: ToOpt = None,
    cash: CashOpt = None, threshold: ThresholdOpt = None, short: ShortOpt = None,
    take_profit_r: TakeProfitOpt = None, max_hold: MaxHoldOpt = None,
    stop_buffer: StopBufferOpt = None, sizing: SizingOpt = None, units: UnitsOpt = None,
    risk: RiskOpt = None, spread: SpreadOpt = None, spread_pips: SpreadPipsOpt = None,
    pip: PipOpt = 0.0001, commission: CommissionOpt = None, slippage: SlippageOpt = None,
    vs: Annotated[list[str] | None, typer.Option("--vs", help="Other trained runs, or rule "
                                                 "baselines (rule/newhl, rule/newhl-range:K), "
                                                 "to backtest on the same bars (repeatable).")]
    = None,
    random_draws: Annotated[int | None, typer.Option(help="Random-entry draws for the p-value "
                                                     "(default 1,000).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the random-entry draws "
                                             "(default 0).")] = None,
    config: ConfigOpt = None, runs_dir: RunsOpt = None, trust_unhashed: TrustUnhashedOpt = False,
) -> None:
    """Trade a trained run's predicted fractals on a period and write the report."""
    options = overrides_from(dict(locals()), rename={"seed": "backtest.random_seed"},
                             exclude=("data", "run", "vs"))
    options = trading_overrides(options, spread, spread_pips, pip, threshold)
    exp = run_experiment(run, runs_dir, config, options, settings)
    from backtests.backtest import backtest

    with err_console.status("backtesting"):
        outcome = backtest(exp, run, vs=vs, source=data, command=command_line(),
                           trust_unhashed=trust_unhashed)
    print_backtest(outcome)


def print_backtest(outcome) -> None:
    from backtests.analysis.significance import backtest_verdict
    from backtests.reports.backtest import format_stats_table
    from backtests.simulation import best_threshold

    for name, rows in outcome.threshold_tables.items():
        chosen = best_threshold(rows)
        console.print(f"{name}: threshold {chosen['threshold']} chosen on the validation bars "
                      f"(return {chosen['validation return %']:.2f}% on "
                      f"{chosen['validation trades']} validation trades)")
    stats = Table(title=f"backtest run {outcome.run.id} ({outcome.model}; model hash "
                        f"{outcome.model_hash[:12]}…, config id {outcome.config_id[:12]}…)",
                  show_header=False)
    for label, value in format_stats_table(outcome.result.stats):
        stats.add_row(escape(label), escape(value))
    console.print(stats)
    lev = outcome.facts.get("leverage") or {}
    if lev.get("warning"):
        console.print("[bold red]warning:[/bold red] " + escape(lev["warning"]), soft_wrap=True)
    if outcome.in_sample:
        console.print("[bold red]warning:[/bold red] this period overlaps the bars the model was "
                      "trained or early-stopped on: these figures are in-sample.")
    base = Table(title="same bars, same costs")
    for col in ("baseline", "trades", "win rate %", "return %", "profit factor", "max DD %"):
        base.add_column(col, justify="right" if col != "baseline" else "left")
    for b in outcome.baselines.values():
        if b["kind"] == "random_entries":
            p = b["p_value"]
            base.add_row(f"{b['label']} ({b['draws']} draws)", str(b["n_trades"]), "—",
                         f"median {b['median_return_pct']:.2f} (5–95%: {b['p5_return_pct']:.2f} … "
                         f"{b['p95_return_pct']:.2f})", f"p = {fmt(p)}" if p is not None else "—",
                         "—")
        else:
            base.add_row(escape(b["label"]), fmt(b["n_trades"]), fmt(b["win_rate_pct"], True),
                         fmt(b["total_return_pct"], True), fmt(b["profit_factor"]),
                         fmt(b["max_drawdown_pct"], True))
    console.print(base)
    comp = Table(title="against the earlier article")
    cols = ("source", "network", "bars", "error", "hit %", "missed %", "trades", "win rate %",
            "return %")
    for col in cols:
        comp.add_column(col, justify="left" if col in ("source", "network", "bars") else "right")
    for row in outcome.comparison:
        comp.add_row(*[escape(row[c]) if isinstance(row.get(c), str)
                       else fmt(row.get(c), pct=c.endswith("%")) for c in cols])
    console.print(comp)
    if outcome.versus_rules:
        console.print("signals: " + outcome.versus_rules["text"], markup=False, highlight=False)
    c = outcome.costs_charged or {}
    if c:
        money = outcome.facts.get("account_currency") or ""
        console.print(f"costs charged ({money}): spread {c['total_spread_cost']:,.2f}, commission "
                      f"{c['total_commission']:,.2f}, slippage {c['total_slippage_cost']:,.2f}; "
                      f"total {c['total_costs']:,.2f} (spread: {c['spread_source']})",
                      markup=False, highlight=False)
    judged = backtest_verdict(outcome.result.stats, outcome.baselines, outcome.in_sample,
                              outcome.versus_rules)
    console.print(f"verdict: {judged['text']}", markup=False, highlight=False)
    console.print(f"report: [bold]{outcome.report}[/bold]")


def register(app: typer.Typer) -> None:
    app.command("backtest")(backtest_cmd)
