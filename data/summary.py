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


_UNITS = (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def timeframe_label(step: pd.Timedelta | None) -> str:
    """A short bar-size label: ``1min``, ``5min``, ``1h``, ``4h``, ``1d``, ``1w`` (``?`` if None)."""
    if step is None or pd.isna(step) or step <= pd.Timedelta(0):
        return "?"
    seconds = step.total_seconds()
    for suffix, size in _UNITS:
        if seconds % size == 0:
            return f"{int(seconds // size)}{suffix}"
    return f"{seconds * 1000:g}ms"


def describe_frame(candles: pd.DataFrame, label_kind: str = "3bar") -> dict:
    """Rows, range, timeframe, gaps and label balance of a canonical candle frame, and what
    loading it did: where volume came from, blank lines skipped, columns ignored, the spread point
    and its evidence, and warnings (prices finer than the point, a last line without a line end)."""
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
        "timeframe": timeframe_label(step),
        "columns": list(candles.columns),
        "volume_missing": bool(candles.attrs.get("volume_missing", False)),
        "volume_from": candles.attrs.get("volume_from"),
        "skipped_blank_lines": int(candles.attrs.get("skipped_blank_lines", 0)),
        "skipped_blank_line_numbers": list(candles.attrs.get("skipped_blank_line_numbers", [])),
        "ignored_columns": list(candles.attrs.get("ignored_columns", [])),
        "point": candles.attrs.get("point"),
        "point_evidence": candles.attrs.get("point_evidence"),
        "warnings": list(candles.attrs.get("warnings", [])),
        "gaps": len(gaps), "largest_gaps": gaps[:3],
        "labels": labels, "label_kind": label_kind,
        "label_share": {k: labels[k] / known if known else 0.0 for k in ("none", "buy", "sell")},
        "warmup_bars": WARMUP,
    }
