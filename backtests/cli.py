"""The `attnbt` command line. The only place that parses arguments, prints, or exits."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from data.errors import AttnbtError

app = typer.Typer(help="Backtest an attention network that reads candles, against the simpler "
                  "networks before it.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
data_app = typer.Typer(help="Load, fetch and inspect candle data.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console(width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 120)

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
    console.print(candles.tail(rows).to_string(header=False, index_names=False))


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


RunsOpt = Annotated[Path | None, typer.Option("--runs-dir", help="Runs folder (default $ATTNBT_RUNS "
                                              "or ./runs).")]
RunArg = Annotated[str, typer.Option("--run", help="Run id, unique prefix, 'latest', or folder.")]
DataOpt = Annotated[str | None, typer.Option("--data", help="Data source (default: the run's).")]
PeriodOpt = Annotated[str, typer.Option("--period", help="train | val | test | all (the run's split).")]
FromOpt = Annotated[str | None, typer.Option("--from", help="First bar (UTC); overrides --period.")]
ToOpt = Annotated[str | None, typer.Option("--to", help="Last bar (UTC); overrides --period.")]


def _fmt(value, pct: bool = False) -> str:
    """A number for a table: 3 decimals, or 1 for percentages; '—' for missing."""
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    if isinstance(value, float) and pct:
        return f"{value:.1f}"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


@app.command("train")
def train_cmd(
    data: Annotated[str, typer.Option("--data", help="Data source.")] = "sample:EURUSD_H1",
    model: Annotated[str, typer.Option(help="attention | dense | conv | lstm")] = "attention",
    preset: Annotated[str, typer.Option(help="attention: article|modern; dense: article|matched")] = "article",
    features: Annotated[str, typer.Option(help="Feature set: article | scaled")] = "scaled",
    labels: Annotated[str, typer.Option(help="Label kind: 3bar | 5bar")] = "3bar",
    window: Annotated[int, typer.Option(help="Bars per window.")] = 20,
    epochs: Annotated[int, typer.Option(help="Maximum epochs (early stopping may end sooner).")] = 60,
    batch_size: Annotated[int, typer.Option(help="Windows per step.")] = 256,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 1e-3,
    patience: Annotated[int, typer.Option(help="Epochs without validation gain before stopping.")] = 8,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    bf16: Annotated[bool, typer.Option(help="bfloat16 autocast on CUDA.")] = False,
    compile_model: Annotated[bool, typer.Option("--compile", help="torch.compile the model "
                                                "(worth it on a GPU for long runs).")] = False,
    train_frac: Annotated[float, typer.Option("--train", help="Train fraction of the bars.")] = 0.6,
    val_frac: Annotated[float, typer.Option("--val", help="Validation fraction of the bars.")] = 0.2,
    train_end: Annotated[str | None, typer.Option(help="Last training bar (date); with --val-end.")] = None,
    val_end: Annotated[str | None, typer.Option(help="Last validation bar (date).")] = None,
    resume: Annotated[str | None, typer.Option(help="Resume an interrupted run (id).")] = None,
    start: Annotated[str | None, typer.Option("--from", help="Use bars from this time (UTC).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Use bars up to this time (UTC).")] = None,
    runs_dir: RunsOpt = None,
) -> None:
    """Train a model on a chronological train part, early-stopping on the validation part."""
    from backtests import pipeline
    from data import DatasetSpec
    from models.train import TrainConfig

    with _epoch_progress(epochs) as on_epoch:
        if resume:
            run, metrics = pipeline.resume_run(resume, runs_dir=runs_dir, progress=on_epoch)
        else:
            try:
                spec = DatasetSpec(window=window, features=features, labels=labels)
                cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience,
                                  seed=seed, device=device, bf16=bf16, compile=compile_model)
            except ValueError as exc:
                raise typer.BadParameter(str(exc)) from None
            run, metrics = pipeline.train_run(
                data, kind=model, preset=preset, spec=spec, cfg=cfg, runs_dir=runs_dir,
                split_args={"train": train_frac, "val": val_frac, "train_end": train_end,
                            "val_end": val_end}, progress=on_epoch, start=start, end=end)
    console.print(f"trained {model}/{preset} in {metrics['seconds']:.1f}s "
                  f"({metrics['epochs_run']} epochs, best {metrics['best_epoch']}): validation "
                  f"accuracy {metrics['accuracy']:.3f}, macro F1 {metrics['macro_f1']:.3f}, "
                  f"hit {_fmt(metrics['hit_pct'], True)}%, missed {_fmt(metrics['missed_pct'], True)}%")
    console.print(f"run [bold]{run.id}[/bold] → {run.path}")


class _epoch_progress:
    """A rich progress bar fed by the trainer's per-epoch callback."""

    def __init__(self, total: int) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("[bold]training"), BarColumn(), TextColumn(
            "{task.completed}/{task.total} epochs {task.fields[info]}"), TimeElapsedColumn(),
            console=err_console, transient=True)
        self.task = self.progress.add_task("train", total=total, info="")

    def __enter__(self):
        self.progress.start()
        return self.update

    def update(self, row: dict) -> None:
        self.progress.update(self.task, completed=row["epoch"] + 1, total=row["epochs"],
                             info=f"loss {row['train_loss']:.3f} val {row['val_loss']:.3f} "
                                  f"(best {row['best_val_loss']:.3f})")

    def __exit__(self, *exc):
        self.progress.stop()
        return False


