"""The steps users run, without printing: train, resume, score, evaluate, predict, attention.

Computing and recording are apart: ``train_model`` takes an experiment and candles and returns a
``TrainResult`` (it writes nothing and can run in a pool worker); ``record_training`` is the driver's
recorder that writes the run folder and its registry row. ``train_run`` is both, in the driver,
checkpointing each epoch into the run so that ``resume_run`` can continue it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from backtests.analysis import catalog as stat_table
from backtests.config import ConfigError, Experiment
from backtests.scoring import (
    VALIDATION_FILE,
    data_for_model,
    experiment_of,
    load_candles,
    make_fold,
    score,
)
from backtests.store import Registry, Run
from data import AttnbtError, DataError, fingerprint
from data.atomic import atomic_write
from data.folds import Fold
from data.pool import calendar, pooled_fingerprint
from data.summary import timeframe
from data.validate import to_utc
from models.checkpoint import (
    ModelError,
    load_model,
    load_training_state,
    model_meta,
    read_meta,
    save_model,
    save_training_state,
)
from models.evaluate import ARTICLE_FIGURES, versus_rules
from models.gbm import is_gbm
from models.predict import Predictor
from models.rules import is_rule
from models.train import TrainResult, fit

# What `attnbt train --resume` may change: runtime knobs, and how many epochs to run in all.
RESUMABLE_KEYS = ("train.epochs", "train.device", "runtime.runs_dir", "runtime.workers")


# --- training ------------------------------------------------------------------------------------
def refuse_rule(exp: Experiment) -> None:
    """A rule baseline is never trained or saved: it is named where a model is compared."""
    if is_rule(exp.model.kind):
        raise ConfigError(f"model.kind = rule: rule baselines need no training; name "
                          f"rule/{exp.model.preset} as a model to compare in a backtest, walk-forward "
                          "or sweep (evaluate and backtest show them beside every model)")
    refuse_gbm(exp)


def refuse_gbm(exp: Experiment) -> None:
    """The gradient-boosting baseline trains per fold in memory and is never saved."""
    if is_gbm(exp.model.kind):
        raise ConfigError("model.kind = gbm: the gradient-boosting baseline is not saved to a "
                          "model folder, so it cannot be trained alone, backtested from a run or "
                          "paper-traded; name gbm among the models of a walk-forward or sweep "
                          "(e.g. attention,dense,gbm), which trains it on every fold")


def train_model(exp: Experiment, candles: pd.DataFrame | None = None, *,
                progress: Callable[[dict], None] | None = None, checkpoint=None,
                resume=None, model_config=None) -> TrainResult:
    """Train the experiment's model (pure compute: writes nothing)."""
    refuse_rule(exp)
    candles = load_candles(exp) if candles is None else candles
    fold = make_fold(exp, candles.index)
    return fit(candles, exp.dataset, fold, kind=exp.model.kind, preset=exp.model.preset,
               cfg=exp.train, progress=progress, checkpoint=checkpoint, resume=resume,
               model_config=model_config)


def _model_extra(exp: Experiment, result: TrainResult, candles, run: Run) -> dict:
    pooled = {}
    if isinstance(candles, dict):       # data.pool: the instruments' calendar
        pooled = {"instruments": list(candles)}
        candles = pd.DataFrame(index=calendar({s: c.index for s, c in candles.items()}))
    return {**result.meta, "data": exp.data.source, "data_config": exp.to_dict()["data"],
            "timeframe": str(timeframe(candles.index)), "run_id": run.id,
            "experiment": exp.to_dict(), "config_id": exp.train_id,
            "from": str(candles.index[0]), "to": str(candles.index[-1]), **pooled}


def _write_checkpoint(run: Run, exp: Experiment, candles: pd.DataFrame):
    def checkpoint(state, partial: TrainResult) -> None:
        meta = model_meta(kind=partial.kind, config=partial.config, spec=partial.spec,
                          normaliser=partial.normaliser, fold=partial.fold,
                          extra=_model_extra(exp, partial, candles, run))
        save_model(run.path, state.best_weights, meta)
        save_training_state(run.path, state)
    return checkpoint


