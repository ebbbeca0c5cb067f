"""Rendering only: results (dicts, frames) → pages, figures and text; imports no store, executor or study.

``page`` is the one HTML kit (page frames, tables, inline PNGs), ``figures`` the backtest and compare
figures (matplotlib, Bokeh); ``backtest``, ``compare``, ``walkforward`` and ``sweep`` render their pages
from what they are given (the numbers come from ``backtests.analysis``)."""