@app.command("evaluate")
def evaluate_cmd(run: RunArg = "latest", data: DataOpt = None, period: PeriodOpt = "test",
                 start: FromOpt = None, end: ToOpt = None, runs_dir: RunsOpt = None) -> None:
    """Out-of-sample metrics beside trivial predictors and the article's in-sample figures."""
    from backtests import pipeline

    result = pipeline.evaluate_run(run, data, period=period, start=start, end=end,
                                   runs_dir=runs_dir)
    print_evaluation(result)


def print_evaluation(result: dict) -> None:
    from data.labels import CLASS_NAMES

    console.print(f"[bold]{result['run']}[/bold] ({result['kind']}/{result['model']['preset']}) on "
                  f"{result['samples']:,} {result['period']} windows, {result['start']} → {result['end']}")
    table = Table(title="against the article (its figures are in-sample; ours are not)")
    for col in ("predictor", "bars", "error", "hit %", "missed %", "accuracy", "macro F1"):
        table.add_column(col, justify="right" if col != "predictor" else "left")
    for name, m in result["results"].items():
        table.add_row(f"ours: {name}", "out-of-sample", _fmt(m["error"]), _fmt(m["hit_pct"], True),
                      _fmt(m["missed_pct"], True), _fmt(m["accuracy"]), _fmt(m["macro_f1"]))
    for a in result["article"]:
        table.add_row(f"article Part {a['part']}: {a['network']}", "in-sample", _fmt(a["error"]),
                      _fmt(a["hit_pct"], True), _fmt(a["missed_pct"], True), "—", "—")
    console.print(table)
    m = result["results"]["model"]
    cls = Table(title="per class (model)")
    for col in ("class", "precision", "recall", "F1", "support"):
        cls.add_column(col, justify="right")
    for name in CLASS_NAMES:
        c = m["per_class"][name]
        cls.add_row(name, _fmt(c["precision"]), _fmt(c["recall"]), _fmt(c["f1"]), str(c["support"]))
    cm = Table(title="confusion (rows actual, columns predicted)")
    cm.add_column("")
    for name in CLASS_NAMES:
        cm.add_column(name, justify="right")
    for name, row in zip(CLASS_NAMES, m["confusion"], strict=True):
        cm.add_row(name, *map(str, row))
    console.print(cls, cm)


@app.command("predict")
def predict_cmd(run: RunArg = "latest", data: DataOpt = None,
                out: Annotated[Path, typer.Option("--out", help="Output .csv or .parquet.")] = Path(
                    "predictions.csv"), runs_dir: RunsOpt = None) -> None:
    """Write per-bar probabilities [p_none, p_buy, p_sell] for every bar of the data."""
    from backtests import pipeline

    path, probs = pipeline.predict_run(run, data, out, runs_dir=runs_dir)
    n = int(probs.notna().all(axis=1).sum())
    console.print(f"{n:,} bars scored ({len(probs) - n} warm-up bars without a full window) → {path}")


@app.command("attention")
def attention_cmd(run: RunArg = "latest", data: DataOpt = None,
                  at: Annotated[str | None, typer.Option("--at", help="Bar time (UTC); default the "
                                                         "last bar.")] = None,
                  out: Annotated[Path | None, typer.Option("--out", help="PNG path.")] = None,
                  runs_dir: RunsOpt = None) -> None:
    """Plot the attention map over the candle window ending at a bar, with its candles."""
    from backtests import pipeline

    path = pipeline.attention_plot(run, data, at, out, runs_dir=runs_dir)
    console.print(f"attention map → {path}")


