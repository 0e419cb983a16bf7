"""Safety tables: alerts (what a person should look at), incidents (what self-healing saw
and did) and protection trips. Alerts and incidents outlive the rows they mention."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.store.base import Base, JSONType, UTCDateTime, utcnow


class Alert(Base):
    """A notice for one user (`user_id`) or, with `user_id` NULL, for every admin."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_user_id", "user_id", "id"),
        Index("ix_alerts_bot_id", "bot_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    bot_id: Mapped[int | None] = mapped_column(ForeignKey("bots.id", ondelete="SET NULL"))
    severity: Mapped[str] = mapped_column(String(16))
    code: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_by_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )


class Incident(Base):
    """One finding of self-healing (or of the safety services): what was wrong, what was done."""

    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_kind", "kind", "id"),
        Index("ix_incidents_bot_id", "bot_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    bot_id: Mapped[int | None] = mapped_column(Integer)
    job_id: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ProtectionTrip(Base):
    """A protection that paused (or held back) a bot. The newest trip of a bot is where its
    protections start counting again, so a resumed bot does not trip on old history."""

    __tablename__ = "protection_trips"
    __table_args__ = (Index("ix_protection_trips_bot_id", "bot_id", "tripped_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bot_id: Mapped[int] = mapped_column(ForeignKey("bots.id", ondelete="CASCADE"))
    protection: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    tripped_at: Mapped[datetime] = mapped_column(UTCDateTime())
    resume_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
