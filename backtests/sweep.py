"""Sweeps: strategy rules (and model settings) searched walk-forward, the search paid for.

``attnbt sweep`` crosses ``--grid key=v1,v2,...`` axes (the config's override keys). Model-side
keys (sections data, split, dataset, model, train: window, features, labels, preset ...) need a
model trained per value; rule-side keys (strategy, costs, backtest) only re-simulate. Each task is
one (source, model, model setting, seed, fold): it trains once on the fold's training part,
predicts the test part, and runs every rule combination on those predictions with the compiled
simulator (``strategy.fast``). P&L is booked in the account currency as ``attnbt backtest``
books it (``backtests.currency.conversion_of``). Workers compute and return; the driver alone
records.

Per (model, model setting, rule combination) and seed the test parts of all folds are stitched
into one out-of-sample return series, and the seeds are averaged (as ``attnbt walkforward``
does). The table holds every combination with walk-forward statistics and the deflated Sharpe
ratio, whose number of trials includes this sweep's combinations × seeds and every earlier trial
on the same bars and folds (walk-forward runs and sweeps alike). For the best combination Hansen's
SPA test asks whether any combination tried beats buy-and-hold, and then random entries traded
with the best combination's rules; the top combinations are re-run on backtrader (the engine of
record) and must agree with the compiled simulator.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from backtests.analysis.catalog import jsonable
from backtests.config import ConfigError, Experiment, config_id, resolve_key
from backtests.currency import conversion_of, rates
from backtests.execution import check_workers
from backtests.store import Registry, Run
from backtests.walkforward.tasks import (
    FoldPlan,
    Task,
    check_seeds,
    plan_tasks,
    predict_bars,
    train_task,
)
from data import AttnbtError, fingerprint
from models.rules import is_rule
from strategy.fractal import Costs, FractalParams

SCHEMA = 1
TASK_DIR = "tasks"
STITCHED_KIND = "walkforward-stitched"       # shared with walk-forward runs: one search budget
MODEL_SECTIONS = ("data", "split", "dataset", "model", "train")
RULE_SECTIONS = ("strategy", "costs", "backtest")
RANDOM_DRAWS = 20
AGREE_TOLERANCE = 1e-6          # equity, relative to cash: compiled vs backtrader
# The most (model, model setting, rule combination) series one sweep may hold. Planning alone
# costs about 3 ms per combination on the 2-core reference machine (10,000 plan in about 30 s),
# each is simulated on every fold and seed and kept as a trial; a bigger search is refused
# before anything is built: split it into sweeps of fewer axes (each still pays for the others).
MAX_COMBINATIONS = 10_000


# --- the grid ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Grid:
    """Axes of a sweep: ``section.field`` → values (typed), split by what they need."""

    model_axes: dict[str, list]
    rule_axes: dict[str, list]

    @property
    def axes(self) -> dict[str, list]:
        return {**self.model_axes, **self.rule_axes}

    def model_combos(self) -> list[dict]:
        return _product(self.model_axes)

    def rule_combos(self) -> list[dict]:
        return _product(self.rule_axes)

    @property
    def size(self) -> int:
        """Model settings × rule combinations, counted without building any."""
        return math.prod(len(v) for v in self.axes.values())


def _product(axes: dict[str, list]) -> list[dict]:
    keys = list(axes)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(
        *(axes[k] for k in keys))]


def parse_grid(items: list[str], base: Experiment) -> Grid:
    """``["threshold=0.5,0.6", "stop=bar,atr:1.5"]`` → a Grid; every value is checked by
    building the experiment it gives, so a bad one fails here with its key named."""
    counts = {item.partition("=")[0].strip(): item.partition("=")[2].count(",") + 1
              for item in items}
    check_size(math.prod(counts.values()), " × ".join(f"{n} {k}" for k, n in counts.items()))
    model_axes: dict[str, list] = {}
    rule_axes: dict[str, list] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip() or not text.strip():
            raise ConfigError(f"--grid {item!r}: give key=value1,value2,... e.g. "
                              "threshold=0.5,0.6,0.7")
        section, name = resolve_key(key.strip())
        full = f"{section}.{name}"
        if section not in MODEL_SECTIONS + RULE_SECTIONS or full in ("data.source",
                                                                      "model.kind"):
            raise ConfigError(f"--grid {full}: not a sweepable setting (use --data for sources, "
                              "--models for networks; runtime settings do not change results)")
        if full in model_axes or full in rule_axes:
            raise ConfigError(f"--grid {full} is given twice; list all its values once")
        raw = [v.strip() for v in text.split(",")]
        if any(not v for v in raw):
            raise ConfigError(f"--grid {item!r}: an empty value")
        values = []
        for v in raw:
            exp = base.override({full: v})
            values.append(getattr(getattr(exp, section), name))
        if len(set(map(repr, values))) != len(values):
            raise ConfigError(f"--grid {full}: a value is listed twice")
        (model_axes if section in MODEL_SECTIONS else rule_axes)[full] = values
    return Grid(model_axes, rule_axes)


def check_size(n: int, what: str) -> None:
    """Refuse a sweep of more than ``MAX_COMBINATIONS`` combinations (``what``: its factors)."""
    if n > MAX_COMBINATIONS:
        raise ConfigError(f"{n:,} combinations ({what}): a sweep holds at most "
                          f"{MAX_COMBINATIONS:,}; give fewer --grid values or models")


def combo_label(combo: dict) -> str:
    """``stop=atr:1.5 take_profit_r=2`` (leaf names, in axis order)."""
    return " ".join(f"{k.split('.', 1)[1]}={_fmt(v)}" for k, v in combo.items()) or "(base)"


def _fmt(v) -> str:
    return repr(v) if isinstance(v, str) and not v else (f"{v:g}" if isinstance(v, float)
                                                         else str(v))


# --- what a sweep is asked to do -----------------------------------------------------------------
@dataclass
class Sweep:
    base: Experiment
    source: str
    models: list[tuple[str, str]]
    seeds: list[int]
    grid: Grid
    plan: FoldPlan = field(default_factory=FoldPlan)
    executor: str = "local"
    address: str | None = None
    workers: int = 1
    top: int = 3
    heatmap: tuple[str, str] | None = None
    device: str = "auto"        # auto | cpu | cuda: cuda trains vmapped ensembles

    def __post_init__(self) -> None:
        check_size(len(self.models) * self.grid.size, " × ".join(
            [f"{len(self.models)} models"]
            + [f"{len(v)} {k.split('.', 1)[1]}" for k, v in self.grid.axes.items()]))
        check_seeds(self.seeds)
        check_workers(self.workers, here=self.address is None)

    def settings(self) -> dict:
        return {"source": self.source, "models": [f"{k}/{p}" for k, p in self.models],
                "seeds": self.seeds, "folds": self.plan.to_dict(),
                "grid": {k: v for k, v in self.grid.axes.items()}}


@dataclass(frozen=True)
class RuleSet:
    """The simulation side of one rule combination (built once in the driver)."""

    params: FractalParams
    costs: Costs
    cash: float


def rule_sets(base: Experiment, combos: list[dict]) -> tuple[RuleSet, ...]:
    """Each combination applied to ``base`` (validated, so a bad one fails before any task)."""
    out = []
    for combo in combos:
        e = base.override(combo)
        out.append(RuleSet(e.strategy, e.costs, e.backtest.cash))
    return tuple(out)


@dataclass(frozen=True)
class SweepTask:
    """One (model, model setting, seed, fold) and the rule combinations run on its predictions."""

    task: Task
    model_combo: dict
    rule_combos: tuple[dict, ...]
    rules: tuple[RuleSet, ...] = ()     # what each combination sets (same order), prebuilt

    @property
    def id(self) -> str:
        return config_id({"task": self.task.id, "rules": [jsonable(c) for c in
                                                           self.rule_combos]})

    @property
    def model_key(self) -> tuple[str, str]:
        """(model, model setting as canonical JSON): the series this task belongs to."""
        return self.task.model, json.dumps(jsonable(self.model_combo), sort_keys=True)

    @property
    def label(self) -> str:
        extra = f" {combo_label(self.model_combo)}" if self.model_combo else ""
        return f"{self.task.model}{extra} seed {self.task.seed} fold {self.task.fold_no}"


@dataclass
class SweepPlan:
    tasks: list[SweepTask]
    candles: pd.DataFrame
    rule_combos: list[dict]
    model_combos: list[dict]
    config_id: str
    stitched_fingerprint: str
    resume: Run | None
    done: set[str]
    finished: Run | None = None     # a finished sweep of the same config: reprinted, not redone

    @property
    def n_combinations(self) -> int:
        return len(self.models_x_combos)

    @property
    def models_x_combos(self) -> list[tuple[str, dict, dict]]:
        names = sorted({t.model_key for t in self.tasks})
        return [(m, json.loads(mc), rc) for m, mc in names for rc in self.rule_combos]


def plan(sw: Sweep) -> SweepPlan:
    """Load the data, cut the folds, list the tasks; find an unfinished sweep to resume."""
    from backtests.execution import EXECUTORS
    from backtests.workflows import load_candles

    if sw.executor not in EXECUTORS:
        raise ConfigError(f"--executor: unknown executor {sw.executor!r}; choose "
                          f"{' or '.join(EXECUTORS)}")
    candles = load_candles(sw.base.override({"data.source": sw.source}))
    fp = fingerprint(candles)
    rule_combos = sw.grid.rule_combos()
    rules = rule_sets(sw.base, rule_combos)   # rule keys are never model keys: same for all
    tasks = []
    for mc in sw.grid.model_combos():
        base = sw.base.override(mc)
        for t in plan_tasks(base, sw.source, candles, sw.models, sw.seeds, sw.plan, fp,
                            auto_threshold=False):
            tasks.append(SweepTask(t, mc, tuple(rule_combos), rules))
    cid = config_id({"sweep": jsonable(sw.settings()), "tasks": sorted(t.id for t in tasks)})
    stitched_fp = config_id({"data": fp, "folds": sw.plan.to_dict()})[:16]
    reg = Registry(sw.base.runtime.runs_dir)
    finished = reg.finished("sweep", cid)
    if finished is not None and (finished.path / "sweep.json").is_file():
        return SweepPlan(tasks, candles, rule_combos, sw.grid.model_combos(), cid, stitched_fp,
                         None, {t.id for t in tasks}, finished)
    resume = reg.unfinished("sweep", cid)
    done = set() if resume is None else {f.stem for f in (resume.path / TASK_DIR).glob("*.json")}
    return SweepPlan(tasks, candles, rule_combos, sw.grid.model_combos(), cid, stitched_fp,
                     resume, done & {t.id for t in tasks})


def trials_added(p: SweepPlan, sw: Sweep) -> int:
    """Trials a sweep appends: one per (model, model setting, rule combination, seed) series;
    none when the same sweep has finished (it is reprinted, not recomputed)."""
    return 0 if p.finished is not None else p.n_combinations * len(sw.seeds)


# --- one task (a worker runs it) -----------------------------------------------------------------
def run_rules(bars: pd.DataFrame, probs: pd.DataFrame, rules: tuple[RuleSet, ...],
              bar_rates: np.ndarray | None = None) -> list[dict]:
    """Every rule combination on the same bars and predictions (compiled simulator): per-bar
    returns, final equity, trades and winning trades (net of costs, as the trades frame has it).
    ``bar_rates``: account currency per unit of quote currency at each bar (None: the same)."""
    from backtests.simulation import check_costs
    from strategy.engine import Booking
    from strategy.fast import (
        F_CM_IN,
        F_CM_OUT,
        F_PIN,
        F_POUT,
        F_SIZE,
        I_DIR,
        I_ENTRY,
        I_EXIT,
        prepare,
        run_prepared,
    )

    prep = prepare(bars, probs, bar_rates)
    book = Booking(bars, bar_rates)
    out = []
    for rule in rules:
        check_costs(bars, rule.costs)
        res = run_prepared(prep, rule.params, rule.costs, rule.cash, candles=bars)
        tf, ti = res.trades_float, res.trades_int
        move = book.move(ti[:, I_ENTRY], tf[:, F_PIN], ti[:, I_EXIT], tf[:, F_POUT])
        pnl = move * ti[:, I_DIR] * tf[:, F_SIZE] - (tf[:, F_CM_IN] + tf[:, F_CM_OUT])
        values = res.equity
        prev = np.concatenate([[rule.cash], values[:-1]])
        out.append({"returns": ((values - prev) / prev).tolist(), "final": float(values[-1]),
                    "n_trades": int(len(tf)), "wins": int((pnl > 0).sum())})
    return out


def compute_sweep_task(payload: tuple[SweepTask, pd.DataFrame]) -> dict:
    """Train the task's model, predict its test part, run every rule combination."""
    st, candles = payload
    return evaluate_sweep_task(st, candles, train_task(st.task, candles))


