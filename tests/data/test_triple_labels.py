"""Triple-barrier labels (AFML ch. 3) with costs: bar t's trade enters at the open of t+1, barriers
K_UP/K_DN ATRs above/below it, a vertical barrier after the entry bar and H more; 1 when a long
bought at the ask nets positive at the upper barrier first, 2 when a short sold at the bid nets
positive at the lower one first (its buy-back seen on the ask), else 0, -1 where unknown."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from candle_helpers import candles

from data import DatasetSpec, fractal_labels, label_summary
from data.features import atr
from data.labels import horizon, triple_kind, triple_labels, triple_params

T = 20        # the labelled bar of the hand-made frames; its trade enters at the open of T+1
H = 6
KIND = "triple:1:1:6"
SPREAD = 0.01


def flat(n: int = 50) -> pd.DataFrame:
    """Bars open = close = 10, range 10 ± 0.0625 (ATR 0.125), spread 0.01: no barrier of
    1 ATR is ever touched until a test moves a bar."""
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC", name="time")
    return pd.DataFrame({"open": 10.0, "high": 10.0625, "low": 9.9375, "close": 10.0,
                         "volume": 0.0, "spread": SPREAD}, index=index)


def barrier(frame: pd.DataFrame, k: float) -> float:
    """open[T+1] + k·ATR[T] (k < 0: below)."""
    a = atr(frame["high"], frame["low"], frame["close"], 14).iloc[T]
    return frame["open"].iloc[T + 1] + k * a


def put(frame: pd.DataFrame, bar: int, **values: float) -> pd.DataFrame:
    out = frame.copy()
    for col, v in values.items():
        out.iloc[bar, out.columns.get_loc(col)] = v
    return out


def label_at_t(frame: pd.DataFrame, kind: str = KIND) -> int:
    return int(fractal_labels(frame, kind).iloc[T])


def test_the_flat_frame_is_none_and_the_barriers_are_one_atr_from_the_next_open():
    assert barrier(flat(), 1) == pytest.approx(10.125) and barrier(flat(), -1) == pytest.approx(9.875)
    labels = fractal_labels(flat(), KIND).to_numpy()
    assert labels.dtype == np.int8 and set(labels[13:-H - 1]) == {0}


def test_up_first_is_a_buy_down_first_is_a_sell():
    up = put(flat(), T + 3, high=barrier(flat(), 1.2))
    down = put(flat(), T + 3, low=barrier(flat(), -1.2))
    assert label_at_t(up) == 1 and label_at_t(down) == 2
    # the first barrier decides: a later touch of the other one changes nothing
    assert label_at_t(put(up, T + 4, low=barrier(flat(), -3))) == 1
    assert label_at_t(put(down, T + 4, high=barrier(flat(), 3))) == 2
    # … and the other way round: the stop came first
    assert label_at_t(put(put(flat(), T + 2, low=barrier(flat(), -1.2)), T + 4,
                          high=barrier(flat(), 3))) == 2
    # the entry bar counts (the barriers are live from the fill at its open)
    assert label_at_t(put(flat(), T + 1, high=barrier(flat(), 1.2))) == 1
    # bar T itself is before the entry: no touch
    assert label_at_t(put(flat(), T, high=barrier(flat(), 1.2))) == 0


def test_the_vertical_barrier_after_the_entry_bar_and_h_bars():
    last = T + 1 + H
    assert label_at_t(put(flat(), last, high=barrier(flat(), 1.2))) == 1
    assert label_at_t(put(flat(), last, low=barrier(flat(), -1.2))) == 2
    assert label_at_t(put(flat(), last + 1, high=barrier(flat(), 1.2))) == 0
    assert label_at_t(put(flat(), last + 1, low=barrier(flat(), -1.2))) == 0
    assert horizon(KIND) == H + 1   # bar T reads up to T + H + 1: what folds purge


def test_both_barriers_in_one_bar_is_the_stop_for_either_side():
    """The engine tries the stop first: the long's stop is the lower barrier, the short's the
    upper one, so a bar reaching both ends both trades without a label."""
    both = put(flat(), T + 3, high=barrier(flat(), 1.5), low=barrier(flat(), -1.5))
    assert label_at_t(both) == 0
    assert label_at_t(put(both, T + 5, high=barrier(flat(), 3))) == 0   # the trade was over


def test_the_spread_is_charged():
    # the long pays the entry bar's spread: reaching the upper barrier must clear it
    reach = put(flat(), T + 3, high=barrier(flat(), 1.0))
    assert label_at_t(reach) == 1
    wide = put(reach, T + 1, spread=0.13)        # more than the 0.125 to the barrier
    assert label_at_t(wide) == 0
    assert label_at_t(put(reach, T + 1, spread=0.12)) == 1
    # the short buys back at the ask: the bid reaching the lower barrier is not enough
    low = barrier(flat(), -1.0)
    assert label_at_t(put(flat(), T + 3, low=low)) == 0
    assert label_at_t(put(flat(), T + 3, low=low - SPREAD)) == 2
    assert label_at_t(put(put(flat(), T + 3, low=low - SPREAD), T + 3, spread=0.02)) == 0
    # no spread column: the default spread (price units) is charged
    nocol = put(reach, T + 1, spread=0.13).drop(columns="spread")
    assert label_at_t(nocol) == 1                # default 0.0001
    assert triple_labels(nocol, 1.0, 1.0, H, default_spread=0.13)[T] == 0


def test_the_commission_is_charged_on_both_sides():
    up = put(flat(), T + 3, high=barrier(flat(), 1.0))
    down = put(flat(), T + 3, low=barrier(flat(), -1.5))
    assert triple_labels(up, 1, 1, H, commission=0.05)[T] == 1         # 0.125 − 0.01 − 0.1 > 0
    assert triple_labels(up, 1, 1, H, commission=0.06)[T] == 0
    assert triple_labels(down, 1, 1, H, commission=0.062)[T] == 2      # 0.125 − 0.124 > 0
    assert triple_labels(down, 1, 1, H, commission=0.063)[T] == 0
    with pytest.raises(ValueError, match=">= 0"):
        triple_labels(up, 1, 1, H, commission=-1)


def test_the_barriers_in_atrs_come_from_the_name():
    frame = put(flat(), T + 3, high=barrier(flat(), 1.5))
    assert label_at_t(frame, "triple:1:1:6") == 1 and label_at_t(frame, "triple:2:1:6") == 0
    frame = put(flat(), T + 3, low=barrier(flat(), -1.5))
    assert label_at_t(frame, "triple:1:1:6") == 2 and label_at_t(frame, "triple:1:2:6") == 0


@pytest.mark.parametrize("n", [0, 1, 13, 14, H + 14, H + 15, 40])
def test_unknown_bars_the_atr_warm_up_and_the_last_h_plus_1(n):
    labels = fractal_labels(flat(max(n, 1)).iloc[:n], KIND).to_numpy()
    assert len(labels) == n
    known = np.zeros(n, bool)
    known[13:max(n - H - 1, 13)] = True
    assert ((labels >= 0) == known).all()


# --- the rule, written out bar by bar ---------------------------------------------------------

def slow_triple(frame: pd.DataFrame, k_up: float, k_dn: float, h: int) -> list[int]:
    o, hi, lo, sp = (frame[c].tolist() for c in ("open", "high", "low", "spread"))
    a = atr(frame["high"], frame["low"], frame["close"], 14).tolist()
    n, out = len(o), []
    for t in range(n):
        if t < 13 or t + 1 + h > n - 1:
            out.append(-1)
            continue
        up, dn = o[t + 1] + k_up * a[t], o[t + 1] - k_dn * a[t]
        label = 0
        for s in range(t + 1, t + 2 + h):            # the long, on bids
            if lo[s] <= dn:
                break
            if hi[s] >= up:
                label = 1 if up - (o[t + 1] + sp[t + 1]) > 0 else 0
                break
        for s in range(t + 1, t + 2 + h):            # the short, its exits on asks
            if hi[s] + sp[s] >= up:
                break
            if lo[s] + sp[s] <= dn:
                label = 2 if o[t + 1] - dn > 0 else label
                break
        out.append(label)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("k_up", "k_dn", "h"), [(1.0, 1.0, 24), (0.5, 2.0, 6), (0.1, 0.1, 3)])
def test_the_vectorised_labels_equal_the_loop(seed, k_up, k_dn, h):
    frame = candles(400, seed=seed)
    frame["spread"] = np.random.default_rng(seed).uniform(0, 0.0008, len(frame))
    labels = triple_labels(frame, k_up, k_dn, h)
    assert labels.tolist() == slow_triple(frame, k_up, k_dn, h)
    assert (labels == 0).sum() > 5 and (labels == 1).sum() > 5 and (labels == 2).sum() > 5


def test_without_spread_a_mirrored_frame_swaps_buy_and_sell():
    frame = candles(400, seed=7)
    frame["spread"] = 0.0
    mirror = frame.copy()
    mirror["open"], mirror["close"] = 3 - frame["open"], 3 - frame["close"]
    mirror["high"], mirror["low"] = 3 - frame["low"], 3 - frame["high"]
    labels = triple_labels(frame, 1.5, 0.5, 12)
    swapped = np.where(labels == 1, 2, np.where(labels == 2, 1, labels))
    np.testing.assert_array_equal(triple_labels(mirror, 0.5, 1.5, 12), swapped)


# --- the horizon is honest: bar t reads no bar after t + H + 1 ---------------------------------

@pytest.mark.parametrize("t", [13, 100, 250])
def test_labels_up_to_t_ignore_bars_after_t_plus_horizon(t):
    frame = candles(300, seed=3)
    frame["spread"] = 0.0002
    h = horizon(KIND)
    full = fractal_labels(frame, KIND).to_numpy()
    cut = fractal_labels(frame.iloc[:t + h + 1], KIND).to_numpy()
    np.testing.assert_array_equal(cut[:t + 1], full[:t + 1])
    assert cut[t] >= 0
    extreme = frame.copy()   # far above and below everything, wide spreads: a look past t + h shows
    top, bottom = frame["high"].max() * 2, frame["low"].min() / 2
    extreme.iloc[t + h + 1:, :4] = [(top + bottom) / 2, top, bottom, (top + bottom) / 2]
    extreme.iloc[t + h + 1:, extreme.columns.get_loc("spread")] = 1.0
    np.testing.assert_array_equal(fractal_labels(extreme, KIND).to_numpy()[:t + 1], full[:t + 1])


    summary = label_summary(frame, "triple:1:1:24")
    assert set(summary) == {"none", "buy", "sell", "unknown"}   # no fractals, no outside bars
    assert summary["unknown"] == 13 + 25 and sum(summary.values()) == len(frame)


# --- names -------------------------------------------------------------------------------------

def test_names_round_trip():
    for kind, params in [("triple:1:1:24", (1.0, 1.0, 24)), ("triple:1.5:0.75:48", (1.5, 0.75, 48)),
                         ("triple:2:1:1", (2.0, 1.0, 1))]:
        assert triple_params(kind) == params and triple_kind(*params) == kind
        assert horizon(kind) == params[2] + 1
        assert DatasetSpec(labels=kind).labels == kind
