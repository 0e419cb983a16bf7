"""The live broker: a live bot's orders go to its exchange, at most once, and never unrecorded.

Same call shapes as the paper broker (`app.engine.broker`), so the tick picks one by
`bot.mode` (`broker_for`). The ledger is the same too: an order reserves from the bot's book
when it is recorded, and an exchange fill is written by the paper broker's own
`record_fill` (order state + fill + balances + position in one savepoint), so
`flask reconcile` holds for live bots as for paper ones.

Why an order can neither be sent twice nor exist on the exchange without a row. A live
order's ledger state is `open` from the moment it is recorded; `submit_state` tracks the
exchange side:

1. `place_order` (inside the tick's transaction, after `assert_trading_allowed`) records the
   order as `pending` with its deterministic `client_order_id` (UNIQUE: a retried tick finds
   it and records nothing) and sends nothing. Nothing is on the exchange yet, so a tick that
   rolls back or a process that dies loses nothing there.
2. After that transaction commits (`on_commit`), `submit_pending` claims the order
   in its own committed transaction: `pending -> unknown`. From then on the order is only
   ever looked up, never sent: a crash at any later point leaves a row a later tick resolves.
3. A second transaction locks the bot's book, re-checks the emergency-stop gate (holding its
   FOR SHARE lock, so a stop waits for this send and then cancels what it sent), checks the
   order is still open, and sends it once. An answer makes it `accepted` with its
   `exchange_order_id`; a refusal closes it `rejected` and releases its reservation; no
   answer (timeout, 429: `OrderStateUnknown`) leaves it `unknown`. A failure before the
   request left (markets not loadable, no credentials) puts it back to `pending`.
4. Each tick of the bot (`process_fills`) looks its `unknown` and `accepted` orders up by
   client order id: found, it becomes `accepted` and a closed order is written to the ledger;
   an `unknown` order the exchange still does not know after UNKNOWN_GRACE_SECONDS never
   reached it and is closed `rejected`. A `pending` order not sent within one timeframe (its
   process died) is cancelled rather than sent late.

Credentials are the bot owner's stored `exchange_credentials` for the bot's exchange,
decrypted only to build that account's ccxt source (`app.market.registry`, closed on
shutdown). Secrets are never logged; exchange errors are scrubbed by the ccxt adapter.

Known limits: an order fills once in the ledger (a partial fill is recorded when the exchange
closes or cancels the order); fees charged in the base asset are booked at the bot's fee rate.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from types import ModuleType
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.domain.candles import Candles
from app.domain.numbers import decimal_text
from app.domain.times import from_ms
from app.engine import broker
from app.engine.fill_model import FeeSchedule, PaperOrderRejected, Ticket, floor_to_step
from app.engine.hooks import SafetyReports
from app.errors import AppError, Conflict
from app.market.base import MarketInfo, timeframe_seconds
from app.market.errors import (
    DuplicateOrder,
    ExchangeUnavailable,
    OrderNotFound,
    OrderStateUnknown,
)
from app.market.registry import get_account_source
from app.store.after_commit import on_commit
from app.store.base import as_utc, quantize, utcnow
from app.store.crypto import decrypt_credential
from app.store.db import session_scope
from app.store.emergency_flag import TradingHalted, assert_trading_allowed
from app.store.models import Bot
from app.store.models.accounts import ExchangeCredential
from app.store.models.ledger import Fill, Order
from config import get_settings

__all__ = [
    "PaperOrderRejected",
    "UNKNOWN_GRACE_SECONDS",
    "account_source",
    "broker_for",
    "cancel_on_exchanges",
    "cancel_open_orders",
    "live_open_orders",
    "place_order",
    "process_fills",
    "submit_pending",
]

log = logging.getLogger("tradewind.engine.live_broker")

UNKNOWN_GRACE_SECONDS = 120.0
MIN_PENDING_AGE_SECONDS = 60.0
_SEND_MARGIN = Decimal("0.005")  # a market buy by quote asks for a little less than it could
_DONE = ("canceled", "cancelled", "expired", "rejected")


def broker_for(bot: Bot) -> ModuleType:
    """The broker module for the bot's mode: this one for `live`, the paper broker else."""
    import sys

    return sys.modules[__name__] if bot.mode == "live" else broker


class LiveTradingUnavailable(Conflict):
    code = "live_trading_unavailable"


# -- after the commit ----------------------------------------------------------------------


# -- the account's exchange source ---------------------------------------------------------


