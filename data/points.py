"""The point (price units per spread point) of a candle file: from the precision most prices are quoted at."""

from __future__ import annotations

import numpy as np
import pandas as pd

from data.errors import DataError, describe_rows

POINT_GRID_SHARE = 0.20  # the point: the finest precision at least this share of prices need
POINT_SLIP_SHARE = 0.01  # prices finer than it: up to this share a slip (warned), more refused


def spread_to_price(body: pd.DataFrame, point: float | None, source: str,
                     lines: np.ndarray | None = None) -> pd.DataFrame:
    """MT5 gives spread in points; the canonical frame holds it in price units.

    Without ``point`` it is inferred from the prices (``point_from_prices``), only when some
    spread is not zero; ``attrs["point_evidence"]`` says how the point was found, and a few
    prices finer than it are named in ``attrs["warnings"]``. Cells that are not numbers are
    left as they are, for the validator to report.
    """
    if "spread" not in body:
        if point is not None:
            raise DataError(f"point={point!r} given but the file has no spread column",
                            source=source, rule="bad option")
        return body
    spread = body["spread"].astype(object)
    number = pd.to_numeric(spread, errors="coerce")
    warnings: list[str] = []
    if point is None:
        if not (number.fillna(0) != 0).any():
            return body
        point, evidence, warnings = point_from_prices(body, source, lines)
    else:
        evidence = f"point {point:g} (given)"
    body = body.copy()
    body["spread"] = spread.where(number.isna(), number * point)
    body.attrs["point"] = point
    body.attrs["point_evidence"] = evidence
    body.attrs["warnings"] = warnings
    return body


def point_from_prices(body: pd.DataFrame, source: str = "<frame>",
                      lines: np.ndarray | None = None, max_digits: int = 8,
                      ) -> tuple[float, str, list[str]]:
    """The price step 10^-d, the evidence for it, and warnings: (point, evidence, warnings).

    Each price needs d_i decimals: the smallest d ≤ ``max_digits`` whose grid holds it within
    1e-10 (relative), so float noise ("1.1456500000000001") and dropped zeros ("1.072") do not
    matter. d is the finest precision at least ``POINT_GRID_SHARE`` of the prices need (a price
    needing fewer decimals just ends in zeros). One price written with an extra decimal must not
    make every spread 10× too small: prices needing more than d are a slip when they are at most
    ``POINT_SLIP_SHARE`` of the prices (warned, naming their lines) and refused when more, as
    the point is then uncertain. No such d is an error asking for ``point=``.
    """
    cols = [c for c in ("open", "high", "low", "close") if c in body]
    table = body[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype="float64",
                                                                      na_value=np.nan)
    row = np.repeat(np.arange(len(table)), len(cols))
    prices = np.abs(table.ravel())
    keep = np.isfinite(prices) & (prices > 0)
    prices, row = prices[keep], row[keep]
    lines = np.asarray(lines) if lines is not None else np.arange(1, len(body) + 1)
    if not len(prices):
        return 1.0, "point 1 (no prices to infer it from)", []
    needs = np.full(len(prices), max_digits + 1)
    for digits in range(max_digits, -1, -1):
        scaled = prices * 10.0**digits
        needs[np.abs(scaled - np.round(scaled)) <= 1e-10 * scaled] = digits
    share = np.array([(needs >= d).mean() for d in range(max_digits + 2)])
    d = int(np.flatnonzero(share >= POINT_GRID_SHARE)[-1])
    if d > max_digits:
        raise DataError(f"cannot infer the size of one point from the prices (they are not on a "
                        f"grid of 10^-d for d ≤ {max_digits}), so the spread in points cannot be "
                        "converted; pass point= (data.point), e.g. 0.00001 for EURUSD",
                        source=source, rule="spread units")
    point = 10.0**-d
    finer = needs > d
    if not finer.any():
        evidence = (f"point {point:g}: the finest precision of the prices, {d} decimals "
                    f"({share[d]:.1%} of prices use all {d})")
        return point, evidence, []
    odd_lines = lines[np.unique(row[finer])]
    most = int(needs[finer].max())
    finest = f"more than {max_digits}" if most > max_digits else f"{most}"
    if finer.mean() > POINT_SLIP_SHARE:
        raise DataError(f"{int(finer.sum())} of {len(prices)} prices ({finer.mean():.1%}) have up "
                        f"to {finest} decimals where the rest have at most {d}: too many to be a "
                        f"slip, so the point (and every spread in points) is uncertain; pass "
                        f"point= (data.point), e.g. {point:g}", source=source, rows=odd_lines,
                        rule="spread units")
    evidence = (f"point {point:g}: {1 - finer.mean():.1%} of prices have {d} decimals or fewer; "
                f"{describe_rows(odd_lines)} {'has' if len(odd_lines) == 1 else 'have'} {finest} "
                "decimals (not used for the point)")
    warning = (f"{describe_rows(odd_lines)}: {int(finer.sum())} price(s) with {finest} decimals "
               f"in a file of {d}-decimal prices; the spread point is {point:g}, from the other "
               f"{1 - finer.mean():.1%} (give it with point=, data.point, to override)")
    return point, evidence, [warning]


def infer_point(body: pd.DataFrame, source: str = "<frame>", max_digits: int = 8) -> float:
    """The price step 10^-d (see ``point_from_prices``)."""
    return point_from_prices(body, source, max_digits=max_digits)[0]
