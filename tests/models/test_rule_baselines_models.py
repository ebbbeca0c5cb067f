"""Rule baselines (``models.rules``): causal, the rule as stated, one name per rule, never trained,
and the verdict wording that names the baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.features import atr as atr_of
from data.labels import fractal_labels
from models.evaluate import article_metrics, versus_rules
from models.rules import RuleConfig, parse_rule, rule_params, rule_probs

RULES = ("newhl", "newhl-range", "newhl-range:0.5")


def walk(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 1.1 + np.cumsum(rng.normal(0, 1e-3, n))
    open_ = np.r_[1.1, close[:-1]]
    wick = np.abs(rng.normal(0, 5e-4, (2, n)))
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) + wick[0],
                         "low": np.minimum(open_, close) - wick[1], "close": close,
                         "volume": np.ones(n)},
                        index=pd.date_range("2021-01-04", periods=n, freq="h", tz="UTC"))


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("labels", ["3bar", "5bar"])
def test_rule_outputs_are_causal(rule, labels):
    """Bar t's output is the same whether or not the bars after t exist."""
    candles = walk(300, seed=4)
    full = rule_probs(candles, rule, labels).to_numpy()
    assert np.isfinite(full[20:]).all()              # past the ATR warm-up every bar scores
    for t in (0, 1, 13, 14, 15, 40, 151, 299):
        cut = rule_probs(candles.iloc[:t + 1], rule, labels).to_numpy()
        diff = np.nanmax(np.abs(cut - full[:t + 1])) if np.isfinite(cut).any() else 0.0
        assert np.array_equal(np.isnan(cut), np.isnan(full[:t + 1])), t
        assert diff == 0.0, f"bar {t}: truncating the future changed the output by {diff}"


def _frame(highs, lows) -> pd.DataFrame:
    highs, lows = np.asarray(highs, float), np.asarray(lows, float)
    mid = (highs + lows) / 2
    return pd.DataFrame({"open": mid, "high": highs, "low": lows, "close": mid,
                         "volume": np.ones(len(mid))},
                        index=pd.date_range("2021-01-04", periods=len(mid), freq="h", tz="UTC"))


def test_the_rule_is_new_high_or_low_over_the_previous_bar_with_a_graded_score():
    # 14 flat bars (range 2, true range 2: ATR 2 from bar 13), then the cases by hand
    highs = [11.0] * 14 + [12.0, 11.5, 13.0, 12.0, 12.0, 14.0, 13.0]
    lows = [9.0] * 14 + [9.5, 9.0, 10.0, 8.0, 9.0, 11.0, 12.5]
    candles = _frame(highs, lows)
    p = rule_probs(candles, "newhl").to_numpy()
    assert np.isnan(p[:13]).all()                     # the ATR warm-up: no score
    np.testing.assert_array_equal(p[13], [1, 0, 0])    # equal high and low: nothing new
    top = p[14:].argmax(axis=1)
    # 14: high 12 > 11 (new high only) → sell; 15: low 9.0 < 9.5 → buy; 16: high 13 > 11.5 and
    # low 10 > 9: sell; 17: high 12 < 13, low 8 < 10 → buy; 18: high 12 = 12 and low 9 > 8 →
    # none; 19: high 14 > 12 → sell; 20: high 13 < 14, low 12.5 > 11 → none (inside bar)
    assert top.tolist() == [2, 1, 2, 1, 0, 2, 0]
    atr = atr_of(candles["high"], candles["low"], candles["close"], 14).to_numpy()
    # the score: 0.5 + 0.5 × min(1, breakout / ATR), the rest to p_none
    want14 = 0.5 + 0.5 * min(1.0, (12.0 - 11.0) / atr[14])
    assert p[14, 2] == pytest.approx(want14, abs=1e-12)
    assert p[14, 0] == pytest.approx(1 - want14, abs=1e-12) and p[14, 1] == 0
    assert (p[14:][top != 0].max(axis=1) > 0.5).all()   # every firing bar out-votes "none"
    # the range rule fires only where the bar's range is at least 1.5 ATR
    r = rule_probs(candles, "newhl-range:1.5").to_numpy()[14:].argmax(axis=1)
    big = (np.array(highs) - lows)[14:] >= 1.5 * atr[14:]
    assert r.tolist() == [t if b else 0 for t, b in zip(top.tolist(), big, strict=True)]


def test_an_outside_bar_is_no_signal_as_the_labels_say():
    candles = _frame([11.0] * 14 + [12.0], [9.0] * 14 + [8.0])
    np.testing.assert_array_equal(rule_probs(candles, "newhl").to_numpy()[14], [1, 0, 0])


