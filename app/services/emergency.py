"""The emergency stop: one switch that halts order placement everywhere, at once.

The flag lives in Postgres (`system_state` row 1), so it survives restarts and every worker
on every machine sees it. Every order transaction passes the trading gate (an advisory lock
held shared, `app.store.emergency_flag`) and reads the flag right before it records an
order, holding the gate until it ends. The stop first commits the flag in a transaction that
takes the gate exclusive and the flag row, nothing else: it waits for the order transactions
already past the gate, later ones queue behind it, and nothing it holds is wanted by a
transaction it waits for, so it cannot be a deadlock's victim; once it commits no order can
commit after it. Then, in a second
transaction, it cancels every open order and pauses every running bot. Both are retried on
transient database failures. Live orders already on an exchange are cancelled there right
after the second commit (`app.engine.live_broker.cancel_on_exchanges`). The Redis notice sent
after the flag commits only lets workers notice sooner; nothing depends on it.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from app.engine.broker import cancel_open_orders
from app.engine.live_broker import cancel_on_exchanges, live_open_orders
from app.errors import ServiceUnavailable
from app.observability.metrics import EMERGENCY_STOP
from app.services.alerts import raise_alert
from app.services.audit import record_audit
from app.services.engine_hooks import SAFETY_REPORTS
from app.store.after_commit import on_commit
from app.store.base import utcnow
from app.store.db import session_scope
from app.store.emergency_flag import emergency_stop_active, take_gate
from app.store.models import Bot, SystemState
from app.store.models.ledger import Order
from app.store.redis import get_redis, redis_key
from app.store.retry import run_transaction
from config import get_settings

log = logging.getLogger("tradewind.emergency")

PAUSE_REASON = "emergency_stop"
NOTICE_CHANNEL = "emergency"


def _lock_state(session: Session) -> SystemState:
    """Row 1 of system_state, locked for this transaction against every order transaction
    (the trading gate held exclusive, then the row)."""
    if session.get_bind().dialect.name == "postgresql":
        take_gate(session, exclusive=True)
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


def _lock_bots_to_stop(session: Session) -> None:
    """Postgres: lock, in id order, every bot the stop changes (running, or with open
    orders) before touching any order or book - the order in which a tick batch takes them
    (its bot rows by id, then each bot's books) - so the stop waits for batches in flight
    instead of deadlocking with them."""
    if session.get_bind().dialect.name != "postgresql":
        return
    with_orders = select(Order.bot_id).where(Order.state == "open")
    session.execute(
        select(Bot.id)
        .where(or_(Bot.status == "running", Bot.cooldown_until.is_not(None),
                   Bot.id.in_(with_orders)))
        .order_by(Bot.id)
        .with_for_update()
    )  # fmt: skip


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


class StopNotRecorded(ServiceUnavailable):
    code = "emergency_stop_not_recorded"


def emergency_stop(
    *,
    actor_user_id: int,
    reason: str,
    ip: str | None = None,
    now: datetime | None = None,
    budget_seconds: float | None = None,
) -> dict[str, Any]:
    """Stop all trading, in transactions of its own; the stop holds once the first commits.

    1. The flag: this transaction takes only the gate (exclusive) and the flag row, so it
       waits for every order transaction past the gate (each holds it until it ends) and
       can deadlock with nothing. Once it commits, every order transaction still to come
       sees the flag and is refused: no order can commit after it.
    2. Then every open order is cancelled and every running bot paused (bots locked in id
       order first, like a tick batch takes them).

    Each step is retried on a deadlock, a serialization failure or a lost connection for
    up to `budget_seconds` (EMERGENCY_STOP_RETRY_SECONDS). If the flag cannot be recorded
    in that time, `StopNotRecorded` (503) says so: trading may still go on. If only step 2
    fails, the stop holds and the answer says `complete: false`; pressing again finishes
    it. Stopping again while stopped keeps the first reason and time but still cancels and
    pauses whatever is left, so a repeated press is never weaker than the first.
    """
    now = now or utcnow()
    budget = budget_seconds if budget_seconds is not None else _retry_budget()
    started = time.monotonic()
    try:
        state, already = run_transaction(
            lambda s: _record_stop(s, actor_user_id, reason, ip, now),
            budget_seconds=budget,
            what="emergency stop (flag)",
        )
    except (DBAPIError, PoolTimeout) as exc:
        log.critical("EMERGENCY STOP NOT RECORDED (user %s: %s): %s; trading may continue",
                     actor_user_id, reason, type(exc).__name__)  # fmt: skip
        raise StopNotRecorded(
            "the emergency stop could not be recorded (database unavailable); trading may "
            "still be running: press again",
            headers={"Retry-After": "1"},
        ) from exc
    flag_seconds = time.monotonic() - started
    _announce(True)
    complete = True
    try:
        cancelled, paused = run_transaction(
            lambda s: _enforce_stop(s, actor_user_id, reason, already),
            budget_seconds=budget,
            what="emergency stop (cancel and pause)",
        )
    except (DBAPIError, PoolTimeout) as exc:
        complete, cancelled, paused = False, 0, 0
        log.critical("emergency stop recorded, but cancelling orders and pausing bots failed "
                     "(%s): no new order is placed; press again to finish",
                     type(exc).__name__)  # fmt: skip
    log.critical(
        "EMERGENCY STOP by user %s: %s (cancelled %d orders, paused %d bots%s; flag committed "
        "in %.2fs, all done in %.2fs)",
        actor_user_id,
        reason,
        cancelled,
        paused,
        "" if complete else "; incomplete",
        flag_seconds,
        time.monotonic() - started,
    )
    return {**state, "cancelled_orders": cancelled, "paused_bots": paused, "complete": complete}


def _retry_budget() -> float:
    return float(get_settings().emergency_stop_retry_seconds)


def _record_stop(
    session: Session, actor_user_id: int, reason: str, ip: str | None, now: datetime
) -> tuple[dict[str, Any], bool]:
    """Step 1: the flag (first press wins its reason and time) and the audit entry."""
    state = _lock_state(session)
    already = bool(state.emergency_stop)
    if not already:
        state.emergency_stop = True
        state.reason = reason
        state.changed_by_user_id = actor_user_id
        state.changed_at = now
        session.flush()
    _audit(session, "emergency_stop", actor_user_id,
           {"reason": reason, "already_active": already}, ip)  # fmt: skip
    return state_view(state), already


def _enforce_stop(
    session: Session, actor_user_id: int, reason: str, already: bool
) -> tuple[int, int]:
    """Step 2: cancel every open order, pause every running bot, alert admins and owners.
    It takes no gate: tick batches in flight see the committed flag and give way."""
    _lock_bots_to_stop(session)
    cancelled = _cancel_all_open_orders(session)
    paused = _pause_bots(session)
    raise_alert(
        session,
        user_id=None,
        severity="critical",
        code="emergency_stop",
        message=f"emergency stop by user {actor_user_id}: {reason} "
        f"({cancelled} open orders cancelled, {len(paused)} bots paused"
        f"{'; it was already active' if already else ''})",
    )
    for owner in sorted({user_id for _bot_id, user_id in paused}):
        raise_alert(
            session,
            user_id=owner,
            severity="critical",
            code="emergency_stop",
            message="an administrator stopped all trading; your bots are paused for review",
        )
    return cancelled, len(paused)


def emergency_resume(
    *,
    actor_user_id: int,
    note: str | None = None,
    ip: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Clear the flag (in a transaction of its own, retried like the stop). Bots stay
    paused: a person resumes each after review."""
    now = now or utcnow()
    result = run_transaction(
        lambda s: _record_resume(s, actor_user_id, note, ip, now),
        budget_seconds=_retry_budget(),
        what="emergency resume",
    )
    log.critical("EMERGENCY RESUME by user %s (was active: %s)", actor_user_id,
                 result["was_active"])  # fmt: skip
    _announce(False)
    return result


def _record_resume(
    session: Session, actor_user_id: int, note: str | None, ip: str | None, now: datetime
) -> dict[str, Any]:
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