def evaluate_sweep_task(st: SweepTask, candles: pd.DataFrame, trained) -> dict:
    """Predict a trained task's test part and run every rule combination on it."""
    task = st.task
    t_first, t_last = task.fold.bounds(candles.index, "test")
    probs = predict_bars(trained, candles, t_first, t_last).iloc[t_first:t_last + 1]
    bars = candles.iloc[t_first:t_last + 1]
    combos = run_rules(bars, probs, st.rules, rates(bars, conversion_of(task.exp.data)))
    return {"task": {**task.describe(), "sweep_task": st.id,
                     "model_combo": jsonable(st.model_combo)},
            "first": int(t_first), "last": int(t_last),
            "times": [t.isoformat() for t in bars.index],
            "probs": probs.to_numpy().tolist(), "combos": combos,
            "train": {k: trained.metrics.get(k) for k in ("best_epoch", "epochs_run",
                                                          "seconds")}}


# --- the driver ---------------------------------------------------------------------------------
@dataclass
class Outcome:
    run: Run
    table: pd.DataFrame
    summary: dict
    failures: list[dict]
    resumed: int
    computed: int
    seconds: float
    reused: bool = False            # the sweep had finished before: nothing was computed


def recorded(run_: Run, p: SweepPlan, t0: float) -> Outcome:
    """The outcome of a finished sweep, read back from its run folder (no recompute)."""
    payload = run_.read_json("sweep.json")
    table = pd.read_csv(run_.path / "table.csv", keep_default_na=False, na_values=[""])
    summary = Registry(run_.root).get(run_.id)["summary"]
    return Outcome(run_, table, summary, payload.get("failures", []), len(p.tasks), 0,
                   time.perf_counter() - t0, reused=True)


