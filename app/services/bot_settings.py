"""What a bot's settings must be, checked without a database: the exchange, the market and
its timeframe, the strategy's parameters, the sizing and the stake. Bots and backtests both
check their settings here (a backtest from a file imports nothing of the bot use cases)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.domain.numbers import decimal_text
from app.domain.sizing import validate_sizing_config
from app.domain.strategies import get_strategy
from app.errors import ValidationFailed
from app.market.base import timeframe_seconds
from app.market.errors import UnknownSymbol, UnknownTimeframe
from app.market.registry import get_market_source
from config import get_settings

__all__ = [
    "check_exchange",
    "check_market",
    "check_stake",
    "default_bootstrap_trades",
    "invalid_field",
    "normalised_params",
    "normalised_sizing",
]


def invalid_field(field: str, message: str, code: str = "validation_error") -> ValidationFailed:
    return ValidationFailed(message, code=code, details=[{"loc": ["body", field], "msg": message}])


def check_exchange(exchange: str) -> str:
    exchange = exchange.strip().lower()
    settings = get_settings()
    allowed = {"replay"} | ({settings.ccxt_exchange} if settings.market_data == "ccxt" else set())
    if exchange not in allowed:
        raise invalid_field(
            "exchange",
            f"unknown exchange {exchange!r}; available: {', '.join(sorted(allowed))}",
            "unknown_exchange",
        )
    return exchange


def check_market(exchange: str, symbol: str, timeframe: str) -> None:
    """The symbol exists on the exchange and candles of this timeframe can be had for it."""
    try:
        timeframe_seconds(timeframe)
    except UnknownTimeframe as exc:
        raise invalid_field("timeframe", exc.message, "unknown_timeframe") from None
    source = get_market_source(exchange)
    try:
        source.market(symbol)
    except UnknownSymbol as exc:
        raise invalid_field("symbol", exc.message, "unknown_symbol") from None
    try:
        source.candles(symbol, timeframe, limit=1)
    except UnknownTimeframe as exc:
        raise invalid_field("timeframe", exc.message, "unknown_timeframe") from None
    except UnknownSymbol as exc:
        raise invalid_field("symbol", exc.message, "unknown_symbol") from None


def normalised_params(strategy: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """Params checked against the strategy's schema, with defaults filled in."""
    try:
        impl = get_strategy(strategy)
    except ValidationFailed as exc:
        raise invalid_field("strategy", exc.message, "unknown_strategy") from None
    try:
        return impl.validate_params(params or {}).model_dump(mode="json")
    except ValidationFailed as exc:
        raise exc.under("strategy_params", "invalid_strategy_params") from None


def default_bootstrap_trades() -> int:
    """BOOTSTRAP_TRADES: closed trades before Kelly applies, for bots that do not say."""
    return get_settings().bootstrap_trades


def normalised_sizing(sizing: dict[str, Any] | None) -> dict[str, Any]:
    """Sizing checked and completed with its defaults (BOOTSTRAP_TRADES for the bootstrap)."""
    data = dict(sizing or {})
    data.setdefault("bootstrap_trades", default_bootstrap_trades())
    try:
        config = validate_sizing_config(data)
    except ValidationFailed as exc:
        raise exc.under("sizing", "invalid_sizing") from None
    return {
        k: decimal_text(v) if isinstance(v, Decimal) else v
        for k, v in config.model_dump(exclude_none=True).items()
    }


def check_stake(sizing: dict[str, Any], capital: Decimal) -> None:
    """A fixed stake must fit the capital: a larger one would silently mean all-in."""
    stake = sizing.get("stake") if sizing.get("mode") == "fixed" else None
    if stake is not None and Decimal(str(stake)) > capital:
        message = (
            f"the fixed stake {decimal_text(Decimal(str(stake)))} is more than the capital "
            f"{decimal_text(capital)}"
        )
        raise ValidationFailed(
            message,
            code="stake_above_capital",
            details=[{"loc": ["body", "sizing", "stake"], "msg": message}],
        )
