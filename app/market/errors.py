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


class OrderStateUnknown(ServiceUnavailable):
    """An order request may or may not have reached the exchange (timeout, dropped
    connection, rate limit at the edge). It is never retried blindly: look the order up by its
    client order id before deciding anything."""

    code = "order_state_unknown"

    def __init__(self, message: str, *, client_order_id: str, reason: str) -> None:
        super().__init__(message, details=[{"client_order_id": client_order_id, "reason": reason}])
        self.client_order_id = client_order_id
        self.reason = reason


class OrderNotFound(NotFound):
    code = "order_not_found"


class DuplicateOrder(MarketError):
    """The exchange already holds an order with this client order id."""

    status = 409
    code = "duplicate_order"


class ExchangeAuthFailed(MarketError):
    """The exchange refused the credentials (invalid, revoked, or lacking a permission)."""

    status = 422
    code = "exchange_auth_failed"


class ExchangeRejected(MarketError):
    """The exchange answered with an error we have no more specific class for."""

    status = 502
    code = "exchange_error"


class NotSupportedByExchange(MarketError):
    code = "not_supported"
