"""Meta-labelling (issue 18 §2): a second model decides whether to act on the primary model's
signal, and how much.

What is trained on what (one walk-forward fold; every position below is a bar of its training
part, never of its validation or test part):

1. **Nested folds.** The training part [a, b] is cut into ``strategy.meta_folds`` + 1 blocks in
   time (``inner_folds``). For each block j ≥ 1 an *inner primary* (the same kind, preset, seed
   and settings as the task's model; ``strategy.meta_epochs`` epochs) trains on the blocks before
   it, its last quarter as the early-stopping part, and predicts block j. Its labels are purged
   by the label horizon at both ends (``CandleDataset.ends``) and the fold's embargo opens the
   inner parts, so no label it learns from reaches block j. The primary only ever trains on the
   past (``fit`` takes one contiguous training part): the out-of-fold probabilities are the ones
   it would have given live, and no purge after the held-out block is needed.
2. **Labels.** Each out-of-fold signal (arg-max buy or sell at or over the lowest threshold the
   study could choose) is traded alone on the compiled simulator with the configured rules and
   costs (``signal_outcomes``: one trade per signal, entry at the next open, stop/target/time exit
   as configured, fixed units); its label is 1 when its net P&L is positive. A signal whose trade
   could run past bar b (signal bar + ``strategy.max_hold`` + 1 > b) is dropped, so labels read
   training bars only.
3. **Inputs** (``meta_inputs``): the primary's three probabilities and the signalled class's,
   the side, the model's per-bar features at the signal bar (unnormalised: trees need no
   scaling, NaN is allowed) and rule context: ATR(``strategy.atr_period``) ÷ close, the bar's
   spread ÷ ATR, the UTC hour and weekday.
4. **Model**: scikit-learn's ``HistGradientBoostingClassifier`` (already a dependency; with a
   fixed ``random_state`` and no early-stopping split it is deterministic; it takes NaN inputs
   natively). LightGBM would add a compiled dependency for no gain at a few thousand rows.

At test time (``apply_meta``) each primary signal (the validation-chosen threshold, as the
primary alone trades it) gets q = P(net win | inputs). A signal with q < ``strategy.meta_threshold``
(none: chosen on the validation part by ``choose_meta_threshold``) is dropped: it neither opens
nor closes a position. A kept signal is passed to the engine as
probability q for its side, so with ``strategy.sizing = kelly`` its size is the engine's capped
Kelly of q: risk share min(``kelly_fraction`` × f*, ``risk_fraction``), f* = q − (1 − q)/b, b the
target/stop ratio, leverage capped at ``max_leverage``; other sizings keep their size (the meta
model then only filters).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from backtests.config import ConfigError
from data.dataset import CandleDataset, DatasetSpec
from data.errors import DataError
from data.folds import Fold, Period
from models.presets import TREE_SETTINGS
from strategy.fast import Prepared, run_prepared, signal_arrays
from strategy.fractal import PROB_COLUMNS, Costs, FractalParams
from strategy.rules import atr_array, hour_mask, parse_hours

# The inner primaries' early-stopping share of the bars before their held-out block.
INNER_VAL_SHARE = 0.25
# Fewer labelled signals (or a single class) fit no trees: q is then the training win share.
MIN_META_SAMPLES = 30
CONTEXT = ("p_none", "p_buy", "p_sell", "p_signal", "side", "atr_close", "spread_atr", "hour",
           "weekday")
# Small and regularised: a few hundred to a few thousand signals per fold (the tree settings
# are shared with the gradient-boosting baseline, models.gbm).
HGB_SETTINGS = {"max_iter": 100, **TREE_SETTINGS, "early_stopping": False}

# ``strategy.meta_threshold = none`` chooses among these on the validation part. A signal pays
# in expectation when q > 1 / (1 + b) before costs (b: target/stop), 1/3 at the default 2 R
# target, so the grid reaches below one half.
META_THRESHOLDS = (0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)

TrainAndPredict = Callable[[Fold, int, int], pd.DataFrame]


def refuse_meta(params: FractalParams, where: str) -> None:
    """ConfigError for ``strategy.meta`` in a study that has no meta arm (it would be ignored)."""
    if params.meta:
        raise ConfigError(f"strategy.meta: {where} does not train a meta model (only a "
                          "walk-forward does, as a second arm beside the primary alone); leave "
                          "strategy.meta off here")


def horizon_of(params: FractalParams) -> int:
    """Bars after the signal bar that its trade can read: entry at t + 1, held at most
    ``max_hold`` bars from the entry bar, closed at the next open (t + 1 + max_hold)."""
    if params.max_hold < 1:
        raise ConfigError("strategy.meta needs strategy.max_hold of 1 or more: the meta label "
                          "is the outcome of a trade, which must end within the training part")
    return params.max_hold + 1


def inner_folds(index: pd.DatetimeIndex, first: int, last: int, k: int,
                embargo: int = 0) -> list[tuple[Fold, int, int]]:
    """The nested folds of training bars ``first … last``: (fold, held-out first, held-out last)
    for blocks 1 … k of k + 1 equal blocks; each fold trains on the bars before its block (the
    last ``INNER_VAL_SHARE`` of them for early stopping) and tests on the block."""
    n = last - first + 1
    edges = [first + (i * n) // (k + 1) for i in range(k + 2)]
    out = []
    for j in range(1, k + 1):
        start, end = edges[j], edges[j + 1] - 1
        val_start = first + int((start - first) * (1 - INNER_VAL_SHARE))
        if val_start - first < 2 or start - val_start < 2 or end < start:
            raise DataError(f"the training part ({n} bars) is too short for strategy.meta_folds "
                            f"= {k} nested folds", rule="meta folds")
        fold = Fold(Period(index[first], index[val_start - 1]),
                    Period(index[val_start], index[start - 1]),
                    Period(index[start], index[end]), embargo)
        out.append((fold, start + embargo, end))
    return out


def oof_probs(candles: pd.DataFrame, first: int, last: int, k: int, embargo: int,
              train_and_predict: TrainAndPredict) -> pd.DataFrame:
    """The inner primaries' out-of-fold probabilities on training bars ``first … last`` (NaN on
    block 0, which only trains, and on the embargo bars)."""
    out = pd.DataFrame(np.nan, index=candles.index[first:last + 1], columns=list(PROB_COLUMNS))
    for fold, a, b in inner_folds(candles.index, first, last, k, embargo):
        if a > b:
            continue
        probs = train_and_predict(fold, a, b)
        out.iloc[a - first:b - first + 1] = probs[list(PROB_COLUMNS)].to_numpy()[a:b + 1]
    return out


@dataclass(frozen=True)
class RuleArrays:
    """Per-bar inputs of the simulator over the whole frame (each from bars ≤ its own)."""

    prep: Prepared
    spreads: np.ndarray
    atr: np.ndarray
    hour_ok: np.ndarray

    @classmethod
    def of(cls, candles: pd.DataFrame, params: FractalParams, costs: Costs,
           rates: np.ndarray | None) -> RuleArrays:
        col = {k: np.ascontiguousarray(candles[k].to_numpy(dtype=float))
               for k in ("open", "high", "low", "close")}
        r = np.ones(len(candles)) if rates is None else np.asarray(rates, dtype=float)
        prep = Prepared(pd.DatetimeIndex(candles.index), col["open"], col["high"], col["low"],
                        col["close"], np.full((len(candles), 3), np.nan), r)
        return cls(prep, costs.spread_array(candles), atr_array(candles, params.atr_period),
                   hour_mask(candles.index, parse_hours(params.hours)))


def signal_outcomes(arrays: RuleArrays, probs: np.ndarray, params: FractalParams, costs: Costs,
                    cash: float, threshold: float, last: int) -> pd.DataFrame:
    """Each signal of ``probs`` (n × 3 over the whole frame, NaN where not scored) traded alone
    under ``params`` and ``costs`` with fixed units, its trade ending by bar ``last``: one row per
    signal that opened a trade (``pos``, ``side``, ``pnl`` net in account money, ``win``)."""
    h = horizon_of(params)
    sig, _, _ = signal_arrays(probs, threshold)
    lone = replace(params, sizing="fixed", threshold=threshold)
    rows = []
    p = arrays.prep
    for t in np.flatnonzero(sig):
        end = t + h
        if end > last:
            continue
        sl = slice(t, end + 1)
        one = np.full((end + 1 - t, 3), np.nan)
        one[0] = probs[t]
        prep = Prepared(p.index[sl], p.open[sl], p.high[sl], p.low[sl], p.close[sl], one,
                        p.rates[sl])
        res = run_prepared(prep, lone, costs, cash, trades=False, spreads=arrays.spreads[sl],
                           atr=arrays.atr[sl], hour_ok=arrays.hour_ok[sl])
        if res.n_trades:
            pnl = float(res.equity[-1] - cash)
            rows.append((int(t), int(sig[t]), pnl, int(pnl > 0)))
    return pd.DataFrame(rows, columns=["pos", "side", "pnl", "win"]).astype(
        {"pos": int, "side": int, "pnl": float, "win": int})


def meta_inputs(candles: pd.DataFrame, features: np.ndarray, probs: np.ndarray,
                arrays: RuleArrays, pos: np.ndarray, side: np.ndarray) -> np.ndarray:
    """One row of inputs per signal at bar ``pos`` (CONTEXT, then the model's features)."""
    pos = np.asarray(pos, dtype=int)
    p = probs[pos]
    p_signal = np.where(side > 0, p[:, 1], p[:, 2])
    close = arrays.prep.close[pos]
    atr = arrays.atr[pos]
    with np.errstate(divide="ignore", invalid="ignore"):
        atr_close = atr / close
        spread_atr = arrays.spreads[pos] / atr
    idx = pd.DatetimeIndex(candles.index[pos])
    hour = idx.hour + idx.minute / 60.0
    ctx = np.column_stack([p, p_signal, side, atr_close, spread_atr, hour, idx.day_of_week])
    return np.column_stack([ctx, features[pos]]).astype(float)


@dataclass
class MetaModel:
    """The fitted classifier (None: too few samples or one class; q = the win share)."""

    clf: object | None
    win_share: float
    n_samples: int

    def predict(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.zeros(0)
        if self.clf is None:
            return np.full(len(x), self.win_share)
        return self.clf.predict_proba(x)[:, list(self.clf.classes_).index(1)]


def fit_meta(x: np.ndarray, y: np.ndarray, seed: int = 0) -> MetaModel:
    """HistGradientBoostingClassifier on (inputs, win labels), deterministic for a seed."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    y = np.asarray(y, dtype=int)
    share = float(y.mean()) if len(y) else 0.0
    if len(y) < MIN_META_SAMPLES or len(np.unique(y)) < 2:
        return MetaModel(None, share, len(y))
    clf = HistGradientBoostingClassifier(random_state=seed, **HGB_SETTINGS)
    clf.fit(x, y)
    return MetaModel(clf, share, len(y))


@dataclass
class MetaTraining:
    """A fold's meta model and what it was trained on (positions are bars of the frame)."""

    model: MetaModel
    samples: pd.DataFrame          # pos, side, pnl, win of every training signal
    train_first: int
    train_last: int

    def describe(self) -> dict:
        s = self.samples
        return {"train_samples": int(len(s)), "train_win_share": float(s["win"].mean())
                if len(s) else None,
                "first_position": int(s["pos"].min()) if len(s) else None,
                "last_position": int(s["pos"].max()) if len(s) else None,
                "train_first": self.train_first, "train_last": self.train_last,
                "fitted": self.model.clf is not None}


def train_meta(candles: pd.DataFrame, spec: DatasetSpec, fold: Fold, params: FractalParams,
               costs: Costs, cash: float, rates: np.ndarray | None,
               train_and_predict: TrainAndPredict, *, signal_threshold: float, seed: int = 0,
               ) -> MetaTraining:
    """Nested out-of-fold primaries on the fold's training part → labelled signals → the meta
    model (see the module docstring). Reads bars of the training part only."""
    first, last = fold.bounds(candles.index, "train")
    horizon_of(params)
    oof = oof_probs(candles, first, last, params.meta_folds, fold.embargo, train_and_predict)
    probs = np.full((len(candles), 3), np.nan)
    probs[first:last + 1] = oof.to_numpy()
    arrays = RuleArrays.of(candles, params, costs, rates)
    samples = signal_outcomes(arrays, probs, params, costs, cash, signal_threshold, last)
    features = CandleDataset(candles, spec).raw
    x = meta_inputs(candles, features, probs, arrays, samples["pos"].to_numpy(),
                    samples["side"].to_numpy())
    return MetaTraining(fit_meta(x, samples["win"].to_numpy(), seed), samples, first, last)


def meta_scores(meta: MetaTraining, candles: pd.DataFrame, spec: DatasetSpec,
                probs: pd.DataFrame, first: int, last: int, params: FractalParams, costs: Costs,
                rates: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bar, side, q) of each primary signal on bars ``first … last`` (``params.threshold`` and
    ``params.min_margin`` applied to the primary's probabilities): q = P(net win)."""
    p = probs[list(PROB_COLUMNS)].to_numpy(dtype=float)
    window = np.full_like(p, np.nan)
    window[first:last + 1] = p[first:last + 1]
    sig, _, margin = signal_arrays(window, params.threshold)
    keep = sig != 0
    if params.min_margin > 0:
        keep &= margin >= params.min_margin
    pos = np.flatnonzero(keep)
    arrays = RuleArrays.of(candles, params, costs, rates)
    features = CandleDataset(candles, spec).raw
    q = meta.model.predict(meta_inputs(candles, features, p, arrays, pos, sig[pos]))
    return pos, sig[pos], q


def kept_probs(index: pd.DatetimeIndex, pos: np.ndarray, side: np.ndarray, q: np.ndarray,
               threshold: float) -> pd.DataFrame:
    """Probabilities for the engine: q on the side of each signal with q ≥ ``threshold`` (0 on
    the other classes), NaN (no signal) everywhere else."""
    out = np.full((len(index), 3), np.nan)
    ok = q >= threshold
    out[pos[ok]] = 0.0
    out[pos[ok], np.where(side[ok] > 0, 1, 2)] = q[ok]
    return pd.DataFrame(out, index=index, columns=list(PROB_COLUMNS))


def engine_params(params: FractalParams) -> FractalParams:
    """The params that trade ``kept_probs``: threshold 0 and no margin filter (both were applied
    to the primary's probabilities)."""
    return replace(params, threshold=0.0, min_margin=0.0)


def apply_meta(meta: MetaTraining, candles: pd.DataFrame, spec: DatasetSpec,
               probs: pd.DataFrame, first: int, last: int, params: FractalParams, costs: Costs,
               rates: np.ndarray | None) -> tuple[pd.DataFrame, FractalParams, dict]:
    """The primary's signals on bars ``first … last`` (``params.threshold``) filtered by
    ``params.meta_threshold`` and sized by the meta model: (probabilities for the engine, the
    params to trade them with, counts and each signal's q)."""
    if params.meta_threshold is None:
        raise ValueError("apply_meta needs a meta threshold: choose it first "
                         "(choose_meta_threshold)")
    pos, side, q = meta_scores(meta, candles, spec, probs, first, last, params, costs, rates)
    frame = kept_probs(probs.index, pos, side, q, params.meta_threshold)
    info = {"test_signals": int(len(pos)), "kept": int((q >= params.meta_threshold).sum()),
            "q": dict(zip(map(int, pos), map(float, q), strict=True))}
    return frame, engine_params(params), info


def choose_meta_threshold(meta: MetaTraining, candles: pd.DataFrame, spec: DatasetSpec,
                          probs: pd.DataFrame, first: int, last: int, params: FractalParams,
                          costs: Costs, cash: float, rates: np.ndarray | None,
                          ) -> tuple[float, list[dict]]:
    """``strategy.meta_threshold = none``: each of ``META_THRESHOLDS`` trades the primary's
    signals on the validation bars ``first … last`` through the meta filter (compiled
    simulator, the run's rules and costs); the highest validation return wins, ties to the
    higher threshold (the rule of the primary's threshold choice)."""
    from backtests.analysis.performance import compute_stats
    from backtests.simulation import best_threshold
    from strategy.fast import simulate_fast

    pos, side, q = meta_scores(meta, candles, spec, probs, first, last, params, costs, rates)
    bars = candles.iloc[first:last + 1]
    bar_rates = None if rates is None else rates[first:last + 1]
    trade = engine_params(params)
    rows = []
    for th in META_THRESHOLDS:
        kept = kept_probs(candles.index, pos, side, q, th).iloc[first:last + 1]
        trades, equity = simulate_fast(bars, kept, trade, costs, cash, rates=bar_rates)
        stats = compute_stats(equity, trades)
        rows.append({"meta threshold": th, "validation trades": stats["n_trades"],
                     "validation return %": stats["total_return_pct"]})
    return best_threshold(rows, key="meta threshold")["meta threshold"], rows


__all__ = ["CONTEXT", "HGB_SETTINGS", "META_THRESHOLDS", "MIN_META_SAMPLES", "MetaModel",
           "MetaTraining", "RuleArrays", "apply_meta", "choose_meta_threshold", "engine_params",
           "fit_meta", "kept_probs", "meta_scores", "horizon_of", "inner_folds", "meta_inputs",
           "oof_probs", "refuse_meta", "signal_outcomes", "train_meta"]