def run(sw: Sweep, *, command: str | None = None,
        progress: Callable[[str], None] | None = None) -> Outcome:
    """Compute the missing tasks, then aggregate and record everything."""
    t0 = time.perf_counter()
    say = progress or (lambda _: None)
    p = plan(sw)
    if p.finished is not None:
        say(f"sweep {p.finished.id} with these settings has finished: its recorded result "
            "follows (nothing recomputed, no trial added)")
        return recorded(p.finished, p, t0)
    reg = Registry(sw.base.runtime.runs_dir)
    if p.resume is not None:
        run_ = p.resume
        reg.mark(run_, "running")
        say(f"resuming sweep {run_.id}: {len(p.done)} of {len(p.tasks)} tasks done")
    else:
        run_ = reg.create("sweep", model=",".join(f"{k}/{pr}" for k, pr in sw.models),
                          data=sw.source, config_id=p.config_id, command=command,
                          fingerprint=p.stitched_fingerprint,
                          meta={"schema": SCHEMA, "settings": jsonable(sw.settings()),
                                "config": sw.base.to_dict()})
    try:
        with reg.recording(run_):
            results, failures = _compute(sw, p, run_, say)
            say(f"{len(p.rule_combos)} rule combinations × {len(results)} tasks simulated; "
                "aggregating")
            table, summary = record(run_, sw, p, results, failures, reg, say)
    except KeyboardInterrupt as exc:
        exc.hint = f"sweep {run_.id} keeps its finished tasks; the same command resumes it"
        raise
    reg.finish(run_, summary)
    computed = sum(1 for t in p.tasks if t.id not in p.done)
    return Outcome(run_, table, summary, failures, len(p.done), computed,
                   time.perf_counter() - t0)


