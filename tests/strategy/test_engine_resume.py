"""strategy.engine: a run resumed from its saved state equals one uninterrupted run, bar for bar."""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import data
from strategy import (
    Costs,
    EngineState,
    FractalParams,
    OrderRecord,
    TradeRecord,
    from_frame,
    merge,
    simulate,
    to_frame,
)

COLS = ["p_none", "p_buy", "p_sell"]
COSTS = Costs(commission=0.00002, slippage=0.00001)   # spread: the candles' per-bar column
SIZING = {
    "fixed": FractalParams(stop_buffer=0.0001, max_hold=6),
    "risk": FractalParams(stop_buffer=0.0001, max_hold=6, sizing="risk", risk_fraction=0.02),
}


@pytest.fixture(scope="module")
def market() -> tuple[pd.DataFrame, pd.DataFrame]:
    """600 sample bars (235 trades: every kind of exit, max_hold six times) with a per-bar
    spread, and random probabilities that trade often."""
    candles = data.load("sample:EURUSD_H1").iloc[:600].copy()
    rng = np.random.default_rng(5)
    candles["spread"] = 0.00008 + 0.00008 * rng.random(len(candles))
    p = rng.dirichlet([1.0, 1.0, 1.0], size=len(candles))
    p[0] = [0.0, 1.0, 0.0]    # a signal at the first close: never flat before the first trade
    p[40:45] = np.nan         # a gap without predictions
    return candles, pd.DataFrame(p, index=candles.index, columns=COLS)


@pytest.fixture(scope="module")
def full_runs(market) -> dict:
    candles, probs = market
    return {name: simulate(candles, probs, fp, COSTS) for name, fp in SIZING.items()}


def cut_points(trades: pd.DataFrame, n: int) -> list[int]:
    """Part-one lengths: at a signal, at an entry, inside a trade, at and before exits, and more."""
    long = trades[trades["bars_held"] >= 4].iloc[3]
    picks = [
        2,                                         # still in the very first trade
        int(trades.iloc[10]["signal_bar"]) + 1,    # ends on an entry signal (entry pending)
        int(long["entry_bar"]) + 1,                # ends on the entry bar
        int(long["entry_bar"]) + 3,                # inside an open trade
        int(trades.iloc[20]["exit_bar"]) + 1,      # ends on an exit bar
        int(trades.iloc[30]["exit_bar"]),          # ends the bar before an exit
        int(trades[trades["exit_reason"].isin(["opposite", "max_hold"])].iloc[5]["exit_bar"]),
        int(trades[trades["exit_reason"] == "max_hold"].iloc[0]["exit_bar"]),   # exit order pending
        n // 2 + 1, n - 7, n - 1,
    ]
    return sorted(set(picks))


def assert_same_run(a, b) -> None:
    pd.testing.assert_frame_equal(a.trades, b.trades, check_exact=True)
    pd.testing.assert_frame_equal(a.orders, b.orders, check_exact=True)
    pd.testing.assert_series_equal(a.equity, b.equity, check_exact=True)


@pytest.mark.slow   # about 4 s CPU per sizing mode
@pytest.mark.parametrize("sizing", list(SIZING))
def test_resume_anywhere_equals_one_uninterrupted_run(market, full_runs, sizing):
    candles, probs = market
    fp, full = SIZING[sizing], full_runs[sizing]
    assert len(full.trades) > 150
    assert full.trades["size"].nunique() > (50 if sizing == "risk" else 0)   # sized from cash
    cuts = cut_points(full.trades, len(candles))
    assert len(cuts) >= 8
    seen = {"never flat": 0, "open trade": 0, "entry pending": 0}
    for k, cut in enumerate(cuts):
        part1 = simulate(candles.iloc[:cut], probs.iloc[:cut], fp, COSTS, finalize=False)
        state = EngineState.from_dict(json.loads(json.dumps(part1.state.to_dict())))
        assert state == part1.state
        seen["never flat"] += state.flat_time is None
        seen["open trade"] += part1.open_trade is not None
        seen["entry pending"] += any(o.role == "entry" for o in part1.pending)
        if state.flat_time is not None:
            assert state.cash == full.equity.loc[state.flat_time]        # bit-exact
            assert full.trades["exit_time"].le(state.flat_time).sum() == state.n_trades
        # the whole history, or only from the resume point on: the engine starts after it
        rest = candles if k % 2 or state.flat_time is None else candles.loc[state.flat_time:]
        part2 = simulate(rest, probs.loc[rest.index[0]:], fp, COSTS, state=state)
        assert part2.equity.index[0] > (state.flat_time or candles.index[0] - pd.Timedelta(1))
        merged = merge(part1, part2)
        assert_same_run(merged, full)
        assert merged.state == full.state
    assert all(seen.values()), seen