def account_source(session: Session, bot: Bot) -> Any:
    """The ccxt source signed with the bot owner's credentials for the bot's exchange."""

    row = session.scalar(
        select(ExchangeCredential)
        .where(
            ExchangeCredential.user_id == bot.user_id,
            func.lower(ExchangeCredential.exchange) == bot.exchange.lower(),
        )
        .order_by(ExchangeCredential.id)
        .limit(1)
    )
    if row is None:
        raise LiveTradingUnavailable(f"no {bot.exchange} credentials for bot {bot.id}'s owner")
    fingerprint = hashlib.sha256(row.ciphertext.encode()).hexdigest()[:16]
    secrets = decrypt_credential(row.ciphertext)
    return get_account_source(
        f"{row.id}:{fingerprint}",
        bot.exchange,
        api_key=secrets.api_key,
        secret=secrets.secret,
        password=secrets.passphrase,
        uid=secrets.uid,
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
    reports: SafetyReports,
) -> Order:
    """Record a live order as `pending` (validated and reserved exactly like a paper order,
    behind the emergency-stop gate); it is sent after the caller's transaction commits. The
    same `client_order_id` twice returns the first order and records nothing."""
    if not get_settings().live_trading_enabled:
        raise PaperOrderRejected(
            "live trading is disabled on this server (LIVE_TRADING_ENABLED=false)",
            reason="live_trading_disabled",
        )
    existed = session.scalar(select(Order.id).where(Order.client_order_id == client_order_id))
    market = market or broker.market_for(bot)
    if order_type == "market" and reference_price is None:
        reference_price = broker.reference_price_for(bot)
    send_amount = amount
    if existed is None and amount is None and quote_amount is not None:
        # the exchange is asked for a base amount; sized before anything is written
        send_amount = _base_amount(bot, quote_amount, market, reference_price)
    order = broker.place_order(
        session, bot, side=side, order_type=order_type, client_order_id=client_order_id,
        amount=amount, quote_amount=quote_amount, price=price, now=now, bootstrap=bootstrap,
        reason=reason, market=market, reference_price=reference_price, fill_from=fill_from,
    )  # fmt: skip
    if existed is None and order.submit_state is None:
        if order.amount is None:
            order.amount = send_amount
        order.submit_state = "pending"
        session.flush()
        bot_id = order.bot_id
        on_commit(session, lambda: submit_pending(bot_id, reports), key=f"submit:{bot_id}")
    return order


def _base_amount(
    bot: Bot, quote_amount: Decimal, market: MarketInfo, reference_price: Decimal | None
) -> Decimal:
    """What `quote_amount` buys at the reference price after fee and slippage (a little
    less, so that the exchange's fill fits in what the order reserved)."""
    if reference_price is None or reference_price <= 0:
        raise PaperOrderRejected("no price to size the live order with", reason="no_price")
    fees = broker.bot_fees(bot)
    per_unit = reference_price * (1 + fees.taker) * (1 + fees.slippage_bps / 10_000 + _SEND_MARGIN)
    amount = floor_to_step(quote_amount / per_unit, market.amount_step)
    if amount <= 0 or (market.min_amount and amount < market.min_amount):
        raise PaperOrderRejected(
            f"{decimal_text(quote_amount)} {market.quote} buys less than the minimum amount",
            reason="below_min_amount",
        )
    return amount


def submit_pending(bot_id: int, reports: SafetyReports) -> int:
    """Send the bot's `pending` orders (after the transaction that recorded them committed);
    returns how many were accepted by the exchange. Never raises."""

    sent = 0
    try:
        with session_scope() as session:
            ids = list(
                session.scalars(
                    select(Order.id)
                    .where(
                        Order.bot_id == bot_id,
                        Order.state == "open",
                        Order.submit_state == "pending",
                    )
                    .order_by(Order.id)
                )
            )
        for order_id in ids:
            if _claim(order_id) and _send(order_id, reports):
                sent += 1
    except Exception:
        log.exception("sending bot %s's pending live orders failed", bot_id)
    return sent


def _claim(order_id: int) -> bool:
    """pending -> unknown, committed before anything is sent (or cancel a stale one)."""

    with session_scope() as session:
        order = session.get(Order, order_id, populate_existing=True)
        if order is None or order.state != "open" or order.submit_state != "pending":
            return False
        bot = session.get(Bot, order.bot_id)
        assert bot is not None
        now = utcnow()
        if not _lock(session, bot.id, order_id, "pending"):
            return False
        try:
            assert_trading_allowed(session)
        except TradingHalted:
            return False  # the stop cancelled (or will cancel) every open order row
        max_age = max(timeframe_seconds(bot.timeframe), MIN_PENDING_AGE_SECONDS)
        if now - as_utc(order.created_at) > timedelta(seconds=max_age):  # type: ignore[operator]
            broker.close_order(session, order, "cancelled", "not sent in time", now)
            return False
        return _move(session, order_id, "pending", "unknown", submitted_at=now)