def _strategy_options(threshold, allow_short, take_profit_r, max_hold, stop_buffer, sizing, units,
                      risk, spread, spread_pips, pip, commission, slippage):
    from strategy.fractal import Costs, FractalParams

    if spread is not None and spread_pips is not None:
        raise typer.BadParameter("give --spread or --spread-pips, not both")
    if spread_pips is not None:
        spread = spread_pips * pip
    try:
        params = FractalParams(threshold=threshold, allow_short=allow_short,
                               take_profit_r=take_profit_r, max_hold=max_hold,
                               stop_buffer=stop_buffer, sizing=sizing, units=units,
                               risk_fraction=risk)
        costs = Costs(spread=spread, commission=commission, slippage=slippage)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return params, costs


@app.command("backtest")
def backtest_cmd(
    run: RunArg = "latest", data: DataOpt = None, period: PeriodOpt = "test",
    start: FromOpt = None, end: ToOpt = None,
    cash: Annotated[float, typer.Option(help="Starting equity.")] = 100_000.0,
    threshold: Annotated[str, typer.Option(help="Minimum p_buy / p_sell for a signal, or 'auto': "
                                           "chosen on the model's validation bars.")] = "0.5",
    short: Annotated[bool, typer.Option("--short/--no-short", help="Sell signals open shorts "
                                        "(or only close longs).")] = True,
    take_profit_r: Annotated[float, typer.Option(help="Target at k × risk; 0 disables.")] = 2.0,
    max_hold: Annotated[int, typer.Option(help="Close after this many bars; 0 disables.")] = 24,
    stop_buffer: Annotated[float, typer.Option(help="Stop this far (price) beyond the signal "
                                               "bar's extreme.")] = 0.0,
    sizing: Annotated[str, typer.Option(help="fixed | risk")] = "fixed",
    units: Annotated[float, typer.Option(help="Units per trade (fixed sizing).")] = 10_000.0,
    risk: Annotated[float, typer.Option(help="Equity fraction at risk (risk sizing).")] = 0.01,
    spread: Annotated[float | None, typer.Option(help="Spread in price units (default: the "
                                                 "data's spread column, else 1 pip).")] = None,
    spread_pips: Annotated[float | None, typer.Option(help="Spread in pips.")] = None,
    pip: Annotated[float, typer.Option(help="Pip size for --spread-pips.")] = 0.0001,
    commission: Annotated[float, typer.Option(help="Money per unit per side.")] = 0.0,
    slippage: Annotated[float, typer.Option(help="Price units against each market/stop "
                                            "fill.")] = 0.0,
    vs: Annotated[list[str] | None, typer.Option("--vs", help="Other trained runs to backtest on "
                                                 "the same bars (repeatable).")] = None,
    random_draws: Annotated[int, typer.Option(help="Random-entry draws for the p-value.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the random-entry draws.")] = 0,
    runs_dir: RunsOpt = None,
) -> None:
    """Trade a trained run's predicted fractals on a period and write the report."""
    from backtests.backtest import backtest

    auto = threshold.strip().lower() == "auto"
    try:
        value = 0.5 if auto else float(threshold)
    except ValueError:
        raise typer.BadParameter(f"--threshold must be a number or 'auto', not {threshold!r}") from None
    params, costs = _strategy_options(value, short, take_profit_r, max_hold, stop_buffer,
                                      sizing, units, risk, spread, spread_pips, pip, commission,
                                      slippage)
    with err_console.status("backtesting"):
        outcome = backtest(run, data, period=period, start=start, end=end, params=params,
                           costs=costs, cash=cash, vs=vs, n_random=random_draws, seed=seed,
                           runs_dir=runs_dir, auto_threshold=auto)
    print_backtest(outcome)


