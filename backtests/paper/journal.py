"""The journal of a paper account: ``<runs>/paper/<NAME>/journal.sqlite``.

Its schema (version in ``PRAGMA user_version``, upgraded by ``MIGRATIONS``), opening it through
``backtests.store.sqlitedb`` (WAL, busy timeout, ``synchronous = FULL``), the step's write
transaction with the crash-test points, and the rows as frames and records.
``ATTNBT_PAPER_CRASH_AT=<point>`` makes a step ``os._exit(137)`` at one of ``CRASH_POINTS``.
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from backtests.paper.account import Account, AccountSettings, PaperBusy, PaperError
from backtests.store import runs_root
from backtests.store import sqlitedb as sqldb
from strategy.engine import ORDER_COLUMNS, TRADE_COLUMNS, OrderRecord, TradeRecord, to_frame
from strategy.fractal import PROB_COLUMNS

SCHEMA_VERSION = 1
JOURNAL = "journal.sqlite"
CRASH_ENV = "ATTNBT_PAPER_CRASH_AT"
CRASH_POINTS = ("begin", "read", "bars", "orders", "trades", "equity", "events", "cursor",
                "commit", "after_commit")
TIME_FIELDS = {"created_time", "executed_time", "signal_time", "entry_time", "exit_time"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def crash(point: str) -> None:
    """Die here (exit code 137, nothing cleaned up) when the crash tests ask for ``point``."""
    if os.environ.get(CRASH_ENV) == point:
        os._exit(137)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def ns(t: pd.Timestamp) -> int:
    """A bar time as stored: nanoseconds since the epoch (UTC)."""
    return int(pd.Timestamp(t).as_unit("ns").value)


def ts(value: int | None) -> pd.Timestamp | None:
    """A stored bar time back as a UTC timestamp."""
    return None if value is None else pd.Timestamp(int(value), tz="UTC")


# --- where things live ---------------------------------------------------------------------------
def paper_root(runs_dir: str | Path | None = None) -> Path:
    return runs_root(runs_dir) / "paper"


def account_dir(name: str, runs_dir: str | Path | None = None) -> Path:
    if not _NAME.match(name):
        raise PaperError(f"{name!r} is not a usable account name (letters, digits, _ . -; up to "
                         "64 characters, starting with a letter or digit)")
    return paper_root(runs_dir) / name


# --- the schema ----------------------------------------------------------------------------------
def _sql_type(kind: type, name: str) -> str:
    if name in TIME_FIELDS:
        return "INTEGER"
    hint = {f: t for f, t in kind.__annotations__.items()}[name]
    return "TEXT" if "str" in str(hint) else ("INTEGER" if "int" in str(hint) else "REAL")


def _m0_v1(db: sqlite3.Connection) -> None:
    """v1: account, cursor, bars, orders, trades, equity, events, steps."""
    db.execute("CREATE TABLE account (id INTEGER PRIMARY KEY CHECK (id = 1), name TEXT NOT NULL,"
               " created TEXT NOT NULL, config TEXT NOT NULL)")
    db.execute("CREATE TABLE cursor (id INTEGER PRIMARY KEY CHECK (id = 1), step INTEGER NOT NULL,"
               " last_time INTEGER, n_bars INTEGER NOT NULL, offset INTEGER, guard TEXT,"
               " engine_state TEXT, feature_state TEXT NOT NULL, open_trade TEXT,"
               " pending TEXT NOT NULL, updated TEXT NOT NULL)")
    db.execute("CREATE TABLE bars (bar INTEGER PRIMARY KEY, time INTEGER NOT NULL UNIQUE,"
               " open REAL NOT NULL, high REAL NOT NULL, low REAL NOT NULL, close REAL NOT NULL,"
               " volume REAL NOT NULL, spread REAL, p_none REAL, p_buy REAL, p_sell REAL,"
               " signal INTEGER NOT NULL, step INTEGER NOT NULL)")
    order_cols = ", ".join(f"{c} {_sql_type(OrderRecord, c)}" for c in ORDER_COLUMNS if c != "ref")
    db.execute(f"CREATE TABLE orders (ref INTEGER PRIMARY KEY, {order_cols}, step INTEGER)")
    trade_cols = ", ".join(f"{c} {_sql_type(TradeRecord, c)}" for c in TRADE_COLUMNS)
    db.execute(f"CREATE TABLE trades (n INTEGER PRIMARY KEY, {trade_cols}, step INTEGER)")
    db.execute("CREATE TABLE equity (bar INTEGER PRIMARY KEY, time INTEGER NOT NULL,"
               " equity REAL NOT NULL, step INTEGER)")
    db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, step INTEGER,"
               " created TEXT NOT NULL, kind TEXT NOT NULL, time INTEGER, detail TEXT)")
    db.execute("CREATE TABLE steps (id INTEGER PRIMARY KEY, started TEXT NOT NULL,"
               " finished TEXT NOT NULL, new_bars INTEGER NOT NULL, first_time INTEGER,"
               " last_time INTEGER, message TEXT)")


MIGRATIONS = [_m0_v1]
assert len(MIGRATIONS) == SCHEMA_VERSION


# --- opening and writing -------------------------------------------------------------------------
@contextmanager
def open_journal(path: Path, *, create: bool = False,
                 wait: float = 10.0) -> Iterator[sqlite3.Connection]:
    """A connection to the journal at ``path``, its schema brought to ``SCHEMA_VERSION``."""
    if not create and not path.exists():
        raise PaperError(f"no paper account at {path.parent}", see="paper list")
    try:
        db = sqldb.connect(path, timeout=wait)
    except sqlite3.Error as exc:
        raise PaperError(f"cannot open the journal {path} ({exc})") from exc
    with closing(db):
        try:
            sqldb.prepare(db, timeout=wait, steps=MIGRATIONS, synchronous_full=True,
                          newer=lambda version: PaperError(
                              f"journal {path} was made by a newer attnbt (schema v{version}, "
                              f"this one knows v{SCHEMA_VERSION}): upgrade attnbt"))
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise PaperBusy(f"the journal {path} is held by another attnbt process; wait "
                                "for its step to end") from exc
            raise PaperError(f"{path} is not a usable paper journal ({exc})") from exc
        except sqlite3.DatabaseError as exc:
            raise PaperError(f"{path} is not a usable paper journal ({exc})") from exc
        db.row_factory = sqlite3.Row
        yield db


@contextmanager
def transaction(db: sqlite3.Connection, path: Path) -> Iterator[sqlite3.Connection]:
    """One step's write transaction (``sqlitedb.transaction``) with the crash-test points."""
    def busy(exc: sqlite3.OperationalError) -> PaperBusy:
        return PaperBusy(f"another step is running on this account ({path.parent.name}); it was "
                         "not started (nothing changed)")

    with sqldb.transaction(db, busy=busy, before_commit=lambda: crash("commit")):
        yield db
    crash("after_commit")


