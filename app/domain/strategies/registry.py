"""The strategies a bot can run, by name."""

from __future__ import annotations

from typing import Any

from app.domain.strategies.base import Strategy
from app.domain.strategies.bollinger_breakout import BollingerBreakout
from app.domain.strategies.macd_trend import MacdTrend
from app.domain.strategies.rsi_mean_reversion import RsiMeanReversion
from app.domain.strategies.sma_crossover import SmaCrossover
from app.errors import ValidationFailed

_STRATEGIES: dict[str, Strategy[Any]] = {
    s.name: s for s in (SmaCrossover(), RsiMeanReversion(), BollingerBreakout(), MacdTrend())
}


def list_strategies() -> list[Strategy[Any]]:
    """Every strategy, sorted by name."""
    return [_STRATEGIES[name] for name in sorted(_STRATEGIES)]


def get_strategy(name: str) -> Strategy[Any]:
    """The strategy called `name`; ValidationFailed(code="unknown_strategy") otherwise."""
    try:
        return _STRATEGIES[name]
    except (KeyError, TypeError):
        known = sorted(_STRATEGIES)
        raise ValidationFailed(
            f"unknown strategy {name!r}; known: {', '.join(known)}",
            code="unknown_strategy",
            details=[{"loc": ["strategy"], "msg": "unknown strategy", "known": known}],
        ) from None
