"""Calibrated probabilities (train.calibration, issue 18 §5): Brier and reliability numbers, the
maps on data of known miscalibration, fitted on the validation part only, saved with the model."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from data import DatasetSpec
from data.folds import plain_split
from models.calibration import Calibrator, fit_calibrator
from models.checkpoint import load_model, model_hash, model_meta, save_model
from models.config import TrainConfig
from models.earlier import DenseConfig
from models.errors import ModelError
from models.evaluate import brier_scores, pool_reliability, reliability, reliability_rows
from models.predict import IncrementalPredictor, Predictor
from models.train import fit


# --- the numbers ---------------------------------------------------------------------------------
def test_brier_score_against_a_hand_example():
    probs = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [1.0, 0.0, 0.0]])
    y = np.array([0, 2, 1])
    # row 1: 0.09 + 0.04 + 0.01 = 0.14; row 2: 0.04 + 0.25 + 0.49 = 0.78; row 3: 1 + 1 + 0 = 2
    b = brier_scores(y, probs)
    assert b["brier"] == pytest.approx((0.14 + 0.78 + 2.0) / 3, abs=1e-12)
    assert b["brier_none"] == pytest.approx((0.09 + 0.04 + 1.0) / 3, abs=1e-12)
    assert b["brier_buy"] == pytest.approx((0.04 + 0.25 + 1.0) / 3, abs=1e-12)
    assert b["brier_sell"] == pytest.approx((0.01 + 0.49 + 0.0) / 3, abs=1e-12)
    assert b["brier_none"] + b["brier_buy"] + b["brier_sell"] == pytest.approx(b["brier"])


def test_per_class_brier_equals_scikit_learns_and_reliability_its_calibration_curve():
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss

    rng = np.random.default_rng(0)
    probs = rng.dirichlet([1, 1, 1], size=3000)
    y = (rng.random(len(probs))[:, None] > np.cumsum(probs, axis=1)).sum(axis=1)
    b = brier_scores(y, probs)
    rel = reliability(y, probs)
    for c, name in enumerate(("none", "buy", "sell")):
        assert b[f"brier_{name}"] == pytest.approx(brier_score_loss(y == c, probs[:, c]), abs=1e-12)
        observed, predicted = calibration_curve(y == c, probs[:, c], n_bins=10)
        rows = [r for r in reliability_rows(rel) if r["class"] == name]
        assert [r["observed"] for r in rows] == pytest.approx(observed, abs=1e-12)
        assert [r["predicted"] for r in rows] == pytest.approx(predicted, abs=1e-12)
        assert sum(r["windows"] for r in rows) == len(y)
    # diagrams of parts add up to the diagram of the whole
    halves = pool_reliability([reliability(y[:1000], probs[:1000]), reliability(y[1000:], probs[1000:])])
    assert all(np.allclose(halves[n][k], rel[n][k]) for n in ("none", "buy", "sell")
               for k in ("count", "pred_sum", "hits"))


def _miscalibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Reported probabilities p with the truth q_c ∝ p_c² (over-confident near the middle,
    under-confident at the extremes), labels drawn from the truth."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet([0.6, 0.6, 0.6], size=n)
    q = p ** 2 / (p ** 2).sum(axis=1, keepdims=True)
    y = (rng.random(n)[:, None] > np.cumsum(q, axis=1)).sum(axis=1)
    return p, y


def _gap(y: np.ndarray, probs: np.ndarray) -> float:
    """Expected calibration gap: |observed − predicted| per bin, weighted by windows, averaged
    over the three classes."""
    rows = reliability_rows(reliability(y, probs))
    n = sum(r["windows"] for r in rows)
    return sum(r["windows"] * abs(r["observed"] - r["predicted"]) for r in rows) / n


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_calibration_lowers_brier_on_held_out_data_and_nears_the_diagonal(method):
    p_val, y_val = _miscalibrated(20_000, seed=1)
    p_test, y_test = _miscalibrated(20_000, seed=2)      # held out: never seen by the fit
    cal = fit_calibrator(p_val, y_val, method)
    fixed = cal.apply(p_test)
    assert np.allclose(fixed.sum(axis=1), 1.0) and (fixed >= 0).all()
    before, after = brier_scores(y_test, p_test)["brier"], brier_scores(y_test, fixed)["brier"]
    assert after < before - 0.005        # the distortion costs ~0.02 of Brier here
    # raw gap ~0.07; calibrated: sampling noise of 20,000 windows in 10 bins (~0.01)
    assert _gap(y_test, p_test) > 0.05 and _gap(y_test, fixed) < 0.025


def test_calibration_of_calibrated_probabilities_changes_little():
    rng = np.random.default_rng(3)
    p = rng.dirichlet([1, 1, 1], size=20_000)
    y = (rng.random(len(p))[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    for method in ("isotonic", "platt"):
        cal = fit_calibrator(p[:10_000], y[:10_000], method)
        fixed = cal.apply(p[10_000:])
        assert np.abs(fixed - p[10_000:]).mean() < 0.03
        assert fit_calibrator(p, y, method).to_dict() == fit_calibrator(p, y, method).to_dict()


def test_isotonic_map_is_scikit_learns_prediction_and_survives_json():
    from sklearn.isotonic import IsotonicRegression

    p, y = _miscalibrated(2000, seed=4)
    cal = fit_calibrator(p, y, "isotonic")
    grid = np.linspace(-0.1, 1.1, 301)
    iso = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(p[:, 1], y == 1)
    assert np.array_equal(np.interp(grid, *cal.params[1]), iso.predict(grid))
    for method in ("isotonic", "platt"):
        cal = fit_calibrator(p, y, method)
        again = Calibrator.from_dict(json.loads(json.dumps(cal.to_dict())))
        assert np.array_equal(again.apply(p), cal.apply(p))


def test_a_class_absent_from_validation_still_gives_finite_maps():
    p = np.random.default_rng(5).dirichlet([1, 1, 1], size=200)
    y = np.zeros(200, int)                             # only "none" seen
    for method in ("isotonic", "platt"):
        out = fit_calibrator(p, y, method).apply(p)
        assert np.isfinite(out).all() and np.allclose(out.sum(axis=1), 1)
    assert fit_calibrator(p, y, "none") is None
    with pytest.raises(ValueError, match="too few"):
        fit_calibrator(p[:1], y[:1], "isotonic")


@pytest.mark.parametrize("damage, match", [
    (lambda d: d.update(method="beta"), "method"),
    (lambda d: d["classes"].pop(), "one map per class"),
    (lambda d: d["classes"][1].update(y=d["classes"][1]["y"][::-1]), "non-decreasing"),
    (lambda d: d["classes"][0].update(x=[float("nan")] * len(d["classes"][0]["x"])), "finite"),
    (lambda d: d["classes"][2].update(x=d["classes"][2]["x"][:-1]), "same number"),
    (lambda d: d.update(samples=0), "samples"),
])
def test_a_damaged_calibration_is_refused(damage, match):
    p, y = _miscalibrated(500, seed=6)
    d = fit_calibrator(p, y, "isotonic").to_dict()
    damage(d)
    with pytest.raises(ValueError, match=match):
        Calibrator.from_dict(d)
    platt = fit_calibrator(p, y, "platt").to_dict()
    platt["classes"][0]["a"] = float("inf")
    with pytest.raises(ValueError, match="finite"):
        Calibrator.from_dict(platt)


# --- a tiny trained model: fitted on validation only, saved with the model ---------------------
SPEC = DatasetSpec(window=8, features="scaled", labels="3bar")


def _train(candles, calibration: str, fold=None):
    fold = fold or plain_split(candles.index, 0.6, 0.2)
    cfg = TrainConfig(epochs=1, batch_size=128, device="cpu", calibration=calibration)
    config = DenseConfig(SPEC.n_features, SPEC.window, "matched", [8])
    return fit(candles, SPEC, fold, kind="dense", preset="matched", cfg=cfg,
               model_config=config), fold


@pytest.fixture(scope="module")
def bars(eurusd):
    return eurusd.iloc[:1500]


@pytest.fixture(scope="module")
def calibrated(bars):
    return _train(bars, "isotonic")


def test_the_calibration_is_fitted_on_validation_bars_only(bars, calibrated):
    """Changing every bar after the validation part (the test bars) changes nothing of the
    calibrator (truncation test): validation labels are purged at the boundary."""
    result, fold = calibrated
    _, v_last = fold.bounds(bars.index, "val")
    other = bars.copy()
    rng = np.random.default_rng(0)
    after = other.index[v_last + 1:]
    scale = 1 + rng.normal(0, 0.01, len(after))
    for col in ("open", "high", "low", "close"):
        other.loc[after, col] = other.loc[after, col].to_numpy() * scale
    other.loc[after, "high"] = other.loc[after, ["open", "high", "low", "close"]].max(axis=1)
    other.loc[after, "low"] = other.loc[after, ["open", "high", "low", "close"]].min(axis=1)
    again, _ = _train(other, "isotonic")
    assert result.meta["calibration"]["method"] == "isotonic"
    assert again.meta["calibration"] == result.meta["calibration"]
    cut, _ = _train(bars.iloc[:v_last + 1], "isotonic", fold)  # the test bars removed
    assert cut.meta["calibration"] == result.meta["calibration"]


def test_a_calibrated_model_round_trips_and_its_hash_covers_the_calibration(bars, calibrated,
                                                                            tmp_path):
    from backtests.walkforward.tasks import predictor_of

    result, fold = calibrated
    meta = model_meta(kind=result.kind, config=result.config, spec=result.spec,
                      normaliser=result.normaliser, fold=fold, extra=result.meta)
    weights = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
    digest = save_model(tmp_path, weights, meta)
    loaded = load_model(tmp_path)
    assert loaded.model_hash == digest and loaded.meta_info.calibration is not None
    saved = Predictor(loaded).predict_frame(bars)
    in_memory = predictor_of(result).predict_frame(bars)      # what walk-forward trades
    assert np.array_equal(saved.to_numpy(), in_memory.to_numpy(), equal_nan=True)
    raw = Predictor(loaded, calibrated=False).predict_frame(bars)
    ok = raw.notna().all(axis=1).to_numpy()
    assert np.array_equal(saved.to_numpy()[ok], loaded.meta_info.calibration.apply(raw.to_numpy()[ok]))
    assert not np.allclose(saved.to_numpy()[ok], raw.to_numpy()[ok])
    assert np.allclose(saved.to_numpy()[ok].sum(axis=1), 1)
    # one bar at a time (backtrader, paper trading) gives the same calibrated numbers
    pos = len(bars) - 1
    assert np.allclose(Predictor(loaded).predict_at(bars, pos), saved.to_numpy()[pos], atol=1e-6)
    inc = IncrementalPredictor.from_history(Predictor(loaded), bars.iloc[:-5])
    assert np.allclose(inc.advance(bars.iloc[-5:]).to_numpy(), saved.to_numpy()[-5:], atol=1e-6)
    # the hash covers the calibration: a changed map is refused
    doc = json.loads((tmp_path / "model.json").read_text())
    doc["calibration"]["classes"][1]["y"] = [0.5 * v for v in doc["calibration"]["classes"][1]["y"]]
    (tmp_path / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="changed after it was saved"):
        load_model(tmp_path)


def test_an_uncalibrated_model_is_what_it_was(bars, calibrated):
    """calibration none: no calibration in the meta, the hash of the same weights and meta as
    before the key existed, and the network's own probabilities."""
    result, fold = calibrated
    plain, _ = _train(bars, "none")
    assert "calibration" not in plain.meta
    meta = model_meta(kind=plain.kind, config=plain.config, spec=plain.spec,
                      normaliser=plain.normaliser, fold=fold, extra=plain.meta)
    weights = {k: v.detach().cpu() for k, v in plain.model.state_dict().items()}
    assert model_hash(weights, meta) == model_hash(weights, {**meta, "calibration": None})
    assert model_hash(weights, meta) != model_hash(weights, {**meta,
                                                             "calibration": result.meta["calibration"]})
    # the same network trained with calibration differs only by the map
    for a, b in zip(plain.model.state_dict().values(), result.model.state_dict().values(),
                    strict=True):
        assert np.array_equal(a.numpy(), b.numpy())


def test_config_ids_without_calibration_are_unchanged_and_with_it_differ():
    from backtests.config import Experiment

    base = Experiment()
    assert (base.id, base.train_id) == ("7fe8b7747224", "5dc634ef2756")   # pinned before the key
    assert base.override({"train.calibration": "none"}).id == base.id
    iso, platt = (base.override({"calibration": m}) for m in ("isotonic", "platt"))
    assert len({base.train_id, iso.train_id, platt.train_id}) == 3
    assert iso.to_dict()["train"]["calibration"] == "isotonic"
    with pytest.raises(Exception, match="train.calibration"):
        base.override({"train.calibration": "beta"})
    assert replace(TrainConfig(), calibration="platt").calibration == "platt"