def create_account(db: sqlite3.Connection, account: Account, *, last_time: int | None,
                   offset: int | None, guard: str | None, feature_state: str) -> None:
    """The ``account`` row and the first ``cursor`` row of a new journal."""
    db.execute("INSERT INTO account VALUES (1, ?, ?, ?)",
               (account.name, account.created, account.settings.to_json()))
    db.execute("INSERT INTO cursor VALUES (1, 0, ?, 0, ?, ?, NULL, ?, NULL, '[]', ?)",
               (last_time, offset, guard, feature_state, account.created))


def replace_since_flat(db: sqlite3.Connection, step_id: int, *, flat_bar: int, n_trades: int,
                       orders: list[dict], trades: list[dict], equity: pd.Series,
                       first_bar: int) -> None:
    """Orders, trades and equity after the last flat close (bar ``flat_bar``) replaced by those
    of the run resumed there (what ``strategy.engine.merge`` does); ``n_trades`` trades closed
    before it."""
    db.execute("DELETE FROM orders WHERE created_bar > ?", (flat_bar,))
    order_cols = list(ORDER_COLUMNS)
    db.executemany(f"INSERT INTO orders ({', '.join(order_cols)}, step) VALUES "
                   f"({', '.join('?' * (len(order_cols) + 1))})",
                   [(*row_values(o, order_cols), step_id) for o in orders])
    crash("orders")
    db.execute("DELETE FROM trades WHERE exit_bar > ?", (flat_bar,))
    trade_cols = list(TRADE_COLUMNS)
    db.executemany(f"INSERT INTO trades (n, {', '.join(trade_cols)}, step) VALUES "
                   f"({', '.join('?' * (len(trade_cols) + 2))})",
                   [(n_trades + k, *row_values(t, trade_cols), step_id)
                    for k, t in enumerate(trades)])
    crash("trades")
    db.execute("DELETE FROM equity WHERE bar > ?", (flat_bar,))
    db.executemany("INSERT INTO equity VALUES (?,?,?,?)",
                   [(first_bar + k, ns(t), float(v), step_id)
                    for k, (t, v) in enumerate(equity.items())])
    crash("equity")


