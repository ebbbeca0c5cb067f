"""`attnbt demo`: the main job on the embedded sample, from training to the report."""

from __future__ import annotations

from typing import Annotated

import typer

from backtests.cli.common import RunsOpt, command_line, console, err_console, fmt


def demo_cmd(runs_dir: RunsOpt = None,
             epochs: Annotated[int, typer.Option(min=1, help="Maximum epochs per model.")] = 60,
             workers: Annotated[int | None, typer.Option(help="Trainings side by side "
                                                         "(default: up to 2, by cores).")] = None
             ) -> None:
    """The main job on the embedded EURUSD H1 sample: train attention and a dense baseline
    (seeded, one torch thread each, side by side), backtest both on the held-out test period
    (attention with the dense run beside it, then dense alone), and `attnbt compare` the two."""
    from backtests.backtest import backtest
    from backtests.cli.backtest import print_backtest
    from backtests.cli.compare import print_compare
    from backtests.cli.data import print_summary
    from backtests.compare import run_compare
    from backtests.config import Experiment
    from backtests.execution import check_workers, default_workers
    from backtests.scoring import load_candles
    from backtests.workflows import train_many
    from data.summary import describe_frame

    workers = min(2, default_workers()) if workers is None else check_workers(workers)
    base = Experiment().override({"data.source": "sample:EURUSD_H1", "train.epochs": epochs,
                                  "train.seed": 0, "train.threads": 1,
                                  "runtime.runs_dir": str(runs_dir) if runs_dir else None})
    candles = load_candles(base)
    print_summary(describe_frame(candles))
    exps = [base.override({"model.kind": kind, "model.preset": preset})
            for kind, preset in (("attention", "article"), ("dense", "matched"))]
    err_console.print(f"training {len(exps)} models ({workers} at a time, 1 torch thread each)",
                      highlight=False)

    def done(i: int, result) -> None:
        m = result.metrics
        err_console.print(f"  {result.kind}/{result.preset}: {m['epochs_run']} epochs, "
                          f"{m['seconds']:.1f}s, validation hit {fmt(m['hit_pct'], True)}%",
                          highlight=False)

    trained = train_many(exps, candles, workers=workers, on_done=done, command=command_line())
    for run, result in trained:
        console.print(f"trained {result.kind}/{result.preset} → {run.id}")
    (att_run, _), (dense_run, _) = trained
    with err_console.status("backtesting on the held-out test period"):
        outcome = backtest(exps[0], att_run.id, vs=[dense_run.id], candles=candles,
                           command=command_line())
        dense = backtest(exps[1], dense_run.id, candles=candles, command=command_line())
    print_backtest(outcome)
    console.print(f"open the report in a browser: file://{outcome.report.resolve()}")
    console.print(f"dense backtest: {dense.run.id} (report file://{dense.report.resolve()})")
    with err_console.status("comparing the two backtests"):
        compared = run_compare([outcome.run.id, dense.run.id], base.runtime.runs_dir,
                               command=command_line())
    console.print(f"\n$ attnbt compare {outcome.run.id} {dense.run.id}")
    print_compare(compared)
    console.print(f"open the comparison in a browser: file://{compared.html.resolve()}")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)
