"""What a strategy's result should be compared with: buy-and-hold, perfect foresight, chance.

- ``buy_and_hold``: buy ``units`` (default: as many as the cash pays for at the first ask) at the
  first bar's open ask, hold, sell at the last close (bid); same commission. Unlevered, so compare
  its return with a strategy's only at similar exposure.
- ``oracle_probs``: one-hot probabilities from the true fractal labels, traded with the same
  rules and costs (a report runs them on the compiled simulator, ``simulation.run_reference``,
  equal to ``run_backtest``): what perfect fractal prediction would earn with these exits (an
  upper bound).
- ``random_entries``: Monte-Carlo of random trades with the same number of trades, the same holding
  lengths and the same directions and sizes (shuffled together), same costs. Vectorised numpy, not
  backtrader: a random trade enters at a bar's open (ask for a long, bid for a short) and exits
  ``bars_held`` bars later at that bar's open (at the entry bar's close when ``bars_held`` is 0);
  no stops or targets, and random trades may overlap. Entry bars are uniform over the bars where
  the whole trade fits. The result is each draw's total return in percent of ``cash``.
- ``p_value``: share of draws with a return ≥ ours, with the +1 correction
  ``(1 + #{draws ≥ ours}) / (n + 1)``, so it is never 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtests.analysis.performance import compute_stats
from data.labels import fractal_labels
from strategy.engine import Booking
from strategy.fractal import PROB_COLUMNS, Costs


def buy_and_hold(candles: pd.DataFrame, costs: Costs = Costs(), cash: float = 100_000.0,
                 units: float | None = None, rates: np.ndarray | None = None) -> dict:
    """Statistics of buying at the first open (ask) and holding to the last close (bid)."""
    equity, trades = buy_and_hold_equity(candles, costs, cash, units, rates)
    return compute_stats(equity, trades, initial_equity=cash)


def buy_and_hold_equity(candles: pd.DataFrame, costs: Costs = Costs(), cash: float = 100_000.0,
                        units: float | None = None,
                        rates: np.ndarray | None = None) -> tuple[pd.Series, pd.DataFrame]:
    """(equity per bar, the one trade) of ``buy_and_hold`` (for reports that draw it).

    ``rates``: account currency per unit of quote currency per bar (P&L booked bar by bar at
    each bar's rate, as the engine does); None when the quote currency is the account's."""
    spreads = costs.spread_array(candles)
    opens, closes = candles["open"].to_numpy(float), candles["close"].to_numpy(float)
    entry = opens[0] + spreads[0] + costs.slippage
    book = Booking(candles, rates)
    if units is None:
        units = float(np.floor(cash / ((entry + costs.commission) * book.rate(0))))
    bars = np.arange(len(closes))
    equity_values = cash - units * costs.commission + units * book.move(
        np.zeros_like(bars), entry, bars, closes)
    exit_price = closes[-1] - costs.slippage
    equity_values[-1] = cash + units * float(book.move(0, entry, bars[-1], exit_price)) \
        - 2 * units * costs.commission
    equity = pd.Series(equity_values, index=candles.index, name="equity")
    pnl_net = equity_values[-1] - cash
    trades = pd.DataFrame({
        "entry_time": [candles.index[0]], "exit_time": [candles.index[-1]], "direction": [1],
        "size": [units], "entry_price": [entry], "exit_price": [exit_price],
        "pnl_net": [pnl_net], "bars_held": [len(candles) - 1], "exit_reason": ["end"],
    })
    return equity, trades


def oracle_probs(candles: pd.DataFrame, label_kind: str = "3bar") -> pd.DataFrame:
    """One-hot ``p_none, p_buy, p_sell`` from the true labels (NaN where the label is unknown)."""
    labels = fractal_labels(candles, label_kind).to_numpy()
    probs = np.zeros((len(labels), 3))
    known = labels >= 0
    probs[np.flatnonzero(known), labels[known].astype(int)] = 1.0
    probs[~known] = np.nan
    return pd.DataFrame(probs, index=candles.index, columns=list(PROB_COLUMNS))


def random_entries(candles: pd.DataFrame, trades: pd.DataFrame, costs: Costs = Costs(),
                   n_draws: int = 1000, seed: int = 0, cash: float = 100_000.0,
                   rates: np.ndarray | None = None) -> np.ndarray:
    """Total returns (%) of ``n_draws`` sets of random trades shaped like ``trades``."""
    n_trades = len(trades)
    if n_trades == 0:
        return np.zeros(n_draws)
    rng = np.random.default_rng(seed)
    opens = candles["open"].to_numpy(float)
    closes = candles["close"].to_numpy(float)
    spreads = costs.spread_array(candles)
    n = len(opens)
    held = np.clip(trades["bars_held"].to_numpy(int), 0, n - 2)
    direction = trades["direction"].to_numpy(int)
    size = trades["size"].to_numpy(float)
    # shuffle (holding, direction, size) together per draw, keeping the trades' joint mix
    order = np.argsort(rng.random((n_draws, n_trades)), axis=1)
    h, d, s = held[order], direction[order], size[order]
    entry_bar = rng.integers(1, n - h)  # entry in [1, n-1-h]: the exit bar exists
    exit_bar = entry_bar + h
    long = d > 0
    entry_price = opens[entry_bar] + np.where(long, spreads[entry_bar], 0.0) + d * costs.slippage
    raw_exit = np.where(h > 0, opens[exit_bar], closes[exit_bar])
    exit_price = raw_exit + np.where(long, 0.0, spreads[exit_bar]) - d * costs.slippage
    pnl = d * s * Booking(candles, rates).move(entry_bar, entry_price, exit_bar, exit_price) \
        - 2 * s * costs.commission
    return 100.0 * pnl.sum(axis=1) / cash


def p_value(ours: float, distribution: np.ndarray) -> float:
    """One-sided p-value of ``ours`` against the random distribution (+1 corrected)."""
    dist = np.asarray(distribution, dtype=float)
    return float((1 + np.sum(dist >= ours)) / (len(dist) + 1))