# --- reading -------------------------------------------------------------------------------------
def load_account(db: sqlite3.Connection) -> Account:
    row = db.execute("SELECT * FROM account").fetchone()
    if row is None:
        raise PaperError("the journal holds no account (an init was interrupted?); remove the "
                         "account folder and init again")
    return Account(row["name"], row["created"], AccountSettings.from_json(row["config"]))


def load_cursor(db: sqlite3.Connection) -> dict:
    return dict(db.execute("SELECT * FROM cursor").fetchone())


def candles_from(db: sqlite3.Connection, settings: AccountSettings, since_ns: int | None,
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The recorded bars from ``since_ns`` on (all: None) and their probabilities."""
    where, args = ("WHERE time >= ?", (since_ns,)) if since_ns is not None else ("", ())
    rows = db.execute(f"SELECT time, open, high, low, close, volume, spread, p_none, p_buy, "
                      f"p_sell FROM bars {where} ORDER BY bar", args).fetchall()
    arr = np.array([tuple(r) for r in rows], dtype=float).reshape(-1, 10)
    index = pd.DatetimeIndex(pd.to_datetime(arr[:, 0].astype("int64"), utc=True), name="time")
    candles = pd.DataFrame(arr[:, 1:6], index=index,
                           columns=["open", "high", "low", "close", "volume"])
    if settings.spread:
        candles["spread"] = arr[:, 6]
    probs = pd.DataFrame(arr[:, 7:10], index=index, columns=list(PROB_COLUMNS))
    return candles, probs


def row_values(record: dict, columns: list[str]) -> list:
    """An order's or trade's fields as SQLite values (times in ns, NaN as NULL)."""
    out = []
    for c in columns:
        v = record[c]
        if c in TIME_FIELDS:
            out.append(None if v is None or v is pd.NaT else ns(v))
        elif isinstance(v, float) and math.isnan(v):
            out.append(None)
        elif v is None or v is pd.NA:
            out.append(None)
        elif isinstance(v, np.integer | int) and not isinstance(v, bool):
            out.append(int(v))
        elif isinstance(v, np.floating | float):
            out.append(float(v))
        else:
            out.append(v)
    return out


def records(db: sqlite3.Connection, table: str, kind: type, columns: list[str]) -> pd.DataFrame:
    """The ``orders`` or ``trades`` table as the engine's frame of ``kind`` records."""
    order = "ref" if table == "orders" else "n"
    rows = db.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}").fetchall()
    recs = []
    for r in rows:
        values = {}
        for c in columns:
            v = r[c]
            if c in TIME_FIELDS:
                values[c] = ts(v)
            elif v is None and kind.__annotations__[c] in ("float",):
                values[c] = float("nan")
            else:
                values[c] = v
        for c, hint in kind.__annotations__.items():
            if hint == "float" and values[c] is None:
                values[c] = float("nan")
        recs.append(kind(**values))
    return to_frame(recs, kind)


def equity_series(db: sqlite3.Connection) -> pd.Series:
    eq = db.execute("SELECT time, equity FROM equity ORDER BY bar").fetchall()
    return pd.Series([r[1] for r in eq], name="equity", dtype=float,
                     index=pd.DatetimeIndex([ts(r[0]) for r in eq], name="time"))


def record_event(db: sqlite3.Connection, step_id: int, event: dict) -> None:
    db.execute("INSERT INTO events (step, created, kind, time, detail) VALUES (?,?,?,?,?)",
               (step_id, now_iso(), event["kind"],
                None if event["time"] is None else ns(event["time"]),
                json.dumps(event["detail"], default=str)))


__all__ = ["CRASH_ENV", "CRASH_POINTS", "JOURNAL", "MIGRATIONS", "SCHEMA_VERSION", "TIME_FIELDS",
           "account_dir", "candles_from", "crash", "create_account", "equity_series",
           "load_account", "load_cursor", "now_iso", "ns", "open_journal", "paper_root",
           "record_event", "records", "replace_since_flat", "row_values", "transaction", "ts"]