def _lock(session: Session, bot_id: int, order_id: int, submit_state: str) -> bool:
    """Lock in the order every order transaction uses - the bot's book, then the order row,
    then (the caller) the flag - and say whether the order is still open in `submit_state`.
    The no-op UPDATE is also the transaction's first write: on SQLite it takes the database
    write lock, so an emergency stop cannot commit between the gate check and the send."""
    broker.lock_book(session, bot_id)
    return _move(session, order_id, submit_state, submit_state)


def _move(session: Session, order_id: int, old: str, new: str, **values: Any) -> bool:
    moved = session.execute(
        update(Order)
        .where(Order.id == order_id, Order.state == "open", Order.submit_state == old)
        .values(submit_state=new, **values)
        .execution_options(synchronize_session=False)
    ).rowcount
    return moved == 1


def _send(order_id: int, reports: SafetyReports) -> bool:
    """Send one claimed order, once, holding the gate; record what the exchange said."""

    with session_scope() as session:
        order = session.get(Order, order_id, populate_existing=True)
        if order is None:
            return False
        bot = session.get(Bot, order.bot_id)
        assert bot is not None
        if not _lock(session, bot.id, order_id, "unknown"):
            return False  # cancelled (an emergency stop) or resolved meanwhile
        try:
            assert_trading_allowed(session)
        except TradingHalted:
            return False
        session.refresh(order)
        if order.exchange_order_id:
            return False
        try:
            source = account_source(session, bot)
            source.market(bot.symbol)
        except Exception as exc:  # nothing left for the exchange: it may be sent later
            _move(session, order.id, "unknown", "pending")
            _report(session, reports, bot, order, "live_order_not_sent", exc)
            return False
        try:
            answer = source.create_order(
                order.symbol, order.side, order.type, order.amount, order.price,
                order.client_order_id,
            )  # fmt: skip
        except (OrderStateUnknown, DuplicateOrder) as exc:
            log.warning("bot %s order %s: %s; it will be looked up, never re-sent", bot.id,
                        order.client_order_id, exc.code)  # fmt: skip
            return False
        except ExchangeUnavailable as exc:  # raised before the request (markets), so not sent
            _move(session, order.id, "unknown", "pending")
            _report(session, reports, bot, order, "live_order_not_sent", exc)
            return False
        except AppError as exc:  # a definite refusal
            broker.close_order(session, order, "rejected", f"exchange: {exc.message}"[:500],
                               utcnow())  # fmt: skip
            _report(session, reports, bot, order, "live_order_rejected", exc)
            return False
        except Exception as exc:  # unknown outcome: keep it `unknown`, to be looked up
            log.error("bot %s order %s: unexpected %s while sending", bot.id,
                      order.client_order_id, type(exc).__name__)  # fmt: skip
            return False
        _accept(session, order, answer)
        _apply(session, bot, order, answer, utcnow(), source.market(bot.symbol), reports)
        return True


def _accept(session: Session, order: Order, answer: dict[str, Any]) -> None:
    if order.submit_state != "accepted":
        order.submit_state = "accepted"
        order.exchange_order_id = str(answer["id"]) if answer.get("id") is not None else None
        session.flush()


def _report(
    session: Session, reports: SafetyReports, bot: Bot, order: Order, kind: str, exc: Exception
) -> None:
    """An incident and an alert to the bot's owner (messages are already scrubbed)."""

    why = f"{type(exc).__name__}: {exc}"[:500]
    message = f"bot {bot.id} live order {order.client_order_id}: {why}"
    log.warning("%s: %s", kind, message)
    details = {"order_id": order.id, "client_order_id": order.client_order_id}
    reports.incident(session, kind, message, bot_id=bot.id, details=details)
    reports.alert(session, user_id=bot.user_id, severity="warning", code=kind, message=message,
                bot_id=bot.id)  # fmt: skip


# -- filling: what the exchange says -------------------------------------------------------