def record_training(run: Run, exp: Experiment, result: TrainResult,
                    candles: pd.DataFrame) -> str:
    """Write a trained model and what describes it into ``run``'s folder; returns its hash."""
    from models.plots import learning_curves_png

    meta = model_meta(kind=result.kind, config=result.config, spec=result.spec,
                      normaliser=result.normaliser, fold=result.fold,
                      extra=_model_extra(exp, result, candles, run))
    weights = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
    digest = save_model(run.path, weights, meta)
    if result.state is not None:
        save_training_state(run.path, result.state)
    run.write_text("history.csv", result.history.to_csv(index=False))
    run.write_bytes("learning_curves.png", learning_curves_png(result.history,
                                                               f"{result.kind}/{result.preset}"))
    run.write_json("metrics.json", {"validation": result.metrics})
    if not isinstance(candles, dict):   # a pooled model's threshold: the instrument's own bars
        _write_validation_bars(run, candles, result.fold)
    return digest


def _write_validation_bars(run: Run, candles: pd.DataFrame, fold: Fold) -> None:
    """The validation bars' candles and the saved model's probabilities, so that the signal
    threshold can be chosen on them later whatever data a backtest reads."""
    predictor = Predictor(load_model(run.path))
    first, last = fold.bounds(candles.index, "val")
    lo = max(0, first - predictor.spec.window - 64)   # enough history for complete windows
    probs = predictor.predict_frame(candles.iloc[lo:last + 1]).iloc[first - lo:]
    frame = candles.iloc[first:last + 1].join(probs)
    atomic_write(run.path / VALIDATION_FILE, frame.to_parquet)


def train_run(exp: Experiment, *, candles: pd.DataFrame | None = None,
              progress: Callable[[dict], None] | None = None,
              command: str | None = None) -> tuple[Run, TrainResult]:
    """Train in the driver and record the run (checkpointed each epoch, resumable)."""
    refuse_rule(exp)
    reg = Registry(exp.runtime.runs_dir)
    if exp.data.pool and "," in exp.data.source and candles is None:
        return _train_pooled(exp, reg, progress, command)
    candles = load_candles(exp) if candles is None else candles
    make_fold(exp, candles.index)   # bad split → error before any folder exists
    run = reg.create("train", model=f"{exp.model.kind}/{exp.model.preset}",
                     data=exp.data.source, fingerprint=fingerprint(candles, exp.dataset),
                     config_id=exp.train_id,
                     command=command, meta={"config": exp.to_dict(),
                                            "from": str(candles.index[0]),
                                            "to": str(candles.index[-1])})
    try:
        with reg.recording(run):
            result = train_model(exp, candles, progress=progress,
                                 checkpoint=_write_checkpoint(run, exp, candles))
            record_training(run, exp, result, candles)
    except AttnbtError:
        if not (run.path / "state.pt").exists():
            reg.discard(run)   # bad input before any epoch: leave nothing behind
        raise
    except KeyboardInterrupt as exc:
        exc.run_id = run.id    # the run is marked interrupted and can be resumed
        raise
    _finish_training(reg, run, result)
    return run, result


