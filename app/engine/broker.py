"""The paper broker: orders, fills and cancels written to the ledger, each fill atomically.

Signatures (the tick engine and the safety feature call these; the fill rules themselves are
pure and live in `app.engine.fill_model`, shared with the backtester):

    place_order(session, bot, *, side, order_type, client_order_id, amount=None,
                quote_amount=None, price=None, now, bootstrap=False, reason=None,
                market=None, reference_price=None, fill_from=None) -> Order
    process_fills(session, bot, candles, now, *, market=None) -> list[Fill]
    cancel_order(session, order_id, *, bot_id=None, reason, now=None) -> Order
    cancel_open_orders(session, bot_id=None, reason="...", *, now=None) -> int

The trailing keyword arguments are optional additions to the contract: `market` (a
`MarketInfo`, else the bot's market source is asked), `reference_price` (the price a market
order is checked against, else the source's last price) and `fill_from` (the open time of
the first candle the order may fill on; default: `now` floored to the bot's timeframe, i.e.
the candle in progress, which is the one right after the candle the strategy just saw).

`place_order` raises `PaperOrderRejected` (422, `order_rejected`, with a `reason` code) for
an order it cannot accept and writes nothing; `TradingHalted` (409) during an emergency stop.
An order that was accepted but cannot fill at the real fill price (a market buy by amount
that the next open made too expensive) ends in state `rejected` with `state_reason`.

Every fill runs in a SAVEPOINT: the order's state, the fill row, both balances and the
position are written together or not at all, even if a caller catches an error and commits
the rest of its transaction. On Postgres the bot's balance and position rows are locked
(`FOR UPDATE`) first, so concurrent writers serialise on the bot.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session

from app.domain.candles import Candles
from app.domain.times import from_ms, to_ms
from app.engine.fill_model import (
    Book,
    FeeSchedule,
    FillRejected,
    PaperOrderRejected,
    Ticket,
    execute,
    find_fill,
    prepare_order,
    release,
    reserve,
)
from app.engine.hooks import SafetyReports
from app.errors import Conflict, NotFound
from app.market.base import MarketInfo, timeframe_seconds
from app.market.registry import get_market_source
from app.observability.metrics import ORDERS
from app.store.base import as_utc
from app.store.emergency_flag import assert_trading_allowed
from app.store.models import Bot
from app.store.models.ledger import Balance, Fill, Order, Position
from config import get_settings

__all__ = [
    "PaperOrderRejected",
    "bot_decimal",
    "book_of",
    "bot_fees",
    "cancel_open_orders",
    "cancel_order",
    "close_order",
    "fill_at",
    "load_book",
    "lock_book",
    "market_for",
    "place_order",
    "process_fills",
    "record_fill",
]

log = logging.getLogger("tradewind.engine.broker")

# Tests only: seconds to sleep between writing a fill's order state and its balances, so a
# test can SIGKILL a process in the middle of a fill. Ignored unless APP_ENV=test.
FILL_PAUSE_ENV = "TRADEWIND_TEST_FILL_PAUSE"
MAX_CLIENT_ORDER_ID = 64


def _test_pause() -> None:
    raw = os.environ.get(FILL_PAUSE_ENV)
    if not raw:
        return
    if get_settings().app_env == "test":
        time.sleep(float(raw))


def _count(state: str) -> None:
    """The `tradewind_orders` counter (best effort: counted when written, before commit)."""
    with contextlib.suppress(Exception):  # metrics must never break trading
        ORDERS.labels(state=state).inc()


def _ms(value: datetime) -> int:
    """Epoch ms of a stored timestamp (SQLite hands back naive UTC)."""
    return to_ms(as_utc(value))  # type: ignore[arg-type]


def market_for(bot: Bot) -> MarketInfo:
    """The bot's market (precision, minimums) from its exchange's source."""
    return get_market_source(bot.exchange).market(bot.symbol)


def reference_price_for(bot: Bot) -> Decimal | None:
    """The source's last price for the bot's symbol (what a market order is judged against),
    or None when the source cannot say."""
    try:
        return get_market_source(bot.exchange).last_price(bot.symbol)
    except Exception as exc:  # the order is then judged without it (or refused, if needed)
        log.warning("no reference price for %s on %s: %s", bot.symbol, bot.exchange, exc)
        return None


def bot_fees(bot: Bot) -> FeeSchedule:
    return FeeSchedule(
        maker=bot_decimal(bot, bot.maker_fee),
        taker=bot_decimal(bot, bot.taker_fee),
        slippage_bps=bot_decimal(bot, bot.slippage_bps),
    )


def bot_decimal(bot: Bot, value: Decimal) -> Decimal:
    """A `Money` setting of the bot as the decimal the user gave. SQLite round-trips `Money`
    through a float (capital 0.1 comes back as 0.100000000000000006): there, take the shortest
    decimal of that float. Postgres values are exact and kept as they are."""
    session = object_session(bot)
    on_sqlite = session is not None and session.get_bind().dialect.name == "sqlite"
    if on_sqlite and value.normalize().as_tuple().exponent < -12:  # type: ignore[operator]
        return Decimal(repr(float(value)))
    return value


# -- the book: balances + position rows, locked --------------------------------------------


def _rows(session: Session, bot_id: int) -> tuple[Position, Balance, Balance]:
    position = session.scalar(
        select(Position)
        .where(Position.bot_id == bot_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if position is None:
        raise Conflict(f"bot {bot_id} has no ledger yet: open it (open_bot_ledger) first")
    balances = {
        b.asset: b
        for b in session.scalars(
            select(Balance)
            .where(Balance.bot_id == bot_id)
            .order_by(Balance.asset)  # lock order: position, then balances by asset
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    }
    quote = balances.get(position.quote)
    base = balances.get(position.base)
    if quote is None or base is None:
        raise Conflict(f"bot {bot_id} ledger is missing a balance row")
    return position, quote, base


def book_of(position: Position, quote: Balance, base: Balance) -> Book:
    """The book held in a bot's position and balance rows (as read, no locking)."""
    return Book(
        quote_free=quote.free,
        quote_locked=quote.locked,
        base_free=base.free,
        base_locked=base.locked,
        cost_basis=position.cost_basis,
        realised_pnl=position.realised_pnl,
        fees_paid=position.fees_paid,
        trip_pnl=position.trip_pnl,
        trip_fees=position.trip_fees,
    )


