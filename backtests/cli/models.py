"""`attnbt train|evaluate|predict|attention`: train models and apply them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from backtests.cli.common import (
    TRAIN,
    ConfigOpt,
    DataOpt,
    DayfirstOpt,
    FromOpt,
    MkdirOpt,
    PeriodOpt,
    PointOpt,
    RunOpt,
    RunsOpt,
    SettingsArg,
    SortOpt,
    ToOpt,
    TrustUnhashedOpt,
    TzOpt,
    build_experiment,
    command_line,
    console,
    err_console,
    fmt,
    overrides_from,
)


def _opt(help_: str, *names: str):
    return typer.Option(*names, help=help_, rich_help_panel=TRAIN)


def train_cmd(
    settings: SettingsArg = None,
    data: DataOpt = None, tz: TzOpt = None, sort: SortOpt = None, point: PointOpt = None,
    dayfirst: DayfirstOpt = None,
    model: Annotated[str | None, _opt("attention (default) | dense | conv | lstm")] = None,
    preset: Annotated[str | None, _opt("attention: article|modern; dense: article|matched")] = None,
    features: Annotated[str | None, _opt("Feature set: scaled (default) | article, or parts joined by + "
                                     "(scaled+time+mtf; parts: article scaled time spread atr "
                                     "volz mtf[:4h:1d])")] = None,
    labels: Annotated[str | None, _opt("Label kind: 3bar (default) | 5bar | swing (a 3-bar fractal "
                                            "followed by a 1-ATR move within 24 bars) | "
                                            "swing:ATRS[:BARS], e.g. swing:2, swing:1.5:48 | "
                                            "triple:K_UP:K_DN:H (triple barrier, costs "
                                            "charged), e.g. triple:1:1:24 | horizon:H "
                                            "(a trade held H bars pays, costs charged), "
                                            "e.g. horizon:6")] = None,
    window: Annotated[int | None, _opt("Bars per window (default 20).")] = None,
    epochs: Annotated[int | None, _opt("Maximum epochs (default 60; early stopping may end "
                                       "sooner).")] = None,
    batch_size: Annotated[int | None, _opt("Windows per step (default 256).")] = None,
    lr: Annotated[float | None, _opt("AdamW learning rate (default 0.001).")] = None,
    patience: Annotated[int | None, _opt("Epochs without validation gain before stopping "
                                         "(default 8).")] = None,
    seed: Annotated[int | None, _opt("Random seed (default 0).")] = None,
    calibration: Annotated[str | None, _opt("none (default) | isotonic | platt: calibrate the "
                                            "probabilities on the validation part (saved with "
                                            "the model).")] = None,
    threads: Annotated[int | None, _opt("Torch CPU threads (default 1; results depend on "
                                        "it).")] = None,
    device: Annotated[str | None, _opt("auto (default) | cpu | cuda")] = None,
    bf16: Annotated[bool | None, _opt("bfloat16 autocast on CUDA.", "--bf16/--no-bf16")] = None,
    compile_model: Annotated[bool | None, _opt("torch.compile the model (worth it on a GPU for "
                                               "long runs).", "--compile/--no-compile")] = None,
    train_frac: Annotated[float | None, _opt("Train fraction of the bars (default 0.6).",
                                             "--train")] = None,
    val_frac: Annotated[float | None, _opt("Validation fraction of the bars (default 0.2).",
                                           "--val")] = None,
    train_end: Annotated[str | None, _opt("Last training bar (date); with --val-end.")] = None,
    val_end: Annotated[str | None, _opt("Last validation bar (date).")] = None,
    embargo: Annotated[int | None, _opt("Bars left out after each split boundary "
                                        "(default 0).")] = None,
    resume: Annotated[str | None, _opt("Continue an interrupted run (id); only --epochs and "
                                       "--device may change.")] = None,
    start: Annotated[str | None, typer.Option("--from", help="Use bars from this time (UTC).",
                                              rich_help_panel="Data")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Use bars up to this time (UTC).",
                                            rich_help_panel="Data")] = None,
    pool: Annotated[bool | None, typer.Option(
        "--pool/--no-pool", help="--data A,B,C: ONE model on every instrument's windows (split "
        "on their common calendar, each normalised by its own training part; data.pool).",
        rich_help_panel="Data")] = None,
    config: ConfigOpt = None, runs_dir: RunsOpt = None,
) -> None:
    """Train a model on a chronological train part, early-stopping on the validation part."""
    from backtests import workflows

    options = overrides_from(dict(locals()), rename={"start": "data.start", "end": "data.end"})
    if resume:
        given = {k: v for k, v in options.items() if k != "runtime.runs_dir"}
        if settings or config:
            raise typer.BadParameter("--resume takes no config file or settings")
        with _epoch_progress(epochs) as on_epoch:
            run, result = _interruptible(lambda: workflows.resume_run(
                resume, overrides=given, runs_dir=runs_dir, progress=on_epoch))
        if result.resumed_from is not None and result.resumed_from >= result.train.epochs:
            console.print(f"run [bold]{run.id}[/bold] had already finished its "
                          f"{len(result.history)} epochs: nothing to resume")
            return
    else:
        exp = build_experiment(config, options, settings)
        with _epoch_progress(exp.train.epochs) as on_epoch:
            run, result = _interruptible(lambda: workflows.train_run(
                exp, progress=on_epoch, command=command_line()))
    m = result.metrics
    console.print(f"trained {result.kind}/{result.preset} in {m['seconds']:.1f}s "
                  f"({m['epochs_run']} epochs, best {m['best_epoch']}): validation "
                  f"accuracy {m['accuracy']:.3f}, macro F1 {m['macro_f1']:.3f}, "
                  f"hit {fmt(m['hit_pct'], True)}%, missed {fmt(m['missed_pct'], True)}%")
    console.print(f"run [bold]{run.id}[/bold] → {run.path}")


def _interruptible(fn):
    """Run a training; on Ctrl-C or SIGTERM say which run to resume and exit 130."""
    try:
        return fn()
    except KeyboardInterrupt as exc:
        run_id = getattr(exc, "run_id", None)
        hint = f"; continue with: attnbt train --resume {run_id}" if run_id else ""
        err_console.print(f"interrupted{hint}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None


class _epoch_progress:
    """Per-epoch progress: a bar on a terminal, one line per epoch otherwise (CI, pipes)."""

    def __init__(self, total: int | None) -> None:
        self.total = total or 0
        self.progress = None
        if err_console.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("[bold]training"), BarColumn(), TextColumn(
                "{task.completed}/{task.total} epochs {task.fields[info]}"), TimeElapsedColumn(),
                console=err_console, transient=True)
            self.task = self.progress.add_task("train", total=self.total, info="")

    def __enter__(self):
        if self.progress:
            self.progress.start()
        return self.update

    def update(self, row: dict) -> None:
        info = (f"loss {row['train_loss']:.3f} val {row['val_loss']:.3f} "
                f"(best {row['best_val_loss']:.3f})")
        if self.progress:
            self.progress.update(self.task, completed=row["epoch"], total=row["epochs"],
                                 info=info)
        else:
            err_console.print(f"epoch {row['epoch']}/{row['epochs']}: {info}, "
                              f"{row['seconds']:.1f}s", markup=False, highlight=False)

    def __exit__(self, *exc):
        if self.progress:
            self.progress.stop()
        return False


def _reading(tz, sort, point, dayfirst) -> dict:
    """How to read the data, where given (else as the model's data was read)."""
    return {k: v for k, v in {"tz": tz, "sort": sort, "point": point,
                              "dayfirst": dayfirst}.items() if v is not None}


def evaluate_cmd(run: RunOpt = "latest", data: DataOpt = None, tz: TzOpt = None,
                 sort: SortOpt = None, point: PointOpt = None, dayfirst: DayfirstOpt = None,
                 period: PeriodOpt = None, start: FromOpt = None, end: ToOpt = None,
                 runs_dir: RunsOpt = None, trust_unhashed: TrustUnhashedOpt = False) -> None:
    """Out-of-sample metrics beside trivial predictors, the rule baselines (rule/newhl ...) and
    the article's in-sample figures, with the verdict against the best rule."""
    from backtests import workflows

    result = workflows.evaluate_run(run, data, period=period or "test", start=start, end=end,
                                    runs_dir=runs_dir, trust_unhashed=trust_unhashed,
                                    reading=_reading(tz, sort, point, dayfirst))
    print_evaluation(result)


def print_evaluation(result: dict) -> None:
    from data.labels import CLASS_NAMES

    console.print(f"[bold]{result['run']}[/bold] ({result['kind']}/{result['model']['preset']}, "
                  f"hash {result['model_hash']}) on {result['samples']:,} {result['period']} "
                  f"windows, {result['start']} → {result['end']}")
    table = Table(title="against the article (its figures are in-sample; ours are not)")
    for col in ("predictor", "bars", "error", "hit %", "missed %", "accuracy", "macro F1"):
        table.add_column(col, justify="right" if col != "predictor" else "left")
    for name, m in result["results"].items():
        who = "rule baseline" if name.startswith("rule/") else "ours"
        table.add_row(escape(f"{who}: {name}"), "out-of-sample", fmt(m["error"]),
                      fmt(m["hit_pct"], True), fmt(m["missed_pct"], True), fmt(m["accuracy"]),
                      fmt(m["macro_f1"]))
    for a in result["article"]:
        table.add_row(f"article Part {a['part']}: {a['network']}", "in-sample", fmt(a["error"]),
                      fmt(a["hit_pct"], True), fmt(a["missed_pct"], True), "—", "—")
    console.print(table)
    if result.get("versus_rules"):
        console.print(result["versus_rules"]["text"], markup=False, highlight=False)
    m = result["results"]["model"]
    cls = Table(title="per class (model)")
    for col in ("class", "precision", "recall", "F1", "support"):
        cls.add_column(col, justify="right")
    for name in CLASS_NAMES:
        c = m["per_class"][name]
        cls.add_row(name, fmt(c["precision"]), fmt(c["recall"]), fmt(c["f1"]), str(c["support"]))
    cm = Table(title="confusion (rows actual, columns predicted)")
    cm.add_column("")
    for name in CLASS_NAMES:
        cm.add_column(name, justify="right")
    for name, row in zip(CLASS_NAMES, m["confusion"], strict=True):
        cm.add_row(name, *map(str, row))
    console.print(cls, cm)
    print_calibration(result.get("calibration"))


def _four(v) -> str:
    return "—" if v is None or v != v else f"{v:.4f}"


def print_calibration(c: dict | None) -> None:
    """Brier scores (calibrated and, for a calibrated model, the network's own) and the
    reliability rows behind the diagram."""
    if not c:
        return
    from data.labels import CLASS_NAMES

    cols = ("brier", *(f"brier_{n}" for n in CLASS_NAMES))
    t = Table(title=f"Brier score (0 best, 2 worst; train.calibration = {c['method']})")
    for col in ("probabilities", "multi-class", *(f"{n} vs rest" for n in CLASS_NAMES)):
        t.add_column(col, justify="right" if col != "probabilities" else "left")
    t.add_row("traded (calibrated)" if c["method"] != "none" else "traded",
              *(_four(c["brier"][k]) for k in cols))
    if c.get("brier_uncalibrated"):
        t.add_row("network's own (uncalibrated)", *(_four(c["brier_uncalibrated"][k])
                                                     for k in cols))
    rel = Table(title="reliability (per class and bin: mean predicted vs observed frequency)")
    for col in ("class", "bin", "windows", "predicted", "observed"):
        rel.add_column(col, justify="right")
    for r in c["reliability"]:
        rel.add_row(r["class"], r["bin"], f"{r['windows']:,}", fmt(r["predicted"]),
                    fmt(r["observed"]))
    console.print(t, rel)
    console.print(f"reliability diagram → {c['figure']}", markup=False, highlight=False,
                  soft_wrap=True)


def predict_cmd(run: RunOpt = "latest", data: DataOpt = None, tz: TzOpt = None,
                sort: SortOpt = None, point: PointOpt = None, dayfirst: DayfirstOpt = None,
                out: Annotated[Path, typer.Option("--out", help="Output .csv or .parquet.")] = Path(
                    "predictions.csv"), mkdir: MkdirOpt = False, runs_dir: RunsOpt = None,
                trust_unhashed: TrustUnhashedOpt = False) -> None:
    """Write per-bar probabilities [p_none, p_buy, p_sell] for every bar of the data."""
    from backtests import workflows

    path, probs = workflows.predict_run(run, data, out, runs_dir=runs_dir,
                                        reading=_reading(tz, sort, point, dayfirst), mkdir=mkdir,
                                        trust_unhashed=trust_unhashed)
    n = int(probs.notna().all(axis=1).sum())
    console.print(f"{n:,} bars scored ({len(probs) - n} warm-up bars without a full window) → {path}")


def attention_cmd(run: RunOpt = "latest", data: DataOpt = None, tz: TzOpt = None,
                  sort: SortOpt = None, point: PointOpt = None, dayfirst: DayfirstOpt = None,
                  at: Annotated[str | None, typer.Option("--at", help="Bar time (UTC); default the "
                                                         "last bar.")] = None,
                  out: Annotated[Path | None, typer.Option("--out", help="PNG path.")] = None,
                  mkdir: MkdirOpt = False, runs_dir: RunsOpt = None,
                  trust_unhashed: TrustUnhashedOpt = False) -> None:
    """Plot the attention map over the candle window ending at a bar, with its candles."""
    from backtests import workflows

    path = workflows.attention_plot(run, data, at, out, runs_dir=runs_dir,
                                    reading=_reading(tz, sort, point, dayfirst), mkdir=mkdir,
                                    trust_unhashed=trust_unhashed)
    console.print(f"attention map → {path}")


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
    app.command("evaluate")(evaluate_cmd)
    app.command("predict")(predict_cmd)
    app.command("attention")(attention_cmd)