def _compute(sw: Sweep, p: SweepPlan, run_: Run, say) -> tuple[dict[str, dict], list[dict]]:
    from backtests.execution import TaskFailure, local_device, make_executor, ray_task_executor

    results = {t.id: run_.read_json(f"{TASK_DIR}/{t.id}.json") for t in p.tasks if t.id in p.done}
    todo = [t for t in p.tasks if t.id not in p.done]
    failures: list[dict] = []
    n_total, counter = len(p.tasks), [len(p.done)]

    def done(i: int, result) -> None:
        st = todo[i]
        counter[0] += 1
        if isinstance(result, TaskFailure):
            failures.append({"task": {**st.task.describe(),
                                      "model_combo": jsonable(st.model_combo)},
                             "error": str(result.error)})
            say(f"[{counter[0]}/{n_total}] {st.label}: FAILED ({result.error})")
            return
        results[st.id] = result
        run_.write_json(f"{TASK_DIR}/{st.id}.json", result)
        best = max(c["final"] for c in result["combos"])
        secs = result["train"]["seconds"] or 0
        say(f"[{counter[0]}/{n_total}] {st.label}: trained in {secs:.1f} s, "
            f"{len(result['combos'])} rule combinations, best final equity {best:,.0f}")

    if sw.executor == "ray" and todo:
        ex = ray_task_executor(workers=sw.workers, address=sw.address, device=sw.device)
        gpu = ex.gpus_per_task > 0
        say(f"computing {len(todo)} tasks on Ray ({sw.address or 'local instance'}"
            f"{f', {ex.gpus_per_task} GPU a task' if gpu else ''})")
        with ex:
            ex.map(compute_sweep_task_cuda if gpu else compute_sweep_task,
                   [(t, p.candles) for t in todo], on_done=done, catch=(AttnbtError,))
    elif local_device(sw.device) == "cuda" and todo:
        _compute_ensembles(todo, p.candles, done, say)
    elif todo:
        with make_executor(sw.executor, workers=sw.workers, threads=1) as ex:
            ex.map(compute_sweep_task, [(t, p.candles) for t in todo], on_done=done,
                   catch=(AttnbtError,))
    return results, failures