def load_book(session: Session, bot_id: int) -> Book:
    """The bot's current book (locks its rows on Postgres until the transaction ends)."""
    return book_of(*_rows(session, bot_id))


def _write_book(
    position: Position, quote: Balance, base: Balance, book: Book, now: datetime
) -> None:
    quote.free, quote.locked = book.quote_free, book.quote_locked
    base.free, base.locked = book.base_free, book.base_locked
    position.amount = book.position
    position.cost_basis = book.cost_basis
    position.avg_entry_price = book.avg_entry_price
    position.realised_pnl = book.realised_pnl
    position.fees_paid = book.fees_paid
    position.trip_pnl = book.trip_pnl
    position.trip_fees = book.trip_fees
    if book.position == 0:
        position.opened_at = None
    quote.updated_at = base.updated_at = position.updated_at = now


def _ticket(order: Order) -> Ticket:
    return Ticket(
        side=order.side,  # type: ignore[arg-type]
        order_type=order.type,  # type: ignore[arg-type]
        amount=order.amount,
        quote_amount=order.quote_amount,
        price=order.price,
        reserved=order.reserved,
    )


# -- placing -------------------------------------------------------------------------------


def place_order(
    session: Session,
    bot: Bot,
    *,
    side: str,
    order_type: str,
    client_order_id: str,
    amount: Decimal | None = None,
    quote_amount: Decimal | None = None,
    price: Decimal | None = None,
    now: datetime,
    bootstrap: bool = False,
    reason: str | None = None,
    market: MarketInfo | None = None,
    reference_price: Decimal | None = None,
    fill_from: datetime | None = None,
    reports: SafetyReports | None = None,
) -> Order:
    """Validate, reserve and record an open paper order; the same `client_order_id` twice
    returns the first order and places nothing. `reports` is the live broker's (paper orders
    never reach an exchange); it is accepted so that both brokers take the same call."""
    if not client_order_id or len(client_order_id) > MAX_CLIENT_ORDER_ID:
        raise PaperOrderRejected(
            f"client_order_id must be 1-{MAX_CLIENT_ORDER_ID} characters",
            reason="invalid_order",
            field="client_order_id",
        )
    now = as_utc(now)  # type: ignore[assignment]
    position, quote, base = _rows(session, bot.id)  # serialises this bot's order placement
    existing = _existing(session, bot, client_order_id)
    if existing is not None:
        return existing
    market = market or market_for(bot)
    if market.symbol != bot.symbol:
        raise PaperOrderRejected(
            f"market {market.symbol} is not the bot's symbol {bot.symbol}", reason="invalid_order"
        )
    fees = bot_fees(bot)
    if order_type == "market" and reference_price is None:
        reference_price = reference_price_for(bot)

    book = book_of(position, quote, base)
    ticket = prepare_order(
        side=side,
        order_type=order_type,
        market=market,
        fees=fees,
        book=book,
        amount=amount,
        quote_amount=quote_amount,
        price=price,
        reference_price=reference_price,
    )
    if fill_from is None:
        tf_ms = timeframe_seconds(bot.timeframe) * 1000
        now_ms = _ms(now)
        fill_from = from_ms(now_ms - now_ms % tf_ms)

    assert_trading_allowed(session)
    try:
        with session.begin_nested():
            order = _insert(
                session, bot, ticket, client_order_id, fill_from, now, bootstrap, reason
            )
            _write_book(position, quote, base, reserve(book, ticket), now)
            session.flush()
    except IntegrityError:
        existing = _existing(session, bot, client_order_id)
        if existing is None:
            raise
        return existing
    _count("open")
    return order