def _train_pooled(exp: Experiment, reg: Registry, progress, command) -> tuple[Run, TrainResult]:
    """``data.pool`` with several comma-separated sources: ONE model on all their windows, the
    split cut on their calendar (``data.pool``), each instrument normalised by its own training
    part; saved with every instrument's normaliser. No validation.parquet: a backtest of the
    model on one instrument chooses its threshold on that instrument's validation bars."""
    sources = [s.strip() for s in exp.data.source.split(",") if s.strip()]
    if len(set(sources)) != len(sources):
        raise ConfigError(f"data.source {exp.data.source}: a source is listed twice")
    candles = {s: load_candles(exp.override({"data.source": s, "data.pool": False}))
               for s in sources}
    frames = {str(timeframe(c.index)) for c in candles.values()}
    if len(frames) > 1:
        raise DataError(f"data.pool: the instruments have different timeframes "
                        f"({', '.join(sorted(frames))}); pool bars of one timeframe",
                        rule="mixed timeframes")
    cal = calendar({s: c.index for s, c in candles.items()})
    fold = make_fold(exp, cal)
    run = reg.create("train", model=f"{exp.model.kind}/{exp.model.preset}",
                     data=exp.data.source, fingerprint=pooled_fingerprint(candles, exp.dataset),
                     config_id=exp.train_id, command=command,
                     meta={"config": exp.to_dict(), "from": str(cal[0]), "to": str(cal[-1])})
    try:
        with reg.recording(run):
            result = fit(candles, exp.dataset, fold, kind=exp.model.kind,
                         preset=exp.model.preset, cfg=exp.train, progress=progress,
                         checkpoint=_write_checkpoint(run, exp, candles))
            record_training(run, exp, result, candles)
    except AttnbtError:
        if not (run.path / "state.pt").exists():
            reg.discard(run)
        raise
    _finish_training(reg, run, result)
    return run, result


def _finish_training(reg: Registry, run: Run, result: TrainResult) -> None:
    reg.finish(run, stat_table.summary("train", result.metrics))


def train_task(task: tuple[Experiment, pd.DataFrame | None]) -> TrainResult:
    """A pool task: train one experiment and return the result (the driver records it)."""
    exp, candles = task
    return train_model(exp, candles)


def record_run(exp: Experiment, result: TrainResult, candles: pd.DataFrame,
               command: str | None = None) -> Run:
    """The driver's recording of a training computed elsewhere: folder, files, registry row."""
    reg = Registry(exp.runtime.runs_dir)
    run = reg.create("train", model=f"{exp.model.kind}/{exp.model.preset}",
                     data=exp.data.source, fingerprint=fingerprint(candles, exp.dataset),
                     config_id=exp.train_id, command=command,
                     meta={"config": exp.to_dict(), "from": str(candles.index[0]),
                           "to": str(candles.index[-1])})
    with reg.recording(run):
        record_training(run, exp, result, candles)
    _finish_training(reg, run, result)
    return run


def train_many(experiments: list[Experiment], candles: pd.DataFrame | None = None, *,
               workers: int = 1, on_done: Callable[[int, TrainResult], None] | None = None,
               command: str | None = None) -> list[tuple[Run, TrainResult]]:
    """Train several experiments side by side (a process pool when ``workers`` > 1, one torch
    thread each unless the experiment says otherwise) and record each run in the driver, in
    the order given. The numbers are the same whatever the worker count."""
    from backtests.execution import run_tasks

    for e in experiments:
        refuse_rule(e)
    loaded = [load_candles(e) if candles is None else candles for e in experiments]
    threads = max(e.train.threads for e in experiments) if experiments else 1
    results = run_tasks(train_task, list(zip(experiments, loaded, strict=True)),
                        workers=workers, threads=threads, on_done=on_done)
    return [(record_run(e, r, c, command), r)
            for e, r, c in zip(experiments, results, loaded, strict=True)]