def _compute_ensembles(todo: list[SweepTask], candles: pd.DataFrame, done, say) -> None:
    """GPU: the (seed × fold) models of one (model, model setting) train together as a vmapped
    ensemble; predictions and rule combinations follow in the driver."""
    from backtests.execution import TaskFailure
    from backtests.walkforward.tasks import train_in_ensembles

    tasks = [st.task for st in todo]
    keys = {id(st.task): st.model_key[1] for st in todo}
    for i, result in train_in_ensembles(tasks, lambda t: candles,
                                        lambda t: (t.kind, t.preset, keys[id(t)]), say):
        try:
            if isinstance(result, BaseException):
                raise result
            done(i, evaluate_sweep_task(todo[i], candles, result))
        except AttnbtError as exc:
            done(i, TaskFailure(i, exc))


def compute_sweep_task_cuda(payload: tuple[SweepTask, pd.DataFrame]) -> dict:
    """``compute_sweep_task`` training on the worker's GPU (a Ray task given a share of one)."""
    st, candles = payload
    task = replace(st.task, exp=st.task.exp.override({"train.device": "cuda"}))
    return compute_sweep_task((replace(st, task=task), candles))


# --- aggregation -----------------------------------------------------------------------------
TABLE_COLUMNS = ("rank", "model", "model_setting", "rules", "sharpe", "total_return_pct",
                 "max_drawdown_pct", "n_trades", "win_rate_pct", "psr", "dsr", "dsr_trials",
                 "seeds", "folds", "n_obs")


def _series(results: list[dict], k: int, cash: float) -> pd.Series:
    parts = sorted(results, key=lambda r: r["times"][0])
    times = pd.DatetimeIndex([t for r in parts for t in r["times"]])
    return pd.Series([x for r in parts for x in r["combos"][k]["returns"]], index=times)


def aggregate(p: SweepPlan, sw: Sweep, results: dict[str, dict], reg: Registry,
              run_id: str) -> tuple[pd.DataFrame, dict[tuple, pd.Series]]:
    """The table of every combination (walk-forward statistics, PSR, DSR) and each one's
    seed-average stitched returns; adds one trial per stitched (combination, seed) series."""
    from backtests.analysis import significance as sig
    from backtests.analysis.performance import compute_stats

    cash = sw.base.backtest.cash
    groups: dict[tuple[str, str], dict[int, list[dict]]] = {}
    for t in p.tasks:
        if t.id in results:
            groups.setdefault(t.model_key, {}).setdefault(t.task.seed, []).append(
                results[t.id])
    rows, series = [], {}
    have = {t["config_id"] for t in reg.trials(fingerprint=p.stitched_fingerprint,
                                               kind=STITCHED_KIND) if t["run_id"] == run_id}
    per_combo: list[tuple] = []
    for (model, mc), by_seed in groups.items():
        for k, rc in enumerate(p.rule_combos):
            seed_series = {s: _series(rs, k, cash) for s, rs in by_seed.items()}
            for s, ser in seed_series.items():
                cid = config_id({"sweep": p.config_id, "model": model, "model_combo": mc,
                                 "rules": jsonable(rc), "seed": s})
                if cid in have:
                    continue
                reg.add_trial(run_id=run_id, kind=STITCHED_KIND, config_id=cid,
                              fingerprint=p.stitched_fingerprint,
                              note=f"sweep {model} {combo_label(json.loads(mc))} "
                                   f"{combo_label(rc)} seed {s}",
                              **sig.moments(ser.to_numpy()))   # NaN stored as NULL
            per_combo.append((model, mc, k, rc, by_seed, seed_series))
    trial_srs = [t["sharpe_per_bar"] for t in reg.trials(fingerprint=p.stitched_fingerprint,
                                                         kind=STITCHED_KIND)]
    for model, mc, k, rc, by_seed, seed_series in per_combo:
        avg = pd.concat(list(seed_series.values()), axis=1).mean(axis=1)
        equity = cash * (1 + avg).cumprod()
        stats = compute_stats(equity, pd.DataFrame({"entry_time": [], "exit_time": [],
                                                    "pnl_net": [], "bars_held": []}),
                              initial_equity=cash)
        ds = sig.dsr_from_trials(avg.to_numpy(), trial_srs)
        n_trades = sum(r["combos"][k]["n_trades"] for rs in by_seed.values() for r in rs)
        wins = sum(r["combos"][k]["wins"] for rs in by_seed.values() for r in rs)
        folds = {r["task"]["fold"] for rs in by_seed.values() for r in rs}
        axes = {k.split(".", 1)[1]: v for k, v in {**json.loads(mc), **rc}.items()}
        rows.append({"model": model, "model_setting": combo_label(json.loads(mc)),
                     "rules": combo_label(rc), **axes, "sharpe": stats["sharpe"],
                     "total_return_pct": stats["total_return_pct"],
                     "max_drawdown_pct": stats["max_drawdown_pct"],
                     "n_trades": n_trades / len(by_seed),
                     "win_rate_pct": 100 * wins / n_trades if n_trades else float("nan"),
                     "psr": ds["psr"], "dsr": ds["dsr"], "dsr_trials": ds["dsr_trials"],
                     "seeds": len(by_seed), "folds": len(folds), "n_obs": ds["n_obs"],
                     "_key": (model, mc, k)})
        series[(model, mc, k)] = avg
    table = pd.DataFrame(rows)
    if len(table):
        table = table.sort_values(["sharpe", "total_return_pct"], ascending=False,
                                  na_position="last", kind="stable").reset_index(drop=True)
        table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table, series


