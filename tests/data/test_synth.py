"""Planted worlds (data.synth): deterministic, valid FX candles; the planted effect is there at
its documented size, and nothing is where nothing was planted."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import data
from data import synth
from data.errors import DataError

BARS = 30_000   # about 2,200 order trades: the planted 3.1 bps is 17 standard errors
SEED = 11


@pytest.fixture(scope="module")
def worlds() -> dict[str, pd.DataFrame]:
    """Every kind drawn with the same seed (the same shocks), so a planted world minus the null
    world on the same bars is the planted drift alone."""
    return {kind: synth.generate(kind, seed=SEED, bars=BARS) for kind in synth.KINDS}


def test_same_seed_same_world_other_seed_another():
    a = synth.generate("order", seed=5, bars=400)
    pd.testing.assert_frame_equal(a, synth.generate("order", seed=5, bars=400))
    assert a.attrs["planted"] == {"kind": "order", "seed": 5, "bars": 400, "planted": 3.0}
    assert not np.array_equal(a["close"], synth.generate("order", seed=6, bars=400)["close"])
    # the planted size changes the drift, not the shocks: with none planted, order is the null
    pd.testing.assert_frame_equal(synth.generate("order", seed=5, bars=400, planted=0.0),
                                  synth.generate("null", seed=5, bars=400), check_like=True)


@pytest.mark.parametrize("kind", synth.KINDS)
def test_every_world_is_a_valid_fx_frame(worlds, kind):
    frame = worlds[kind]
    checked = data.validate_frame(frame.copy())              # (assert_frame_equal: slow index)
    assert checked.index.equals(frame.index) and checked.columns.equals(frame.columns)
    assert np.array_equal(checked.to_numpy(), frame.to_numpy())
    assert list(frame.columns) == ["open", "high", "low", "close", "volume", "spread"]
    assert str(frame.index.tz) == "UTC" and len(frame) == BARS
    every_hour = pd.date_range(frame.index[0], frame.index[-1], freq="h")
    day, hour = every_hour.day_of_week, every_hour.hour
    weekend = (day == 5) | ((day == 4) & (hour >= 22)) | ((day == 6) & (hour < 22))
    month, date = every_hour.month, every_hour.day
    holiday = ((month == 12) & (date == 25)) | ((month == 1) & (date == 1))
    assert frame.index.equals(every_hour[~weekend & ~holiday])   # every FX hour, only those
    prices = frame[["open", "high", "low", "close", "spread"]].to_numpy()
    assert np.array_equal(prices, np.round(prices, 5))
    assert np.array_equal(frame["open"].to_numpy()[1:], frame["close"].to_numpy()[:-1])
    r = np.diff(np.log(frame["close"].to_numpy()))
    assert 0.0007 < r.std() < 0.0011                          # an H1 EURUSD bar: about 9 bps
    clustering = np.corrcoef(r[1:] ** 2, r[:-1] ** 2)[0, 1]
    assert clustering > 0.05                                  # GARCH: big moves follow big moves
    assert frame["spread"].between(8e-5, 22e-5).all() and (frame["volume"] > 0).all()


@pytest.mark.parametrize("kind", ["order", "regime", "session"])
def test_the_planted_drift_is_there_at_its_documented_size(worlds, kind):
    told = synth.truth(kind)
    seen = synth.realised(worlds[kind], kind)
    assert seen["trades"] > 400
    assert abs(seen["gross_bps"] - told["gross_bps"]) < 4 * seen["se_bps"]
    assert seen["net_bps"] > 0                                            # pays its spread
    assert abs(seen["spread_bps"] - told["spread_bps"]) < 0.15 * told["spread_bps"]
    # the same trades on the null world (same shocks): the difference is the drift alone
    trades = synth.planted_trades(worlds[kind], kind)
    drift = synth.trade_gross(worlds[kind], trades) - synth.trade_gross(worlds["null"], trades)
    assert drift.mean() == pytest.approx(told["gross_bps"], abs=0.05)


@pytest.mark.parametrize("kind", ["order", "regime", "session"])
def test_the_null_world_plants_nothing(worlds, kind):
    seen = synth.realised(worlds["null"], kind)
    assert seen["trades"] > 400
    assert abs(seen["gross_bps"]) < 4 * seen["se_bps"]
    assert seen["net_bps"] < 0


def test_only_the_order_of_the_shapes_predicts(worlds):
    order, null = worlds["order"], worlds["null"]
    gross = synth.truth("order")["gross_bps"]
    mirror = synth.realised(order, "order", synth.ORDER_MIRROR)          # long after the mirror
    assert abs(mirror["gross_bps"] + gross) < 4 * mirror["se_bps"]
    others = synth.other_orders()
    assert len(others) == 4 and synth.ORDER_PATTERN not in others
    pooled = []
    for shapes in [*others, synth.ORDER_PATTERN, synth.ORDER_MIRROR]:
        trades = synth.planted_trades(order, "order", shapes)
        pooled.append(synth.trade_gross(order, trades))
        drift = synth.trade_gross(order, trades) - synth.trade_gross(null, trades)
        if shapes in others:                                  # planted nothing, measured nothing
            assert np.abs(drift).mean() < 0.05
            seen = synth.realised(order, "order", shapes)
            assert abs(seen["gross_bps"]) < 4 * seen["se_bps"]
    every_order = np.concatenate(pooled)                      # the shapes as a set: nothing
    assert abs(every_order.mean()) < 4 * every_order.std() / np.sqrt(len(every_order))


def test_the_documented_table_is_what_the_generator_plants():
    rows = re.findall(r"^\| (\w+) +\|.*\| ([\d.]+) +\| ([\d.]+) +\| ([\d.-]+) +\|$",
                      synth.__doc__, flags=re.M)
    assert [r[0] for r in rows] == list(synth.KINDS)
    for kind, gross, spread, net in rows:
        told = synth.truth(kind)
        assert float(gross) == pytest.approx(told["gross_bps"], abs=0.005)
        assert float(spread) == pytest.approx(told["spread_bps"], abs=0.005)
        assert net == "-" if kind == "null" else float(net) == pytest.approx(told["net_bps"],
                                                                             abs=0.005)


def test_a_sample_source_names_a_world(tmp_path):
    frame = data.load("sample:planted-regime:4:300")
    pd.testing.assert_frame_equal(frame, synth.generate("regime", seed=4, bars=300))
    assert frame.attrs["source"] == "sample:planted-regime:4:300"
    assert synth.parse_name("planted-session") == ("session", synth.DEFAULT_SEED,
                                                   synth.DEFAULT_BARS, synth.DEFAULT_PLANTED)
    # the effect size, fourth: the world `data synth --planted` writes
    sized = data.load("sample:planted-order:4:300:8.5")
    pd.testing.assert_frame_equal(sized, synth.generate("order", seed=4, bars=300, planted=8.5))
    assert sized.attrs["source"] == "sample:planted-order:4:300:8.5"
    assert not sized.equals(synth.generate("order", seed=4, bars=300))
    for name, words in [("planted-trend", "choose one of null, order, regime, session"),
                        ("planted-order:x", "sample:planted-KIND[:SEED[:BARS[:PLANTED]]]"),
                        ("planted-order:1:2:3:4", "sample:planted-KIND[:SEED[:BARS[:PLANTED]]]"),
                        ("planted-order:1:300:x", "PLANTED in"),
                        ("planted-order:1:300:101", "from 0 to 100"),
                        ("planted-order:1:300:nan", "from 0 to 100"),
                        ("planted-order:1:50", "must be 200 to 1,000,000")]:
        with pytest.raises(DataError, match=re.escape(words)):
            data.load(f"sample:{name}")


def test_the_csv_loads_back_identically(tmp_path, worlds):
    frame = worlds["order"].iloc[:500]
    path = synth.write_csv(frame, tmp_path / "order.csv")
    pd.testing.assert_frame_equal(data.load(path), frame)
    with pytest.raises(DataError, match="exists; nothing is overwritten without `force`"):
        synth.write_csv(frame, path)
    synth.write_csv(frame.iloc[:300], path, force=True)
    assert len(data.load(path)) == 300


def test_bad_arguments_are_refused():
    with pytest.raises(DataError, match="unknown planted world 'trend'; choose one of null, "
                                        "order, regime, session"):
        synth.generate("trend")
    for kwargs, words in [({"bars": 10}, "`bars` must be"), ({"planted": -1.0}, "`planted`"),
                          ({"planted": float("nan")}, "`planted`"), ({"seed": -1}, "`seed`")]:
        with pytest.raises(DataError, match=words):
            synth.generate("null", **kwargs)
