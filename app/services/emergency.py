"""The emergency stop: one switch that halts order placement everywhere, at once.

The flag lives in Postgres (`system_state` row 1), so it survives restarts and every worker
on every machine sees it. Stopping takes that row `FOR UPDATE` - the lock every order
transaction takes `FOR SHARE` in `assert_trading_allowed` - and, in that same transaction,
cancels every open order and pauses every running bot. So each order either committed before
the stop (and is cancelled by it) or sees the flag and is refused: once the stop has
answered, no order is placed anywhere. Live orders already on an exchange are cancelled
there right after the commit (`app.engine.live_broker.cancel_on_exchanges`). The Redis
notice sent after commit only lets workers notice sooner; nothing depends on it.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.engine.broker import cancel_open_orders
from app.engine.live_broker import cancel_on_exchanges, live_open_orders
from app.observability.metrics import EMERGENCY_STOP
from app.services.alerts import raise_alert
from app.services.audit import record_audit
from app.services.engine_hooks import SAFETY_REPORTS
from app.store.after_commit import on_commit
from app.store.base import utcnow
from app.store.db import session_scope
from app.store.emergency_flag import emergency_stop_active
from app.store.models import Bot, SystemState
from app.store.models.ledger import Balance, Position
from app.store.redis import get_redis, redis_key

log = logging.getLogger("tradewind.emergency")

PAUSE_REASON = "emergency_stop"
NOTICE_CHANNEL = "emergency"


def _lock_state(session: Session) -> SystemState:
    """Row 1 of system_state, locked for this transaction against every order transaction."""
    if session.get_bind().dialect.name == "postgresql":
        state = session.scalar(
            select(SystemState)
            .where(SystemState.id == 1)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    else:
        # SQLite: a write first takes the database write lock, which serialises us with
        # every order transaction (SQLite has one writer at a time).
        session.execute(update(SystemState).where(SystemState.id == 1).values(id=1))
        state = session.get(SystemState, 1, populate_existing=True)
    if state is None:  # the migration inserts it; a hand-made database may lack it
        state = SystemState(id=1, emergency_stop=False)
        session.add(state)
        session.flush()
    return state


def _lock_trading_rows(session: Session) -> None:
    """Postgres: take every bot row, then every book row, before the flag row - the order an
    order transaction takes them in (tick: bot -> balances/position -> flag FOR SHARE) - so
    the stop waits for ticks in flight instead of deadlocking with them."""
    if session.get_bind().dialect.name != "postgresql":
        return

    session.execute(select(Bot.id).order_by(Bot.id).with_for_update())
    session.execute(select(Position.bot_id).order_by(Position.bot_id).with_for_update())
    session.execute(
        select(Balance.bot_id).order_by(Balance.bot_id, Balance.asset).with_for_update()
    )


def state_view(state: SystemState) -> dict[str, Any]:
    return {
        "active": bool(state.emergency_stop),
        "reason": state.reason,
        "changed_at": state.changed_at,
        "changed_by_user_id": state.changed_by_user_id,
    }


def emergency_status(session: Session) -> dict[str, Any]:
    state = session.get(SystemState, 1)
    if state is None:
        return {"active": False, "reason": None, "changed_at": None, "changed_by_user_id": None}
    return state_view(state)


def _cancel_all_open_orders(session: Session) -> int:
    """Cancel every open order row; orders that may be on an exchange (live bots) are also
    cancelled there once this transaction has committed (best effort: each failure is an
    incident and an alert - the rows are cancelled and no new order can be placed anyway)."""
    live = live_open_orders(session)
    cancelled = int(cancel_open_orders(session, bot_id=None, reason=PAUSE_REASON))
    if live:
        on_commit(session, lambda: _cancel_live(live), key="emergency_cancel_live")
    return cancelled


def _cancel_live(orders: list[dict[str, Any]]) -> None:
    done = cancel_on_exchanges(orders, SAFETY_REPORTS)
    log.critical("emergency stop: %d of %d live orders cancelled on their exchanges", done,
                 len(orders))  # fmt: skip


def _pause_bots(session: Session) -> list[tuple[int, int]]:
    """Pause every running bot, and hold every bot waiting out a protection cooldown, so
    nothing resumes by itself: after a stop a person reviews each bot."""
    running = session.execute(
        update(Bot)
        .where(Bot.status == "running")
        .values(status="paused", pause_reason=PAUSE_REASON, cooldown_until=None)
        .returning(Bot.id, Bot.user_id),
        execution_options={"synchronize_session": False},
    ).all()
    held = session.execute(
        update(Bot)
        .where(Bot.status == "paused", Bot.cooldown_until.is_not(None))
        .values(pause_reason=PAUSE_REASON, cooldown_until=None)
        .returning(Bot.id, Bot.user_id),
        execution_options={"synchronize_session": False},
    ).all()
    return [(row[0], row[1]) for row in [*running, *held]]


def _audit(
    session: Session, action: str, actor_user_id: int, details: dict[str, Any], ip: str | None
) -> None:
    record_audit(session, action, actor_user_id=actor_user_id, details=details, ip=ip)


def _announce(active: bool) -> None:
    """After commit: set the gauge and tell every worker (a hint; the database is the truth)."""
    EMERGENCY_STOP.set(1 if active else 0)

    client = get_redis()
    if client is None:
        return
    try:
        client.publish(redis_key(NOTICE_CHANNEL), json.dumps({"active": active}))
    except Exception as exc:  # Redis down: workers still see the flag in Postgres
        log.warning("emergency notice not published: %s", type(exc).__name__)


def emergency_stop(
    session: Session,
    *,
    actor_user_id: int,
    reason: str,
    ip: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Stop all trading in the caller's transaction; the stop holds once it commits.

    Stopping again while stopped keeps the first reason and time but still cancels and
    pauses whatever is left, so a repeated press is never weaker than the first.
    """
    now = now or utcnow()
    _lock_trading_rows(session)
    state = _lock_state(session)
    already = bool(state.emergency_stop)
    if not already:
        state.emergency_stop = True
        state.reason = reason
        state.changed_by_user_id = actor_user_id
        state.changed_at = now
        session.flush()
    cancelled = _cancel_all_open_orders(session)
    paused = _pause_bots(session)
    details = {
        "reason": reason,
        "already_active": already,
        "cancelled_orders": cancelled,
        "paused_bots": len(paused),
    }
    _audit(session, "emergency_stop", actor_user_id, details, ip)
    raise_alert(
        session,
        user_id=None,
        severity="critical",
        code="emergency_stop",
        message=f"emergency stop by user {actor_user_id}: {reason} "
        f"({cancelled} open orders cancelled, {len(paused)} bots paused)",
    )
    for owner in sorted({user_id for _bot_id, user_id in paused}):
        raise_alert(
            session,
            user_id=owner,
            severity="critical",
            code="emergency_stop",
            message="an administrator stopped all trading; your bots are paused for review",
        )
    log.critical(
        "EMERGENCY STOP by user %s: %s (cancelled %d orders, paused %d bots)",
        actor_user_id,
        reason,
        cancelled,
        len(paused),
    )
    on_commit(session, lambda: _announce(True))
    return {**state_view(state), "cancelled_orders": cancelled, "paused_bots": len(paused)}