def benchmarks(p: SweepPlan, sw: Sweep, results: dict[str, dict], key: tuple,
               index: pd.DatetimeIndex) -> dict[str, pd.Series]:
    """Per-bar returns on the same stitched test bars: buy-and-hold, and random entries traded
    with the rules of ``key``'s combination (the mean of ``RANDOM_DRAWS`` draws per fold and
    seed, each with as many signals as the model gave there, at random bars and sides)."""
    from backtests.analysis.baselines import buy_and_hold_equity
    from strategy.fast import prepare, run_prepared, signal_arrays

    model, mc, k = key
    exp = sw.base.override(json.loads(mc)).override(p.rule_combos[k])
    cash = exp.backtest.cash
    bh_parts, rnd_parts = [], []
    mine = [results[t.id] for t in p.tasks if t.id in results and t.model_key == (model, mc)]
    by_fold: dict[int, list[dict]] = {}
    for r in mine:
        by_fold.setdefault(r["task"]["fold"], []).append(r)
    rng = np.random.default_rng(0)
    for fold in sorted(by_fold):
        rs = by_fold[fold]
        bars = p.candles.iloc[rs[0]["first"]:rs[0]["last"] + 1]
        bar_rates = rates(bars, conversion_of(exp.data, sw.source))
        eq, _ = buy_and_hold_equity(bars, exp.costs, cash, rates=bar_rates)
        prev = np.concatenate([[cash], eq.to_numpy()[:-1]])
        bh_parts.append(pd.Series(eq.to_numpy() / prev - 1, index=bars.index))
        draws = []
        for r in rs:
            probs = np.asarray(r["probs"], dtype=float)
            sig_count = int(np.count_nonzero(signal_arrays(probs, exp.strategy.threshold)[0]))
            for _ in range(RANDOM_DRAWS):
                fake = np.tile([1.0, 0.0, 0.0], (len(bars), 1))
                at = rng.choice(len(bars), size=min(sig_count, len(bars)), replace=False)
                side = rng.integers(1, 3, size=len(at))
                fake[at] = 0.0
                fake[at, side] = 1.0
                prep = prepare(bars, pd.DataFrame(fake, index=bars.index,
                                                  columns=["p_none", "p_buy", "p_sell"]),
                               bar_rates)
                res = run_prepared(prep, exp.strategy, exp.costs, cash, trades=False,
                                   candles=bars)
                prev = np.concatenate([[cash], res.equity[:-1]])
                draws.append(res.equity / prev - 1)
        rnd_parts.append(pd.Series(np.mean(draws, axis=0), index=bars.index))
    bh = pd.concat(bh_parts).reindex(index)
    rnd = pd.concat(rnd_parts).reindex(index)
    return {"buy_and_hold": bh, "random_entries": rnd}


def backtrader_check(p: SweepPlan, sw: Sweep, results: dict[str, dict], key: tuple) -> dict:
    """Re-run a combination on backtrader for every task behind it; the largest equity
    difference from the compiled simulator (relative to cash), whether they agree, and the
    money its trades paid in costs (backtrader's trades; per seed over all folds)."""
    from backtests.reports.backtest import costs_charged
    from backtests.simulation import run_backtest
    from backtests.walkforward.results import charged_per_seed

    model, mc, k = key
    exp = sw.base.override(json.loads(mc)).override(p.rule_combos[k])
    cash = exp.backtest.cash
    conv = conversion_of(exp.data, sw.source)
    worst, n, other_trades, charged, seeds = 0.0, 0, 0, [], set()
    for t in p.tasks:
        r = results.get(t.id)
        if r is None or t.model_key != (model, mc):
            continue
        bars = p.candles.iloc[r["first"]:r["last"] + 1]
        probs = pd.DataFrame(np.asarray(r["probs"], dtype=float), index=bars.index,
                             columns=["p_none", "p_buy", "p_sell"])
        bt = run_backtest(bars, probs, exp.strategy, exp.costs, cash, rates=rates(bars, conv))
        fast = cash * np.cumprod(1 + np.asarray(r["combos"][k]["returns"]))
        worst = max(worst, float(np.max(np.abs(bt.equity.to_numpy() - fast))) / cash)
        other_trades += len(bt.trades) != r["combos"][k]["n_trades"]
        charged.append(costs_charged(bars, exp.costs, bt.trades))
        seeds.add(t.task.seed)
        n += 1
    return {"tasks": n, "max_equity_diff": worst, "tasks_with_other_trades": other_trades,
            "agree": worst <= AGREE_TOLERANCE and other_trades == 0,
            "charged_per_seed": charged_per_seed(charged, max(len(seeds), 1))}


