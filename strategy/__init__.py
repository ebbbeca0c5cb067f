"""backtrader strategy: class probabilities → orders (entries, exits, sizing), and the engine."""

from strategy.engine import (
    ORDER_COLUMNS,
    TRADE_COLUMNS,
    EngineResult,
    EngineState,
    OrderRecord,
    TradeRecord,
    align_probs,
    from_frame,
    merge,
    records_of,
    simulate,
    to_frame,
)
from strategy.fractal import (
    PROB_COLUMNS,
    Costs,
    FractalParams,
    signal_from_probs,
    signals_from_frame,
)

__all__ = [
    "ORDER_COLUMNS", "PROB_COLUMNS", "TRADE_COLUMNS", "Costs", "EngineResult", "EngineState",
    "FractalParams", "OrderRecord", "TradeRecord", "align_probs", "from_frame", "merge",
    "records_of", "signal_from_probs", "signals_from_frame", "simulate", "to_frame",
]