def print_backtest(outcome) -> None:
    from backtests.backtest import best_threshold
    from backtests.report import format_stats_table

    for name, rows in outcome.threshold_tables.items():
        chosen = best_threshold(rows)
        console.print(f"{name}: threshold {chosen['threshold']} chosen on the validation bars "
                      f"(return {chosen['validation return %']:.2f}% on "
                      f"{chosen['validation trades']} validation trades)")
    stats = Table(title=f"backtest {outcome.run.id}", show_header=False)
    for label, value in format_stats_table(outcome.result.stats):
        stats.add_row(escape(label), escape(value))
    console.print(stats)
    if outcome.in_sample:
        console.print("[bold red]warning:[/bold red] this period overlaps the bars the model was "
                      "trained or early-stopped on: these figures are in-sample.")
    base = Table(title="same bars, same costs")
    for col in ("baseline", "trades", "win rate %", "return %", "profit factor", "max DD %"):
        base.add_column(col, justify="right" if col != "baseline" else "left")
    for name, b in outcome.baselines.items():
        if "median_return_pct" in b:
            p = b["p_value_ours"]
            base.add_row(f"{name} ({b['draws']} draws)", str(b["n_trades"]), "—",
                         f"median {b['median_return_pct']:.2f} (5–95%: {b['p5_return_pct']:.2f} … "
                         f"{b['p95_return_pct']:.2f})", f"p = {_fmt(p)}" if p is not None else "—",
                         "—")
        else:
            base.add_row(name, _fmt(b["n_trades"]), _fmt(b["win_rate_pct"], True),
                         _fmt(b["total_return_pct"], True), _fmt(b["profit_factor"]),
                         _fmt(b["max_drawdown_pct"], True))
    console.print(base)
    comp = Table(title="against the earlier article")
    cols = ("source", "network", "bars", "error", "hit %", "missed %", "trades", "win rate %",
            "return %")
    for col in cols:
        comp.add_column(col, justify="left" if col in ("source", "network", "bars") else "right")
    for row in outcome.comparison:
        comp.add_row(*[escape(row[c]) if isinstance(row.get(c), str)
                       else _fmt(row.get(c), pct=c.endswith("%")) for c in cols])
    console.print(comp)
    console.print(f"report: [bold]{outcome.report}[/bold]")


@app.command("runs")
def runs_cmd(kind: Annotated[str | None, typer.Option(help="train | backtest | ...")] = None,
             runs_dir: RunsOpt = None) -> None:
    """List runs in the registry, newest first."""
    from backtests.runs import list_runs

    rows = list_runs(runs_dir, kind)
    if not rows:
        console.print("no runs yet")
        return
    table = Table()
    for col in ("id", "status", "model", "data", "summary"):
        table.add_column(col)
    for r in rows:
        summ = ", ".join(f"{k}={_fmt(v)}" for k, v in list(r["summary"].items())[:5])
        table.add_row(r["id"], r["status"], r["model"] or "", r["data"] or "", summ)
    console.print(table)


@app.command()
def demo(runs_dir: RunsOpt = None,
         epochs: Annotated[int, typer.Option(help="Maximum epochs per model.")] = 60) -> None:
    """The main job on the embedded EURUSD H1 sample: train attention and a dense baseline
    (seeded), backtest both on the held-out test period, compare, and write the HTML report."""
    from backtests import pipeline
    from backtests.backtest import backtest
    from backtests.summary import describe_frame
    from data import DatasetSpec
    from models.train import TrainConfig

    candles = _load("sample:EURUSD_H1")
    _print_summary(describe_frame(candles))
    trained = {}
    for kind, preset in (("attention", "article"), ("dense", "matched")):
        with _epoch_progress(epochs) as on_epoch:
            run, m = pipeline.train_run("sample:EURUSD_H1", kind=kind, preset=preset,
                                        spec=DatasetSpec(features="scaled"), candles=candles,
                                        cfg=TrainConfig(epochs=epochs, seed=0),
                                        runs_dir=runs_dir, progress=on_epoch)
        console.print(f"trained {kind}/{preset} → {run.id} ({m['epochs_run']} epochs, "
                      f"{m['seconds']:.1f}s; validation hit {_fmt(m['hit_pct'], True)}%)")
        trained[kind] = run
    with err_console.status("backtesting on the held-out test period"):
        outcome = backtest(trained["attention"].id, "sample:EURUSD_H1", period="test",
                           vs=[trained["dense"].id], runs_dir=runs_dir, candles=candles)
    print_backtest(outcome)
    console.print(f"open the report in a browser: file://{outcome.report.resolve()}")


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2."""
    try:
        app()  # standalone: typer prints usage errors itself and exits 2
    except AttnbtError as exc:
        err_console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