def record(run_: Run, sw: Sweep, p: SweepPlan, results: dict[str, dict], failures: list[dict],
           reg: Registry, say) -> tuple[pd.DataFrame, dict]:
    """Write table.csv, sweep.json, heatmap and report; returns (table, registry summary)."""
    from backtests.analysis import significance as sig
    from backtests.reports.sweep import heatmap_frame, render_heatmap_png, render_html

    table, series = aggregate(p, sw, results, reg, run_.id)
    if table.empty:
        raise AttnbtError("no task of the sweep finished: " + "; ".join(
            f["error"] for f in failures[:3]))
    top = []
    for _, row in table.head(sw.top).iterrows():
        check = backtrader_check(p, sw, results, row["_key"])
        top.append({"rank": int(row["rank"]), "model": row["model"],
                    "model_setting": row["model_setting"], "rules": row["rules"], **check})
        say(f"backtrader re-run of #{int(row['rank'])} ({row['rules']}): "
            f"{'agrees' if check['agree'] else 'DIFFERS'} (max equity difference "
            f"{check['max_equity_diff']:.1e} of cash over {check['tasks']} tasks)")
    best_key = table.iloc[0]["_key"]
    best = series[best_key]
    bench = benchmarks(p, sw, results, best_key, best.index)
    all_series = pd.concat([series[k] for k in table["_key"]], axis=1).reindex(best.index)
    spa = {}
    for name, b in bench.items():
        ok = b.notna() & all_series.notna().all(axis=1)
        spa[name] = sig.spa_test(b[ok].to_numpy(), all_series[ok].to_numpy())
    public = table.drop(columns=["_key"])
    run_.write_text("table.csv", public.to_csv(index=False))
    hx, hy = sw.heatmap or _default_axes(sw.grid)
    heat = None
    if hx and hy:
        values = {k.split(".", 1)[1]: v for k, v in sw.grid.axes.items()}
        hx, hy = hx.split(".")[-1], hy.split(".")[-1]
        heat = heatmap_frame(public, hx, hy, x_values=values[hx], y_values=values[hy])
    heat_png = render_heatmap_png(heat, hx, hy) if heat is not None else None
    if heat_png is not None:
        run_.write_bytes("heatmap.png", heat_png)
    equity = pd.DataFrame({"best": sw.base.backtest.cash * (1 + best).cumprod(),
                           **{k: sw.base.backtest.cash * (1 + v.fillna(0)).cumprod()
                              for k, v in bench.items()}})
    equity.index.name = "time"
    run_.write_text("equity.csv", equity.to_csv())
    best_row = public.iloc[0].to_dict()
    best_check = top[0] if top else backtrader_check(p, sw, results, best_key)
    is_rule_row = public["model"].map(is_rule)
    best_rule = public[is_rule_row].iloc[0].to_dict() if is_rule_row.any() else None
    best_net = public[~is_rule_row].iloc[0].to_dict() if (~is_rule_row).any() else None
    payload = jsonable({
        "schema": SCHEMA, "run": run_.id, "settings": sw.settings(),
        "combinations": p.n_combinations, "rule_combinations": len(p.rule_combos),
        "model_combinations": len(p.model_combos), "tasks": len(p.tasks),
        "tasks_done": len(results), "trials_added": trials_added(p, sw),
        "best": best_row, "best_network": best_net, "best_rule": best_rule, "spa": spa, "backtrader": top, "failures": failures,
        "heatmap": {"x": hx, "y": hy} if heat is not None else None,
        "strategy": sw.base.strategy.to_dict(), "costs": sw.base.costs.to_dict(),
        "costs_charged": costs_of(p, sw, results, best_key, best_check),
        "random_draws": RANDOM_DRAWS,
    })
    payload["verdict"] = verdict(payload)
    run_.write_json("sweep.json", payload)
    run_.write_text("report.html", render_html(payload, public, heat_png, equity))
    summary = {"combinations": p.n_combinations, "tasks": len(results),
               "failed": len(failures), "best": f"{best_row['model']} {best_row['rules']}",
               "best_sharpe": best_row["sharpe"], "best_dsr": best_row["dsr"],
               "spa_p_buy_and_hold": spa["buy_and_hold"]["p_value"],
               "spa_p_random": spa["random_entries"]["p_value"],
               "backtrader_agrees": all(t["agree"] for t in top)}
    return public, jsonable(summary)


