"""Performance statistics of one equity curve and its trades (a pure function).

Conventions:
- returns are simple per-bar returns of the equity curve; Sharpe and Sortino use a zero risk-free
  rate and are annualised with ``sqrt(bars_per_year)`` (the key ``sharpe`` is this annualised
  figure everywhere; the per-bar ratio of the trials and PSR/DSR is ``sharpe_per_bar``, from
  ``significance.moments``); Sortino's downside deviation is ``sqrt(mean(min(r, 0)**2))`` over
  all bars;
- ``bars_per_year`` when not given: the median bar count of the full calendar years inside the
  data (first and last year excluded) when there is at least one, else the median bar count of
  the full calendar weeks (first and last week excluded) × 52.18 (FX H1 ≈ 120 × 52.18 ≈ 6,260);
- annual return is geometric: ``(final / initial) ** (bars_per_year / (bars - 1)) - 1``;
- ``max_drawdown_pct`` is ≤ 0 (like backtesting.py); its duration runs from the peak to the bar
  that regains it (or the last bar), in bars and in time;
- trade statistics use ``pnl_net`` (money): a win is ``pnl_net > 0``. Without trades the trade
  statistics are NaN (``n_trades`` 0); without losing trades ``profit_factor`` is ``inf``;
- ``exposure_pct``: share of bars with a position, a bar counting from the entry bar up to, not
  including, the exit bar (a trade opened and closed in one bar counts that bar);
- ``sqn`` = sqrt(n) × mean(pnl_net) / std(pnl_net, ddof=1) (NaN below 2 trades);
- ``cagr_pct``: compounded growth per calendar year, ``(final / initial) ** (365.25 days / span)
  - 1`` with ``span`` the time from the first to the last bar (``annual_return_pct`` counts bars);
- ``volatility_ann_pct``: ``std(returns, ddof=1) * sqrt(bars_per_year)`` in percent;
- ``calmar``: ``cagr_pct / |max_drawdown_pct|`` (NaN without a drawdown);
- ``exposure_adjusted_return_pct``: ``cagr_pct / (exposure_pct / 100)``, the growth per year spent
  in the market (NaN without exposure);
- ``longest_flat_bars`` / ``longest_flat``: the longest spell without a new equity high (strictly
  above every earlier value), in bars and in time; a curve that never makes one is flat throughout.

Also the accounting the reports state: ``period_returns`` (monthly or weekly), ``curve_summary``
(each equity curve's start, end, return and drawdown) and ``costs_charged`` (where the spread came
from and the money each cost took).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from strategy.fractal import Costs

WEEKS_PER_YEAR = 365.25 / 7


def infer_bars_per_year(index: pd.DatetimeIndex) -> float:
    """Observed bars per year from the index (see the module docstring)."""
    if len(index) < 2:
        return float("nan")
    idx = pd.DatetimeIndex(index)
    years = pd.Series(1, index=idx).groupby(idx.year).size()
    if len(years) >= 3:
        return float(years.iloc[1:-1].median())
    naive = idx.tz_convert(None) if idx.tz is not None else idx
    weeks = pd.Series(1, index=naive).groupby(naive.to_period("W")).size()
    if len(weeks) >= 3:
        return float(weeks.iloc[1:-1].median()) * WEEKS_PER_YEAR
    span_years = (idx[-1] - idx[0]) / pd.Timedelta(days=365.25)
    return float((len(idx) - 1) / span_years) if span_years > 0 else float("nan")


def drawdown(equity: pd.Series) -> pd.Series:
    """Drawdown in percent (≤ 0) at every bar."""
    values = equity.to_numpy(dtype=float)
    peak = np.maximum.accumulate(values)
    return pd.Series(100.0 * (values / peak - 1.0), index=equity.index, name="drawdown_pct")


def _drawdown_duration(values: np.ndarray) -> tuple[int, int, int]:
    """(bars, peak index, end index) of the longest spell below a previous peak."""
    best = (0, 0, 0)
    peak_i, peak_v = 0, values[0] if len(values) else 0.0
    for i in range(1, len(values)):
        if values[i] >= peak_v:
            if i - 1 > peak_i and i - peak_i > best[0]:
                best = (i - peak_i, peak_i, i)
            peak_i, peak_v = i, values[i]
    last = len(values) - 1
    if last > peak_i and last - peak_i > best[0]:
        best = (last - peak_i, peak_i, last)
    return best


def _longest_flat(values: np.ndarray) -> tuple[int, int, int]:
    """(bars, start index, end index) of the longest spell between strict new highs of
    ``values`` (the last spell runs to the last value)."""
    best = (0, 0, 0)
    high_i, high_v = 0, values[0] if len(values) else 0.0
    for i in range(1, len(values)):
        if values[i] > high_v:
            if i - high_i > best[0]:
                best = (i - high_i, high_i, i)
            high_i, high_v = i, values[i]
    last = len(values) - 1
    if last - high_i > best[0]:
        best = (last - high_i, high_i, last)
    return best


def compute_stats(equity: pd.Series, trades: pd.DataFrame,
                  bars_per_year: float | None = None,
                  initial_equity: float | None = None) -> dict:
    """Named statistics of an equity curve (one value per bar) and its closed trades.

    ``initial_equity``: the value before the first bar, for a curve whose first bar already
    holds a position (e.g. buy-and-hold); by default the first value is the start.
    """
    n = len(equity)
    index = equity.index
    values = equity.to_numpy(dtype=float)
    offset = 0
    if initial_equity is not None and n:
        values = np.concatenate([[float(initial_equity)], values])
        offset = 1   # values[i] belongs to bar i - 1 (the start value to bar 0)
    bpy = float(bars_per_year) if bars_per_year else infer_bars_per_year(index)
    stats: dict = {"start": index[0] if n else None, "end": index[-1] if n else None, "bars": n}

    exposed = np.zeros(n, dtype=bool)
    if len(trades) and n:
        entry = index.searchsorted(pd.DatetimeIndex(trades["entry_time"]))
        exit_ = index.searchsorted(pd.DatetimeIndex(trades["exit_time"]))
        for a, b in zip(entry, exit_, strict=True):
            exposed[a:max(b, a + 1)] = True
    stats["exposure_pct"] = float(100.0 * exposed.mean()) if n else float("nan")

    initial = float(values[0]) if n else float("nan")
    final = float(values[-1]) if n else float("nan")
    stats["final_equity"] = float(final)
    stats["total_return_pct"] = 100.0 * (final / initial - 1.0)
    growth = final / initial
    periods = len(values) - 1
    stats["annual_return_pct"] = (100.0 * (growth ** (bpy / periods) - 1.0)
                                  if periods > 0 and growth > 0 and math.isfinite(bpy)
                                  else float("nan"))
    if n:
        peak = np.maximum.accumulate(values)
        stats["max_drawdown_pct"] = float(100.0 * (values / peak - 1.0).min())
        bars, peak_i, end_i = _drawdown_duration(values)
        stats["max_drawdown_duration_bars"] = int(bars)
        start_t, end_t = index[max(peak_i - offset, 0)], index[max(end_i - offset, 0)]
        stats["max_drawdown_duration"] = end_t - start_t if bars else pd.Timedelta(0)
    else:
        stats.update(max_drawdown_pct=float("nan"), max_drawdown_duration_bars=0,
                     max_drawdown_duration=pd.Timedelta(0))

    returns = np.diff(values) / values[:-1] if len(values) > 1 else np.zeros(0)
    ann = math.sqrt(bpy) if math.isfinite(bpy) else float("nan")
    std = returns.std(ddof=1) if len(returns) > 1 else 0.0
    stats["sharpe"] = float(returns.mean() / std * ann) if std > 0 else float("nan")
    downside = math.sqrt(np.mean(np.minimum(returns, 0.0) ** 2)) if len(returns) else 0.0
    stats["sortino"] = float(returns.mean() / downside * ann) if downside > 0 else float("nan")
    stats["bars_per_year"] = float(bpy)

    pnl = trades["pnl_net"].to_numpy(dtype=float) if len(trades) else np.zeros(0)
    k = len(pnl)
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    nan = float("nan")
    stats["n_trades"] = k
    stats["win_rate_pct"] = float(100.0 * len(wins) / k) if k else nan
    if len(losses):
        stats["profit_factor"] = float(wins.sum() / -losses.sum())
    else:
        stats["profit_factor"] = float("inf") if len(wins) else nan
    stats["expectancy"] = float(pnl.mean()) if k else nan
    stats["avg_win"] = float(wins.mean()) if len(wins) else nan
    stats["avg_loss"] = float(losses.mean()) if len(losses) else nan
    stats["best_trade"] = float(pnl.max()) if k else nan
    stats["worst_trade"] = float(pnl.min()) if k else nan
    stats["avg_holding_bars"] = float(trades["bars_held"].mean()) if k else nan
    sd = pnl.std(ddof=1) if k > 1 else 0.0
    stats["sqn"] = float(math.sqrt(k) * pnl.mean() / sd) if sd > 0 else nan
    stats.update(trader_stats(values, index, offset, stats, returns))
    return stats


def trader_stats(values: np.ndarray, index: pd.Index, offset: int, stats: dict,
                 returns: np.ndarray) -> dict:
    """CAGR, annualised volatility, Calmar, exposure-adjusted return and the longest flat
    period (see the module docstring); ``stats`` holds ``compute_stats``' other figures."""
    nan = float("nan")
    out: dict = {}
    span = (index[-1] - index[0]) / pd.Timedelta(days=365.25) if len(index) > 1 else 0.0
    growth = values[-1] / values[0] if len(values) else nan
    out["cagr_pct"] = (100.0 * (growth ** (1.0 / span) - 1.0)
                       if span > 0 and math.isfinite(growth) and growth > 0 else nan)
    bpy = stats["bars_per_year"]
    out["volatility_ann_pct"] = (100.0 * float(returns.std(ddof=1)) * math.sqrt(bpy)
                                 if len(returns) > 1 and math.isfinite(bpy) else nan)
    mdd = stats["max_drawdown_pct"]
    out["calmar"] = (out["cagr_pct"] / abs(mdd) if math.isfinite(mdd) and mdd < 0 else nan)
    share = stats["exposure_pct"] / 100.0
    out["exposure_adjusted_return_pct"] = (out["cagr_pct"] / share
                                           if math.isfinite(share) and share > 0 else nan)
    if len(index):
        bars, a, b = _longest_flat(values)
        out["longest_flat_bars"] = int(bars)
        out["longest_flat"] = (index[max(b - offset, 0)] - index[max(a - offset, 0)]
                               if bars else pd.Timedelta(0))
    else:
        out.update(longest_flat_bars=0, longest_flat=pd.Timedelta(0))
    return out


