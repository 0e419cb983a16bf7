"""Errors of the market layer; the API maps them to 4xx/503 through `AppError`."""

from __future__ import annotations

from app.errors import AppError, NotFound, ServiceUnavailable, ValidationFailed


class MarketError(AppError):
    status = 400
    code = "market_error"


class UnknownSymbol(NotFound):
    code = "unknown_symbol"


class UnknownTimeframe(ValidationFailed):
    code = "unknown_timeframe"


class ExchangeUnavailable(ServiceUnavailable):
    """A transient failure (network, timeout, rate limit) that outlasted the retries."""

    code = "exchange_unavailable"


class OrderRejected(MarketError):
    """The exchange (or the paper broker) refused the order; the message says why."""

    status = 422
    code = "order_rejected"
