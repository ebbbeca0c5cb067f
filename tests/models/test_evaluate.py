import numpy as np
import pytest

from models.evaluate import article_metrics, classification_metrics, evaluate_predictions


def test_article_metrics_by_hand():
    y = np.array([0, 1, 2, 1, 0, 2])
    # predictions: none, buy, buy, none, sell, sell
    p = np.array([[.8, .1, .1], [.2, .7, .1], [.1, .6, .3], [.5, .4, .1], [.2, .1, .7], [.1, .1, .8]])
    m = article_metrics(y, p)
    # signals: rows 1,2,4,5 → matches rows 1 and 5 → 50 %
    assert m["hit_pct"] == pytest.approx(50.0)
    # fractals: rows 1,2,3,5 → only row 3 had no signal → 25 %
    assert m["missed_pct"] == pytest.approx(25.0)
    expected = np.sqrt(np.mean((p - np.eye(3)[y]) ** 2))
    assert m["error"] == pytest.approx(expected)
    assert (m["signals"], m["fractals"]) == (4, 4)


def test_classification_metrics_by_hand():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.eye(3)[[0, 1, 1, 1, 2, 0]]
    m = classification_metrics(y, p)
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["per_class"]["buy"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["buy"]["recall"] == pytest.approx(1.0)
    assert m["per_class"]["sell"]["f1"] == pytest.approx(2 * 1 * .5 / 1.5)
    assert m["accuracy"] == pytest.approx(4 / 6)


def test_always_none_scores_zero_for_fractal_classes():
    y = np.array([0, 0, 1, 2])
    out = evaluate_predictions(y, np.eye(3)[[0, 1, 1, 2]], prior=np.array([.5, .25, .25]))
    none = out["always none"]
    assert none["missed_pct"] == 100.0 and np.isnan(none["hit_pct"])
    assert none["per_class"]["buy"]["f1"] == 0.0
    assert none["macro_f1"] == pytest.approx((2 * .5 * 1 / 1.5) / 3)
    assert set(out) == {"model", "always none", "class-prior random"}
