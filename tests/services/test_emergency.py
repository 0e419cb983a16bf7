"""The emergency stop on a real database: persistent flag, every open order cancelled, every
running bot paused, audited and alerted; resume leaves bots paused; a tick caught in flight
finishes first and its order is cancelled by the stop (no deadlock, no order after it)."""

from __future__ import annotations

import json
import logging
import threading
import time
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.engine.broker import place_order
from app.services.emergency import (
    StopNotRecorded,
    emergency_resume,
    emergency_status,
    emergency_stop,
)
from app.store.db import new_session, session_scope
from app.store.emergency_flag import TradingHalted
from app.store.models import Bot, SystemState
from app.store.models.accounts import AuditLog
from app.store.models.ledger import Balance, Order
from app.store.models.safety import Alert
from tests.engine.ledger_helpers import ETH_BTC, at
from tests.services.safety_helpers import get_bot, make_bot, set_bot
from tests.support.databases import db_backend

D = Decimal


@pytest.fixture
def admin(make_user):
    return make_user(role="admin")


def open_order(db, bot_id: int, cid: str) -> Order:
    return place_order(
        db,
        db.get(Bot, bot_id),
        side="buy",
        order_type="limit",
        client_order_id=cid,
        amount=D("1"),
        price=D("0.05"),
        now=at(1),
        market=ETH_BTC,
    )


def stop(admin, reason: str = "exchange outage") -> dict:
    return emergency_stop(actor_user_id=admin.id, reason=reason)


def test_stop_cancels_orders_pauses_bots_and_persists(admin, make_user, caplog) -> None:
    alice, bob = make_user(), make_user()
    running = [make_bot(alice.id, status="running"), make_bot(bob.id, status="running")]
    idle = make_bot(alice.id, status="created")
    with session_scope() as db:
        for i, bot_id in enumerate([*running, idle]):
            open_order(db, bot_id, f"o{i}")
    with caplog.at_level(logging.CRITICAL, logger="tradewind.emergency"):
        result = stop(admin)
    assert result["active"] and result["cancelled_orders"] == 3 and result["paused_bots"] == 2
    assert any("EMERGENCY STOP" in r.message for r in caplog.records)
    with session_scope() as db:
        assert db.get(SystemState, 1).emergency_stop is True
        assert {o.state for o in db.scalars(select(Order))} == {"cancelled"}
        assert all(b.locked == 0 for b in db.scalars(select(Balance)))  # reservations released
        for bot_id in running:
            bot = db.get(Bot, bot_id)
            assert (bot.status, bot.pause_reason) == ("paused", "emergency_stop")
        assert db.get(Bot, idle).status == "created"
        (audit,) = db.scalars(select(AuditLog).where(AuditLog.action == "emergency_stop"))
        assert audit.actor_user_id == admin.id and audit.details["reason"] == "exchange outage"
        alerts = list(db.scalars(select(Alert).order_by(Alert.id)))
    assert [(a.user_id, a.severity) for a in alerts] == [
        (None, "critical"),
        (alice.id, "critical"),
        (bob.id, "critical"),
    ]
    with session_scope() as db:  # a new transaction, as after a restart: the flag holds
        assert emergency_status(db)["active"] is True
        with pytest.raises(TradingHalted):
            open_order(db, running[0], "after")


def test_stop_holds_bots_waiting_out_a_protection_cooldown(admin, make_user) -> None:
    bot_id = make_bot(make_user().id, status="paused", pause_reason="protection:losing_streak")
    set_bot(bot_id, cooldown_until=at(60))
    stop(admin)
    bot = get_bot(bot_id)
    assert bot.pause_reason == "emergency_stop" and bot.cooldown_until is None


def test_a_second_stop_keeps_the_first_reason_and_still_cancels(admin, make_user) -> None:
    bot_id = make_bot(make_user().id, status="running")
    stop(admin, "first")
    with session_scope() as db:  # an order recorded behind the flag's back (e.g. by hand)
        db.get(SystemState, 1).emergency_stop = False
        open_order(db, bot_id, "sneaky")
        db.get(SystemState, 1).emergency_stop = True
    result = stop(admin, "second")
    assert result["reason"] == "first" and result["cancelled_orders"] == 1