def emergency_resume(
    session: Session,
    *,
    actor_user_id: int,
    note: str | None = None,
    ip: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Clear the flag. Bots stay paused: a person resumes each after review."""
    now = now or utcnow()
    state = _lock_state(session)
    was_active = bool(state.emergency_stop)
    state.emergency_stop = False
    state.reason = note
    state.changed_by_user_id = actor_user_id
    state.changed_at = now
    session.flush()
    _audit(
        session,
        "emergency_resume",
        actor_user_id,
        {"note": note, "was_active": was_active},
        ip,
    )
    raise_alert(
        session,
        user_id=None,
        severity="warning",
        code="emergency_resume",
        message=f"emergency stop cleared by user {actor_user_id}; bots stay paused for review",
    )
    log.critical("EMERGENCY RESUME by user %s (was active: %s)", actor_user_id, was_active)
    on_commit(session, lambda: _announce(False))
    return {**state_view(state), "was_active": was_active}


def refresh_stop_gauge() -> None:
    """Set the `tradewind_emergency_stop` gauge from the database flag (the source of
    truth), for a metrics scrape; never raises."""
    try:
        with session_scope() as session:
            active = emergency_stop_active(session)
        EMERGENCY_STOP.set(1 if active else 0)
    except Exception as exc:  # a scrape must still answer while the database is down
        log.warning("emergency-stop gauge not refreshed: %s", type(exc).__name__)