def resume_run(ref: str, *, overrides: dict | None = None, runs_dir: str | Path | None = None,
               progress: Callable[[dict], None] | None = None) -> tuple[Run, TrainResult]:
    """Continue an interrupted training from its last checkpoint.

    Architecture, data and training settings come from the checkpoint; only ``RESUMABLE_KEYS``
    may be overridden (e.g. more epochs, another device); anything else is an error.
    """
    reg = Registry(runs_dir)
    run = reg.resolve(ref, kind="train")
    info = read_meta(run.path)
    exp = experiment_of(info.raw)
    overrides = dict(overrides or {})
    for key in overrides:
        section, name = key.split(".") if "." in key else (None, key)
        full = key if section else next((k for k in RESUMABLE_KEYS if k.endswith("." + key)), key)
        if full not in RESUMABLE_KEYS:
            raise ConfigError(f"{key} cannot change when resuming (the run was trained with "
                              f"its own value); only {', '.join(RESUMABLE_KEYS)} can")
    exp = exp.override(overrides | {"runtime.runs_dir": str(reg.root)})
    if exp.data.pool and "," in exp.data.source:
        raise ConfigError(f"run {run.id} pooled several instruments (data.pool); resuming a "
                          "pooled training is not supported: train it again")
    state = load_training_state(run.path)
    candles = load_candles(exp)
    rec_from, rec_to = info.raw.get("from"), info.raw.get("to")
    if rec_from and (str(candles.index[0]) != rec_from or str(candles.index[-1]) != rec_to):
        raise DataError(f"the data of run {run.id} changed: it now spans {candles.index[0]} → "
                        f"{candles.index[-1]}, the run was trained on {rec_from} → {rec_to}",
                        rule="data changed")
    fold = info.fold or make_fold(exp, candles.index)
    reg.mark(run, "running")
    try:
        with reg.recording(run):
            result = fit(candles, exp.dataset, fold, kind=exp.model.kind, preset=exp.model.preset,
                         cfg=exp.train, progress=progress, resume=state,
                         model_config=info.config,
                         checkpoint=_write_checkpoint(run, exp, candles))
            record_training(run, exp, result, candles)
    except KeyboardInterrupt as exc:
        exc.run_id = run.id
        raise
    _finish_training(reg, run, result)
    return run, result


def evaluate_run(ref: str, source: str | None = None, *, period: str = "test",
                 start: str | None = None, end: str | None = None,
                 runs_dir: str | Path | None = None, candles: pd.DataFrame | None = None,
                 reading: dict | None = None, trust_unhashed: bool = False) -> dict:
    """Out-of-sample metrics of a run, trivial predictors, and the article's figures."""
    scored = score(ref, source, period=period, start=start, end=end, runs_dir=runs_dir,
                   candles=candles, reading=reading, trust_unhashed=trust_unhashed)
    ends, _ = scored.labelled()
    if len(ends) == 0:
        raise DataError("the period holds no labelled windows to evaluate", rule="empty period")
    loaded = scored.predictor.loaded
    results = scored.metrics()
    rules = {k: v for k, v in results.items() if is_rule(k)}
    return {"run": scored.run.id, "model": loaded.meta["config"], "kind": loaded.kind,
            "model_hash": loaded.model_hash, "period": period,
            "start": str(scored.candles.index[ends[0]]), "end": str(scored.candles.index[ends[-1]]),
            "samples": int(len(ends)), "results": results,
            "versus_rules": versus_rules(loaded.name, results["model"], rules),
            "calibration": _calibration_block(scored, results["model"], period),
            "article": ARTICLE_FIGURES}


def _calibration_block(scored, m: dict, period: str) -> dict:
    """What evaluate shows of calibration: the model's ``train.calibration``, its Brier scores on
    the windows evaluated, those of the network's own (uncalibrated) probabilities when the model
    is calibrated, the reliability rows and the diagram (a PNG in the run's folder)."""
    from backtests.reports.figures import reliability_png
    from models.evaluate import brier_scores, reliability_rows

    loaded = scored.predictor.loaded
    ends, y = scored.labelled()
    method = (loaded.meta.get("calibration") or {}).get("method", "none")
    raw = None
    if method != "none":
        own = Predictor(loaded, calibrated=False).predict_frame(
            scored.candles, first=int(ends[0]), last=int(ends[-1]))
        raw = brier_scores(y, own.to_numpy()[ends])
    idx = scored.candles.index
    name = f"reliability-{period}-{idx[ends[0]]:%Y%m%d%H%M}-{idx[ends[-1]]:%Y%m%d%H%M}.png"
    png = reliability_png(m["reliability"], f"{loaded.name} ({scored.run.id}), {period}: "
                                            f"{len(ends):,} windows, train.calibration = {method}")
    path = atomic_write(scored.run.path / name, png)
    return {"method": method, "brier": {k: v for k, v in m.items() if k.startswith("brier")},
            "brier_uncalibrated": raw, "reliability": reliability_rows(m["reliability"]),
            "figure": str(path)}


