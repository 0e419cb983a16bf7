"""Trading strategies: a registry of long-only spot strategies producing int8 signals.

strategy = get_strategy("sma_crossover")
params = strategy.validate_params({"fast": 10, "slow": 30})
sig = strategy.signals(candles, params)     # +1 enter long, -1 exit long, 0 nothing
"""

from app.domain.strategies.base import (
    ENTER,
    EXIT,
    NONE,
    TIE_TOLERANCE,
    Strategy,
    crossed_above,
    crossed_below,
    position_from_signals,
    price_tolerance,
)
from app.domain.strategies.registry import get_strategy, list_strategies

__all__ = [
    "ENTER",
    "TIE_TOLERANCE",
    "EXIT",
    "NONE",
    "Strategy",
    "crossed_above",
    "crossed_below",
    "get_strategy",
    "list_strategies",
    "position_from_signals",
    "price_tolerance",
]