def rolling_sharpe(equity: pd.Series, bars_per_year: float | None = None,
                   window: int | None = None) -> tuple[int, pd.Series]:
    """(window, the annualised Sharpe ratio of the last ``window`` bars' returns at each bar).

    Default window: about a month of bars (``bars_per_year / 12``), at least 20 and at most a
    quarter of the curve (at least 2); NaN until the window is full and where returns do not vary.
    """
    n = len(equity)
    bpy = float(bars_per_year) if bars_per_year else infer_bars_per_year(equity.index)
    if window is None:
        month = round(bpy / 12) if math.isfinite(bpy) else 20
        window = int(max(2, min(max(month, 20), n // 4)))
    returns = equity.astype(float).pct_change()
    roll = returns.rolling(window, min_periods=window)
    sd = roll.std(ddof=1)
    ann = math.sqrt(bpy) if math.isfinite(bpy) else float("nan")
    out = (roll.mean() / sd.where(sd > 1e-15) * ann).rename("rolling_sharpe")
    return window, out


# --- period returns and curves -----------------------------------------------------------------

def period_returns(equity: pd.Series, initial: float | None = None,
                   freq: str | None = None) -> tuple[str, pd.Series]:
    """("month" | "week", returns in % per calendar month, or week for spans under 3 months).

    A period's return is its last equity over the previous period's last (the first period's
    base is ``initial``, default the first equity value)."""
    if len(equity) == 0:
        return "month", pd.Series(dtype=float)
    idx = pd.DatetimeIndex(equity.index)
    naive = pd.Series(equity.to_numpy(float),
                      index=idx.tz_convert(None) if idx.tz is not None else idx)
    if freq is None:
        freq = "month" if (naive.index[-1] - naive.index[0]) >= pd.Timedelta(days=90) else "week"
    ends = naive.resample("ME" if freq == "month" else "W-SUN").last().dropna()
    starts = ends.shift(1)
    starts.iloc[0] = initial if initial is not None else float(naive.iloc[0])
    out = 100.0 * (ends / starts - 1.0)
    out.index = [t.strftime("%Y-%m") if freq == "month" else
                 (t - pd.Timedelta(days=6)).strftime("%Y-%m-%d") for t in ends.index]
    return freq, out


def curve_summary(curves: dict[str, dict]) -> dict:
    """report.json's ``equity_curves``: per curve its label, first/last time and value."""
    out = {}
    for key, c in curves.items():
        s = c["equity"]
        if len(s) == 0:
            continue
        out[key] = {"label": c["label"], "start": s.index[0], "end": s.index[-1],
                    "initial": float(s.iloc[0]), "final": float(s.iloc[-1]),
                    "total_return_pct": 100.0 * (float(s.iloc[-1]) / float(s.iloc[0]) - 1),
                    "max_drawdown_pct": float(drawdown(s).min())}
    return out


# --- leverage used ---------------------------------------------------------------------------

# Leverage above this (notional / equity) is named in the report and the terminal, capped or not:
# a gap of 1 % through the stop then costs this many % of equity, whatever the risk planned.
HIGH_LEVERAGE = 5.0


def leverage_used(trades: pd.DataFrame, equity: pd.Series, params,
                  rates: pd.Series | None = None) -> dict:
    """Each trade's notional (size × entry price, in account money: × ``rates`` at the signal
    bar when P&L is converted) over the equity at its signal bar, the basis the sizing used:
    the largest, the median, how many trades were above ``HIGH_LEVERAGE``, above the cap
    (``params.max_leverage``; fixed sizing is not capped by it) and at it (within 10 %: risk and
    Kelly sizing cut the size to 0.95 × the cap), and a warning (None: none due).
    """
    out = {"max": None, "median": None, "cap": float(params.max_leverage),
           "sizing": params.sizing, "high": HIGH_LEVERAGE, "n_high": 0, "n_over_cap": 0,
           "n_at_cap": 0, "at": None, "warning": None}
    if len(trades) == 0 or len(equity) == 0:
        return out
    at = pd.DatetimeIndex(trades["signal_time"])
    base = equity.reindex(at).to_numpy(float)
    rate = 1.0 if rates is None else rates.reindex(at).to_numpy(float)
    notional = trades["size"].to_numpy(float) * trades["entry_price"].to_numpy(float) * rate
    lev = notional / base
    if not np.isfinite(lev).any():
        return out
    worst = int(np.nanargmax(lev))
    cap = out["cap"]
    out.update(max=float(lev[worst]), median=float(np.nanmedian(lev)),
               n_high=int(np.sum(lev > HIGH_LEVERAGE)), n_over_cap=int(np.sum(lev > cap)),
               n_at_cap=int(np.sum((lev >= 0.9 * cap) & (lev <= cap))),
               at=trades["entry_time"].iloc[worst])
    n = len(lev)
    if out["n_over_cap"]:
        out["warning"] = (f"leverage reached {out['max']:.1f}× (trade entered "
                          f"{pd.Timestamp(out['at']):%Y-%m-%d %H:%M}), above the cap "
                          f"strategy.max_leverage = {cap:g}× in {out['n_over_cap']} of {n} trades"
                          + (": fixed sizing is not capped; lower strategy.units or size by risk"
                             if params.sizing == "fixed" else ""))
    elif out["n_high"]:
        out["warning"] = (f"leverage reached {out['max']:.1f}× (median {out['median']:.1f}×; "
                          f"above {HIGH_LEVERAGE:g}× in {out['n_high']} of {n} trades): a 1 % gap "
                          f"through a stop costs up to {out['max']:.1f} % of equity, more than "
                          f"the risk planned; cap it with strategy.max_leverage (now {cap:g}×"
                          + (f", reached by {out['n_at_cap']} trades, sized down to it"
                             if out["n_at_cap"] else "") + ")")
    return out


# --- costs charged ---------------------------------------------------------------------------

# The money each kind of cost took, in ``costs_charged`` (account currency).
COST_TOTALS = ("total_spread_cost", "total_commission", "total_slippage_cost", "total_costs")


def costs_charged(candles: pd.DataFrame, costs: Costs, trades: pd.DataFrame) -> dict:
    """The costs as actually charged: where the spread came from, its mean and range over the
    bars, commission and slippage, and the money each took from the trades."""
    spread = costs.spread_array(candles)
    if costs.spread is not None:
        where = "fixed (given)"
    elif "spread" in candles.columns:
        missing = int(candles["spread"].isna().sum())
        where = "the data's per-bar spread column" + (
            f" ({missing} missing bars at the default {costs.default_spread:g})" if missing else "")
    else:
        where = f"default {costs.default_spread:g} (the data has no spread column)"

    def total(col: str) -> float:
        return float(trades[col].sum()) if col in trades and len(trades) else 0.0

    return {
        "spread_source": where,
        "spread_mean": float(np.mean(spread)) if len(spread) else None,
        "spread_min": float(np.min(spread)) if len(spread) else None,
        "spread_max": float(np.max(spread)) if len(spread) else None,
        "spread_fixed": costs.spread, "default_spread": costs.default_spread,
        "spread_point": candles.attrs.get("point_evidence"),  # how the file's points were read
        "commission_per_unit_per_side": costs.commission, "slippage": costs.slippage,
        "total_spread_cost": total("spread_cost"), "total_commission": total("commission"),
        "total_slippage_cost": total("slippage_cost"), "total_costs": total("costs"),
        "units": {"spread": "price units", "slippage": "price units per fill",
                  "commission_per_unit_per_side": "money per unit per side",
                  "totals": "money (account currency)"},
    }
