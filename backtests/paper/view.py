"""Reading a paper account: its journal as frames (``read_account``), its status, the list of
accounts, the paper period as a backtest result (``paper_record`` for ``attnbt compare``) and its
report (the backtest report's writer over the paper period)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from backtests.paper.account import Account, PaperError
from backtests.paper.journal import (
    JOURNAL,
    account_dir,
    candles_from,
    equity_series,
    load_account,
    load_cursor,
    open_journal,
    paper_root,
    records,
    ts,
)
from backtests.store import Registry
from data.errors import AttnbtError
from strategy.engine import ORDER_COLUMNS, TRADE_COLUMNS, OrderRecord, TradeRecord


@dataclass
class PaperView:
    """An account as read from its journal."""

    account: Account
    cursor: dict
    candles: pd.DataFrame
    probs: pd.DataFrame
    trades: pd.DataFrame
    orders: pd.DataFrame
    equity: pd.Series
    events: list[dict]
    steps: int


def read_account(name: str, runs_dir: str | Path | None = None) -> PaperView:
    """Everything the journal holds for ``name`` (a consistent snapshot: one read transaction)."""
    path = account_dir(name, runs_dir) / JOURNAL
    with open_journal(path) as db:
        db.execute("BEGIN")
        try:
            account = load_account(db)
            cur = load_cursor(db)
            candles, probs = candles_from(db, account.settings, None)
            trades = records(db, "trades", TradeRecord, list(TRADE_COLUMNS))
            orders = records(db, "orders", OrderRecord, list(ORDER_COLUMNS))
            equity = equity_series(db)
            events = [dict(r) for r in db.execute("SELECT * FROM events ORDER BY id")]
            steps = db.execute("SELECT count(*) FROM steps").fetchone()[0]
        finally:
            db.execute("COMMIT")
    return PaperView(account, cur, candles, probs, trades, orders, equity, events, steps)


def status(name: str, runs_dir: str | Path | None = None) -> dict:
    """Position, open orders, equity and the last bar seen."""
    path = account_dir(name, runs_dir) / JOURNAL
    with open_journal(path) as db:
        account = load_account(db)
        cur = load_cursor(db)
        eq = db.execute("SELECT time, equity FROM equity ORDER BY bar DESC LIMIT 1").fetchone()
        n_trades = db.execute("SELECT count(*) FROM trades").fetchone()[0]
        pnl = db.execute("SELECT coalesce(sum(pnl_net), 0) FROM trades").fetchone()[0]
        waiting = db.execute("SELECT time, detail FROM events WHERE kind='gap' ORDER BY id DESC "
                             "LIMIT 1").fetchone()
        revised = db.execute("SELECT count(*) FROM events WHERE kind='revised'").fetchone()[0]
    cfg = account.settings
    last = ts(cur["last_time"])
    gap = None
    if waiting is not None and last is not None and ts(waiting["time"]) > last:
        gap = {"before": str(ts(waiting["time"])), **json.loads(waiting["detail"])}
    return {"name": account.name, "source": cfg.source, "model": cfg.model,
            "model_hash": cfg.model_hash, "train_run": cfg.train_run,
            "created": account.created, "steps": cur["step"], "bars": cur["n_bars"],
            "last_bar": None if last is None else str(last),
            "position": json.loads(cur["open_trade"]) if cur["open_trade"] else None,
            "open_orders": _pending_orders(json.loads(cur["pending"])),
            "equity": cfg.cash if eq is None else eq["equity"],
            "equity_time": None if eq is None else str(ts(eq["time"])),
            "cash": cfg.cash, "closed_trades": n_trades, "realised_pnl": pnl,
            "waiting_on_gap": gap, "revised_bars": revised,
            "instrument": cfg.instrument, "price_digits": cfg.price_digits or 5}


def _pending_orders(pending: list[dict]) -> list[dict]:
    """The orders still alive, with the prices they really have: a market order has none (NaN,
    stored as null) and neither has a take-profit whose entry has not filled yet (the engine
    holds a placeholder there until the fill sets the target)."""
    unfilled = {o["created_bar"] for o in pending if o["role"] == "entry"}
    return [{**o, "order_price": None} if o["role"] == "target" and o["created_bar"] in unfilled
            else o for o in pending]


def list_accounts(runs_dir: str | Path | None = None) -> list[dict]:
    root = paper_root(runs_dir)
    out = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if (folder / JOURNAL).is_file():
            try:
                out.append(status(folder.name, runs_dir))
            except PaperError as exc:
                out.append({"name": folder.name, "error": str(exc)})
    return out


def paper_result(view: PaperView):
    """The paper period as a ``BacktestResult`` (closed trades; equity marked to market),
    annualised at the bars per year of the source's history when the account was made (the
    rule a backtest applies to its own bars; a few paper bars alone would give another figure)."""
    from backtests.analysis.performance import compute_stats
    from backtests.simulation import BacktestResult

    a = view.account
    stats = compute_stats(view.equity, view.trades, bars_per_year=a.settings.bars_per_year)
    return BacktestResult(trades=view.trades, equity=view.equity, orders=view.orders,
                          stats=stats, params=a.params,
                          costs=a.costs, cash=a.settings.cash,
                          meta={"paper": a.name, "bars": len(view.candles),
                                "open_trade": json.loads(view.cursor["open_trade"])
                                if view.cursor["open_trade"] else None})


def paper_record(name: str, runs_dir: str | Path | None = None) -> dict:
    """What ``attnbt compare`` reads for ``paper:NAME``: stats, equity, trades, params, costs,
    data and period."""
    view = read_account(name, runs_dir)
    if len(view.equity) == 0:
        raise PaperError(f"paper account {name!r} has not traded a bar yet; step it first",
                         see=f"paper step {name}")
    result = paper_result(view)
    return {"stats": result.stats, "equity": view.equity, "trades": view.trades,
            "params": result.params.to_dict(), "costs": result.costs.to_dict(),
            "data": view.account.settings.source,
            "period": (str(view.equity.index[0]), str(view.equity.index[-1]))}


def paper_facts(view: PaperView) -> dict:
    """What the account traded, for the report's "What was traded" table."""
    from backtests.currency import conversion
    from data.summary import timeframe_label

    cfg = view.account.settings
    conv = conversion(cfg.source, cfg.instrument, cfg.account_currency)
    return {"instrument": cfg.instrument, "instrument_from": cfg.instrument_from,
            "source": cfg.source,
            "account_currency": cfg.account_currency, "pnl_conversion": conv.describe(),
            "timeframe": timeframe_label(cfg.timeframe), "period": "paper",
            "model": cfg.model, "model_label": f"{cfg.model} ({cfg.train_run})",
            "train_run": cfg.train_run, "model_hash": cfg.model_hash,
            "config_id": None, "conversion": conv}


