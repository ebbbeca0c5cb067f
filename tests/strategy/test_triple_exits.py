"""Trading a triple-barrier model with the label's own exits asks the label's question: a trade
opened on the bar after signal bar t reaches its target first, netting positive after costs,
exactly when ``data.labels.triple_labels`` labels bar t buy (long) or sell (short) — on
backtrader and on the compiled simulator alike."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.features import atr as iatr
from data.labels import BUY, SELL, UNKNOWN, triple_labels
from strategy.engine import TRADE_COLUMNS, simulate
from strategy.fast import simulate_fast
from strategy.fractal import Costs, FractalParams
from strategy.rules import label_exits, parse_barriers, plan_entry

COMMISSION = 0.00002        # price units per unit per side: the labels' and the backtest's


def _world(n: int, seed: int) -> pd.DataFrame:
    """Bid candles with price gaps between bars and, on some bars, spreads wider than a barrier
    distance, so some first-touched targets do not pay their costs."""
    rng = np.random.default_rng(seed)
    close = 1.1 + np.cumsum(rng.normal(0, 0.0008, n))
    gaps = rng.normal(0, 0.0006, n) * (rng.random(n) < 0.3)
    open_ = np.r_[1.1, close[:-1]] + gaps
    high = np.maximum(open_, close) + rng.exponential(0.0004, n)
    low = np.minimum(open_, close) - rng.exponential(0.0004, n)
    spread = rng.uniform(0, 0.0005, n)
    spread[rng.random(n) < 0.1] = 0.003             # wide spreads (news): a target within
    spread[rng.random(n) < 0.05] = np.nan           # reach may not pay; NaN: the default spread
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC", name="time")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                         "volume": 1.0, "spread": spread}, index=index)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert len(a) == len(b)
    for col in TRADE_COLUMNS:
        x, y = a[col].to_numpy(), b[col].to_numpy()
        if a[col].dtype.kind == "f":
            np.testing.assert_allclose(y, x, rtol=0, atol=1e-9, err_msg=col)
        else:
            assert (x == y).all(), col


@pytest.mark.parametrize("kind", ["triple:1:1:4", "triple:1.5:0.75:6", "triple:0.5:1.5:3"])
@pytest.mark.parametrize("side", [1, -1])
def test_a_trade_reaches_its_target_first_and_pays_exactly_when_the_label_says_so(kind, side):
    candles = _world(900, seed=len(kind) + side)
    k_up, k_dn, h = (float(x) for x in kind.split(":")[1:])
    labels = triple_labels(candles, k_up, k_dn, int(h), commission=COMMISSION)
    probs = pd.DataFrame({"p_none": 0.0, "p_buy": float(side > 0), "p_sell": float(side < 0)},
                         index=candles.index)
    params = label_exits(FractalParams(), kind)
    assert parse_barriers(params.barriers) == (k_up, k_dn) and params.max_hold == int(h) + 1
    costs = Costs(commission=COMMISSION)
    trades = simulate(candles, probs, params, costs).trades
    fast, _ = simulate_fast(candles, probs, params, costs)
    _same(trades, fast)

    a = iatr(candles["high"], candles["low"], candles["close"], 14).to_numpy()
    o = candles["open"].to_numpy()
    pos = {t: i for i, t in enumerate(candles.index)}
    checked, seen = 0, {"target": 0, "stop": 0, "max_hold": 0, "target_not_paying": 0}
    for tr in trades.itertuples():
        t, e, x = pos[tr.signal_time], pos[tr.entry_time], pos[tr.exit_time]
        assert e == t + 1
        if labels[t] == UNKNOWN:                     # the trade runs past the data
            continue
        up, dn = o[e] + k_up * a[t], o[e] - k_dn * a[t]
        if side > 0:    # the label's net at its barrier: U − ask entry − 2 × commission
            net_at_barrier = up - tr.entry_price - 2 * COMMISSION
        else:           # O − L − 2 × commission (the short's spread is paid in the touch)
            net_at_barrier = tr.entry_price - dn - 2 * COMMISSION
        says = labels[t] == (BUY if side > 0 else SELL)
        assert says == (tr.exit_reason == "target" and net_at_barrier > 0), (t, tr)
        assert labels[t] != (SELL if side > 0 else BUY) or tr.exit_reason != "target"
        if tr.exit_reason == "target":
            target = up if side > 0 else dn
            assert side * (tr.exit_price - target) >= -1e-12    # at the barrier, or a better gap
            seen["target_not_paying"] += net_at_barrier <= 0
        elif tr.exit_reason == "stop":
            stop = dn if side > 0 else up
            assert side * (tr.exit_price - stop) <= 1e-12
        elif tr.exit_reason == "max_hold":                      # the vertical barrier
            assert x == e + int(h) + 1 and not says
        seen[tr.exit_reason] = seen.get(tr.exit_reason, 0) + 1
        checked += 1
    # every outcome occurs, so each side of the equivalence is exercised; a short pays its
    # spread in the touch (its ask must reach L), so only a long's target can fail to pay
    if side < 0:
        del seen["target_not_paying"]
    assert checked > 60 and min(seen.values()) > 0, seen


def test_the_labels_exits_are_the_default_and_explicit_settings_win():
    base = FractalParams()
    auto = label_exits(base, "triple:1.5:0.75:48")
    assert (auto.barriers, auto.max_hold) == ("atr:1.5:0.75", 49)
    # other labels: nothing changes (auto trades as none)
    assert label_exits(base, "swing") == base and label_exits(base, "3bar") == base
    assert parse_barriers("auto") is None and parse_barriers("none") is None
    # a stop or target set by the user wins; the hold still follows the label unless set
    for key, value in (("stop", "atr:2"), ("take_profit_r", 3.0), ("take_profit_atr", 1.0),
                       ("stop_buffer", 0.0002), ("stops_in_entry_bar", False),
                       ("atr_period", 20)):
        mine = label_exits(FractalParams(**{key: value}), "triple:1:1:24")
        assert mine.barriers == "none" and getattr(mine, key) == value and mine.max_hold == 25
    held = label_exits(FractalParams(max_hold=5), "triple:1:1:24")
    assert (held.barriers, held.max_hold) == ("atr:1:1", 5)
    given = FractalParams(barriers="atr:2:1")
    assert label_exits(given, "triple:1:1:24") == given and label_exits(
        FractalParams(barriers="none"), "triple:1:1:24").barriers == "none"
    for bad in ("atr:1", "atr:0:1", "pips:1:1", "atr:x:1"):
        with pytest.raises(ValueError, match="barriers"):
            FractalParams(barriers=bad)


def test_a_short_takes_the_lower_barrier_as_target_and_the_upper_as_stop():
    params = FractalParams(barriers="atr:2:0.5", sizing="kelly")
    kw = {"close": 1.0, "high": 1.001, "low": 0.999, "spread": 0.0001, "atr": 0.001,
          "hour_ok": True, "equity": 1e5}
    long = plan_entry(params, 1, np.array([0.05, 0.9, 0.05]), **kw)
    short = plan_entry(params, -1, np.array([0.05, 0.05, 0.9]), **kw)
    assert long.from_open and short.from_open
    assert (long.stop_dist, long.target_dist) == pytest.approx((0.0005, 0.002))
    assert (short.stop_dist, short.target_dist) == pytest.approx((0.002, 0.0005))
    assert long.size > short.size > 0          # risk 0.0005 against 0.002 per unit
    # Kelly reads b = target / stop: 4 for the long, 0.25 for the short (f* = 0.6 − 0.4/0.25 < 0)
    assert plan_entry(params, -1, np.array([0.0, 0.4, 0.6]), **kw) is None
    assert plan_entry(params, 1, np.array([0.0, 0.6, 0.4]), **kw) is not None