def process_fills(
    session: Session,
    bot: Bot,
    candles: Candles,
    now: datetime,
    *,
    market: MarketInfo | None = None,
    reports: SafetyReports,
) -> list[Fill]:
    """Look the bot's sent orders up on its exchange and write what filled to the ledger;
    resolve `unknown` orders by client order id (never by sending them again)."""
    orders = broker.open_orders(session, bot.id)
    if any(o.submit_state == "pending" for o in orders):
        bot_id = bot.id
        on_commit(session, lambda: submit_pending(bot_id, reports), key=f"submit:{bot_id}")
    orders = [o for o in orders if o.submit_state in ("unknown", "accepted")]
    if not orders:
        return []
    now = as_utc(now)  # type: ignore[assignment]
    market = market or broker.market_for(bot)
    source = account_source(session, bot)
    fills: list[Fill] = []
    for order in orders:
        try:
            remote = source.fetch_order_by_client_id(order.client_order_id, order.symbol)
        except OrderNotFound:
            _not_found(session, bot, order, now)
            continue
        except AppError as exc:
            log.warning("bot %s order %s: lookup failed: %s", bot.id, order.client_order_id,
                        exc.code)  # fmt: skip
            continue
        _accept(session, order, remote)
        fill = _apply(session, bot, order, remote, now, market, reports)
        if fill is not None:
            fills.append(fill)
    return fills


def _not_found(session: Session, bot: Bot, order: Order, now: datetime) -> None:
    if order.submit_state != "unknown":
        log.warning("bot %s order %s: accepted but not found on the exchange", bot.id,
                    order.client_order_id)  # fmt: skip
        return
    since = as_utc(order.submitted_at) or now
    if now - since >= timedelta(seconds=UNKNOWN_GRACE_SECONDS):
        broker.close_order(session, order, "rejected", "never reached the exchange", now)


def _apply(
    session: Session,
    bot: Bot,
    order: Order,
    remote: dict[str, Any],
    now: datetime,
    market: MarketInfo,
    reports: SafetyReports,
) -> Fill | None:
    """Write an exchange order's final state: a closed order (or a cancelled one that
    partly filled) is filled in the ledger; one cancelled unfilled releases its reservation."""
    status = (remote.get("status") or "").lower()
    filled = remote.get("filled") or Decimal(0)
    if status == "closed" or (status in _DONE and filled > 0):
        return _fill(session, bot, order, remote, now, market, reports)
    if status in _DONE:
        state = "rejected" if status == "rejected" else "cancelled"
        broker.close_order(session, order, state, f"exchange: {status}", now)
    return None


def _fill(
    session: Session,
    bot: Bot,
    order: Order,
    remote: dict[str, Any],
    now: datetime,
    market: MarketInfo,
    reports: SafetyReports,
) -> Fill | None:
    filled: Decimal = remote.get("filled") or remote.get("amount") or order.amount
    price = remote.get("average")
    if not price and remote.get("cost"):
        price = remote["cost"] / filled
    price = price or remote.get("price") or order.price
    if not filled or not price:
        log.warning("bot %s order %s: closed without amount or price", bot.id,
                    order.client_order_id)  # fmt: skip
        return None
    ticket = Ticket(side=order.side, order_type=order.type, amount=filled,  # type: ignore[arg-type]
                    quote_amount=None, price=order.price, reserved=order.reserved)  # fmt: skip
    fill = broker.record_fill(
        session, bot, order, ticket, price, candle_ts=_filled_at(remote, now), now=now,
        fees=_fees(bot, remote, market, filled * price), market=market,
    )  # fmt: skip
    if fill is None:
        session.refresh(order)
        if order.state == "rejected":
            _report(session, reports, bot, order, "live_fill_not_booked",
                    RuntimeError(order.state_reason or "rejected by the ledger"))  # fmt: skip
    return fill


def _fees(bot: Bot, remote: dict[str, Any], market: MarketInfo, notional: Decimal) -> FeeSchedule:
    """The rate the exchange charged (fee in the quote asset), else the bot's own rates."""
    own = broker.bot_fees(bot)
    fee = remote.get("fee") or {}
    cost, currency = fee.get("cost"), fee.get("currency")
    if cost is None or currency != market.quote or notional <= 0:
        return FeeSchedule(maker=own.maker, taker=own.taker)
    rate = quantize(Decimal(str(cost)) / notional, ROUND_FLOOR)
    return FeeSchedule(maker=rate, taker=rate)


def _filled_at(remote: dict[str, Any], now: datetime) -> datetime:
    ts = remote.get("timestamp")
    return from_ms(int(ts)) if ts else now


# -- cancelling ----------------------------------------------------------------------------


