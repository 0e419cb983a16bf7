"""Realtime events and the open streams that read them.

`events` is the history every worker reads: a row is written in the transaction of what it
reports, and `seq` (the public event id) is assigned after commit, in commit order, by
whichever worker runs the sequencer first; so `seq` is gap-free and means the same event on
every worker. `event_streams` holds one row per open stream, so a per-user cap holds across
workers and machines; a row that is not refreshed expires (a worker that died).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.store.base import Base, JSONType, UTCDateTime, utcnow

BigId = BigInteger().with_variant(Integer, "sqlite")

# who sees an event besides its `user_id`: nobody else, every admin, or every non-admin user
AUDIENCES = ("user", "admins", "users")


class Event(Base):
    """One event; `seq` is NULL until the sequencer numbers it (just after its commit)."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_seq", "seq", unique=True),
        Index("ix_events_user_id", "user_id", "seq"),
        Index("ix_events_audience", "audience", "seq"),
        Index(
            "ix_events_unsequenced",
            "id",
            postgresql_where=text("seq IS NULL"),
            sqlite_where=text("seq IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    seq: Mapped[int | None] = mapped_column(BigInteger)
    user_id: Mapped[int | None] = mapped_column(Integer)
    audience: Mapped[str] = mapped_column(String(8), default="user")
    type: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class EventStream(Base):
    """An open event stream of `user_id`, served by `worker` until `expires_at`."""

    __tablename__ = "event_streams"
    __table_args__ = (Index("ix_event_streams_user_id", "user_id", "expires_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(100))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
