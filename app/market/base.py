"""The one market interface everything above `app/market` uses.

Candles travel as numpy arrays (indicator maths wants floats and vectors); money that reaches
the ledger is converted to `Decimal` at that boundary with `to_decimal`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, runtime_checkable

from app.domain.candles import Candles
from app.market.errors import UnknownTimeframe

__all__ = [
    "Candles",
    "MarketInfo",
    "MarketSource",
    "TIMEFRAME_SECONDS",
    "timeframe_seconds",
    "to_decimal",
]

TIMEFRAME_SECONDS: dict[str, int] = {
    "1m": 60,
    "3m": 180,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "2h": 7200,
    "4h": 14400,
    "6h": 21600,
    "12h": 43200,
    "1d": 86400,
}


def timeframe_seconds(timeframe: str) -> int:
    """Seconds in a timeframe; raises `UnknownTimeframe` for anything not supported."""
    try:
        return TIMEFRAME_SECONDS[timeframe]
    except KeyError:
        raise UnknownTimeframe(
            f"unknown timeframe {timeframe!r}; supported: {', '.join(TIMEFRAME_SECONDS)}"
        ) from None


def to_decimal(value: float | int | str | Decimal) -> Decimal:
    """Exact decimal of a price or amount; floats go through their shortest repr."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


@dataclass(frozen=True)
class MarketInfo:
    symbol: str
    base: str
    quote: str
    amount_step: Decimal
    price_step: Decimal
    min_amount: Decimal | None = None
    min_notional: Decimal | None = None


@runtime_checkable
class MarketSource(Protocol):
    """Market data: implemented by the replay feed and the ccxt adapter."""

    name: str

    def markets(self) -> list[MarketInfo]: ...

    def market(self, symbol: str) -> MarketInfo:
        """Raises `UnknownSymbol`."""
        ...

    def candles(
        self,
        symbol: str,
        timeframe: str,
        since_ms: int | None = None,
        limit: int | None = None,
    ) -> Candles:
        """Closed candles only, oldest first; `since_ms` inclusive; the newest `limit` when
        `since_ms` is None. Raises `UnknownSymbol` / `UnknownTimeframe`."""
        ...

    def last_price(self, symbol: str) -> Decimal: ...

    def close(self) -> None:
        """Release network sessions; safe to call twice."""
        ...