def test_five_bar_labels_compare_with_the_two_previous_bars():
    candles = _frame([11.0] * 13 + [12.0, 11.5, 11.8], [9.0] * 16)
    p3 = rule_probs(candles, "newhl", "3bar").to_numpy().argmax(axis=1)
    p5 = rule_probs(candles, "newhl", "5bar").to_numpy().argmax(axis=1)
    assert p3[15] == 2 and p5[15] == 0      # 11.8 > 11.5 but not > 12 two bars back


def test_hand_counted_hit_rate_equals_the_metric():
    candles = walk(400, seed=7)
    y = fractal_labels(candles).to_numpy()
    h, lo = candles["high"].to_numpy(), candles["low"].to_numpy()
    hits = signals = 0
    for t in range(20, 399):
        up, down = h[t] > h[t - 1], lo[t] < lo[t - 1]
        if up == down:
            continue
        signals += 1
        hits += int(y[t] == (2 if up else 1))
    m = article_metrics(y[20:399], rule_probs(candles, "newhl").to_numpy()[20:399])
    assert m["signals"] == signals
    assert m["hit_pct"] == pytest.approx(100 * hits / signals, abs=1e-9)


def test_rule_names_have_one_form_and_bad_ones_are_refused():
    assert rule_params("newhl") == 0 and rule_params("newhl-range") == 1.0
    assert rule_params("newhl-range:2.5") == 2.5
    assert parse_rule("rule/newhl-range:2").name == "rule/newhl-range:2"
    assert parse_rule("rule") == RuleConfig("newhl", 0.0)
    for bad, message in (("newhl-range:1", "write rule"), ("nosuch", "unknown rule"),
                         ("newhl-range:0", r"\(0, 100\]"), ("newhl-range:x", "number"),
                         ("newhl:2", "unknown rule")):
        with pytest.raises(ValueError, match=message):
            rule_params(bad)


def test_config_and_walkforward_take_rule_models_and_training_one_is_refused(tmp_path):
    from backtests.config import ConfigError, Experiment
    from backtests.walkforward import parse_models
    from backtests.workflows import train_run

    exp = Experiment().override({"model.kind": "rule", "model.preset": "newhl-range:1.5",
                                 "runtime.runs_dir": str(tmp_path)})
    assert exp.model.preset == "newhl-range:1.5"
    # `--model rule` alone keeps the networks' default preset: the error says what to do instead
    with pytest.raises(ConfigError, match=r"model.preset: unknown rule 'article'.*needs no "
                                          r"training: name it, e\.g\. rule/newhl"):
        Experiment().override({"model.kind": "rule", "model.preset": "article"})
    assert parse_models("attention,rule,rule/newhl-range:2") == [
        ("attention", "article"), ("rule", "newhl"), ("rule", "newhl-range:2")]
    with pytest.raises(ConfigError, match="`presets`"):
        parse_models("rule/newhl-range:-1")
    with pytest.raises(ConfigError, match="need no training"):
        train_run(exp, candles=walk(200))
    assert not list(tmp_path.iterdir())               # nothing was written


def test_fit_of_a_rule_is_a_no_op_with_the_rules_validation_metrics():
    from data.dataset import CandleDataset, DatasetSpec
    from data.folds import plain_split
    from models.train import fit

    candles = walk(600, seed=2)
    spec = DatasetSpec()
    fold = plain_split(candles.index, 0.6, 0.2)
    result = fit(candles, spec, fold, kind="rule", preset="newhl")
    assert result.model is None and result.metrics["epochs_run"] == 0
    val = CandleDataset(candles, spec).ends("val", fold)
    y = CandleDataset(candles, spec).labels[val]
    want = article_metrics(y, rule_probs(candles, "newhl").to_numpy()[val])
    assert result.metrics["hit_pct"] == want["hit_pct"]


def test_the_verdict_names_the_strongest_rule_baseline():
    rules = {"rule/newhl": {"hit_pct": 44.1, "missed_pct": 20.0},
             "rule/newhl-range": {"hit_pct": 40.0, "missed_pct": 60.0}}
    v = versus_rules("attention/article", {"hit_pct": 44.6, "missed_pct": 13.6}, rules)
    assert v["rule"] == "rule/newhl" and v["diff_pp"] == pytest.approx(0.5)
    assert v["text"].startswith("attention/article hit 44.6 % vs best rule baseline "
                                "rule/newhl 44.1 % (+0.5 pp)")
    assert "chance" not in v["text"]
    assert versus_rules("x", {"hit_pct": 40.0}, {"rule/newhl": {"hit_pct": float("nan")}}) is None
    silent = versus_rules("lstm/article", {"hit_pct": float("nan")}, rules)
    assert silent["text"] == "lstm/article gave no signals vs best rule baseline rule/newhl 44.1 % hit"
