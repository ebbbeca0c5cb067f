"""Fixed-horizon labels with costs: bar t's trade enters at the open of t+1 and is closed at the open
of t+1+H (H bars held); 1 when a long bought at the ask and sold at the bid nets positive, 2 when a
short sold at the bid and bought back at the ask nets positive, else 0, -1 where unknown."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from candle_helpers import candles

from data import CandleDataset, DatasetSpec, fractal_labels, label_summary
from data.features import atr
from data.folds import plain_split
from data.labels import horizon, horizon_kind, horizon_labels, horizon_params

T = 20        # the labelled bar of the hand-made frames: entry at the open of T+1
H = 4
KIND = "horizon:4"


def flat(n: int = 40, spread: float = 0.25) -> pd.DataFrame:
    """Every open 10.0, spread 0.25 (binary fractions: the nets below are exact)."""
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC", name="time")
    return pd.DataFrame({"open": 10.0, "high": 10.5, "low": 9.5, "close": 10.0,
                         "volume": 0.0, "spread": spread}, index=index)


def put(frame: pd.DataFrame, bar: int, **values: float) -> pd.DataFrame:
    out = frame.copy()
    for col, v in values.items():
        out.iloc[bar, out.columns.get_loc(col)] = v
    return out


def at_t(frame: pd.DataFrame, kind: str = KIND, **kw) -> int:
    if kw:
        return int(horizon_labels(frame, horizon_params(kind), **kw)[T])
    return int(fractal_labels(frame, kind).iloc[T])


def test_hand_computed_nets_with_the_spread_charged_and_zero_is_none():
    exit_bar = T + 1 + H
    # a flat trade loses its spread both ways: none
    assert at_t(flat()) == 0
    # long: sells at the bid open of T+1+H, bought at the ask 10 + 0.25: net = exit − 10.25
    assert at_t(put(flat(), exit_bar, open=10.5)) == 1            # +0.25
    assert at_t(put(flat(), exit_bar, open=10.25)) == 0           # exactly 0: none
    assert at_t(put(flat(), exit_bar, open=10.125)) == 0          # up, but not past the spread
    # short: sold at the bid 10, bought back at the ask exit + 0.25: net = 9.75 − exit
    assert at_t(put(flat(), exit_bar, open=9.5)) == 2             # +0.25
    assert at_t(put(flat(), exit_bar, open=9.75)) == 0            # exactly 0: none
    assert at_t(put(flat(), exit_bar, open=9.875)) == 0
    # the long pays the entry bar's spread, the short the exit bar's
    up = put(flat(), exit_bar, open=10.5)
    assert at_t(put(up, T + 1, spread=0.5)) == 0                  # net 0
    assert at_t(put(up, T + 1, spread=0.375)) == 1
    assert at_t(put(up, exit_bar, spread=2.0)) == 1               # the exit bar's: the short's
    down = put(flat(), exit_bar, open=9.5)
    assert at_t(put(down, exit_bar, spread=0.5)) == 0
    assert at_t(put(down, T + 1, spread=2.0)) == 2                # the entry bar's: the long's
    # the entry is the open of T+1, not T's close or T+2's open
    moved = put(put(up, T + 1, open=10.25), T, close=9.0)
    assert at_t(moved) == 0                                       # 10.5 − 10.5: none
    assert at_t(put(up, T + 2, open=5.0)) == 1
    # only the open of the exit bar counts, not the bars held or the one after
    assert at_t(put(put(flat(), exit_bar - 1, open=12.0, high=12.5), exit_bar + 1, open=12.0)) == 0
    assert horizon(KIND) == H + 1                                 # what folds purge


def test_both_sides_cannot_pay_and_nan_spreads_take_the_default():
    exit_bar = T + 1 + H
    up = put(flat(), exit_bar, open=10.5)
    assert at_t(put(up, T + 1, spread=np.nan)) == 1               # default 1 pip
    assert at_t(put(up, T + 1, spread=np.nan), default_spread=0.5) == 0
    nocol = up.drop(columns="spread")
    assert at_t(nocol) == 1 and at_t(nocol, default_spread=0.5) == 0
    frame = candles(300, seed=4)
    frame["spread"] = 0.0
    labels = horizon_labels(frame, 3)
    # with no cost only an exactly flat trade is none
    o = frame["open"].to_numpy()
    t = np.flatnonzero(labels >= 0)
    move = o[t + 4] - o[t + 1]
    np.testing.assert_array_equal(labels[t], np.where(move > 0, 1, np.where(move < 0, 2, 0)))
    assert t.min() == 13 and t.max() == len(frame) - 5


def test_a_decimal_tie_is_none_despite_floating_point_residue():
    """5-digit prices: 1.10012 − 1.10004 − 0.00008 is 4e-17 in floating point, not 0."""
    exit_bar = T + 1 + H
    frame = flat(spread=0.00008)
    frame[["open", "high", "low", "close"]] = [1.10004, 1.1001, 1.1, 1.10004]
    tie = put(frame, exit_bar, open=1.10012)
    assert 1.10012 - 1.10004 - 0.00008 > 0                       # the residue
    assert at_t(tie) == 0 and at_t(put(frame, exit_bar, open=1.10013)) == 1
    short_tie = put(put(frame, exit_bar, open=1.09997), exit_bar, spread=0.00007)
    assert 1.10004 - 1.09997 - 0.00007 > 0
    assert at_t(short_tie) == 0 and at_t(put(short_tie, exit_bar, open=1.09996)) == 2


def test_the_commission_is_charged_on_both_sides():
    up = put(flat(), T + 1 + H, open=10.5)                        # +0.25 before commission
    assert at_t(up, commission=0.124) == 1 and at_t(up, commission=0.125) == 0
    down = put(flat(), T + 1 + H, open=9.5)
    assert at_t(down, commission=0.124) == 2 and at_t(down, commission=0.125) == 0
    with pytest.raises(ValueError, match=">= 0"):
        horizon_labels(up, H, commission=-1)
    with pytest.raises(ValueError, match=">= 0"):
        horizon_labels(up, H, default_spread=-1)


@pytest.mark.parametrize("h", [1, 4])
@pytest.mark.parametrize("n", [0, 1, 13, 14, 15, 16, 21, 40])
def test_unknown_bars_the_atr_warm_up_and_the_last_h_plus_1(n, h):
    labels = horizon_labels(flat(max(n, 1)).iloc[:n], h)
    assert len(labels) == n and labels.dtype == np.int8
    known = np.zeros(n, bool)
    known[13:max(n - h - 1, 13)] = True
    assert ((labels >= 0) == known).all()


def slow_horizon(frame: pd.DataFrame, h: int, commission: float = 0.0) -> list[int]:
    o, sp = frame["open"].tolist(), frame["spread"].fillna(0.0001).tolist()
    a = atr(frame["high"], frame["low"], frame["close"], 14).tolist()
    out = []
    for t in range(len(o)):
        if np.isnan(a[t]) or t + 1 + h > len(o) - 1:
            out.append(-1)
            continue
        long_net = o[t + 1 + h] - (o[t + 1] + sp[t + 1]) - 2 * commission
        short_net = o[t + 1] - (o[t + 1 + h] + sp[t + 1 + h]) - 2 * commission
        out.append(1 if long_net > 0 else 2 if short_net > 0 else 0)
    return out


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("h", [1, 6, 24])
def test_the_vectorised_labels_equal_the_loop(seed, h):
    frame = candles(400, seed=seed)
    rng = np.random.default_rng(seed)
    frame["spread"] = rng.uniform(0, 0.0015, len(frame))
    frame.iloc[rng.random(len(frame)) < 0.05, frame.columns.get_loc("spread")] = np.nan
    for commission in (0.0, 0.0002):
        labels = horizon_labels(frame, h, commission=commission)
        assert labels.tolist() == slow_horizon(frame, h, commission)
        assert min((labels == c).sum() for c in (0, 1, 2)) > 5


# --- the horizon is honest: bar t reads no bar after t + H + 1 ---------------------------------

@pytest.mark.parametrize("h", [1, 6])
@pytest.mark.parametrize("t", [13, 100, 250])
def test_labels_up_to_t_ignore_bars_after_t_plus_horizon(t, h):
    frame = candles(300, seed=3)
    frame["spread"] = np.random.default_rng(t).uniform(0, 0.0005, len(frame))
    kind, last = horizon_kind(h), t + h + 1      # bar t's label reads up to bar t + H + 1
    full = fractal_labels(frame, kind).to_numpy()
    cut = fractal_labels(frame.iloc[:last + 1], kind).to_numpy()
    np.testing.assert_array_equal(cut[:t + 1], full[:t + 1])
    assert cut[t] >= 0 and (cut[t + 1:] == -1).all()             # the tail is unknown
    extreme = frame.copy()   # far above and below everything, wide spreads: a look past shows
    top, bottom = frame["high"].max() * 2, frame["low"].min() / 2
    extreme.iloc[last + 1:, :4] = [(top + bottom) / 2, top, bottom, (top + bottom) / 2]
    extreme.iloc[last + 1:, extreme.columns.get_loc("spread")] = 1.0
    np.testing.assert_array_equal(fractal_labels(extreme, kind).to_numpy()[:t + 1], full[:t + 1])
    # … while the exit bar itself does count: bar t's label reads bar t + H + 1
    flipped = frame.copy()
    flipped.iloc[last, flipped.columns.get_loc("open")] = top if full[t] != 1 else bottom
    assert fractal_labels(flipped, kind).to_numpy()[t] != full[t]


@pytest.mark.parametrize("kind,other", [("horizon:6", "horizon:5"),
                                        ("triple:1:1:24", "triple:1:2:24")])
def test_a_trade_outcome_dataset_purges_its_horizon_at_fold_edges(kind, other):
    """horizon:H reads bars up to t + H + 1, triple:K:K:H up to t + 1 + H: both purge H + 1."""
    frame = candles(300, seed=5)
    spec = DatasetSpec(window=10, labels=kind)
    purge = horizon(kind)
    assert purge == int(kind.rsplit(":", 1)[1]) + 1
    assert DatasetSpec.from_dict(spec.to_dict()) == spec
    ds = CandleDataset(frame, spec)
    np.testing.assert_array_equal(ds.labels, fractal_labels(frame, spec.labels).to_numpy())
    assert ds.ends("all").max() == len(frame) - 1 - purge
    fold = plain_split(frame.index)
    for part in ("train", "val", "test"):
        first, last = fold.bounds(frame.index, part)
        ends = ds.ends(part, fold)
        assert ends.max() == last - purge and (ds.labels[ends] >= 0).all()
        assert ends.min() >= first
        # every kept label's last bar read (t + horizon) is inside its own part
        assert (ends + purge <= last).all()
    assert set(np.unique(ds.labels[ds.ends("all")])) == {0, 1, 2}
    assert ds.fingerprint() != CandleDataset(frame, DatasetSpec(window=10,
                                                                labels=other)).fingerprint()
    summary = label_summary(frame, "horizon:6")
    assert set(summary) == {"none", "buy", "sell", "unknown"}
    assert summary["unknown"] == 13 + 7 and sum(summary.values()) == len(frame)


# --- names -------------------------------------------------------------------------------------

def test_names_round_trip():
    for h in (1, 6, 24, 1000):
        kind = horizon_kind(h)
        assert kind == f"horizon:{h}" and horizon_params(kind) == h and horizon(kind) == h + 1
        assert DatasetSpec(labels=kind).labels == kind


@pytest.mark.parametrize(("kind", "message"), [
    # swing:M[:H]
    ("swing:2.0", "as 'swing:2'"), ("swing:1", "as 'swing'"), ("swing:1:24", "as 'swing'"),
    ("swing:2:024", "as 'swing:2'"), ("swing:0", r"\(0, 100\]"), ("swing:-1", r"\(0, 100\]"),
    ("swing:nan", r"\(0, 100\]"), ("swing:inf", r"\(0, 100\]"), ("swing:x", "must be a number"),
    ("swing:", "must be a number"), ("swing:1:1.5", "whole number"), ("swing:2:0", "1 to 1000"),
    ("swing:1:2:3", "unknown label kind"), ("swings", "unknown label kind"),
    ("Swing", "unknown label kind"),
    # triple:K_UP:K_DN:H
    ("triple", "write triple:K_UP:K_DN:H"), ("triple:1:1", "write triple:K_UP:K_DN:H"),
    ("triple:1:1:24:2", "write triple:K_UP:K_DN:H"),
    ("triple:1.0:1:24", "as 'triple:1:1:24'"), ("triple:1:1:024", "as 'triple:1:1:24'"),
    ("triple:0:1:24", r"K_UP must be in \(0, 100\]"), ("triple:1:-1:24", r"K_DN must be in"),
    ("triple:nan:1:24", "K_UP must be in"), ("triple:1:inf:24", "K_DN must be in"),
    ("triple:x:1:24", "must be numbers"), ("triple:1::24", "must be numbers"),
    ("triple:1:1:1.5", "whole number"), ("triple:1:1:0", "1 to 1000"),
    ("triple:1:1:-2", "1 to 1000"), ("triples:1:1:24", "unknown label kind"),
    ("Triple:1:1:24", "unknown label kind"),
    # horizon:H
    ("horizon", "write horizon:H"), ("horizon:1:2", "write horizon:H"),
    ("horizon:06", "as 'horizon:6'"), ("horizon:+6", "as 'horizon:6'"),
    ("horizon: 6", "as 'horizon:6'"), ("horizon:6.0", "whole number"), ("horizon:x", "whole number"),
    ("horizon:", "whole number"), ("horizon:0", "1 to 1000"), ("horizon:1001", "1 to 1000"),
    ("horizon:-1", "1 to 1000"), ("horizons:6", "unknown label kind"),
    ("Horizon:6", "unknown label kind"),
])
def test_bad_label_names_are_clear_errors(kind, message):
    """Each parametrised label kind: one error naming what to write."""
    with pytest.raises(ValueError, match=message):
        horizon(kind)
    with pytest.raises(ValueError, match=message):
        DatasetSpec(labels=kind)