def _in_sample(view: PaperView) -> bool:
    """True when the paper period starts on or before the model's last validation bar (as a
    backtest judges its period); a model saved without a split counts as in-sample."""
    from models.checkpoint import read_meta

    fold = read_meta(view.account.settings.train_path).fold
    return fold is None or bool(len(view.equity) and view.equity.index[0] <= fold.val_end)


def report(name: str, runs_dir: str | Path | None = None) -> Path:
    """Write the backtest report over the paper period (report.html, trades.csv, ...) into the
    account's ``report/`` folder; returns report.html's path."""
    from backtests.analysis import catalog as stat_table
    from backtests.reports.backtest import write_report

    view = read_account(name, runs_dir)
    if len(view.equity) < 2:
        raise PaperError(f"paper account {name!r} has fewer than 2 bars traded; nothing to "
                         "report yet")
    result = paper_result(view)
    cfg = view.account.settings
    title = (f"paper {name}: {cfg.model} ({cfg.train_run}) on "
             f"{view.equity.index[0]:%Y-%m-%d %H:%M} → {view.equity.index[-1]:%Y-%m-%d %H:%M}")
    html = write_report(account_dir(name, runs_dir) / "report", result, view.candles,
                        title=title, facts=paper_facts(view), in_sample=_in_sample(view),
                        extra={
                            "paper_account": name, "source": cfg.source,
                            "model_hash": cfg.model_hash, "train_run": cfg.train_run,
                            "steps": view.steps, "open_trade": result.meta["open_trade"],
                            "events": len(view.events)})
    reg = Registry(runs_dir)
    try:
        run = reg.resolve(cfg.registry_run, kind="paper")
        reg.finish(run, stat_table.summary("backtest", result.stats), status="done")
    except AttnbtError:
        pass   # the registry row is a listing aid; the journal is the record
    return html


__all__ = ["PaperView", "list_accounts", "paper_facts", "paper_record", "paper_result", "read_account", "report",
           "status"]
