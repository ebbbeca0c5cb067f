"""What every command shares: consoles, option groups (defined once), config building, formats.

Options default to None, meaning "not given": the defaults live in ``backtests.config``; a given
option becomes an override of its config key (``FLAGS``), applied after ``-c FILE`` and before
any positional ``key=value`` settings.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperCommand, TyperGroup

from backtests.config import FOLDS_KEYS, Experiment, load_toml

console = Console(width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 120)



class _FlagsAsFlags:
    """Help that shows a flag as a flag: typer (0.29) prints a ``<bool>`` type beside every
    boolean flag (--sort/--no-sort, --json, --help) as if it took a value; an empty metavar
    shows none. Only the help changes: parsing is click's."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params


class FlagCommand(_FlagsAsFlags, TyperCommand):
    """A command whose help shows flags as flags."""


class FlagGroup(_FlagsAsFlags, TyperGroup):
    """A command group whose help shows flags as flags."""


class Typer(typer.Typer):
    """``typer.Typer`` whose groups and commands show flags as flags in their help."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cls=FlagGroup, **kwargs)

    def command(self, *args: Any, cls: type | None = None, **kwargs: Any):
        return super().command(*args, cls=cls or FlagCommand, **kwargs)


DATA, STRATEGY, COSTS, TRAIN, PERIOD, OUTPUT = ("Data", "Strategy", "Costs", "Training",
                                                "Period", "Output")

# --- option groups (each defined once, reused by every command that needs it) ---------------------
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Experiment config (TOML); "
                                                "options given on the command line win.",
                                                rich_help_panel=OUTPUT)]
SettingsArg = Annotated[list[str] | None, typer.Argument(
    help="Settings as key=value, e.g. threshold=0.6 or costs.commission=0.00003 "
         "(see `attnbt config keys`).", show_default=False)]
RunsOpt = Annotated[Path | None, typer.Option("--runs-dir", help="Runs folder (default "
                                              "$ATTNBT_RUNS or ./runs).", rich_help_panel=OUTPUT)]
MkdirOpt = Annotated[bool, typer.Option("--mkdir", help="Create --out's folder if it does not "
                                        "exist (without it a missing folder is refused).",
                                        rich_help_panel=OUTPUT)]
RunOpt = Annotated[str, typer.Option("--run", help="Run id, unique prefix (4+ characters), "
                                     "'latest', or folder.")]
TrustUnhashedOpt = Annotated[bool, typer.Option(
    "--trust-unhashed", help="Load a model whose model.json has no model_hash (saved by attnbt "
    "before it recorded hashes): nothing then shows its files are unchanged.")]

DataOpt = Annotated[str | None, typer.Option("--data", help="Data source: sample:EURUSD_H1, a CSV "
                                             "path, yahoo:SYMBOL:INTERVAL, or a planted world "
                                             "sample:planted-KIND[:SEED[:BARS[:PLANTED]]].",
                                             rich_help_panel=DATA)]
TzOpt = Annotated[str | None, typer.Option("--tz", help="Timezone of naive timestamps in the "
                                           "file (default UTC; MT5 exports: the broker's).",
                                           rich_help_panel=DATA)]
SortOpt = Annotated[bool | None, typer.Option("--sort/--no-sort", help="Sort unsorted input "
                                              "instead of refusing it.", show_default=False,
                                              rich_help_panel=DATA)]
PointOpt = Annotated[float | None, typer.Option("--point", help="MT5 point size (price units "
                                                "per spread point); inferred when omitted.",
                                                rich_help_panel=DATA)]
DayfirstOpt = Annotated[bool | None, typer.Option("--dayfirst/--monthfirst", help="Order of "
                                                  "day and month in ambiguous dates.",
                                                  show_default=False, rich_help_panel=DATA)]

InstrumentOpt = Annotated[str | None, typer.Option("--instrument", help="The pair traded, e.g. "
                                                   "USDCHF (default: from the source's name).",
                                                   rich_help_panel=DATA)]
AccountOpt = Annotated[str | None, typer.Option("--account-currency", help="Currency of cash "
                                                "and P&L (default USD); USD/XXX P&L is "
                                                "converted at each bar's close.",
                                                rich_help_panel=DATA)]

PeriodOpt = Annotated[str | None, typer.Option("--period", help="train | val | test | all (the "
                                               "model's split; default test).",
                                               rich_help_panel=PERIOD)]
FromOpt = Annotated[str | None, typer.Option("--from", help="First bar (UTC); overrides "
                                             "--period.", rich_help_panel=PERIOD)]
ToOpt = Annotated[str | None, typer.Option("--to", help="Last bar (UTC); overrides --period.",
                                           rich_help_panel=PERIOD)]

ThresholdOpt = Annotated[str | None, typer.Option("--threshold", help="Minimum p_buy / p_sell "
                                                  "for a signal (default 0.5), or 'auto': chosen "
                                                  "on the model's validation bars.",
                                                  rich_help_panel=STRATEGY)]
# paper trading trades one fixed threshold (`auto` is chosen by a backtest, then given here)
FixedThresholdOpt = Annotated[str | None, typer.Option("--threshold", help="Minimum p_buy / p_sell "
                                                       "for a signal (default 0.5); for the one a "
                                                       "backtest chose with 'auto', give its value.",
                                                       rich_help_panel=STRATEGY)]
ShortOpt = Annotated[bool | None, typer.Option("--short/--no-short", help="Sell signals open "
                                               "shorts (default) or only close longs.",
                                               show_default=False, rich_help_panel=STRATEGY)]
TakeProfitOpt = Annotated[float | None, typer.Option("--take-profit-r", help="Target at k × risk "
                                                     "(default 2); 0 disables.",
                                                     rich_help_panel=STRATEGY)]
MaxHoldOpt = Annotated[int | None, typer.Option("--max-hold", help="Close after this many bars "
                                                "(default 24); 0 disables.",
                                                rich_help_panel=STRATEGY)]
StopBufferOpt = Annotated[float | None, typer.Option("--stop-buffer", help="Stop this far (price) "
                                                     "beyond the signal bar's extreme.",
                                                     rich_help_panel=STRATEGY)]
SizingOpt = Annotated[str | None, typer.Option("--sizing", help="fixed (default) | risk | kelly",
                                               rich_help_panel=STRATEGY)]
UnitsOpt = Annotated[float | None, typer.Option("--units", help="Units per trade, fixed sizing "
                                                "(default 10,000).", rich_help_panel=STRATEGY)]
RiskOpt = Annotated[float | None, typer.Option("--risk", help="Equity fraction at risk, risk "
                                               "sizing (default 0.01).",
                                               rich_help_panel=STRATEGY)]
CashOpt = Annotated[float | None, typer.Option("--cash", help="Starting equity (default "
                                               "100,000).", rich_help_panel=STRATEGY)]

SpreadOpt = Annotated[float | None, typer.Option("--spread", help="Spread in price units "
                                                 "(default: the data's spread column, else "
                                                 "1 pip).", rich_help_panel=COSTS)]
SpreadPipsOpt = Annotated[float | None, typer.Option("--spread-pips", help="Spread in pips.",
                                                     rich_help_panel=COSTS)]
PipOpt = Annotated[float, typer.Option("--pip", help="Pip size for --spread-pips.",
                                       rich_help_panel=COSTS)]
CommissionOpt = Annotated[float | None, typer.Option("--commission", help="Money per unit per "
                                                     "side.", rich_help_panel=COSTS)]
SlippageOpt = Annotated[float | None, typer.Option("--slippage", help="Price units against each "
                                                   "market/stop fill.", rich_help_panel=COSTS)]

# option name → config key, for the overrides and to name the option in error messages
FLAGS = {
    "data": "data.source", "tz": "data.tz", "sort": "data.sort", "point": "data.point",
    "dayfirst": "data.dayfirst", "instrument": "data.instrument",
    "account_currency": "data.account_currency", "period": "backtest.period", "start": "backtest.start",
    "end": "backtest.end", "short": "strategy.allow_short",
    "take_profit_r": "strategy.take_profit_r", "max_hold": "strategy.max_hold",
    "stop_buffer": "strategy.stop_buffer", "sizing": "strategy.sizing", "units": "strategy.units",
    "risk": "strategy.risk_fraction", "cash": "backtest.cash", "spread": "costs.spread",
    "commission": "costs.commission", "slippage": "costs.slippage",
    "random_draws": "backtest.random_draws", "seed": "train.seed",
    "random_seed": "backtest.random_seed", "model": "model.kind", "preset": "model.preset",
    "features": "dataset.features", "labels": "dataset.labels", "window": "dataset.window",
    "epochs": "train.epochs", "batch_size": "train.batch_size", "lr": "train.lr",
    "patience": "train.patience", "device": "train.device", "bf16": "train.bf16",
    "compile_model": "train.compile", "threads": "train.threads",
    "calibration": "train.calibration", "train_frac": "split.train",
    "val_frac": "split.val", "train_end": "split.train_end", "val_end": "split.val_end",
    "embargo": "split.embargo", "runs_dir": "runtime.runs_dir", "workers": "runtime.workers",
    "pool": "data.pool",
}
OPTION_OF = {key: "--" + name.replace("_", "-") for name, key in FLAGS.items()}
OPTION_OF.update({"backtest.start": "--from", "backtest.end": "--to", "data.start": "--from",
                  "data.end": "--to", "split.train": "--train", "split.val": "--val",
                  "train.compile": "--compile", "data.source": "--data",
                  "strategy.threshold": "--threshold", "model.kind": "--model",
                  "data.dayfirst": "--dayfirst/--monthfirst", "data.sort": "--sort",
                  "paper.start": "--from", "paper.max_gap": "--max-gap",
                  "data.pool": "--pool/--no-pool"})
OPTION_OF.update({key: "--" + key.split(".", 1)[1].replace("_", "-") for key in FOLDS_KEYS})


# --- folds (walkforward, sweep) -------------------------------------------------------------------
FOLDS = "Folds"
TrainBarsOpt = Annotated[int, typer.Option("--train-bars", help="Bars in each training part.",
                                           rich_help_panel=FOLDS)]
ValBarsOpt = Annotated[int, typer.Option("--val-bars", help="Bars in each validation part "
                                         "(early stopping, threshold).", rich_help_panel=FOLDS)]
TestBarsOpt = Annotated[int, typer.Option("--test-bars", help="Bars in each test part.",
                                          rich_help_panel=FOLDS)]
StepBarsOpt = Annotated[int | None, typer.Option("--step-bars", help="Bars between folds "
                                                 "(default and minimum: --test-bars).",
                                                 rich_help_panel=FOLDS)]
ExpandingOpt = Annotated[bool, typer.Option("--expanding", help="Every training part starts at "
                                            "the first bar.", rich_help_panel=FOLDS)]
EmbargoBarsOpt = Annotated[int, typer.Option("--embargo-bars", help="Bars left out at the start "
                                             "of each validation and test part.",
                                             rich_help_panel=FOLDS)]
ExecutorOpt = Annotated[str, typer.Option("--executor", help="local (process pool) or ray.",
                                          rich_help_panel=FOLDS)]
AddressOpt = Annotated[str | None, typer.Option("--address", help="Ray cluster: auto or "
                                                "ray://host:10001 (default: a local instance).",
                                                rich_help_panel=FOLDS)]

def overrides_from(options: dict[str, Any], *, rename: dict[str, str] | None = None,
                   exclude: tuple[str, ...] = ()) -> dict:
    """The given (non-None) options as config overrides (``exclude``: options a command uses
    otherwise)."""
    rename = rename or {}
    out = {}
    for name, value in options.items():
        if value is None or name in exclude:
            continue
        key = rename.get(name) or FLAGS.get(name)
        if key is None:
            continue
        out[key] = str(value) if isinstance(value, Path) else value
    return out


def cost_overrides(spread: float | None, spread_pips: float | None, pip: float) -> dict:
    if spread is not None and spread_pips is not None:
        raise typer.BadParameter("give --spread or --spread-pips, not both")
    if not (pip > 0 and pip < 1e6):
        raise typer.BadParameter(f"--pip must be a positive number, not {pip}")
    if spread_pips is not None:
        return {"costs.spread": spread_pips * pip}
    return {"costs.spread": spread} if spread is not None else {}


def threshold_overrides(threshold: str | None) -> dict:
    if threshold is None:
        return {}
    if threshold.strip().lower() == "auto":
        return {"backtest.auto_threshold": True}
    try:
        value = float(threshold)
    except ValueError:
        raise typer.BadParameter(f"--threshold must be a number or 'auto', not {threshold!r}") \
            from None
    return {"strategy.threshold": value, "backtest.auto_threshold": False}


def trading_overrides(options: dict, spread: float | None, spread_pips: float | None,
                      pip: float, threshold: str | None) -> dict:
    """``options`` plus the cost and threshold options (the strategy and cost option groups)."""
    return options | cost_overrides(spread, spread_pips, pip) | threshold_overrides(threshold)


def run_experiment(run: str, runs_dir: Path | None, config: Path | None, options: dict,
                   settings: list[str] | None) -> Experiment:
    """The experiment of applying trained run ``run``: the model's own settings, then the config
    file's, then the options given, then key=value settings."""
    from backtests.store import Registry

    Registry(runs_dir).resolve(run, kind="train")    # a wrong run is refused before torch loads
    from backtests.backtest import backtest_experiment

    layered = (file_settings(config) if config else {}) | options
    return backtest_experiment(run, runs_dir, layered).override(list(settings or []))


