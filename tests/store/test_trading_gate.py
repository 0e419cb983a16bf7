"""The trading gate is held exactly as long as the session says it is.

A transaction-level advisory lock taken inside a savepoint is released when that savepoint
rolls back (a bot's tick that fails after its order passed the gate). If the session still
believed it held the gate, the next bot of the same batch would record an order without
asking, and could commit it after an emergency stop had answered.
"""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.engine.broker import place_order
from app.services.emergency import emergency_stop
from app.store.db import new_session, session_scope
from app.store.emergency_flag import (
    GATE_LOCK_KEY,
    TradingHalted,
    assert_trading_allowed,
    holds_gate,
)
from app.store.models import Bot
from app.store.models.ledger import Order
from tests.engine.ledger_helpers import ETH_BTC, at
from tests.services.safety_helpers import make_bot
from tests.support.databases import db_backend

postgres_only = pytest.mark.skipif(
    db_backend() == "sqlite", reason="the advisory lock exists on Postgres only"
)


def _gate_free_for_a_stop() -> bool:
    """Whether another connection could take the gate exclusive right now."""
    with session_scope() as other:
        return bool(other.scalar(select(func.pg_try_advisory_xact_lock(GATE_LOCK_KEY))))


def test_a_rolled_back_savepoint_forgets_the_gate(app) -> None:  # type: ignore[no-untyped-def]
    session = new_session()
    try:
        session.execute(select(1))
        savepoint = session.begin_nested()
        assert_trading_allowed(session)
        assert holds_gate(session)
        savepoint.rollback()
        assert not holds_gate(session)
        if db_backend() != "sqlite":
            assert _gate_free_for_a_stop()  # the lock went with the savepoint
    finally:
        session.close()


def test_a_released_savepoint_keeps_the_gate(app) -> None:  # type: ignore[no-untyped-def]
    session = new_session()
    try:
        session.execute(select(1))
        with session.begin_nested():
            assert_trading_allowed(session)
        assert holds_gate(session)
        if db_backend() != "sqlite":
            assert not _gate_free_for_a_stop()
        session.commit()
        assert not holds_gate(session)
    finally:
        session.close()


@postgres_only
def test_no_order_after_a_stop_once_a_failed_tick_let_the_gate_go(make_user) -> None:
    """One batch: bot A's order passes the gate, then A's tick fails and its savepoint rolls
    back. A stop commits meanwhile. Bot B's order in the same batch must be refused."""
    admin = make_user(role="admin")
    first = make_bot(make_user().id, status="running")
    second = make_bot(make_user().id, status="running")
    session = new_session()
    try:
        savepoint = session.begin_nested()
        _order(session, first, "a-1")
        savepoint.rollback()  # bot A's tick failed after its order
        stopper = threading.Thread(
            target=lambda: emergency_stop(actor_user_id=admin.id, reason="drill")
        )
        stopper.start()
        stopper.join(20)
        assert not stopper.is_alive(), "the stop waited for a gate nobody holds"
        with pytest.raises(TradingHalted), session.begin_nested():
            _order(session, second, "b-1")
        session.commit()
    finally:
        session.close()
    with session_scope() as db:
        assert db.scalars(select(Order)).all() == []


def _order(session, bot_id: int, cid: str) -> Order:  # type: ignore[no-untyped-def]
    return place_order(
        session,
        session.get(Bot, bot_id),
        side="buy",
        order_type="limit",
        client_order_id=cid,
        amount=Decimal("1"),
        price=Decimal("0.05"),
        now=at(1),
        market=ETH_BTC,
    )
