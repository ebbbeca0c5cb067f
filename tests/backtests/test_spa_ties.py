"""Hansen's SPA where a model equals its benchmark on every bar: no evidence that it is better."""

from __future__ import annotations

import numpy as np

from backtests.analysis.significance import spa_test


def test_a_model_equal_to_the_benchmark_is_not_better():
    rng = np.random.default_rng(1)
    zero, noise = np.zeros(300), rng.normal(0, 1e-3, 300)
    # two runs that never trade, and a model that copies its benchmark bar for bar
    for bench, model in ((zero, zero), (noise, noise)):
        out = spa_test(bench, model)
        assert out["p_value"] == 1.0, out
    # an equal column beside a real one: the test is the real column's alone
    other = rng.normal(0, 1e-3, 300)
    both = spa_test(noise, np.c_[noise, other])
    alone = spa_test(noise, other)
    assert both["p_value"] == alone["p_value"], (both, alone)
    # a model better on every bar by a constant is still found better
    assert spa_test(noise, noise + 1e-4)["p_value"] < 0.05