def _insert(
    session: Session,
    bot: Bot,
    ticket: Ticket,
    client_order_id: str,
    fill_from: datetime,
    now: datetime,
    bootstrap: bool,
    reason: str | None,
) -> Order:
    order = Order(
        bot_id=bot.id,
        symbol=bot.symbol,
        side=ticket.side,
        type=ticket.order_type,
        state="open",
        amount=ticket.amount,
        quote_amount=ticket.quote_amount,
        price=ticket.price,
        reserved=ticket.reserved,
        client_order_id=client_order_id,
        fill_from=as_utc(fill_from),
        created_at=now,
        bootstrap=bootstrap,
        reason=reason,
    )
    session.add(order)
    session.flush()
    return order


def _existing(session: Session, bot: Bot, client_order_id: str) -> Order | None:
    order = session.scalar(select(Order).where(Order.client_order_id == client_order_id))
    if order is not None and order.bot_id != bot.id:
        raise Conflict("client_order_id is already used by another bot's order")
    return order


# -- filling -------------------------------------------------------------------------------


def open_orders(session: Session, bot_id: int) -> list[Order]:
    """The bot's open orders, oldest first, as the database has them now (both brokers fill
    from this list, so a row another transaction changed is not judged stale)."""
    return list(
        session.scalars(
            select(Order)
            .where(Order.bot_id == bot_id, Order.state == "open")
            .order_by(Order.id)
            .execution_options(populate_existing=True)
        )
    )


def process_fills(
    session: Session,
    bot: Bot,
    candles: Candles,
    now: datetime,
    *,
    market: MarketInfo | None = None,
    reports: SafetyReports | None = None,
) -> list[Fill]:
    """Fill the bot's open orders that these closed candles reach (oldest order first).
    `reports` is the live broker's, unused by paper fills."""
    if len(candles) == 0:
        return []
    orders = open_orders(session, bot.id)
    if not orders:
        return []
    now = as_utc(now)  # type: ignore[assignment]
    market = market or market_for(bot)
    fees = bot_fees(bot)
    fills: list[Fill] = []
    for order in orders:
        ticket = _ticket(order)
        hit = find_fill(
            ticket, candles, fill_from_ms=_ms(order.fill_from), fees=fees, market=market
        )
        if hit is None:
            continue
        index, price = hit
        fill = _fill_one(session, bot, order, ticket, price, from_ms(int(candles.ts[index])),
                         now, fees, market)  # fmt: skip
        if fill is not None:
            fills.append(fill)
    return fills


