"""ccxt market precision -> `MarketInfo` with exact ``Decimal`` steps.

ccxt reports ``market['precision']['price' | 'amount']`` in one of three modes, given by
``exchange.precisionMode`` (constants from ``ccxt.base.decimal_to_precision``, repeated here so
this module does not import ccxt):

* ``TICK_SIZE`` (4): the value *is* the step (``0.01``, ``1e-08``).
* ``DECIMAL_PLACES`` (2): the value is a number of decimals (``2`` -> step ``0.01``).
* ``SIGNIFICANT_DIGITS`` (3): the value is a number of significant digits, so the step depends
  on the magnitude of the number being rounded (5 digits: ``0.001`` at 12.345, ``1`` at
  12345). `MarketInfo` holds one static step, so for this mode the step is taken at a
  reference magnitude: the market's minimum (price or amount) when ccxt gives one, else 1.
  That is approximate by nature; for orders use the adapter's ``price_to_precision`` /
  ``amount_to_precision``, which let ccxt round in the exchange's own mode.

In the pinned ccxt (4.5.x) binance, kucoin and luno all report ``TICK_SIZE`` (older ccxt
releases used ``DECIMAL_PLACES`` for binance); only bitfinex and bithumb use
``SIGNIFICANT_DIGITS``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.market.base import MarketInfo, to_decimal

__all__ = [
    "DECIMAL_PLACES",
    "SIGNIFICANT_DIGITS",
    "TICK_SIZE",
    "market_info_from_ccxt",
    "step_from_precision",
]

DECIMAL_PLACES = 2
SIGNIFICANT_DIGITS = 3
TICK_SIZE = 4

_FALLBACK_STEP = Decimal("1E-8")


def step_from_precision(
    value: Any, mode: int, reference: Decimal | float | None = None
) -> Decimal | None:
    """The Decimal step that ``value`` means under ``mode``; None when ccxt gave no value."""
    if value is None:
        return None
    if mode == TICK_SIZE:
        step = to_decimal(value)
        return step.normalize() if step > 0 else None
    if mode == DECIMAL_PLACES:
        return Decimal(1).scaleb(-int(value))
    if mode == SIGNIFICANT_DIGITS:
        ref = to_decimal(reference) if reference else Decimal(1)
        if ref <= 0:
            ref = Decimal(1)
        return Decimal(1).scaleb(ref.adjusted() - int(value) + 1)
    raise ValueError(f"unknown ccxt precision mode {mode!r}")


def _limit(market: dict, kind: str, side: str) -> Decimal | None:
    value = ((market.get("limits") or {}).get(kind) or {}).get(side)
    if value is None:
        return None
    dec = to_decimal(value)
    return dec if dec > 0 else None


def market_info_from_ccxt(market: dict, mode: int) -> MarketInfo:
    """Our `MarketInfo` for one ccxt market structure."""
    precision = market.get("precision") or {}
    min_amount = _limit(market, "amount", "min")
    min_price = _limit(market, "price", "min")
    price_step = step_from_precision(precision.get("price"), mode, min_price)
    amount_step = step_from_precision(precision.get("amount"), mode, min_amount)
    return MarketInfo(
        symbol=market["symbol"],
        base=market["base"],
        quote=market["quote"],
        amount_step=amount_step or _FALLBACK_STEP,
        price_step=price_step or _FALLBACK_STEP,
        min_amount=min_amount,
        min_notional=_limit(market, "cost", "min"),
    )
