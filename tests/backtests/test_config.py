"""The experiment config: one set of defaults, ids, overrides, TOML files, validation."""

import math

import pytest

from backtests.config import (
    NOT_IN_ID,
    ConfigError,
    Experiment,
    all_keys,
    as_toml,
    load_toml,
    resolve_key,
)
from data import DatasetSpec
from strategy.fractal import FractalParams


def test_defaults_live_in_one_place():
    exp = Experiment()
    # the library's dataset default is the CLI's: the scale-free feature set
    assert exp.dataset == DatasetSpec() and DatasetSpec().features == "scaled"
    assert exp.strategy == FractalParams() and exp.train.threads == 1


def test_the_same_config_gives_the_same_id_and_any_result_field_changes_it():
    base = Experiment()
    assert Experiment().id == base.id and len(base.id) == 12
    changed = {}
    for key in all_keys():
        section, name = key.split(".")
        value = getattr(getattr(base, section), name)
        new = _another_value(key, value)
        if new is None:
            continue
        other = base.override({key: new})
        changed[key] = other.id != base.id
    for key, differs in changed.items():
        assert differs == (key not in NOT_IN_ID), key
    # and the exclusions are the ones that cannot change results
    assert set(NOT_IN_ID) == {"train.device", "runtime.runs_dir", "runtime.workers"}


def _another_value(key, value):
    special = {"data.source": "other.csv", "data.tz": "Europe/Athens", "dataset.features": "article",
               "dataset.labels": "5bar", "model.kind": "dense", "model.preset": "modern",
               "train.class_weighting": "none", "train.device": "cpu", "strategy.sizing": "risk",
               "backtest.period": "val", "runtime.runs_dir": "elsewhere",
               "backtest.threshold_grid": "quantile",
               "data.account_currency": "EUR", "data.instrument": "EURUSD",
               "data.start": "2017-06-01", "data.end": "2017-12-01",
               "split.train_end": None, "split.val_end": None,
               "backtest.start": "2018-01-01", "backtest.end": "2018-02-01",
               "costs.spread": 0.0002, "data.point": 0.00001, "data.dayfirst": True}
    if key in special:
        return special[key]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 0.5 if value else 0.5
    return None


def test_dotted_and_unique_leaf_overrides_are_type_checked():
    exp = Experiment().override(["threshold=0.6", "train.epochs=5", "allow_short=false",
                                 "costs.spread=none", "commission=3.5e-5"])
    assert exp.strategy.threshold == 0.6 and exp.train.epochs == 5
    assert exp.strategy.allow_short is False and exp.costs.commission == 3.5e-5
    with pytest.raises(ConfigError, match="is not a whole number"):
        Experiment().override(["epochs=1.5"])
    with pytest.raises(ConfigError, match="unknown setting 'thresold'"):
        Experiment().override(["thresold=0.6"])
    with pytest.raises(ConfigError, match="not a key=value"):
        Experiment().override(["threshold"])
    assert resolve_key("threshold") == ("strategy", "threshold")


def test_an_ambiguous_leaf_name_must_be_dotted():
    with pytest.raises(ConfigError, match="ambiguous: say data.start or backtest.start"):
        resolve_key("start")


