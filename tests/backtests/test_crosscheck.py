"""Cross-check: the same signals through backtesting.py give the same trades as our backtrader run.

backtesting.py (AGPL, used only here and in benchmarks) is configured to our conventions:
``trade_on_close=False`` (market orders fill at the next open), ``exclusive_orders=True`` (a new
entry closes the open trade first: our reversal), ``hedging=False``. Its SL/TP orders are checked
in the entry bar too (it re-processes them after a market fill) and the stop before the target, as
ours. Two of our conventions it cannot express directly, so the mirror strategy emulates them:
- our take-profit is k × risk from the actual fill; the mirror computes it from the next bar's open
  (known in this test only) and, when backtesting.py would refuse the bracket (SL < close < TP
  broken because the next open gaps past the stop), that signal is dropped from BOTH runs;
- our spread is in price units and paid on the buy side (bid candles). backtesting.py's ``spread``
  is relative and paid at entry, so the mirror sets ``spread=0`` and charges our spread as a
  commission of spread/2 per unit on each side, and moves a short's stop and target down by the
  spread (our short exits trigger on the ask = bid + spread). Per-trade net PnL is then identical.
backtesting.py closes trades left open at the end at the last bar's open, we at its close, so the
signals stop ``max_hold + 1`` bars before the end and no trade is left open.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import data
from backtests.simulation import run_backtest
from strategy.fractal import Costs, FractalParams

Backtest = pytest.importorskip("backtesting").Backtest
Strategy = pytest.importorskip("backtesting").Strategy

BARS = 1500
COLS = ["p_none", "p_buy", "p_sell"]


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    return data.load("sample:EURUSD_H1").iloc[:BARS]


def random_signals(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    sig = rng.choice([0, 1, -1], size=n, p=[0.86, 0.07, 0.07]).astype(int)
    sig[0] = 0   # backtesting.py calls next() from the second bar on
    return sig


def drop_unexpressible(candles: pd.DataFrame, sig: np.ndarray, fp: FractalParams,
                       spread: float) -> np.ndarray:
    """Zero the signals backtesting.py would refuse, and the last max_hold + 1 bars."""
    sig = sig.copy()
    sig[-(fp.max_hold + 1):] = 0
    o, h, lo, c = (candles[k].to_numpy() for k in ("open", "high", "low", "close"))
    for i in np.flatnonzero(sig):
        d = int(sig[i])
        if d < 0 and not fp.allow_short:
            continue   # only closes a long: no bracket to refuse
        sl, tp = _bracket(i, d, o, h, lo, fp, spread)
        tp = tp if tp is not None else (np.inf if d > 0 else -np.inf)
        if not ((sl < c[i] < tp) if d > 0 else (tp < c[i] < sl)):
            sig[i] = 0
    return sig


def _bracket(i: int, d: int, o, h, lo, fp: FractalParams,
             spread: float) -> tuple[float, float | None]:
    """(sl, tp) for backtesting.py, in its bid terms, for an entry at the open of bar i + 1."""
    k = fp.take_profit_r
    if d > 0:
        stop = lo[i] - fp.stop_buffer
        fill = o[i + 1] + spread
        return stop, (fill + k * (fill - stop)) if k else None
    stop = h[i] + fp.stop_buffer            # our stop, on the ask
    fill = o[i + 1]
    return stop - spread, (fill - k * (stop - fill) - spread) if k else None


def mirror_backtest(candles: pd.DataFrame, sig: np.ndarray, fp: FractalParams, costs: Costs):
    spread = costs.spread or 0.0
    o, h, lo = (candles[k].to_numpy() for k in ("open", "high", "low"))

    class Mirror(Strategy):
        def init(self):
            pass

        def enter(self, i: int, d: int) -> None:
            sl, tp = _bracket(i, d, o, h, lo, fp, spread)
            (self.buy if d > 0 else self.sell)(size=int(fp.units), sl=sl, tp=tp)

        def next(self):
            i = len(self.data) - 1
            s = int(sig[i])
            if i + 1 >= len(o):
                return
            if self.position:
                trade = self.trades[-1]
                d = 1 if trade.is_long else -1
                if fp.exit_on_opposite and s == -d:
                    if s == 1 or fp.allow_short:
                        self.enter(i, s)          # exclusive_orders closes the trade first
                    else:
                        trade.close()
                elif fp.max_hold and i - trade.entry_bar + 1 >= fp.max_hold:
                    trade.close()
            elif s == 1 or (s == -1 and fp.allow_short):
                self.enter(i, s)

    frame = candles.rename(columns=str.capitalize)[["Open", "High", "Low", "Close", "Volume"]]
    frame.index = frame.index.tz_convert(None)
    per_unit = spread / 2 + costs.commission
    bt = Backtest(frame, Mirror, cash=100_000, spread=0.0,
                  commission=lambda size, price: abs(size) * per_unit,
                  margin=1.0, trade_on_close=False, hedging=False, exclusive_orders=True,
                  finalize_trades=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bt.run()


def probs_from(sig: np.ndarray, index: pd.DatetimeIndex) -> pd.DataFrame:
    p = np.tile([1.0, 0.0, 0.0], (len(sig), 1))
    p[sig == 1] = [0.0, 1.0, 0.0]
    p[sig == -1] = [0.0, 0.0, 1.0]
    return pd.DataFrame(p, index=index, columns=COLS)


CASES = {
    "no costs": (FractalParams(stop_buffer=0.0003, take_profit_r=1.5, max_hold=10),
                 Costs(spread=0.0)),
    "no costs, long only, no target": (
        FractalParams(stop_buffer=0.0, take_profit_r=0.0, max_hold=6, allow_short=False),
        Costs(spread=0.0)),
    "spread and commission": (FractalParams(stop_buffer=0.0002, take_profit_r=2.0, max_hold=12),
                              Costs(spread=0.00015, commission=0.00002)),
}


@pytest.mark.slow   # a few seconds: runs in `make test`, not in the fast subset
@pytest.mark.parametrize("case", list(CASES))
def test_same_trades_as_backtesting_py(candles, case):
    fp, costs = CASES[case]
    sig = drop_unexpressible(candles, random_signals(len(candles), seed=11), fp,
                             costs.spread or 0.0)
    ours = run_backtest(candles, probs_from(sig, candles.index), fp, costs)
    theirs = mirror_backtest(candles, sig, fp, costs)
    tt = theirs._trades.reset_index(drop=True)
    mine = ours.trades
    assert len(mine) > 60
    assert (mine["exit_reason"] != "end").all()
    assert set(mine["exit_reason"]) >= {"stop", "max_hold"}
    assert len(tt) == len(mine)
    np.testing.assert_array_equal(tt["EntryBar"].to_numpy(), mine["entry_bar"].to_numpy())
    np.testing.assert_array_equal(tt["ExitBar"].to_numpy(), mine["exit_bar"].to_numpy())
    np.testing.assert_array_equal(np.sign(tt["Size"].to_numpy()), mine["direction"].to_numpy())
    np.testing.assert_allclose(tt["PnL"].to_numpy(), mine["pnl_net"].to_numpy(), atol=1e-6)
    if not costs.spread:
        np.testing.assert_allclose(tt["EntryPrice"].to_numpy(), mine["entry_price"].to_numpy())
        np.testing.assert_allclose(tt["ExitPrice"].to_numpy(), mine["exit_price"].to_numpy())
    assert theirs["Win Rate [%]"] == pytest.approx(ours.stats["win_rate_pct"])
    assert theirs["Equity Final [$]"] == pytest.approx(ours.stats["final_equity"], abs=1e-6)
    assert theirs["# Trades"] == ours.stats["n_trades"]
