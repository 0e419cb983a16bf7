"""The event log and the stream slots: the persistence under `app.services.events`.

An event row is inserted in the transaction of what it reports, without a public id: ids
taken from a sequence at insert time become visible in commit order, not in id order, so a
reader polling `id > last` would skip a slow transaction's row for good. `sequence_pending`
numbers committed rows instead (`seq` = the highest `seq` + 1, ...) in one statement under a
lock, so `seq` is gap-free, grows in the order rows become visible, and means the same event
to every reader: a worker that has read up to `seq` N has seen every event up to N.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, text, update
from sqlalchemy.orm import Session

from app.store.base import utcnow
from app.store.models import User
from app.store.models.events import Event, EventStream

STREAM_END = "stream_end"  # a row that closes streams (logout, disable); never sent
SEQUENCE_BATCH = 1000
PRUNE_BATCH = 5000
# pg_try_advisory_xact_lock key of the sequencer ("tw-evseq")
SEQUENCER_LOCK = 0x74772D65767365
_NUMBER = text(
    """
    UPDATE events SET seq = numbered.base + numbered.rn
    FROM (
        SELECT id,
               ROW_NUMBER() OVER (ORDER BY id) AS rn,
               (SELECT COALESCE(MAX(seq), 0) FROM events) AS base
        FROM events WHERE seq IS NULL ORDER BY id LIMIT :batch
    ) AS numbered
    WHERE events.id = numbered.id
    """
)


def append(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert events (dicts of user_id, audience, type, data, created_at) unnumbered."""
    if rows:
        session.execute(insert(Event), rows)


def has_pending(session: Session) -> bool:
    return session.scalar(select(Event.id).where(Event.seq.is_(None)).limit(1)) is not None


def sequence_pending(session: Session) -> int:
    """Number committed unnumbered rows in id order; 0 when another worker holds the lock.
    On SQLite the statement's write lock serialises numbering with every other writer."""
    if session.get_bind().dialect.name == "postgresql":
        lock = text("SELECT pg_try_advisory_xact_lock(:key)")
        if not session.scalar(lock, {"key": SEQUENCER_LOCK}):
            return 0
    result = session.execute(_NUMBER, {"batch": SEQUENCE_BATCH})
    return int(result.rowcount)  # type: ignore[attr-defined]


def bounds(session: Session) -> tuple[int, int]:
    """(lowest, highest) numbered event still stored; (0, 0) when there is none."""
    low, high = session.execute(select(func.min(Event.seq), func.max(Event.seq))).one()
    return int(low or 0), int(high or 0)


def head(session: Session) -> int:
    return int(session.scalar(select(func.max(Event.seq))) or 0)


def read_after(session: Session, after: int, upto: int, limit: int) -> list[Event]:
    """Every numbered event in (after, upto], oldest first, at most `limit`."""
    stmt = (
        select(Event).where(Event.seq > after, Event.seq <= upto).order_by(Event.seq).limit(limit)
    )
    return list(session.scalars(stmt))


def visible_to(user_id: int, is_admin: bool) -> Any:
    """The events one user's streams carry: their own, and the admins' or the users' share."""
    shared = "admins" if is_admin else "users"
    return or_(and_(Event.audience == "user", Event.user_id == user_id), Event.audience == shared)


def read_for_user(
    session: Session, user_id: int, is_admin: bool, after: int, upto: int, limit: int
) -> list[Event]:
    """A user's events in (after, upto], oldest first, at most `limit`."""
    stmt = (
        select(Event)
        .where(visible_to(user_id, is_admin), Event.seq > after, Event.seq <= upto)
        .where(Event.type != STREAM_END)
        .order_by(Event.seq)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def prune_before(session: Session, cutoff: datetime) -> int:
    """Delete one batch of the oldest events, up to the newest one created before `cutoff`,
    always keeping the newest event: what is left is a contiguous range of `seq`, so the
    lowest stored `seq` tells a resume exactly whether it lost anything."""
    upto = session.scalar(select(func.max(Event.seq)).where(Event.created_at < cutoff))
    if upto is None:
        return 0
    low, high = bounds(session)
    upto = min(int(upto), high - 1, low + PRUNE_BATCH - 1)
    if upto < low:
        return 0
    result = session.execute(
        delete(Event).where(Event.seq <= upto), execution_options={"synchronize_session": False}
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def claim_stream_slot(
    session: Session, user_id: int, worker: str, cap: int, lease_seconds: float
) -> int | None:
    """Record an open stream of `user_id` unless they already hold `cap` live ones; the
    slot's id, or None at the cap. The user's row lock serialises two opens on Postgres."""
    now = utcnow()
    session.execute(select(User.id).where(User.id == user_id).with_for_update(key_share=True))
    session.execute(
        delete(EventStream).where(EventStream.user_id == user_id, EventStream.expires_at < now),
        execution_options={"synchronize_session": False},
    )
    live = session.scalar(
        select(func.count()).select_from(EventStream).where(EventStream.user_id == user_id)
    )
    if int(live or 0) >= cap:
        return None
    slot = EventStream(
        user_id=user_id,
        worker=worker[:100],
        opened_at=now,
        expires_at=now + timedelta(seconds=lease_seconds),
    )
    session.add(slot)
    session.flush()
    return int(slot.id)


def renew_stream_slots(session: Session, slot_ids: list[int], lease_seconds: float) -> None:
    if slot_ids:
        session.execute(
            update(EventStream)
            .where(EventStream.id.in_(slot_ids))
            .values(expires_at=utcnow() + timedelta(seconds=lease_seconds)),
            execution_options={"synchronize_session": False},
        )


def release_stream_slot(session: Session, slot_id: int) -> None:
    session.execute(
        delete(EventStream).where(EventStream.id == slot_id),
        execution_options={"synchronize_session": False},
    )
