"""`attnbt walkforward`: train, threshold and trade every fold; say which model won and how sure."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from backtests.cli.common import (
    DATA,
    AccountOpt,
    CashOpt,
    CommissionOpt,
    ConfigOpt,
    DayfirstOpt,
    EmbargoBarsOpt,
    ExpandingOpt,
    InstrumentOpt,
    MaxHoldOpt,
    PipOpt,
    PointOpt,
    RiskOpt,
    RunsOpt,
    SettingsArg,
    ShortOpt,
    SizingOpt,
    SlippageOpt,
    SortOpt,
    SpreadOpt,
    SpreadPipsOpt,
    StepBarsOpt,
    StopBufferOpt,
    TakeProfitOpt,
    TestBarsOpt,
    ThresholdOpt,
    TrainBarsOpt,
    TzOpt,
    UnitsOpt,
    ValBarsOpt,
    build_experiment,
    command_line,
    console,
    overrides_from,
    print_study_start,
    trading_overrides,
)
from data.errors import AttnbtError

WF = "Walk-forward"


def walkforward_cmd(
    settings: SettingsArg = None,
    data: Annotated[list[str] | None, typer.Option(
        "--data", help="Data source (repeatable, or comma-separated A,B,C): sample:EURUSD_H1, "
        "a CSV path, yahoo:SYMBOL:INTERVAL, or sample:planted-KIND[:SEED[:BARS[:PLANTED]]].",
        rich_help_panel=DATA)] = None,
    pool: Annotated[bool | None, typer.Option(
        "--pool/--no-pool", help="Several --data sources: train ONE model per model, seed and "
        "fold on all their windows (folds on one calendar, each normalised on its own training "
        "part), results per instrument and pooled (data.pool).", rich_help_panel=DATA)] = None,
    models: Annotated[str, typer.Option("--models", help="Models, comma-separated: attention, "
                                        "dense, conv, lstm (or kind/preset), the "
                                        "gradient-boosting baseline gbm (scikit-learn, CPU, one "
                                        "seed) and the rule baselines rule/newhl, "
                                        "rule/newhl-range[:K] (no training).", rich_help_panel=WF)]
    = "attention,dense,conv,lstm,rule/newhl,rule/newhl-range",
    references: Annotated[str | None, typer.Option(
        "--references", help="Reference models, comma-separated (e.g. rule/newhl): trained, "
        "traded and compared on the same folds, but not candidates: never the winner, and not "
        "charged in any DSR.", rich_help_panel=WF)] = None,
    presets: Annotated[str | None, typer.Option(
        "--presets", help="Presets, one per model (article,matched,...) or kind=preset; default "
        "attention/article, dense/matched, conv/article, lstm/article.",
        rich_help_panel=WF)] = None,
    seeds: Annotated[int, typer.Option("--seeds", help="Seeds 0 … N-1 per model and fold "
                                       "(1 to 1,000).", rich_help_panel=WF)] = 3,
    train_bars: TrainBarsOpt = 2000, val_bars: ValBarsOpt = 500, test_bars: TestBarsOpt = 500,
    step_bars: StepBarsOpt = None, expanding: ExpandingOpt = False,
    embargo_bars: EmbargoBarsOpt = 0,
    workers: Annotated[int | None, typer.Option("--workers", help="Worker processes on CPU; "
                                                "with --device cuda they evaluate and backtest "
                                                "while the GPU trains (default: all cores; at "
                                                "most 4 per core).",
                                                rich_help_panel=WF)] = None,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda (cuda: stacked "
                                        "ensembles; on Ray, a share of a GPU per task).",
                                        rich_help_panel=WF)] = "auto",
    executor: Annotated[str, typer.Option("--executor", help="local (process pool) | ray (a "
                                          "local Ray instance, or a cluster with --address).",
                                          rich_help_panel=WF)] = "local",
    address: Annotated[str | None, typer.Option("--address", help="Ray cluster to join: auto "
                                                "or ray://host:10001 (default: start a private "
                                                "local instance).", rich_help_panel=WF)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the tasks and the trials the "
                                          "run would add; run nothing.",
                                          rich_help_panel=WF)] = False,
    doc: Annotated[Path | None, typer.Option("--doc", help="Also write the study page "
                                             "(e.g. docs/attention-vs-dense.md).",
                                             rich_help_panel=WF)] = None,
    tz: TzOpt = None, sort: SortOpt = None, point: PointOpt = None, dayfirst: DayfirstOpt = None,
    instrument: InstrumentOpt = None, account_currency: AccountOpt = None,
    cash: CashOpt = None, threshold: ThresholdOpt = None, short: ShortOpt = None,
    take_profit_r: TakeProfitOpt = None, max_hold: MaxHoldOpt = None,
    stop_buffer: StopBufferOpt = None, sizing: SizingOpt = None, units: UnitsOpt = None,
    risk: RiskOpt = None, spread: SpreadOpt = None, spread_pips: SpreadPipsOpt = None,
    pip: PipOpt = 0.0001, commission: CommissionOpt = None, slippage: SlippageOpt = None,
    config: ConfigOpt = None, runs_dir: RunsOpt = None,
) -> None:
    """Walk-forward: train every (source, model, seed, fold), pick the threshold on its
    validation part, trade its unseen test part; stitch, test and say which model won."""
    from backtests import walkforward as wfm
    from backtests.execution import default_workers
    from backtests.walkforward.tasks import seed_list

    if device not in ("auto", "cpu", "cuda"):
        raise typer.BadParameter(f"--device must be auto, cpu or cuda, not {device!r}")
    if executor not in ("local", "ray"):
        raise typer.BadParameter(f"--executor must be local or ray, not {executor!r}")
    if address is not None and executor != "ray":
        raise typer.BadParameter("--address joins a Ray cluster: add --executor ray")
    if doc is not None and not doc.parent.is_dir():   # known now, not after the whole run
        raise AttnbtError(f"--doc {doc}: the folder {doc.parent} does not exist; create it first")
    options = overrides_from({"tz": tz, "sort": sort, "point": point, "dayfirst": dayfirst,
                              "instrument": instrument, "account_currency": account_currency,
                              "cash": cash, "short": short, "take_profit_r": take_profit_r,
                              "max_hold": max_hold, "stop_buffer": stop_buffer, "sizing": sizing,
                              "units": units, "risk": risk, "commission": commission,
                              "slippage": slippage, "runs_dir": runs_dir, "pool": pool})
    options = trading_overrides(options, spread, spread_pips, pip, threshold)
    exp = build_experiment(config, options, settings)
    auto = threshold is None or threshold.strip().lower() == "auto"
    sources = [s.strip() for d in (data or [exp.data.source]) for s in d.split(",")
               if s.strip()]
    wf = wfm.WalkForward(
        base=exp, sources=sources, models=wfm.parse_models(models, presets),
        references=wfm.parse_models(references) if references else [],
        seeds=seed_list(seeds),
        plan=wfm.FoldPlan(train_bars, val_bars, test_bars, step_bars, expanding, embargo_bars),
        auto_threshold=auto, device=device,
        workers=default_workers() if workers is None else workers,
        executor=executor, address=address)
    if dry_run:
        print_plan(wf)
        return

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)   # a line per task, terminal or not

    outcome = wfm.run(wf, command=command_line(), progress=progress, doc=doc)
    print_outcome(outcome)


def print_plan(wf) -> None:
    from backtests import walkforward as wfm

    p = wfm.plan(wf)
    if p.finished is not None:
        console.print(f"walk-forward run {p.finished.id} with these settings has finished: the "
                      "same command reprints its result; nothing to compute, 0 trials to add. "
                      "Nothing was run.", markup=False, soft_wrap=True)
        return
    for t in p.tasks:
        d = t.describe()
        state = "done" if t.id in p.done else "todo"
        console.print(f"{d['id']}  {state}  {t.label}  train {d['train'][0][:16]} → "
                      f"{d['train'][1][:16]}  val → {d['val'][1][:16]}  test → "
                      f"{d['test'][1][:16]}", markup=False, highlight=False, soft_wrap=True)
    for f in p.failed_sources:
        console.print(f"unusable source {f['task']['source']}: {f['error']}", markup=False)
    todo = sum(t.id not in p.done for t in p.tasks)
    resume = f" (resuming run {p.resume.id}: {len(p.done)} done)" if p.resume else ""
    console.print(f"{len(p.tasks)} tasks, {todo} to compute{resume}; the run would add "
                  f"{wfm.trials_added(p, wf)} trials to the registry (one per task backtest, "
                  "one per stitched model × seed series" + ("; the references' series are "
                  "recorded but charged in no DSR" if wf.references else "") + "). Nothing was "
                  "run.", markup=False, soft_wrap=True)


def print_outcome(outcome) -> None:
    import json

    payload = json.loads((outcome.run.path / "walkforward.json").read_text())
    print_study_start("walk-forward", outcome)
    for name, m in payload["models"].items():
        hit = m["across_seeds"]["hit_pct"]
        brier = m["across_seeds"].get("brier") or {}
        role = " (reference: not charged, cannot win)" if m.get("reference") else ""
        console.print(f"  {name}{role}: hit {_n(hit['mean'])} % (sd {_n(hit['sd'])}), Brier "
                      f"{_n(brier.get('mean'), 3)}, stitched "
                      f"return {_n(m['total_return_pct'], 2)} %, Sharpe {_n(m['sharpe'], 2)}, "
                      f"PSR {_n(m['psr'], 3)}, DSR {_n(m['dsr'], 3)} ({m['dsr_trials']} trials)",
                      markup=False, highlight=False, soft_wrap=True)
    for model, m in (payload.get("pooled") or {}).items():    # data.pool: over the instruments
        role = " (reference)" if m.get("reference") else ""
        console.print(f"  pooled {model}{role} over {len(m['instruments'])} instruments: return "
                      f"{_n(m['mean_total_return_pct'], 2)} % on average "
                      f"({_n(m['min_total_return_pct'], 2)} … {_n(m['max_total_return_pct'], 2)}),"
                      f" Sharpe {_n(m['mean_sharpe'], 2)} on average; DSR > 0.95 on "
                      f"{', '.join(m['dsr_passes']) or 'none'}",
                      markup=False, highlight=False, soft_wrap=True)
    if payload.get("winner"):
        console.print(payload["winner"]["text"], markup=False, highlight=False, soft_wrap=True)
    for v in payload.get("versus_rules") or []:
        console.print(v["text"], markup=False, highlight=False, soft_wrap=True)
    for c in payload["comparisons"]:
        console.print(c["verdict"], markup=False, highlight=False, soft_wrap=True)
    for f in outcome.failures:
        console.print(f"FAILED {f['task']}: {f['error']}", markup=False, highlight=False, soft_wrap=True)
    console.print(f"report: {outcome.run.path / 'report.html'}", markup=False)


def _n(v, digits: int = 1) -> str:
    from backtests.analysis.catalog import json_number

    return "—" if v is None else f"{json_number(v):.{digits}f}"     # "inf" from the file


def register(app: typer.Typer) -> None:
    app.command("walkforward")(walkforward_cmd)
