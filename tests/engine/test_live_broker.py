"""Live bots trade on their exchange (the fake Binance of tests/market): an entry is sent
exactly once - a retried tick or a timed-out create never sends it again, the unknown order
is resolved by a lookup - fills are booked in the ledger so reconcile holds, and no secret
reaches a log, an incident or an error."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.engine import live_broker
from app.engine.live_broker import broker_for, process_fills, submit_pending
from app.engine.tick import run_tick
from app.services.engine_hooks import SAFETY_REPORTS, TICK_HOOKS
from app.services.reconcile import reconcile_all
from app.store.base import utcnow
from app.store.db import session_scope
from app.store.models import Bot
from app.store.models.ledger import Balance, Fill, Position
from app.store.models.safety import Alert, Incident
from tests.engine.helpers import HOUR_MS, T0, Clock, at
from tests.engine.live_helpers import (
    LOOKUP,
    ORDER,
    live_exchange,
    live_orders,
    make_live_bot,
    set_lookup,
)
from tests.market.conftest import API_KEY, SECRET
from tests.market.exchange_server import RecordedExchange

D = Decimal


@pytest.fixture
def live(app: Any, settings: Any, tmp_path: Path) -> Iterator[tuple[RecordedExchange, Clock]]:
    with live_exchange(settings, tmp_path) as pair:
        yield pair


@pytest.fixture
def user_id(make_user: Any) -> int:
    return int(make_user().id)


def tick(bot_id: int, clock: Clock, k: int, *, keep_candle: bool = False) -> Any:
    """The tick planned at candle k's close, committed; `keep_candle` leaves the bot's last
    candle as it was (the same tick run again, as a retried one would)."""
    clock.ms = T0 + (k + 1) * HOUR_MS
    with session_scope() as s:
        bot = s.get(Bot, bot_id)
        result = run_tick(s, bot, planned_at=at(clock.ms), now=utcnow(), hooks=TICK_HOOKS)
        if result.last_candle_ts is not None and not keep_candle:
            bot.last_candle_ts = result.last_candle_ts
    return result


def sync(bot_id: int, now: Any = None) -> list[Fill]:
    with session_scope() as s:
        bot = s.get(Bot, bot_id)
        return process_fills(s, bot, None, now or utcnow(), reports=SAFETY_REPORTS)  # type: ignore[arg-type]


def entry(bot_id: int, live: tuple[RecordedExchange, Clock]) -> Any:
    """The bot's first tick, on the entry signal of candle 4."""
    return tick(bot_id, live[1], 4)


def assert_reconciled(bot_id: int) -> None:
    with session_scope() as s:
        (result,) = reconcile_all(s, [bot_id])
        assert result.ok, result.problems


def test_broker_is_chosen_by_mode() -> None:
    from app.engine import broker

    assert broker_for(Bot(mode="live")) is live_broker
    assert broker_for(Bot(mode="paper")) is broker


def test_entry_is_sent_once_even_when_the_tick_is_retried(live, user_id) -> None:  # type: ignore[no-untyped-def]
    server, clock = live
    bot_id = make_live_bot(user_id)
    result = entry(bot_id, live)
    assert result.action == "buy"
    assert len(server.requests(ORDER)) == 1
    (order,) = live_orders(bot_id)
    assert (order.state, order.submit_state, order.exchange_order_id) == (
        "open", "accepted", "9780331417",
    )  # fmt: skip
    sent = server.requests(ORDER)[0].params
    assert sent["newClientOrderId"] == order.client_order_id
    assert (sent["side"], sent["type"], D(sent["quantity"])) == ("BUY", "MARKET", order.amount)

    set_lookup(server, status="NEW", side="BUY", qty=str(order.amount), quote="0")
    tick(bot_id, clock, 4, keep_candle=True)  # the same planned tick again
    with session_scope() as s:  # and the same order placed again by its client order id
        bot = s.get(Bot, bot_id)
        again = live_broker.place_order(
            s, bot, side="buy", order_type="market", client_order_id=order.client_order_id,
            quote_amount=D("50"), now=utcnow(), reference_price=D("13"), reports=SAFETY_REPORTS,
        )  # fmt: skip
        assert again.id == order.id
    assert submit_pending(bot_id, SAFETY_REPORTS) == 0
    assert len(server.requests(ORDER)) == 1
    assert len(live_orders(bot_id)) == 1
    assert_reconciled(bot_id)