@pytest.mark.parametrize("setting,message", [
    ("threshold=nan", "strategy.threshold = nan is out of range"),
    ("threshold=inf", "out of range"), ("threshold=2", "out of range"),
    ("threshold=-1", "out of range"), ("spread=nan", "costs.spread"),
    ("slippage=nan", "costs.slippage"), ("cash=0", "backtest.cash"), ("cash=-5", "backtest.cash"),
    ("cash=nan", "backtest.cash"), ("random_draws=0", "backtest.random_draws"),
    ("random_draws=-5", "backtest.random_draws"), ("random_draws=100000000", "random_draws"),
    ("train.seed=-1", "train.seed"), (f"train.seed={2**70}", "train.seed"),
    ("epochs=0", "train.epochs"), ("epochs=-1", "train.epochs"), ("batch_size=0", "batch_size"),
    ("lr=nan", "train.lr"), ("lr=-1", "train.lr"), ("split.train=1.5", "split.train"),
    ("split.val=-0.1", "split.val"), ("units=0", "strategy.units"),
    ("sizing=martingale", "strategy.sizing: 'martingale' is not"), ("period=foo", "backtest.period = 'foo'"),
    ("model.preset=matched", "not a preset of attention"), ("threads=0", "train.threads"),
    ("labels=7bar", "dataset.labels: unknown label kind '7bar'; choose 3bar, 5bar, swing"),
    ("labels=swing:2.0", "dataset.labels: write label kind 'swing:2.0' as 'swing:2'"),
    ("labels=swing:0", "dataset.labels: label kind 'swing:0': the target M must be in (0, 100]"),
    ("labels=triple:1.0:1:24", "dataset.labels: write label kind 'triple:1.0:1:24' as 'triple:1:1:24'"),
    ("labels=triple:0:1:24", "dataset.labels: label kind 'triple:0:1:24': the barrier K_UP must be"),
    ("features=scaled+foo", "dataset.features: unknown feature set part 'foo' in 'scaled.foo'; "
                            "parts are article, scaled, time, spread, atr, shape, volz, mtf"),
    ("features=scaled+mtf+scaled", "dataset.features: feature part 'scaled' is given twice"),
    ("features=mtf:5h", "dataset.features: mtf period '5h'"),
])
def test_every_numeric_and_named_setting_is_validated_once(setting, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        Experiment().override([setting])


def test_toml_round_trip_and_unknown_keys_are_refused(tmp_path):
    exp = Experiment().override(["threshold=0.65", "epochs=7", "model.kind=lstm"])
    path = tmp_path / "exp.toml"
    path.write_text(as_toml(exp))
    again = load_toml(path)
    assert again == exp and again.id == exp.id
    path.write_text("[strategy]\nthreshold = 0.6\nthresold = 0.7\n")
    with pytest.raises(ConfigError, match="unknown key strategy.thresold"):
        load_toml(path)
    path.write_text("[stratgy]\nthreshold = 0.6\n")
    with pytest.raises(ConfigError, match=r"unknown section \[stratgy\]"):
        load_toml(path)
    path.write_text("[strategy]\nthreshold = 'high'\n")
    with pytest.raises(ConfigError, match="strategy.threshold: 'high' is not a number"):
        load_toml(path)
    path.write_text("[strategy\n")
    with pytest.raises(ConfigError, match="not a readable TOML"):
        load_toml(path)
    with pytest.raises(ConfigError, match="no such config file"):
        load_toml(tmp_path / "missing.toml")


def test_float_fields_accept_integers_from_toml(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text("[backtest]\ncash = 50000\n[strategy]\nthreshold = 1\n")
    exp = load_toml(path)
    assert exp.backtest.cash == 50_000.0 and isinstance(exp.backtest.cash, float)
    assert not math.isnan(exp.strategy.threshold)


@pytest.mark.parametrize("kind", ["3bar", "5bar", "swing", "swing:2", "swing:1.5:48",
                                  "triple:1:1:24", "triple:1.5:0.75:48"])
def test_every_label_kind_is_a_valid_setting(tmp_path, kind):
    for exp in (Experiment().override([f"dataset.labels={kind}"]),
                Experiment().override({"labels": kind})):
        assert exp.dataset.labels == kind
    path = tmp_path / "exp.toml"
    path.write_text(f'[dataset]\nlabels = "{kind}"\n')
    assert load_toml(path).dataset.labels == kind
    # a label kind is part of what a model learns: it enters the config id
    assert (Experiment().override({"labels": kind}).id == Experiment().id) == (kind == "3bar")


def test_a_feature_set_enters_the_config_id_in_its_canonical_spelling(tmp_path):
    ids = {fs: Experiment().override({"features": fs}) for fs in
           ("scaled", "scaled+time+mtf", "mtf+scaled+time", "scaled+mtf", "scaled+mtf:4h")}
    assert ids["mtf+scaled+time"].dataset.features == "scaled+mtf"   # time's columns are scaled's
    assert ids["mtf+scaled+time"].id == ids["scaled+time+mtf"].id == ids["scaled+mtf"].id
    assert len({ids[k].id for k in ("scaled", "scaled+mtf", "scaled+mtf:4h")}) == 3
    assert ids["scaled+mtf"].train_id != ids["scaled"].train_id
    path = tmp_path / "exp.toml"
    path.write_text('[dataset]\nfeatures = "time+scaled"\n')
    assert load_toml(path).id == Experiment().override({"features": "scaled+time"}).id
    # the same columns are the same model: one config id, one trial
    assert Experiment().override({"features": "scaled+time"}).id == Experiment().id
    assert Experiment().override({"features": "article+time"}).id != \
        Experiment().override({"features": "article"}).id


def test_train_accepts_labels_swing(monkeypatch):
    """`attnbt train --labels swing` reaches training with that spec; a misspelt one does not."""
    from typer.testing import CliRunner

    from backtests import workflows
    from backtests.cli import app

    seen = []

    class Stop(Exception):
        pass

    def train_run(exp, **_):
        seen.append(exp)
        raise Stop

    monkeypatch.setattr(workflows, "train_run", train_run)
    done = CliRunner().invoke(app, ["train", "--labels", "swing", "--epochs", "1"])
    assert isinstance(done.exception, Stop) and seen[0].dataset.labels == "swing"
    done = CliRunner().invoke(app, ["train", "--labels", "swing:1"])
    assert isinstance(done.exception, ConfigError) and len(seen) == 1
    assert "write label kind 'swing:1' as 'swing'" in str(done.exception)
    done = CliRunner().invoke(app, ["train", "--labels", "triple:1:1:24", "--epochs", "1"])
    assert isinstance(done.exception, Stop) and seen[1].dataset.labels == "triple:1:1:24"
    done = CliRunner().invoke(app, ["train", "--labels", "triple:1:1"])
    assert isinstance(done.exception, ConfigError) and len(seen) == 2
    assert "write triple:K_UP:K_DN:H" in str(done.exception)


def test_the_folds_keys_leave_every_config_id_as_it_was():
    """The folds settings got config keys (``folds.*``, named in messages and mapped to their
    options) without entering any id: trials dedupe on these ids, so they must not move. The
    ids below were computed before the keys existed."""
    from backtests.cli.common import OPTION_OF
    from backtests.config import FOLDS_KEYS, FoldsConfig
    from backtests.walkforward import FoldPlan

    assert (Experiment().id, Experiment().train_id) == ("7fe8b7747224", "5dc634ef2756")
    e = Experiment().override({"model.kind": "dense", "model.preset": "matched",
                               "train.seed": 3, "strategy.threshold": 0.6, "split.embargo": 5,
                               "data.source": "x.csv"})
    assert (e.id, e.train_id) == ("8da8f4728128", "fac823de5faf")
    assert not set(FOLDS_KEYS) & set(all_keys())          # not in the experiment, so in no id
    assert {OPTION_OF[k] for k in FOLDS_KEYS} == {
        "--train-bars", "--val-bars", "--test-bars", "--step-bars", "--expanding",
        "--embargo-bars"}
    cfg = FoldsConfig(train_bars=600, val_bars=200, test_bars=150, step_bars=300,
                      expanding=True, embargo_bars=4)
    assert FoldPlan.from_config(cfg) == FoldPlan(600, 200, 150, 300, True, 4)
    assert FoldPlan.from_config(FoldsConfig()) == FoldPlan()