def costs_of(p: SweepPlan, sw: Sweep, results: dict[str, dict], key: tuple,
             check: dict) -> dict:
    """The costs the combination ``key`` charged on the test bars, as the backtest report
    states them, with the account currency, the P&L conversion, the grid's cost axes, and the
    money its trades paid (``check``: its backtrader re-run)."""
    from backtests.walkforward.results import costs_block

    model, mc, k = key
    exp = sw.base.override(json.loads(mc)).override(p.rule_combos[k])
    spans = sorted({(r["first"], r["last"]) for r in results.values()})
    bars = pd.concat([p.candles.iloc[a:b + 1] for a, b in spans])
    label = " ".join(x for x in (model, combo_label(json.loads(mc)) if json.loads(mc) else "",
                                 combo_label(p.rule_combos[k])) if x)
    return {**costs_block(bars, exp.costs, conversion_of(exp.data, sw.source)),
            "combination": label,
            "varied_by_grid": [a for a in sw.grid.axes if a.startswith("costs.")],
            **check["charged_per_seed"]}


def _default_axes(grid: Grid) -> tuple[str | None, str | None]:
    multi = [k for k, v in grid.axes.items() if len(v) > 1]
    return (multi[0], multi[1]) if len(multi) >= 2 else (None, None)


def versus_best_rule(payload: dict) -> str:
    """The best network combination against the best rule-baseline combination (the null a
    trivial rule sets), or a note that the sweep ran no rule baseline."""
    net, rule = payload.get("best_network"), payload.get("best_rule")
    if rule is None:
        return ("No rule baseline was swept (add rule/newhl to --models): nothing here shows "
                "the networks beat a trivial rule.")
    if net is None:
        return "Only rule baselines were swept."

    def num(row, key: str, fmt: str) -> str:
        v = row.get(key)
        return "n/a" if v is None or v != v else format(v, fmt)

    a, b = net.get("sharpe"), rule.get("sharpe")
    diff = f" (Sharpe {a - b:+.2f})" if a is not None and b is not None and a == a \
        and b == b else ""
    return (f"Best network {net['model']} {net['rules']}: Sharpe {num(net, 'sharpe', '.2f')}, "
            f"return {num(net, 'total_return_pct', '+.2f')} % vs best rule baseline "
            f"{rule['model']} {rule['rules']}: Sharpe {num(rule, 'sharpe', '.2f')}, return "
            f"{num(rule, 'total_return_pct', '+.2f')} %{diff}.")


def verdict(payload: dict) -> str:
    """One paragraph: the best combination, how sure, what the search cost."""
    b = payload["best"]
    spa = payload["spa"]
    alpha = 0.05

    def num(x, fmt):
        return "n/a" if x is None else format(x, fmt)

    text = (f"Best of {payload['combinations']} combinations: {b['model']} "
            f"{b['model_setting'] + ' ' if b['model_setting'] != '(base)' else ''}{b['rules']}"
            f" — Sharpe {num(b['sharpe'], '.2f')} annualised, return "
            f"{num(b['total_return_pct'], '+.2f')} % out of sample, DSR {num(b['dsr'], '.2f')} "
            f"over {b['dsr_trials']} trials. ")
    dsr = b["dsr"]
    text += ("It survives the deflation for every trial on these bars (DSR > 0.95). "
             if dsr is not None and dsr > 1 - alpha else
             "After paying for the search (DSR ≤ 0.95) it is not significant. ")
    for name, label in (("buy_and_hold", "buy-and-hold"), ("random_entries", "random entries")):
        pv = spa[name]["p_value"]
        text += (f"SPA vs {label}: p = {num(pv, '.2f')} ("
                 + ("some combination beats it" if pv is not None and pv < alpha else
                    "no combination shown to beat it") + "). ")
    text += versus_best_rule(payload) + " "
    agree = all(t["agree"] for t in payload["backtrader"])
    text += ("The top combinations re-run on backtrader agree with the compiled simulator."
             if agree else "WARNING: a top combination re-run on backtrader differs from the "
             "compiled simulator.")
    return text


__all__ = ["MAX_COMBINATIONS", "Grid", "Outcome", "Sweep", "SweepPlan", "SweepTask", "aggregate",
           "backtrader_check", "benchmarks", "combo_label", "compute_sweep_task", "costs_of",
           "parse_grid", "plan", "record", "recorded", "run", "run_rules", "trials_added",
           "verdict"]
