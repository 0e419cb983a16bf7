"""The paper fill rules, pure: no database, no clock, no network.

The paper broker (`app.engine.broker`) applies them to ledger rows it has locked; the backtester
applies them to an in-memory `Book`. Same inputs, same orders, same fills, same balances.

Rules (docs/paper-broker.md explains them next to freqtrade's dry-run):

* Amounts are rounded DOWN to the market's amount step; limit prices to the price step (buys
  down, sells up, so rounding never makes an order worse than asked). An amount that rounds to
  zero, or falls under the market's minimum amount or minimum notional, is rejected.
* Placing an order reserves what it may spend: a buy locks quote (cost + fee, at the limit
  price, or for a market order at the reference price plus slippage, or exactly its
  `quote_amount`); a sell locks the base amount. An order that needs more than is free is
  rejected, so no balance ever goes negative.
* A market order fills at the open of the first eligible candle, moved against the trader by
  `slippage_bps` (rounded to the price step, up for buys, down for sells), at the taker fee.
  A buy sized by `quote_amount` gets the largest amount (on the amount step) whose cost + fee
  fits in it. A buy sized by `amount` whose cost at the fill price exceeds what it reserved
  plus what is free is rejected at fill time instead.
* A limit order fills in full, never partially, at its own price, on the first eligible
  candle whose range reaches it (buy: low <= price; sell: high >= price), at the maker fee.
* Fees are charged in the quote currency: cost rounded up, proceeds down, fees up to 1e-18.
* Position: cost basis grows by each buy's cost; a sell removes the cost basis pro rata
  (all of it when the position closes) and realises proceeds - cost removed. A fill that
  closes the position reports the round trip's net result (realised - all its fees).

So `capital + realised_pnl - fees_paid == cash + cost_basis` holds exactly after every fill.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal, InvalidOperation, localcontext
from typing import Literal

import numpy as np

from app.domain.candles import Candles
from app.domain.numbers import decimal_text as _fmt
from app.market.base import MarketInfo, to_decimal
from app.market.errors import OrderRejected

__all__ = [
    "Book",
    "FeeSchedule",
    "FillRejected",
    "FillResult",
    "PaperOrderRejected",
    "Ticket",
    "ceil_to_step",
    "entry_budget",
    "execute",
    "find_fill",
    "fill_price",
    "floor_to_step",
    "market_fill_price",
    "prepare_order",
    "release",
    "reserve",
]

ZERO = Decimal(0)
ONE = Decimal(1)
BPS = Decimal(10_000)
QUANTUM = Decimal("1E-18")
SIDES = ("buy", "sell")
ORDER_TYPES = ("market", "limit")

Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit"]


# Enough digits for products of two 38-digit numbers: no silent rounding anywhere. One
# prebuilt context whose methods are called directly: a `localcontext()` per operation cost
# more than the arithmetic. Everything else (sums into the book) uses the ambient context.
_WIDE = Context(prec=80)
_mul = _WIDE.multiply
_div = _WIDE.divide
_add = _WIDE.add
_ZERO_Q = ZERO.quantize(QUANTUM)  # 0E-18: a zero keeps the ledger's scale


def _q(value: Decimal, rounding: str = ROUND_CEILING) -> Decimal:
    out = value.quantize(QUANTUM, rounding, _WIDE)
    return out if out else _ZERO_Q


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    return _q(_mul(_div(value, step).to_integral_value(ROUND_FLOOR, _WIDE), step))


def ceil_to_step(value: Decimal, step: Decimal) -> Decimal:
    return _q(_mul(_div(value, step).to_integral_value(ROUND_CEILING, _WIDE), step))


class PaperOrderRejected(OrderRejected):
    """An order the paper broker refuses; `reason` is a stable code, the message says why."""

    def __init__(self, message: str, *, reason: str, field: str | None = None) -> None:
        super().__init__(
            message, details=[{"loc": [field] if field else [], "msg": message, "reason": reason}]
        )
        self.reason = reason


@dataclass(frozen=True)
class FeeSchedule:
    """Fee rates as fractions (0.001 = 0.1 %) and slippage in basis points."""

    maker: Decimal = Decimal("0.001")
    taker: Decimal = Decimal("0.001")
    slippage_bps: Decimal = ZERO

    def __post_init__(self) -> None:
        for name in ("maker", "taker"):
            rate = getattr(self, name)
            if not (ZERO <= rate < ONE):
                raise ValueError(f"{name} fee must be in [0, 1), got {rate}")
        if not (ZERO <= self.slippage_bps < BPS):
            raise ValueError(f"slippage_bps must be in [0, 10000), got {self.slippage_bps}")
        # per-schedule factors, computed once instead of on every fill (not fields)
        slip = _div(self.slippage_bps, BPS)
        object.__setattr__(self, "_buy_slip", _add(ONE, slip))
        object.__setattr__(self, "_sell_slip", _WIDE.subtract(ONE, slip))
        object.__setattr__(self, "_maker_up", _add(ONE, self.maker))
        object.__setattr__(self, "_taker_up", _add(ONE, self.taker))


# The frozen records below are made several times per order (a backtest: per event), so they
# write their whole __dict__ at once instead of one guarded setattr per field (half the cost).
# Still frozen dataclasses: same fields, equality, repr, hash, and no assignment afterwards.
_set = object.__setattr__


@dataclass(frozen=True, init=False)
class Book:
    """A bot's paper account for its one symbol (the ledger's balances and position)."""

    quote_free: Decimal = ZERO
    quote_locked: Decimal = ZERO
    base_free: Decimal = ZERO
    base_locked: Decimal = ZERO
    cost_basis: Decimal = ZERO
    realised_pnl: Decimal = ZERO
    fees_paid: Decimal = ZERO
    trip_pnl: Decimal = ZERO
    trip_fees: Decimal = ZERO

    def __init__(
        self,
        quote_free: Decimal = ZERO,
        quote_locked: Decimal = ZERO,
        base_free: Decimal = ZERO,
        base_locked: Decimal = ZERO,
        cost_basis: Decimal = ZERO,
        realised_pnl: Decimal = ZERO,
        fees_paid: Decimal = ZERO,
        trip_pnl: Decimal = ZERO,
        trip_fees: Decimal = ZERO,
    ) -> None:
        _set(self, "__dict__", {
            "quote_free": quote_free, "quote_locked": quote_locked, "base_free": base_free,
            "base_locked": base_locked, "cost_basis": cost_basis, "realised_pnl": realised_pnl,
            "fees_paid": fees_paid, "trip_pnl": trip_pnl, "trip_fees": trip_fees,
        })  # fmt: skip

    @classmethod
    def opening(cls, capital: Decimal) -> Book:
        return cls(quote_free=_q(capital))

    @property
    def position(self) -> Decimal:
        return self.base_free + self.base_locked

    @property
    def cash(self) -> Decimal:
        return self.quote_free + self.quote_locked

    @property
    def avg_entry_price(self) -> Decimal | None:
        if not self.position:
            return None
        return _q(_div(self.cost_basis, _add(self.base_free, self.base_locked)), ROUND_FLOOR)

    def equity(self, price: Decimal) -> Decimal:
        cash = _add(self.quote_free, self.quote_locked)
        return _q(_add(cash, _mul(_add(self.base_free, self.base_locked), price)), ROUND_FLOOR)


@dataclass(frozen=True, init=False)
class Ticket:
    """An accepted order: exactly what the ledger stores and the fill rules need."""

    side: Side
    order_type: OrderType
    amount: Decimal | None
    quote_amount: Decimal | None
    price: Decimal | None
    reserved: Decimal

    def __init__(
        self,
        side: Side,
        order_type: OrderType,
        amount: Decimal | None,
        quote_amount: Decimal | None,
        price: Decimal | None,
        reserved: Decimal,
    ) -> None:
        _set(self, "__dict__", {
            "side": side, "order_type": order_type, "amount": amount,
            "quote_amount": quote_amount, "price": price, "reserved": reserved,
        })  # fmt: skip


@dataclass(frozen=True, init=False)
class FillResult:
    side: Side
    amount: Decimal
    price: Decimal
    cost: Decimal
    fee: Decimal
    liquidity: Literal["maker", "taker"]
    realised_pnl: Decimal
    cost_basis_change: Decimal
    closed_trade_pnl: Decimal | None
    opens_position: bool
    book: Book

    def __init__(
        self,
        side: Side,
        amount: Decimal,
        price: Decimal,
        cost: Decimal,
        fee: Decimal,
        liquidity: Literal["maker", "taker"],
        realised_pnl: Decimal,
        cost_basis_change: Decimal,
        closed_trade_pnl: Decimal | None,
        opens_position: bool,
        book: Book,
    ) -> None:
        _set(self, "__dict__", {
            "side": side, "amount": amount, "price": price, "cost": cost, "fee": fee,
            "liquidity": liquidity, "realised_pnl": realised_pnl,
            "cost_basis_change": cost_basis_change, "closed_trade_pnl": closed_trade_pnl,
            "opens_position": opens_position, "book": book,
        })  # fmt: skip


@dataclass(frozen=True)
class FillRejected:
    """The order could not fill at this price (its reservation is released in `book`)."""

    reason: str
    message: str
    book: Book


def _reject(message: str, reason: str, field: str | None = None) -> PaperOrderRejected:
    return PaperOrderRejected(message, reason=reason, field=field)


def _positive(value: object, field: str) -> Decimal:
    try:
        d = to_decimal(value)  # type: ignore[arg-type]
    except (InvalidOperation, TypeError, ValueError):
        raise _reject(f"{field} must be a number, got {value!r}", "invalid_order", field) from None
    if not d.is_finite() or d <= ZERO:
        raise _reject(f"{field} must be a finite number > 0, got {value}", "invalid_order", field)
    return d


def _fee(amount: Decimal, rate: Decimal) -> Decimal:
    return _q(_mul(amount, rate), ROUND_CEILING)


def market_fill_price(side: Side, open_price: Decimal, fees: FeeSchedule, step: Decimal) -> Decimal:
    """The open moved against the trader by the slippage, on the price grid."""
    if side == "buy":
        return ceil_to_step(_mul(open_price, fees._buy_slip), step)  # type: ignore[attr-defined]
    return floor_to_step(_mul(open_price, fees._sell_slip), step)  # type: ignore[attr-defined]


def entry_budget(stake: Decimal, taker_fee: Decimal, cash: Decimal) -> Decimal:
    """Quote to hand the broker for a market entry whose notional is `stake`: the entry fee
    comes on top (freqtrade's convention: amount = stake / price), capped at the free cash."""
    with localcontext() as ctx:
        ctx.prec = 60
        budget = stake * (Decimal(1) + taker_fee)
        return min(budget, max(cash, Decimal(0))).quantize(Decimal("1E-18"), rounding=ROUND_FLOOR)


def prepare_order(
    *,
    side: str,
    order_type: str,
    market: MarketInfo,
    fees: FeeSchedule,
    book: Book,
    amount: object = None,
    quote_amount: object = None,
    price: object = None,
    reference_price: Decimal | None = None,
) -> Ticket:
    """Validate and normalise an order against the market and the book; raises
    `PaperOrderRejected` (nothing reserved) when it cannot be accepted."""
    if side not in SIDES:
        raise _reject(f"side must be 'buy' or 'sell', got {side!r}", "invalid_order", "side")
    if order_type not in ORDER_TYPES:
        raise _reject(
            f"order type must be 'market' or 'limit', got {order_type!r}", "invalid_order", "type"
        )
    if (amount is None) == (quote_amount is None):
        raise _reject("give exactly one of amount or quote_amount", "invalid_order", "amount")
    if quote_amount is not None and side == "sell":
        raise _reject("quote_amount sizes buys only; sell an amount", "invalid_order")

    limit_price: Decimal | None = None
    if order_type == "limit":
        if price is None:
            raise _reject("a limit order needs a price", "invalid_order", "price")
        raw = _positive(price, "price")
        step = market.price_step
        limit_price = floor_to_step(raw, step) if side == "buy" else ceil_to_step(raw, step)
        if limit_price <= ZERO:
            raise _reject(
                f"price {raw} is below the price step {_fmt(step)}", "below_precision", "price"
            )
    elif price is not None:
        raise _reject("a market order takes no price", "invalid_order", "price")

    if limit_price is not None:
        est_price: Decimal | None = limit_price
    elif reference_price is not None and reference_price > ZERO:
        est_price = market_fill_price(side, reference_price, fees, market.price_step)  # type: ignore[arg-type]
    else:
        est_price = None
    rate = fees.maker if order_type == "limit" else fees.taker

    qty: Decimal | None = None
    spend: Decimal | None = None
    if amount is not None:
        raw_amount = _positive(amount, "amount")
        qty = floor_to_step(raw_amount, market.amount_step)
        if qty <= ZERO:
            raise _reject(
                f"amount {raw_amount} rounds to 0 at the amount step {_fmt(market.amount_step)}",
                "below_precision",
                "amount",
            )
    else:
        spend = _q(_positive(quote_amount, "quote_amount"), ROUND_FLOOR)
        if limit_price is not None:  # a limit buy by quote is a limit buy of what it affords
            qty = floor_to_step(_div(spend, _mul(limit_price, _add(ONE, rate))), market.amount_step)
            spend = None
            if qty <= ZERO:
                raise _reject(
                    f"quote_amount {_fmt(_q(_positive(quote_amount, 'quote_amount')))} buys "
                    f"less than one amount step at {_fmt(limit_price)}",
                    "below_precision",
                    "quote_amount",
                )

    _check_minimums(market, qty, spend, est_price)

    if side == "sell":
        assert qty is not None
        if qty > book.base_free:
            raise _reject(
                f"insufficient {market.base}: selling {_fmt(qty)} needs {_fmt(qty)} free, "
                f"{_fmt(book.base_free)} available",
                "insufficient_balance",
                "amount",
            )
        return Ticket("sell", order_type, qty, None, limit_price, _q(qty))  # type: ignore[arg-type]

    if spend is not None:
        reserved = spend
    else:
        assert qty is not None
        if est_price is None:
            raise _reject(
                "no reference price to check the balance for a market buy by amount; "
                "size it with quote_amount",
                "no_reference_price",
                "amount",
            )
        cost = _q(_mul(qty, est_price))
        reserved = cost + _fee(cost, rate)
    if reserved > book.quote_free:
        raise _reject(
            f"insufficient {market.quote}: the order needs {_fmt(reserved)} (cost + fee), "
            f"{_fmt(book.quote_free)} available",
            "insufficient_balance",
            "quote_amount" if spend is not None else "amount",
        )
    return Ticket("buy", order_type, qty, spend, limit_price, reserved)  # type: ignore[arg-type]


def _check_minimums(
    market: MarketInfo, qty: Decimal | None, spend: Decimal | None, est_price: Decimal | None
) -> None:
    if not market.min_amount and not market.min_notional:
        return
    est_qty = qty
    if est_qty is None and spend is not None and est_price:
        est_qty = _div(spend, est_price)
    if market.min_amount and est_qty is not None and est_qty < market.min_amount:
        raise _reject(
            f"amount {_fmt(_q(est_qty, ROUND_FLOOR))} is under the market minimum "
            f"{_fmt(market.min_amount)} {market.base}",
            "below_min_amount",
            "amount",
        )
    notional = spend
    if notional is None and qty is not None and est_price is not None:
        notional = _mul(qty, est_price)
    if market.min_notional and notional is not None and notional < market.min_notional:
        raise _reject(
            f"order value {_fmt(_q(notional, ROUND_FLOOR))} {market.quote} is under the market "
            f"minimum {_fmt(market.min_notional)} {market.quote}",
            "below_min_notional",
            "amount",
        )


def reserve(book: Book, ticket: Ticket) -> Book:
    r = ticket.reserved
    b = book
    if ticket.side == "buy":
        return Book(b.quote_free - r, b.quote_locked + r, b.base_free, b.base_locked,
                    b.cost_basis, b.realised_pnl, b.fees_paid, b.trip_pnl, b.trip_fees)  # fmt: skip
    return Book(b.quote_free, b.quote_locked, b.base_free - r, b.base_locked + r,
                b.cost_basis, b.realised_pnl, b.fees_paid, b.trip_pnl, b.trip_fees)  # fmt: skip


def release(book: Book, ticket: Ticket) -> Book:
    """Give back what an order reserved (cancel, or rejection at fill time)."""
    r = ticket.reserved
    b = book
    if ticket.side == "buy":
        return Book(b.quote_free + r, b.quote_locked - r, b.base_free, b.base_locked,
                    b.cost_basis, b.realised_pnl, b.fees_paid, b.trip_pnl, b.trip_fees)  # fmt: skip
    return Book(b.quote_free, b.quote_locked, b.base_free + r, b.base_locked - r,
                b.cost_basis, b.realised_pnl, b.fees_paid, b.trip_pnl, b.trip_fees)  # fmt: skip


def fill_price(
    ticket: Ticket,
    *,
    open: Decimal,
    high: Decimal,
    low: Decimal,
    fees: FeeSchedule,
    market: MarketInfo,
) -> Decimal | None:
    """The price this order fills at on this (eligible) candle, or None."""
    if ticket.order_type == "market":
        return market_fill_price(ticket.side, open, fees, market.price_step)
    assert ticket.price is not None
    if ticket.side == "buy":
        return ticket.price if low <= ticket.price else None
    return ticket.price if high >= ticket.price else None


def find_fill(
    ticket: Ticket,
    candles: Candles,
    *,
    fill_from_ms: int,
    fees: FeeSchedule,
    market: MarketInfo,
) -> tuple[int, Decimal] | None:
    """(candle index, price) of the first candle opening at or after `fill_from_ms` that
    fills this order, or None."""
    start = int(np.searchsorted(candles.ts, fill_from_ms, side="left"))
    if start >= len(candles):
        return None
    if ticket.order_type == "market":
        return start, market_fill_price(
            ticket.side, to_decimal(float(candles.open[start])), fees, market.price_step
        )
    assert ticket.price is not None
    limit = float(ticket.price)
    reach = candles.low[start:] <= limit if ticket.side == "buy" else candles.high[start:] >= limit
    hits = np.flatnonzero(reach)
    if hits.size == 0:
        return None
    return start + int(hits[0]), ticket.price


def execute(
    ticket: Ticket, price: Decimal, *, fees: FeeSchedule, market: MarketInfo, book: Book
) -> FillResult | FillRejected:
    """Fill `ticket` in full at `price` against `book` (which holds its reservation)."""
    if ticket.side == "buy":
        return _execute_buy(ticket, price, fees, market, book)
    return _execute_sell(ticket, price, fees, book)


def _execute_buy(
    ticket: Ticket, price: Decimal, fees: FeeSchedule, market: MarketInfo, book: Book
) -> FillResult | FillRejected:
    maker = ticket.order_type == "limit"
    rate = fees.maker if maker else fees.taker
    reserved = ticket.reserved
    if ticket.quote_amount is not None:
        budget = reserved
        up = fees._maker_up if maker else fees._taker_up  # type: ignore[attr-defined]
        qty = floor_to_step(_div(budget, _mul(price, up)), market.amount_step)
    else:
        assert ticket.amount is not None
        budget = reserved + book.quote_free
        qty = ticket.amount
    while True:
        cost = _q(_mul(qty, price))
        fee = _q(_mul(cost, rate))
        total = cost + fee
        if total <= budget or qty <= ZERO or ticket.quote_amount is None:
            break
        # rounding of cost/fee overshot a quote budget by 1e-18; exact even past 28 digits
        qty = _WIDE.subtract(qty, market.amount_step)
    if qty <= ZERO or (market.min_amount and qty < market.min_amount):
        return FillRejected(
            "below_min_amount",
            f"{_fmt(reserved)} {market.quote} buys {_fmt(max(qty, ZERO))} {market.base} "
            f"at {_fmt(price)}, under the minimum amount",
            release(book, ticket),
        )
    if market.min_notional and cost < market.min_notional:
        return FillRejected(
            "below_min_notional",
            f"order value {_fmt(cost)} is under the market minimum {_fmt(market.min_notional)}",
            release(book, ticket),
        )
    if total > budget:
        return FillRejected(
            "insufficient_balance",
            f"insufficient {market.quote} at the fill price {_fmt(price)}: needs {_fmt(total)}, "
            f"{_fmt(budget)} available",
            release(book, ticket),
        )
    opens = book.base_free + book.base_locked == ZERO
    # the reservation released and the fill applied in one step (same sums as `release`)
    new_book = Book(
        (book.quote_free + reserved) - total,
        book.quote_locked - reserved,
        book.base_free + qty,
        book.base_locked,
        book.cost_basis + cost,
        book.realised_pnl,
        book.fees_paid + fee,
        ZERO if opens else book.trip_pnl,
        (ZERO if opens else book.trip_fees) + fee,
    )
    return FillResult(
        "buy", qty, price, cost, fee, "maker" if maker else "taker", ZERO, cost, None, opens,
        new_book,
    )  # fmt: skip


def _execute_sell(
    ticket: Ticket, price: Decimal, fees: FeeSchedule, book: Book
) -> FillResult | FillRejected:
    maker = ticket.order_type == "limit"
    rate = fees.maker if maker else fees.taker
    assert ticket.amount is not None
    qty = ticket.amount
    reserved = ticket.reserved
    base_free = book.base_free + reserved  # the reservation released (as `release`)
    held = book.base_free + book.base_locked
    if qty > base_free:
        return FillRejected(
            "insufficient_balance",
            f"selling {_fmt(qty)} but only {_fmt(base_free)} is held",
            release(book, ticket),
        )
    cost_basis = book.cost_basis
    proceeds = _q(_mul(qty, price), ROUND_FLOOR)
    closes = qty == held
    removed = cost_basis if closes else _q(_div(_mul(cost_basis, qty), held))
    removed = min(removed, cost_basis)
    fee = _q(_mul(proceeds, rate))
    realised = proceeds - removed
    trip_pnl = book.trip_pnl + realised
    trip_fees = book.trip_fees + fee
    new_book = Book(
        book.quote_free + proceeds - fee,
        book.quote_locked,
        base_free - qty,
        book.base_locked - reserved,
        cost_basis - removed,
        book.realised_pnl + realised,
        book.fees_paid + fee,
        ZERO if closes else trip_pnl,
        ZERO if closes else trip_fees,
    )
    return FillResult(
        "sell", qty, price, proceeds, fee, "maker" if maker else "taker", realised, -removed,
        trip_pnl - trip_fees if closes else None, False, new_book,
    )  # fmt: skip