def test_a_timed_out_create_is_looked_up_never_sent_again(live, user_id) -> None:  # type: ignore[no-untyped-def]
    server, clock = live
    bot_id = make_live_bot(user_id)
    server.fail(ORDER, "timeout")
    assert entry(bot_id, live).action == "buy"
    assert len(server.requests(ORDER)) == 1
    (order,) = live_orders(bot_id)
    assert (order.state, order.submit_state, order.exchange_order_id) == ("open", "unknown", None)

    assert submit_pending(bot_id, SAFETY_REPORTS) == 0  # an unknown order is never sent again
    set_lookup(server, status="FILLED", side="BUY", qty=str(order.amount),
               quote=str(order.amount * 13))  # fmt: skip
    tick(bot_id, clock, 5)  # the next tick looks it up and books the fill
    assert len(server.requests(ORDER)) == 1
    lookups = server.requests(LOOKUP)
    assert lookups and lookups[0].params["origClientOrderId"] == order.client_order_id
    (order,) = live_orders(bot_id)
    assert (order.state, order.submit_state, order.exchange_order_id) == (
        "filled", "accepted", "9780331417",
    )  # fmt: skip
    with session_scope() as s:
        (fill,) = s.scalars(select(Fill).where(Fill.bot_id == bot_id))
        assert (fill.amount, fill.price) == (order.amount, D(13))
        position = s.get(Position, bot_id)
        assert position.amount == order.amount
    assert_reconciled(bot_id)


def test_an_unknown_order_the_exchange_never_got_is_released_not_resent(live, user_id) -> None:  # type: ignore[no-untyped-def]
    server, _clock = live
    bot_id = make_live_bot(user_id)
    server.fail(ORDER, "timeout")
    entry(bot_id, live)
    server.fail(LOOKUP, "order_not_found", "order_not_found")
    sync(bot_id)  # not found yet, but maybe still on its way: kept
    (order,) = live_orders(bot_id)
    assert (order.state, order.submit_state) == ("open", "unknown")
    sync(bot_id, utcnow() + timedelta(seconds=live_broker.UNKNOWN_GRACE_SECONDS + 1))
    (order,) = live_orders(bot_id)
    assert (order.state, order.state_reason) == ("rejected", "never reached the exchange")
    with session_scope() as s:
        balances = s.scalars(select(Balance).where(Balance.bot_id == bot_id))
        assert all(b.locked == 0 for b in balances)
    assert len(server.requests(ORDER)) == 1
    assert_reconciled(bot_id)


def test_round_trip_books_exchange_fills_and_reconciles(live, user_id) -> None:  # type: ignore[no-untyped-def]
    server, clock = live
    bot_id = make_live_bot(user_id)
    entry(bot_id, live)
    (buy,) = live_orders(bot_id)
    set_lookup(server, status="NEW", side="BUY", qty=str(buy.amount), quote="0")
    assert sync(bot_id) == []  # still open on the exchange: nothing booked
    set_lookup(server, status="FILLED", side="BUY", qty=str(buy.amount),
               quote=str(buy.amount * D("13.5")))  # fmt: skip
    tick(bot_id, clock, 5)
    tick(bot_id, clock, 6)
    result = tick(bot_id, clock, 7)  # the exit signal
    assert result.action == "sell"
    assert len(server.requests(ORDER)) == 2
    sell = live_orders(bot_id)[1]
    assert (sell.side, sell.amount, sell.submit_state) == ("sell", buy.amount, "accepted")
    set_lookup(server, status="FILLED", side="SELL", qty=str(sell.amount),
               quote=str(sell.amount * 11))  # fmt: skip
    (fill,) = sync(bot_id)
    assert fill.side == "sell" and fill.price == D(11)
    assert fill.closed_trade_pnl is not None and fill.closed_trade_pnl < 0
    with session_scope() as s:
        assert s.get(Position, bot_id).amount == 0
    assert_reconciled(bot_id)


def test_a_refused_order_is_rejected_and_no_secret_leaks(live, user_id, caplog) -> None:  # type: ignore[no-untyped-def]
    server, _clock = live
    bot_id = make_live_bot(user_id)
    server.fail(ORDER, "auth")
    with caplog.at_level(logging.DEBUG):
        entry(bot_id, live)
    assert len(server.requests(ORDER)) == 1
    (order,) = live_orders(bot_id)
    assert order.state == "rejected" and order.state_reason.startswith("exchange: ")
    with session_scope() as s:
        incidents = [i.message for i in s.scalars(select(Incident))]
        alerts = [a.message for a in s.scalars(select(Alert))]
    assert any("live_order_rejected" in r.getMessage() for r in caplog.records)
    assert incidents and alerts
    texts = [*incidents, *alerts, order.state_reason, caplog.text]
    sent = server.requests(ORDER)[0]
    assert sent.headers.get("X-MBX-APIKEY") == API_KEY  # the key really was used
    for text in texts:
        assert API_KEY not in text and SECRET not in text
    assert_reconciled(bot_id)


