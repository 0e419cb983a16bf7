"""The strategies a bot can run by name: the hand-written built-ins and the shipped templates.

A template is a strategy document (`templates/*.json`); it is bound to the bot's timeframe,
which its higher-timeframe indicators need. The four built-in names resolve to their
hand-written implementations, which their templates match trade for trade (a test).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from app.domain.strategies.base import Strategy
from app.domain.strategies.bollinger_breakout import BollingerBreakout
from app.domain.strategies.doc_strategy import DocumentStrategy
from app.domain.strategies.macd_trend import MacdTrend
from app.domain.strategies.rsi_mean_reversion import RsiMeanReversion
from app.domain.strategies.signal import SignalStrategy
from app.domain.strategies.sma_crossover import SmaCrossover
from app.domain.strategies.templates import template_document, template_names
from app.errors import ValidationFailed

_STRATEGIES: dict[str, Strategy[Any]] = {
    s.name: s
    for s in (
        SmaCrossover(),
        RsiMeanReversion(),
        BollingerBreakout(),
        MacdTrend(),
        SignalStrategy(),
    )
}


def strategy_names() -> list[str]:
    """Every name a bot or a backtest can use, sorted."""
    return sorted(set(_STRATEGIES) | set(template_names()))


def list_strategies(timeframe: str | None = None) -> list[Strategy[Any]]:
    """Every strategy by name, sorted."""
    return [get_strategy(name, timeframe) for name in strategy_names()]


@lru_cache(maxsize=256)
def _template(name: str, timeframe: str | None) -> Strategy[Any]:
    doc = template_document(name)
    assert doc is not None
    return DocumentStrategy(doc, timeframe=timeframe)


def get_strategy(name: str, timeframe: str | None = None) -> Strategy[Any]:
    """The strategy called `name` (bound to `timeframe` when it is a template);
    ValidationFailed(code="unknown_strategy") otherwise."""
    try:
        hand = _STRATEGIES.get(name)
    except TypeError:
        hand = None
        name = repr(name)
    if hand is not None:
        return hand
    if isinstance(name, str) and template_document(name) is not None:
        return _template(name, timeframe)
    known = strategy_names()
    raise ValidationFailed(
        f"unknown strategy {name!r}; known: {', '.join(known)}",
        code="unknown_strategy",
        details=[{"loc": ["strategy"], "msg": "unknown strategy", "known": known}],
    ) from None