def cancel_open_orders(
    session: Session,
    bot_id: int | None = None,
    reason: str = "cancelled",
    *,
    now: datetime | None = None,
) -> int:
    """Cancel one live bot's open orders: unsent ones in the ledger, sent ones on the
    exchange first (an `unknown` order waits until a lookup has resolved it). Returns how
    many were closed; an exchange failure leaves the order for the next tick."""
    if bot_id is None:
        raise ValueError("live orders are cancelled per bot")
    now = as_utc(now) or utcnow()
    bot = session.get(Bot, bot_id)
    assert bot is not None
    orders = broker.open_orders(session, bot_id)
    done = 0
    for order in orders:
        if order.submit_state in (None, "pending"):
            done += broker.close_order(session, order, "cancelled", reason, now)
        elif order.submit_state == "accepted" and order.exchange_order_id:
            try:
                source = account_source(session, bot)
                remote = source.cancel_order(order.exchange_order_id, order.symbol)
                if (remote.get("status") or "").lower() not in (*_DONE, "closed"):
                    remote = source.fetch_order_by_client_id(order.client_order_id, order.symbol)
            except AppError as exc:
                log.warning("bot %s order %s: cancel failed: %s", bot_id, order.client_order_id,
                            exc.code)  # fmt: skip
                continue
            _apply(session, bot, order, remote, now, broker.market_for(bot))
            session.refresh(order)
            done += order.state != "open"
    return done


# -- the emergency stop --------------------------------------------------------------------


def live_open_orders(session: Session) -> list[dict[str, Any]]:
    """Open orders that may be on an exchange (taken before the stop cancels the rows)."""
    rows = session.execute(
        select(
            Order.id,
            Order.bot_id,
            Bot.user_id,
            Order.client_order_id,
            Order.exchange_order_id,
            Order.symbol,
        )  # fmt: skip
        .join(Bot, Bot.id == Order.bot_id)
        .where(Order.state == "open", Order.submit_state.in_(("unknown", "accepted")))
        .order_by(Order.id)
    ).all()
    return [
        {
            "order_id": r[0],
            "bot_id": r[1],
            "user_id": r[2],
            "client_order_id": r[3],
            "exchange_order_id": r[4],
            "symbol": r[5],
        }  # fmt: skip
        for r in rows
    ]


def cancel_on_exchanges(orders: list[dict[str, Any]], reports: SafetyReports) -> int:
    """After the stop committed: cancel each order on its exchange (best effort). A failure,
    or an order that filled before it could be cancelled, is an incident and an alert.
    Returns how many were cancelled there. Never raises."""

    cancelled = 0
    for item in orders:
        try:
            with session_scope() as session:
                if _cancel_remote(session, item, reports):
                    cancelled += 1
        except Exception as exc:
            _remote_failure(item, exc, reports)
    return cancelled


def _cancel_remote(session: Session, item: dict[str, Any], reports: SafetyReports) -> bool:
    bot = session.get(Bot, item["bot_id"])
    if bot is None:
        return False
    source = account_source(session, bot)
    exchange_id = item["exchange_order_id"]
    if not exchange_id:
        try:
            found = source.fetch_order_by_client_id(item["client_order_id"], item["symbol"])
        except OrderNotFound:
            return False  # it never reached the exchange
        exchange_id = found.get("id")
        if (found.get("status") or "").lower() in (*_DONE, "closed"):
            return _check_closed(session, item, found, reports)
    remote = source.cancel_order(str(exchange_id), item["symbol"])
    return _check_closed(session, item, remote, reports)


def _check_closed(
    session: Session, item: dict[str, Any], remote: dict[str, Any], reports: SafetyReports
) -> bool:
    filled = remote.get("filled") or Decimal(0)
    status = (remote.get("status") or "").lower()
    if status == "closed" or filled > 0:
        _flag(session, reports, item, "live_order_filled_before_stop",
              f"bot {item['bot_id']} order {item['client_order_id']} filled {filled} on the "
              f"exchange before the emergency stop cancelled it: the ledger shows it "
              f"cancelled; review the account")  # fmt: skip
        return False
    return True


def _remote_failure(item: dict[str, Any], exc: Exception, reports: SafetyReports) -> None:

    message = (
        f"emergency stop: bot {item['bot_id']} order {item['client_order_id']} could not be "
        f"cancelled on the exchange ({type(exc).__name__}: {exc})"
    )[:1000]
    log.error("%s", message)
    try:
        with session_scope() as session:
            _flag(session, reports, item, "live_cancel_failed", message)
    except Exception:
        log.exception("recording a failed live cancel failed")


def _flag(
    session: Session, reports: SafetyReports, item: dict[str, Any], kind: str, message: str
) -> None:
    reports.incident(session, kind, message, bot_id=item["bot_id"],
                    details={"order_id": item["order_id"],
                             "client_order_id": item["client_order_id"]})  # fmt: skip
    for user_id in (item["user_id"], None):
        reports.alert(session, user_id=user_id, severity="critical", code=kind, message=message,
                    bot_id=item["bot_id"])  # fmt: skip