@pytest.mark.slow   # a few seconds: runs in `make test`, not in the fast subset
@pytest.mark.parametrize("sizing", list(SIZING))
def test_stepping_bar_by_bar_like_paper_trading_gives_the_backtest(market, sizing):
    candles, probs = market
    fp, n = SIZING[sizing], 330
    whole = simulate(candles.iloc[:n], probs.iloc[:n], fp, COSTS, finalize=False)
    acc = simulate(candles.iloc[:300], probs.iloc[:300], fp, COSTS, finalize=False)
    for end in range(301, n + 1):   # each step replays only the bars since the last flat close
        step = simulate(candles.iloc[:end], probs.iloc[:end], fp, COSTS, finalize=False,
                        state=acc.state)
        assert step.meta["first_bar"] == acc.state.flat_bar + 1
        acc = merge(acc, step)
    assert_same_run(acc, whole)
    assert acc.state == whole.state and acc.pending == whole.pending
    assert (acc.open_trade is None and whole.open_trade is None) or same_record(
        acc.open_trade, whole.open_trade)


@pytest.mark.slow   # a few seconds: runs in `make test`, not in the fast subset
def test_resume_in_predictor_mode_calls_positions_of_the_candles_passed(market, full_runs):
    candles, probs = market
    full, table = full_runs["fixed"], probs.to_numpy()
    part1 = simulate(candles.iloc[:350], probs.iloc[:350], SIZING["fixed"], COSTS, finalize=False)
    rest = candles.loc[part1.state.flat_time:]
    offset = len(candles) - len(rest)
    part2 = simulate(rest, None, SIZING["fixed"], COSTS, predictor=lambda t: table[offset + t],
                     state=part1.state)
    assert_same_run(merge(part1, part2), full)


@pytest.mark.slow   # a few seconds: runs in `make test`, not in the fast subset
def test_resume_refuses_candles_without_the_resume_point_or_other_params(market):
    candles, probs = market
    part1 = simulate(candles.iloc[:300], probs.iloc[:300], SIZING["fixed"], COSTS, finalize=False)
    after = candles.index.get_loc(part1.state.flat_time) + 1
    with pytest.raises(ValueError, match="must contain the bar"):
        simulate(candles.iloc[after:], probs.iloc[after:], SIZING["fixed"], COSTS,
                 state=part1.state)
    with pytest.raises(ValueError, match="other params or costs"):
        simulate(candles, probs, SIZING["risk"], COSTS, state=part1.state)
    other = simulate(candles.iloc[:400], probs.iloc[:400], SIZING["fixed"], COSTS)
    part2 = simulate(candles, probs, SIZING["fixed"], COSTS, state=part1.state)
    with pytest.raises(ValueError, match="state=previous.state"):
        merge(other, part2)


# ten bars drifting up; a long from bar 1's signal enters at bar 2; no stop or target is touched
TEN = [(1.1000 + 0.0002 * i, 1.1004 + 0.0002 * i, 1.0996 + 0.0002 * i, 1.1001 + 0.0002 * i)
       for i in range(10)]


