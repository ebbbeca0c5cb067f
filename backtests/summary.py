"""Plain summaries of candle sources, for `attnbt data show` and the demo."""

from __future__ import annotations

import pandas as pd

from data.features import WARMUP
from data.labels import label_summary


def timeframe(index: pd.DatetimeIndex) -> pd.Timedelta | None:
    """The most common spacing between bars (the bar timeframe)."""
    if len(index) < 2:
        return None
    return pd.Series(index[1:] - index[:-1]).mode().iloc[0]


def describe_frame(candles: pd.DataFrame, label_kind: str = "3bar") -> dict:
    """Rows, range, timeframe, gaps and label balance of a canonical candle frame."""
    index = candles.index
    step = timeframe(index)
    gaps = []
    if step is not None:
        deltas = pd.Series(index[1:] - index[:-1], index=index[1:])
        big = deltas[deltas > step]
        gaps = [(str(t - d), str(t), str(d)) for t, d in big.sort_values(ascending=False).items()]
    labels = label_summary(candles, label_kind)
    known = labels["none"] + labels["buy"] + labels["sell"]
    return {
        "source": candles.attrs.get("source", "?"),
        "rows": len(candles), "start": str(index[0]), "end": str(index[-1]),
        "timeframe": str(step) if step is not None else "?",
        "columns": list(candles.columns),
        "volume_missing": bool(candles.attrs.get("volume_missing", False)),
        "gaps": len(gaps), "largest_gaps": gaps[:3],
        "labels": labels, "label_kind": label_kind,
        "label_share": {k: labels[k] / known if known else 0.0 for k in ("none", "buy", "sell")},
        "warmup_bars": WARMUP,
    }
