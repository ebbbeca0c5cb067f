import numpy as np
import pandas as pd
import pytest

from data.dataset import CandleDataset
from models.errors import ModelError
from models.predict import PROB_COLUMNS, Predictor


def test_batch_prediction_equals_one_window_at_a_time(trained_run, eurusd):
    predictor = Predictor.from_run(trained_run.path)
    candles = eurusd.iloc[:1200]
    batch = predictor.predict_frame(candles)
    positions = [53, 54, 100, 377, 640, 901, 1199]
    for pos in positions:
        one = predictor.predict_at(candles, pos)
        np.testing.assert_allclose(one, batch.iloc[pos].to_numpy(), rtol=0, atol=1e-6)


def test_probabilities_are_distributions_with_nan_only_in_the_warmup(trained_run, eurusd):
    probs = Predictor.from_run(trained_run.path).predict_frame(eurusd)
    assert list(probs.columns) == list(PROB_COLUMNS)
    complete = probs.notna().all(axis=1).to_numpy()
    first = int(np.argmax(complete))
    assert complete[first:].all() and not complete[:first].any()
    assert first == 53  # 34 warm-up bars + a 20-bar window - 1
    np.testing.assert_allclose(probs.iloc[first:].sum(axis=1), 1.0, atol=1e-6)


def test_changing_later_bars_changes_no_earlier_prediction(trained_run, eurusd):
    predictor = Predictor.from_run(trained_run.path)
    candles = eurusd.iloc[:900].copy()
    before = predictor.predict_frame(candles)
    t = 600
    rng = np.random.default_rng(0)
    later = candles.index[t + 1:]
    noise = 1 + rng.normal(0, 0.01, (len(later), 1))
    candles.loc[later, ["open", "high", "low", "close"]] *= noise
    candles.loc[later, "volume"] = rng.integers(1, 9999, len(later))
    after = predictor.predict_frame(candles)
    pd.testing.assert_frame_equal(before.iloc[: t + 1], after.iloc[: t + 1])
    assert not before.iloc[t + 30:].equals(after.iloc[t + 30:])  # the change did reach later bars


def test_a_dataset_given_to_predict_frame_gives_the_same_probabilities(trained_run, eurusd):
    """The walk-forward hands its CandleDataset over (features computed once per task)."""
    predictor = Predictor.from_run(trained_run.path)
    candles = eurusd.iloc[:700]
    ds = CandleDataset(candles, predictor.spec)
    got = predictor.predict_frame(candles, first=300, last=600, dataset=ds)
    pd.testing.assert_frame_equal(got, predictor.predict_frame(candles, first=300, last=600))
    with pytest.raises(ModelError, match="not of these candles"):
        predictor.predict_frame(candles.copy(), dataset=ds)