def ten_bars(signal_bar: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    index = pd.date_range("2024-01-01", periods=len(TEN), freq="h", tz="UTC", name="time")
    candles = pd.DataFrame(TEN, index=index, columns=["open", "high", "low", "close"])
    candles["volume"] = 1.0
    p = np.tile([1.0, 0.0, 0.0], (len(TEN), 1))
    p[signal_bar] = [0.0, 1.0, 0.0]
    return candles, pd.DataFrame(p, index=index, columns=COLS)


def test_finalize_false_returns_the_open_trade_and_its_orders_and_closes_nothing():
    candles, probs = ten_bars(1)
    fp = FractalParams(max_hold=0, take_profit_r=2.0, stop_buffer=0.01)
    costs = Costs(spread=0.0002, commission=0.00003)
    part = candles.iloc[:5]
    kept = simulate(part, probs.iloc[:5], fp, costs, finalize=False)
    assert kept.trades.empty and (kept.trades.columns == to_frame([], TradeRecord).columns).all()
    t = kept.open_trade
    assert t is not None and t.is_open and t.exit_reason is None and t.exit_bar is None
    assert (t.signal_bar, t.entry_bar, t.direction) == (1, 2, 1)
    assert t.entry_price == pytest.approx(part["open"].iloc[2] + 0.0002)
    assert t.spread_cost == pytest.approx(0.0002 * t.size) and math.isnan(t.pnl_net)
    assert sorted(o.role for o in kept.pending) == ["stop", "target"]
    assert all(o.executed_time is None and o.side == "sell" for o in kept.pending)
    marked = 100_000 + (part["close"].iloc[-1] - t.entry_price) * t.size - t.commission
    assert kept.equity.iloc[-1] == pytest.approx(marked, abs=1e-9)
    assert kept.state.flat_time == part.index[0] and kept.state.cash == 100_000.0

    closed = simulate(part, probs.iloc[:5], fp, costs)
    assert closed.open_trade is None and closed.pending == ()
    assert closed.trades["exit_reason"].tolist() == ["end"]
    end = closed.trades.iloc[0]
    assert closed.equity.iloc[-1] == pytest.approx(100_000 + end.pnl_net, abs=1e-9)
    closing = kept.equity.iloc[-1] - closed.equity.iloc[-1]   # in the last point only
    assert closing == pytest.approx(0.00003 * t.size, abs=1e-9)
    pd.testing.assert_series_equal(closed.equity.iloc[:-1], kept.equity.iloc[:-1])


def test_never_flat_state_resumes_from_the_first_bar():
    candles, probs = ten_bars(0)
    fp = FractalParams(max_hold=4, take_profit_r=0, stop_buffer=0.01)
    full = simulate(candles, probs, fp)
    part1 = simulate(candles.iloc[:3], probs.iloc[:3], fp, finalize=False)
    assert part1.state.flat_time is None and part1.state.flat_bar == -1
    assert part1.open_trade is not None
    merged = merge(part1, simulate(candles, probs, fp, state=part1.state))
    assert_same_run(merged, full)
    assert full.state.flat_time == candles.index[-1] and full.state.n_trades == 1


def same_record(a, b) -> bool:
    return type(a) is type(b) and all(
        (x is None and y is None) or x == y or (isinstance(x, float) and math.isnan(x)
                                                and math.isnan(y))
        for x, y in ((getattr(a, f.name), getattr(b, f.name)) for f in fields(a)))


def test_records_round_trip_through_frames(market):
    candles, probs = market
    r = simulate(candles.iloc[:400], probs.iloc[:400], SIZING["risk"], COSTS, finalize=False)
    trades = from_frame(r.trades)
    assert len(trades) > 20 and all(isinstance(t, TradeRecord) for t in trades)
    assert isinstance(trades[0].entry_time, pd.Timestamp) and isinstance(trades[0].exit_bar, int)
    pd.testing.assert_frame_equal(to_frame(trades), r.trades, check_exact=True)
    assert all(same_record(a, b) for a, b in zip(from_frame(to_frame(trades)), trades, strict=True))
    orders = from_frame(r.orders)
    assert all(isinstance(o, OrderRecord) for o in orders)
    assert any(o.executed_time is None for o in orders) and any(o.reason is None for o in orders)
    pd.testing.assert_frame_equal(to_frame(orders), r.orders, check_exact=True)
    opened = [t for t in (r.open_trade,) if t is not None] or trades[:1]
    back = from_frame(to_frame(opened))
    assert same_record(back[0], opened[0])
    assert to_frame([], OrderRecord).empty and from_frame(to_frame([], TradeRecord)) == []


def test_state_json_round_trip_is_exact():
    s = EngineState(flat_time=pd.Timestamp("2024-03-01 10:00", tz="UTC"), flat_bar=41,
                    cash=100_000.0 + 1 / 3, n_trades=7, n_orders=20,
                    start_time=pd.Timestamp("2024-01-01", tz="UTC"), initial_cash=100_000.0,
                    params=FractalParams().to_dict(), costs=Costs().to_dict())
    text = json.dumps(s.to_dict())
    back = EngineState.from_dict(json.loads(text))
    assert back == s and back.cash == s.cash and "2024-03-01T10:00:00+00:00" in text
    with pytest.raises(ValueError, match="unknown"):
        EngineState.from_dict({**s.to_dict(), "extra": 1})


ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("torch", "models", "backtests")


@pytest.mark.slow   # a few seconds: runs in `make test`, not in the fast subset
def test_strategy_imports_no_torch_models_or_backtests():
    for path in (ROOT / "strategy").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not [n for n in names if n.split(".")[0] in FORBIDDEN], (path, names)
    code = ("import sys, strategy, strategy.engine, strategy.fast; "
            f"print([m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