def test_nothing_is_sent_when_live_trading_is_switched_off(live, user_id) -> None:  # type: ignore[no-untyped-def]
    from app.engine.fill_model import PaperOrderRejected
    from config import get_settings, use_settings

    server, _clock = live
    bot_id = make_live_bot(user_id)
    use_settings(get_settings().model_copy(update={"live_trading_enabled": False}))
    result = entry(bot_id, live)
    assert result.action == "held"  # the protections' live gates hold the entry back
    with session_scope() as s, pytest.raises(PaperOrderRejected) as refused:
        live_broker.place_order(  # and the live broker refuses any order (exits too)
            s, s.get(Bot, bot_id), side="sell", order_type="market", client_order_id="x-1",
            amount=D("1"), now=utcnow(), reference_price=D("13"), reports=SAFETY_REPORTS,
        )  # fmt: skip
    assert refused.value.reason == "live_trading_disabled"
    assert server.requests(ORDER) == [] and live_orders(bot_id) == []


def test_the_dispatcher_sends_a_live_entry_once_after_its_batch_commits(live, user_id) -> None:  # type: ignore[no-untyped-def]
    """Through `app.jobs.bot_ticks`: the tick runs in a savepoint of the batch transaction and
    the send waits for the batch's commit - even when a later bot of the batch fails and its
    savepoint is rolled back."""
    from app.jobs import bot_ticks
    from app.store.models.trading import BotTick

    server, clock = live
    clock.ms = T0 + 5 * HOUR_MS  # candle 4 (the entry signal) just closed
    due = utcnow() - timedelta(seconds=5)
    bot_id = make_live_bot(user_id, next_tick_at=due)
    with session_scope() as s:  # a paper bot ticked after it whose entry fails (bad sizing)
        from tests.engine.helpers import make_bot

        later = due + timedelta(seconds=1)
        broken = make_bot(s, user_id, name="broken", exchange="binance", symbol="BTC/USDT",
                          sizing={"mode": "bogus"}, next_tick_at=later).id  # fmt: skip
    assert bot_ticks.run(max_seconds=0) == 2
    with session_scope() as s:
        ticks = {t.bot_id: t for t in s.scalars(select(BotTick))}
    assert ticks[bot_id].action == "buy" and ticks[broken].outcome == "error"
    assert len(server.requests(ORDER)) == 1
    (order,) = live_orders(bot_id)
    assert (order.submit_state, order.exchange_order_id) == ("accepted", "9780331417")
    assert bot_ticks.run(max_seconds=0) == 0  # nothing due: nothing sent again
    assert len(server.requests(ORDER)) == 1
    assert_reconciled(bot_id)


def test_the_account_source_is_signed_and_closed_with_the_market_sources(live, user_id) -> None:  # type: ignore[no-untyped-def]
    from app.market import registry

    server, _clock = live
    bot_id = make_live_bot(user_id)
    entry(bot_id, live)
    with registry._lock:
        (account,) = registry._accounts.values()
    assert server.requests(ORDER)[0].headers.get("X-MBX-APIKEY") == API_KEY
    assert "X-MBX-APIKEY" not in server.requests("GET /api/v3/exchangeInfo")[0].headers
    registry.close_market_sources()  # what the lifecycle's market subsystem calls on stop
    assert account.closed and registry._accounts == {}
    assert server.wait_for_no_connections() == 0


def test_an_order_too_small_for_the_exchange_is_refused_before_anything_is_written(  # type: ignore[no-untyped-def]
    live, user_id
) -> None:
    from app.engine.fill_model import PaperOrderRejected

    server, _clock = live
    bot_id = make_live_bot(user_id)
    with session_scope() as s, pytest.raises(PaperOrderRejected) as refused:
        live_broker.place_order(
            s, s.get(Bot, bot_id), side="buy", order_type="market", client_order_id="tiny-1",
            quote_amount=D("0.001"), now=utcnow(), reference_price=D("13"), reports=SAFETY_REPORTS,
        )  # fmt: skip
    assert refused.value.reason == "below_min_amount"
    assert live_orders(bot_id) == [] and server.requests(ORDER) == []
    assert_reconciled(bot_id)
