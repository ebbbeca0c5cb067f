"""`attnbt sweep`: search strategy rules (and model settings) walk-forward, paying for the search."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from backtests.cli.common import (
    AccountOpt,
    AddressOpt,
    CashOpt,
    CommissionOpt,
    ConfigOpt,
    DataOpt,
    DayfirstOpt,
    EmbargoBarsOpt,
    ExecutorOpt,
    ExpandingOpt,
    InstrumentOpt,
    PipOpt,
    PointOpt,
    RunsOpt,
    SettingsArg,
    SlippageOpt,
    SortOpt,
    SpreadOpt,
    SpreadPipsOpt,
    StepBarsOpt,
    TestBarsOpt,
    TrainBarsOpt,
    TzOpt,
    ValBarsOpt,
    build_experiment,
    command_line,
    console,
    overrides_from,
    print_study_start,
    trading_overrides,
)

SWEEP = "Sweep"


def sweep_cmd(
    settings: SettingsArg = None,
    grid: Annotated[list[str] | None, typer.Option(
        "--grid", help="An axis: key=v1,v2,... with the config's keys (repeatable), e.g. "
        "threshold=0.5,0.6 stop=bar,atr:1.5 take_profit_r=1,2,3. Model-side keys (window, "
        "features, labels, preset ...) retrain.", rich_help_panel=SWEEP)] = None,
    data: DataOpt = None,
    models: Annotated[str, typer.Option("--models", "--model", help="Models, comma-separated "
                                        "(kind or kind/preset; gbm is the "
                                        "gradient-boosting baseline; rule/newhl and "
                                        "rule/newhl-range[:K] are rule baselines, no "
                                        "training).", rich_help_panel=SWEEP)]
    = "attention,rule/newhl",
    presets: Annotated[str | None, typer.Option("--presets", help="Presets, one per model or "
                                                "kind=preset.", rich_help_panel=SWEEP)] = None,
    seeds: Annotated[int, typer.Option("--seeds", help="Seeds 0 … N-1 per model and fold "
                                       "(1 to 1,000).", rich_help_panel=SWEEP)] = 1,
    top: Annotated[int, typer.Option("--top", min=1, help="Best combinations re-run on "
                                     "backtrader.", rich_help_panel=SWEEP)] = 3,
    heatmap: Annotated[str | None, typer.Option("--heatmap", help="Two axes for the heatmap, "
                                                "x,y (default: the first two with several "
                                                "values).", rich_help_panel=SWEEP)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say how many tasks and trials the "
                                          "sweep would add; run nothing.",
                                          rich_help_panel=SWEEP)] = False,
    train_bars: TrainBarsOpt = 2000, val_bars: ValBarsOpt = 500, test_bars: TestBarsOpt = 500,
    step_bars: StepBarsOpt = None, expanding: ExpandingOpt = False,
    embargo_bars: EmbargoBarsOpt = 0,
    executor: ExecutorOpt = "local", address: AddressOpt = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Worker processes (local) or "
                                                "CPUs (local Ray instance); default: all cores; at most "
                                                "4 per core.",
                                                rich_help_panel=SWEEP)] = None,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda (cuda: the models "
                                        "of each fold and seed train together as a stacked "
                                        "ensemble).", rich_help_panel=SWEEP)] = "auto",
    tz: TzOpt = None, sort: SortOpt = None, point: PointOpt = None, dayfirst: DayfirstOpt = None,
    instrument: InstrumentOpt = None, account_currency: AccountOpt = None,
    cash: CashOpt = None, spread: SpreadOpt = None, spread_pips: SpreadPipsOpt = None,
    pip: PipOpt = 0.0001, commission: CommissionOpt = None, slippage: SlippageOpt = None,
    config: ConfigOpt = None, runs_dir: RunsOpt = None,
) -> None:
    """Sweep: train each model once per fold and seed, run every rule combination on its
    unseen test predictions (compiled simulator), rank them walk-forward with the deflated
    Sharpe ratio, test the best against buy-and-hold and random entries, re-run the top ones on
    backtrader."""
    from backtests import sweep as swm
    from backtests.config import ConfigError
    from backtests.execution import default_workers
    from backtests.walkforward import FoldPlan, parse_models
    from backtests.walkforward.tasks import seed_list

    if device not in ("auto", "cpu", "cuda"):
        raise typer.BadParameter(f"--device must be auto, cpu or cuda, not {device!r}")
    if not grid:
        raise typer.BadParameter("give at least one --grid key=v1,v2,...", param_hint="--grid")
    options = overrides_from({"tz": tz, "sort": sort, "point": point, "dayfirst": dayfirst,
                              "instrument": instrument, "account_currency": account_currency,
                              "cash": cash, "commission": commission, "slippage": slippage,
                              "runs_dir": runs_dir, "data": data},
                             rename={"data": "data.source"})
    options = trading_overrides(options, spread, spread_pips, pip, None)
    exp = build_experiment(config, options, settings)
    axes = None
    if heatmap is not None:
        axes = tuple(a.strip() for a in heatmap.split(","))
        if len(axes) != 2:
            raise typer.BadParameter("give two axes, x,y", param_hint="--heatmap")
    parsed = swm.parse_grid(grid, exp)
    if axes is not None:
        names = {k.split(".", 1)[1] for k in parsed.axes} | set(parsed.axes)
        missing = [a for a in axes if a not in names]
        if missing:
            raise ConfigError(f"--heatmap {missing[0]!r} is not a --grid axis; axes are "
                              f"{', '.join(k.split('.', 1)[1] for k in parsed.axes)}")
    sw = swm.Sweep(base=exp, source=exp.data.source, models=parse_models(models, presets),
                   seeds=seed_list(seeds), grid=parsed,
                   plan=FoldPlan(train_bars, val_bars, test_bars, step_bars, expanding,
                                 embargo_bars),
                   executor=executor, address=address,
                   workers=default_workers() if workers is None else workers,
                   top=top, heatmap=axes, device=device)
    if dry_run:
        print_plan(sw)
        return

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)   # a line per task, terminal or not

    outcome = swm.run(sw, command=command_line(), progress=progress)
    print_outcome(outcome)


def print_plan(sw) -> None:
    from backtests import sweep as swm

    p = swm.plan(sw)
    if p.finished is not None:
        console.print(f"sweep {p.finished.id} with these settings has finished: the same "
                      "command reprints its result; nothing to compute, 0 trials to add. "
                      "Nothing was run.", markup=False, soft_wrap=True)
        return
    todo = sum(t.id not in p.done for t in p.tasks)
    resume = f" (resuming sweep {p.resume.id}: {len(p.done)} done)" if p.resume else ""
    n_folds = len({t.task.fold_no for t in p.tasks})
    console.print(
        f"{len(p.tasks)} training tasks ({len(sw.models)} models × {len(p.model_combos)} model "
        f"settings × {len(sw.seeds)} seeds × {n_folds} folds), {todo} to compute{resume}; "
        f"{len(p.rule_combos)} rule combinations on each: {p.n_combinations} combinations in "
        f"all. The sweep would add {swm.trials_added(p, sw)} trials to the registry (one per "
        "combination and seed); the deflated Sharpe ratio of any later run on these bars and "
        "folds pays for them. Nothing was run.", markup=False, soft_wrap=True)


def print_outcome(outcome) -> None:
    import json

    from backtests.sweep import verdict_text

    payload = json.loads((outcome.run.path / "sweep.json").read_text())
    print_study_start("sweep", outcome)
    t = outcome.table
    shown = t.head(10)[["rank", "model", "model_setting", "rules", "sharpe", "total_return_pct",
                        "max_drawdown_pct", "n_trades", "win_rate_pct", "dsr"]]
    console.print(shown.to_string(index=False, float_format=lambda v: f"{v:.3g}"),
                  markup=False, highlight=False, soft_wrap=True)
    if len(t) > 10:
        console.print(f"… {len(t) - 10} more in {outcome.run.path / 'table.csv'}", markup=False)
    console.print(verdict_text(payload), markup=False, highlight=False, soft_wrap=True)
    for f in outcome.failures:
        console.print(f"FAILED {f['task']}: {f['error']}", markup=False, highlight=False,
                      soft_wrap=True)
    console.print(f"report: {outcome.run.path / 'report.html'}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep_cmd)
