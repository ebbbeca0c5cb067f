"""Trading a fixed-horizon model with its label's exits asks the label's question: an oracle whose
probabilities are the labels trades exactly the labelled bars a flat account can take, each trade
held H bars and closed at the open of t+1+H with a positive net after costs — on backtrader and on
the compiled simulator alike."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtests.config import Experiment
from data import synth
from data.labels import BUY, SELL, horizon_labels
from strategy.engine import TRADE_COLUMNS, simulate
from strategy.fast import simulate_fast
from strategy.fractal import Costs, FractalParams
from strategy.rules import horizon_stop_atrs, label_exits, parse_barriers

COMMISSION = 0.00002        # price units per unit per side: the labels' and the backtest's


def _gappy(n: int, seed: int) -> pd.DataFrame:
    """Bid candles with gaps between bars, some spreads wider than a bar's move and some NaN (the
    default spread)."""
    rng = np.random.default_rng(seed)
    close = 1.1 + np.cumsum(rng.normal(0, 0.0008, n))
    open_ = np.r_[1.1, close[:-1]] + rng.normal(0, 0.0006, n) * (rng.random(n) < 0.3)
    high = np.maximum(open_, close) + rng.exponential(0.0004, n)
    low = np.minimum(open_, close) - rng.exponential(0.0004, n)
    spread = rng.uniform(0, 0.0005, n)
    spread[rng.random(n) < 0.1] = 0.003
    spread[rng.random(n) < 0.05] = np.nan
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC", name="time")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                         "volume": 1.0, "spread": spread}, index=index)


def _oracle(labels: np.ndarray, index: pd.Index) -> pd.DataFrame:
    """Probability 1 on the label's class (none where unknown)."""
    cls = np.where(labels < 0, 0, labels)
    return pd.DataFrame(np.eye(3)[cls], columns=["p_none", "p_buy", "p_sell"], index=index)


def _expected(labels: np.ndarray, h: int) -> list[tuple[int, int]]:
    """(signal bar, side) of every labelled bar a flat account takes: a trade signalled at t is
    held over t+1 … t+h and closed at the open of t+1+h, so the next entry is signalled at t+1+h
    or later (signals while held are ignored)."""
    out, free = [], 0
    for t, y in enumerate(labels):
        if t >= free and y in (BUY, SELL):
            out.append((t, 1 if y == BUY else -1))
            free = t + 1 + h
    return out


@pytest.mark.parametrize(("world", "h"), [("gappy", 1), ("gappy", 4), ("order", 1),
                                         ("regime", 6), ("session", 4)])
def test_an_oracle_trades_exactly_the_labelled_trades_and_each_nets_positive(world, h):
    candles = (_gappy(700, seed=h) if world == "gappy"
               else synth.generate(world, seed=1, bars=700, planted=8))
    labels = horizon_labels(candles, h, commission=COMMISSION)
    params = label_exits(FractalParams(exit_on_opposite=False), f"horizon:{h}")
    assert (params.max_hold, params.take_profit_r, params.stop) == (
        h, 0.0, f"atr:{horizon_stop_atrs(h)}")
    costs = Costs(commission=COMMISSION)
    probs = _oracle(labels, candles.index)
    trades = simulate(candles, probs, params, costs).trades
    fast, _ = simulate_fast(candles, probs, params, costs)
    for col in TRADE_COLUMNS:                       # the compiled simulator: the same trades
        x, y = trades[col].to_numpy(), fast[col].to_numpy()
        if trades[col].dtype.kind == "f":
            np.testing.assert_allclose(y, x, rtol=0, atol=1e-9, err_msg=col)
        else:
            assert (x == y).all(), col

    want = _expected(labels, h)
    assert list(zip(trades["signal_bar"], trades["direction"], strict=True)) == want
    assert len(want) > 40 and {s for _, s in want} == {1, -1}
    o = candles["open"].to_numpy()
    sp = candles["spread"].fillna(0.0001).to_numpy()
    for tr in trades.itertuples():
        t = tr.signal_bar
        assert (tr.entry_bar, tr.exit_bar, tr.exit_reason) == (t + 1, t + 1 + h, "max_hold")
        if tr.direction > 0:                        # ask in, bid out
            assert tr.entry_price == pytest.approx(o[t + 1] + sp[t + 1], abs=1e-12)
            assert tr.exit_price == pytest.approx(o[t + 1 + h], abs=1e-12)
        else:                                       # bid in, ask out
            assert tr.entry_price == pytest.approx(o[t + 1], abs=1e-12)
            assert tr.exit_price == pytest.approx(o[t + 1 + h] + sp[t + 1 + h], abs=1e-12)
        assert tr.pnl_net > 0, tr                   # the label's question, asked by the engine
    # and the money adds up: every net is the label's net × the units traded
    net = trades["direction"] * (trades["exit_price"] - trades["entry_price"]) - 2 * COMMISSION
    np.testing.assert_allclose(trades["pnl_net"] / trades["size"], net, rtol=0, atol=1e-12)
    assert (net > 1e-9).all()     # nets of a tick or more: decimal ties are none (label tests)


def test_the_flipped_oracle_loses_on_every_trade():
    """Flipping the oracle (buy where the label says sell) loses on every trade: the label
    separates paying trades from losing ones, not merely from "none"."""
    candles = synth.generate("order", seed=2, bars=600, planted=8)
    labels = horizon_labels(candles, 1)
    flipped = np.where(labels == BUY, SELL, np.where(labels == SELL, BUY, labels))
    params = label_exits(FractalParams(exit_on_opposite=False), "horizon:1")
    trades = simulate(candles, _oracle(flipped, candles.index), params, Costs()).trades
    assert len(trades) > 40 and (trades["pnl_net"] < 0).all()


def test_the_labels_exits_are_the_default_and_explicit_settings_win():
    auto = label_exits(FractalParams(), "horizon:6")
    assert (auto.barriers, auto.max_hold, auto.take_profit_r, auto.stop) == ("none", 6, 0.0,
                                                                              "atr:30")
    assert [horizon_stop_atrs(h) for h in (1, 2, 4, 5, 9, 10, 24, 1000)] == [
        10, 20, 20, 30, 30, 40, 50, 320]
    assert parse_barriers(auto.barriers) is None
    # a stop or target of yours wins (and keeps its target rule); the hold follows the label
    for key, value in (("stop", "atr:2"), ("take_profit_r", 3.0), ("take_profit_atr", 1.0),
                       ("stop_buffer", 0.0002), ("stops_in_entry_bar", False),
                       ("atr_period", 20)):
        mine = label_exits(FractalParams(**{key: value}), "horizon:6")
        base = FractalParams(**{key: value})
        assert mine == FractalParams(**{key: value, "barriers": "none", "max_hold": 6}), key
        assert (mine.stop, mine.take_profit_r) == (base.stop, base.take_profit_r)
    assert label_exits(FractalParams(max_hold=3), "horizon:6").max_hold == 3
    for given in (FractalParams(barriers="none"), FractalParams(barriers="atr:2:1")):
        assert label_exits(given, "horizon:6") == given


def test_with_horizon_labels_auto_enters_the_config_id():
    base = Experiment().override({"labels": "horizon:6"})
    assert "barriers" in base.to_dict(for_id=True)["strategy"]
    assert base.id != base.override({"barriers": "none"}).id
    assert base.id != Experiment().override({"labels": "horizon:5"}).id