def build_experiment(config: Path | None, options: dict, settings: list[str] | None,
                     base: Experiment | None = None) -> Experiment:
    """``base`` (or the defaults), then the config file's settings, then the options given,
    then positional key=value settings: the later wins."""
    exp = base or Experiment()
    if config is not None:
        exp = exp.override(file_settings(config))
    exp = exp.override(options)
    return exp.override(list(settings or []))


def file_settings(path: Path) -> dict:
    """The settings a TOML config file gives, as dotted keys (checked: unknown keys refused)."""
    import tomllib

    load_toml(path)   # refuses unknown sections/keys and bad values, naming the file
    with Path(path).open("rb") as fh:
        d = tomllib.load(fh)
    return {f"{section}.{key}": value for section, values in d.items()
            for key, value in values.items()}


def command_line() -> str:
    return "attnbt " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def fmt(value, pct: bool = False) -> str:
    """A number for a table: 3 decimals, or 1 for percentages; '—' for missing."""
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    if isinstance(value, float) and pct:
        return f"{value:.1f}"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def print_study_start(study: str, outcome) -> None:
    """The first line of a finished walk-forward's or sweep's output: what was computed, or
    that the same settings had already finished (reprinted, not recomputed)."""
    run_id = outcome.run.id
    if outcome.reused:
        console.print(f"{study} {run_id} had already finished with these settings: its recorded "
                      "result (nothing recomputed, no trial added; `attnbt runs rm "
                      f"{run_id}` first to compute it again)", markup=False, soft_wrap=True)
    else:
        console.print(f"{study} {run_id}: {outcome.computed} tasks computed, "
                      f"{outcome.resumed} reused, {len(outcome.failures)} failed, "
                      f"{outcome.seconds:.0f} s", markup=False)
