"""data.incremental: features carried bar by bar equal the batch computation over the history."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from data.features import compute_features
from data.incremental import FeatureState


def random_walk(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 1.1 * np.exp(np.cumsum(rng.normal(0, 0.0008, n)))
    open_ = np.r_[close[0], close[:-1]]
    spread = np.abs(rng.normal(0, 0.0005, (n, 2)))
    index = pd.date_range("2015-01-05", periods=n, freq="min", tz="UTC", name="time")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) + spread[:, 0],
                         "low": np.minimum(open_, close) - spread[:, 1], "close": close,
                         "volume": rng.integers(1, 5000, n).astype(float)}, index=index)


def check_equal(rows: np.ndarray, batch: np.ndarray) -> None:
    assert (np.isnan(rows) == np.isnan(batch)).all()
    assert np.nanmax(np.abs(rows - batch), initial=0.0) <= 1e-9


COMPOSED = "scaled+time+atr+volz+mtf"   # the context parts (spread: test_context_features.py)
CASES = [(fs, h, 3000) for fs in ("article", "scaled") for h in (0, 1, 13, 20, 33, 34, 60, 2500)]
CASES += [(COMPOSED, h, 400) for h in (0, 34, 300)]   # shorter: its steps cost more


@pytest.mark.slow   # a few seconds: runs in `make test`, not in the fast subset
@pytest.mark.parametrize(("feature_set", "history", "bars"), CASES)
def test_bar_by_bar_equals_batch_at_any_history_length(eurusd, feature_set, history, bars):
    candles = eurusd.iloc[:bars]
    batch = compute_features(candles, feature_set).to_numpy()
    state = FeatureState.from_history(candles.iloc[:history], feature_set, keep=20)
    state = FeatureState.from_dict(json.loads(json.dumps(state.to_dict())))   # via the journal
    rows = state.extend(candles.iloc[history:])
    check_equal(rows, batch[history:])
    check_equal(state.window(), batch[-20:])
    assert state.n == len(candles) and state.last_time == candles.index[-1]


@pytest.mark.slow   # a few seconds: runs in `make test`, not in the fast subset
@pytest.mark.parametrize("feature_set", ["article", "scaled"])
def test_no_drift_over_a_long_history(feature_set):
    candles = random_walk(120_000)
    batch = compute_features(candles, feature_set).to_numpy()
    for history in (40, 60_000, 119_000):
        state = FeatureState.from_history(candles.iloc[:history], feature_set, keep=20)
        check_equal(state.extend(candles.iloc[history:history + 500]),
                    batch[history:history + 500])


def test_state_json_round_trip_is_exact_and_refuses_an_old_bar(eurusd):
    state = FeatureState.from_history(eurusd.iloc[:500], "scaled", keep=20)
    text = json.dumps(state.to_dict(), allow_nan=False)
    back = FeatureState.from_dict(json.loads(text))
    assert json.dumps(back.to_dict(), allow_nan=False) == text
    bar = eurusd.iloc[499]
    with pytest.raises(ValueError, match="not after"):
        back.update(eurusd.index[499], *bar[["open", "high", "low", "close", "volume"]])


def test_a_state_saved_before_the_context_parts_still_loads(eurusd):
    """Version 1 (paper accounts made before the context parts): no spread or bucket state."""
    state = FeatureState.from_history(eurusd.iloc[:500], "scaled", keep=20)
    old = {k: v for k, v in state.to_dict().items() if k not in ("spread", "bar_ns", "buckets",
                                                                  "finished")}
    back = FeatureState.from_dict(json.loads(json.dumps({**old, "version": 1})))
    check_equal(back.extend(eurusd.iloc[500:520]), state.extend(eurusd.iloc[500:520]))