def predict_run(ref: str, source: str | None, out: Path, *,
                runs_dir: str | Path | None = None, reading: dict | None = None,
                trust_unhashed: bool = False, mkdir: bool = False) -> tuple[Path, pd.DataFrame]:
    """Write per-bar probabilities to CSV or Parquet (by the file suffix); ``out``'s folder
    must exist unless ``mkdir``."""
    from backtests.store.outputs import out_folder

    if out.suffix not in (".csv", ".parquet"):
        raise DataError("the output must end in .csv or .parquet", source=str(out),
                        rule="bad output")
    if out.exists():
        raise DataError("exists already; choose a new file name (nothing is overwritten)",
                        source=str(out), rule="bad output")
    if not mkdir:
        out_folder(out)                 # refused before anything is computed
    scored = score(ref, source, period="all", runs_dir=runs_dir, reading=reading,
                   trust_unhashed=trust_unhashed)
    out_folder(out, mkdir)
    if out.suffix == ".csv":
        atomic_write(out, lambda tmp: scored.probs.to_csv(tmp, index_label="time"))
    else:
        atomic_write(out, scored.probs.to_parquet)
    return out, scored.probs


def attention_plot(ref: str, source: str | None, at: str | None, out: Path | None, *,
                   runs_dir: str | Path | None = None, reading: dict | None = None,
                   trust_unhashed: bool = False, mkdir: bool = False) -> Path:
    """PNG of the attention maps for the window ending at bar ``at`` (default: the last bar).
    ``latest`` is the newest finished attention run (not just the newest train run); ``out``'s
    folder must exist unless ``mkdir``."""
    from backtests.store.outputs import out_folder
    from models.plots import attention_png

    if out is not None and not mkdir:
        out_folder(out)

    reg = Registry(runs_dir)
    if ref == "latest":
        rows = reg.list(kind="train", model="attention/", status="done", limit=1)
        if not rows:
            raise ModelError(f"no finished attention run in {reg.root}; train one with "
                             "model.kind=attention")
        ref = rows[0]["id"]
    run = reg.resolve(ref, kind="train")
    loaded = load_model(run.path, trust_unhashed=trust_unhashed)
    if loaded.kind != "attention":
        raise ModelError(f"run {run.id} is a {loaded.name} model, which has no attention maps; "
                         "give an attention run")
    predictor = Predictor(loaded)
    candles = data_for_model(loaded, source, reading)
    if at is None:
        pos = len(candles) - 1
    else:
        ts = to_utc(at, "the bar time")
        pos = int(candles.index.searchsorted(ts, side="right")) - 1
        if pos < 0 or candles.index[pos] != ts:
            raise DataError(f"no bar at {ts} in this data ({candles.index[0]} → "
                            f"{candles.index[-1]})", rule="unknown bar")
    probs, maps = predictor.attention_at(candles, pos)
    w = predictor.spec.window
    png = attention_png(candles.iloc[pos - w + 1:pos + 1], maps,
                        f"{run.id} at {candles.index[pos]}", probs)
    if out is None:
        out = run.path / f"attention-{candles.index[pos]:%Y%m%d-%H%M}.png"
    else:
        out_folder(out, mkdir)
    return atomic_write(out, png)


__all__ = ["attention_plot", "evaluate_run", "predict_run", "record_training", "resume_run", "train_model",
           "train_run"]