def test_resume_clears_the_flag_and_leaves_bots_paused(admin, make_user) -> None:
    bot_id = make_bot(make_user().id, status="running")
    stop(admin)
    result = emergency_resume(actor_user_id=admin.id, note="all clear")
    assert result["active"] is False and result["was_active"] is True
    with session_scope() as db:
        assert emergency_status(db)["active"] is False
        assert db.get(Bot, bot_id).status == "paused"
        actions = [a.action for a in db.scalars(select(AuditLog).order_by(AuditLog.id))]
        assert actions == ["emergency_stop", "emergency_resume"]
        codes = [a.code for a in db.scalars(select(Alert).where(Alert.user_id.is_(None)))]
        assert "emergency_resume" in codes
        open_order(db, bot_id, "allowed-again")


def test_stop_and_resume_notify_workers_over_redis(admin) -> None:
    from app.store.redis import get_redis, redis_key

    pubsub = get_redis().pubsub()
    pubsub.subscribe(redis_key("emergency"))
    try:
        pubsub.get_message(timeout=2)  # the subscribe confirmation
        emergency_stop(actor_user_id=admin.id, reason="r")
        message = pubsub.get_message(timeout=5)
        assert message and json.loads(message["data"]) == {"active": True}
        emergency_resume(actor_user_id=admin.id)
        message = pubsub.get_message(timeout=5)
        assert message and json.loads(message["data"]) == {"active": False}
    finally:
        pubsub.close()


@pytest.mark.skipif(db_backend() == "sqlite", reason="lock_timeout bounds lock waits on Postgres")
def test_a_stop_that_cannot_be_recorded_says_so_and_changes_nothing(admin, make_user) -> None:
    """The flag row held by a transaction that never ends: the stop retries for its budget,
    then answers that it was not recorded, and nothing is half-done."""
    bot_id = make_bot(make_user().id, status="running")
    blocker = new_session()
    try:
        blocker.execute(select(SystemState).where(SystemState.id == 1).with_for_update())
        started = time.monotonic()
        with pytest.raises(StopNotRecorded) as caught:
            emergency_stop(actor_user_id=admin.id, reason="blocked", budget_seconds=1.0)
        assert time.monotonic() - started < 5
        assert caught.value.status == 503 and caught.value.code == "emergency_stop_not_recorded"
    finally:
        blocker.rollback()
        blocker.close()
    assert get_bot(bot_id).status == "running"
    with session_scope() as db:
        assert emergency_status(db)["active"] is False
        assert db.scalar(select(AuditLog).where(AuditLog.action == "emergency_stop")) is None


def test_a_tick_in_flight_finishes_first_and_its_order_is_cancelled(admin, make_user) -> None:
    """A tick holds its bot row, its book and the flag FOR SHARE; the stop waits for it (in
    the same lock order, so no deadlock) and then cancels what it placed."""
    bot_id = make_bot(make_user().id, status="running")
    placed, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def tick() -> None:
        db = new_session()
        try:
            db.scalars(select(Bot).where(Bot.id == bot_id).with_for_update()).one()
            open_order(db, bot_id, "in-flight")
            placed.set()
            release.wait(10)
            db.commit()
        except BaseException as exc:
            errors.append(exc)
            db.rollback()
        finally:
            db.close()

    worker = threading.Thread(target=tick)
    worker.start()
    assert placed.wait(10)
    result: dict = {}
    stopper = threading.Thread(target=lambda: result.update(stop(admin)))
    stopper.start()
    stopper.join(0.5)
    release.set()
    worker.join(20)
    stopper.join(20)
    assert not errors and not stopper.is_alive()
    assert result["cancelled_orders"] == 1 and result["paused_bots"] == 1
    with session_scope() as db:
        (order,) = db.scalars(select(Order))
        assert order.state == "cancelled" and order.state_reason == "emergency_stop"
