"""strategy.engine.to_frame (built column by column) equals the row-wise frame it replaced."""

from __future__ import annotations

import types
from dataclasses import fields
from typing import get_args, get_type_hints

import numpy as np
import pandas as pd
import pytest

from strategy.engine import OrderRecord, TradeRecord, from_frame, to_frame

T0 = pd.Timestamp("2024-01-05 10:00", tz="UTC")


def row_wise(records, record_type, time_dtype="datetime64[ns, UTC]"):
    """The former implementation: a frame of rows, then each column cast."""
    columns = [f.name for f in fields(record_type)]
    frame = pd.DataFrame([[getattr(r, c) for c in columns] for r in records], columns=columns)
    for name, hint in get_type_hints(record_type).items():
        args = [a for a in get_args(hint) if a is not type(None)] if isinstance(
            hint, types.UnionType) else [hint]
        col, base = frame[name], args[0]
        if base is pd.Timestamp:
            frame[name] = pd.Series([pd.NaT if v is None else v for v in col],
                                    index=frame.index, dtype=time_dtype)
        elif base is int:
            missing = col.isna().any()
            frame[name] = col.astype("Int64" if missing or name == "executed_bar" else "int64")
        elif base is float:
            frame[name] = col.astype(float)
    return frame


def trade(k, open_=False):
    h = pd.Timedelta(hours=1)
    return TradeRecord(T0 + k * h, T0 + (k + 1) * h, None if open_ else T0 + (k + 3) * h,
                       1 if k % 2 else -1, 10_000.0, np.float64(1.1 + k / 1e4),
                       np.nan if open_ else 1.1005, 5.0, 0.7, 4.3, 0.0004,
                       None if open_ else np.int64(2), None if open_ else "stop", k, k + 1,
                       None if open_ else k + 3, 0.1, 0.5, 0.1)


def order(k, filled=True):
    h = pd.Timedelta(hours=1)
    return OrderRecord(T0 + k * h, T0 + (k + 1) * h if filled else None, "Market",
                       1.1 if filled else np.nan, "buy", "entry", 1000.0, 1.1,
                       "Completed" if filled else "Accepted", None if k % 2 else "signal",
                       k + 1, np.int64(k), k + 1 if filled else None)


@pytest.mark.parametrize("records, kind", [
    ([trade(0), trade(1), trade(2)], TradeRecord),
    ([trade(0), trade(1, open_=True)], TradeRecord),
    ([], TradeRecord),
    ([order(0), order(1), order(2, filled=False)], OrderRecord),
    ([order(0)], OrderRecord),
    ([], OrderRecord),
])
@pytest.mark.parametrize("time_dtype", ["datetime64[ns, UTC]", "datetime64[s, UTC]"])
def test_to_frame_equals_the_row_wise_frame(records, kind, time_dtype):
    got = to_frame(records, kind, time_dtype)
    expected = row_wise(records, kind, time_dtype)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert list(got.dtypes) == list(expected.dtypes)
    if records:
        assert repr(from_frame(got, kind)) == repr(from_frame(expected, kind))   # NaN != NaN