def _fill_one(
    session: Session,
    bot: Bot,
    order: Order,
    ticket: Ticket,
    price: Decimal,
    candle_ts: datetime,
    now: datetime,
    fees: FeeSchedule,
    market: MarketInfo,
) -> Fill | None:
    with session.begin_nested():
        position, quote, base = _rows(session, bot.id)
        book = book_of(position, quote, base)
        outcome = execute(ticket, price, fees=fees, market=market, book=book)
        if isinstance(outcome, FillRejected):
            if _close(session, order, "rejected", outcome.message, now):
                _write_book(position, quote, base, outcome.book, now)
                session.flush()
                _count("rejected")
            return None
        moved = session.execute(
            update(Order)
            .where(Order.id == order.id, Order.state == "open")
            .values(
                state="filled",
                amount=order.amount if order.amount is not None else outcome.amount,
                filled_amount=outcome.amount,
                average_price=outcome.price,
                cost=outcome.cost,
                fee=outcome.fee,
                filled_at=now,
                closed_at=now,
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        if moved != 1:
            return None  # filled or cancelled by someone else meanwhile
        fill = Fill(
            order_id=order.id,
            bot_id=bot.id,
            side=outcome.side,
            amount=outcome.amount,
            price=outcome.price,
            cost=outcome.cost,
            fee=outcome.fee,
            fee_asset=position.quote,
            liquidity=outcome.liquidity,
            realised_pnl=outcome.realised_pnl,
            cost_basis_change=outcome.cost_basis_change,
            closed_trade_pnl=outcome.closed_trade_pnl,
            trade_opened_at=position.opened_at if outcome.closed_trade_pnl is not None else None,
            candle_ts=candle_ts,
            filled_at=now,
        )
        session.add(fill)
        session.flush()
        _test_pause()
        if outcome.opens_position:
            position.opened_at = candle_ts
        _write_book(position, quote, base, outcome.book, now)
        session.flush()
    _count("filled")
    session.refresh(order)
    return fill


def _close(session: Session, order: Order, state: str, why: str, now: datetime) -> bool:
    moved = session.execute(
        update(Order)
        .where(Order.id == order.id, Order.state == "open")
        .values(state=state, state_reason=why, closed_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    return moved == 1


# -- cancelling ----------------------------------------------------------------------------


def cancel_order(
    session: Session,
    order_id: int,
    *,
    bot_id: int | None = None,
    reason: str,
    now: datetime | None = None,
) -> Order:
    """Cancel one open order and release its reservation; `Conflict` if it is not open."""
    order = session.get(Order, order_id, populate_existing=True)
    if order is None or (bot_id is not None and order.bot_id != bot_id):
        raise NotFound("order not found")
    if order.state != "open" or not _cancel(session, order, reason, as_utc(now) or _utcnow()):
        session.refresh(order)
        raise Conflict(f"order {order.id} is {order.state}, not open: nothing to cancel")
    session.refresh(order)
    return order


def cancel_open_orders(
    session: Session,
    bot_id: int | None = None,
    reason: str = "cancelled",
    *,
    now: datetime | None = None,
) -> int:
    """Cancel every open order (of one bot, or of all bots); returns how many."""
    now = as_utc(now) or _utcnow()
    stmt = select(Order).where(Order.state == "open").order_by(Order.bot_id, Order.id)
    if bot_id is not None:
        stmt = stmt.where(Order.bot_id == bot_id)
    count = 0
    for order in list(session.scalars(stmt.execution_options(populate_existing=True))):
        if _cancel(session, order, reason, now):
            count += 1
    return count


def _cancel(session: Session, order: Order, reason: str, now: datetime) -> bool:
    return close_order(session, order, "cancelled", reason, now)


def close_order(session: Session, order: Order, state: str, reason: str, now: datetime) -> bool:
    """Move an open order to `state` (cancelled / rejected) and release its reservation, in
    one savepoint; False if it was no longer open. The live broker closes orders with it."""
    with session.begin_nested():
        position, quote, base = _rows(session, order.bot_id)
        if not _close(session, order, state, reason, now):
            return False
        book = release(book_of(position, quote, base), _ticket(order))
        _write_book(position, quote, base, book, now)
        session.flush()
    _count(state)
    return True


def record_fill(
    session: Session,
    bot: Bot,
    order: Order,
    ticket: Ticket,
    price: Decimal,
    *,
    candle_ts: datetime,
    now: datetime,
    fees: FeeSchedule,
    market: MarketInfo,
) -> Fill | None:
    """Fill an open order in full at `price` as `ticket` says: order state + fill + balances
    + position in one savepoint (the paper fills and the live broker's exchange fills)."""
    return _fill_one(session, bot, order, ticket, price, candle_ts, now, fees, market)


def fill_at(
    session: Session,
    bot: Bot,
    order: Order,
    price: Decimal,
    *,
    candle_ts: datetime,
    now: datetime,
    market: MarketInfo,
) -> Fill | None:
    """Fill an open paper order at `price` during the candle opening at `candle_ts`: what a
    resting stop or take-profit order does when the candle reaches it (the exit rules of
    `app.engine.exits` found that it did)."""
    return _fill_one(session, bot, order, _ticket(order), price, as_utc(candle_ts),  # type: ignore[arg-type]
                     as_utc(now), bot_fees(bot), market)  # type: ignore[arg-type]  # fmt: skip


def lock_book(session: Session, bot_id: int) -> None:
    """Lock the bot's position and balance rows (Postgres) until the transaction ends."""
    _rows(session, bot_id)


def _utcnow() -> datetime:
    return datetime.now(UTC)
