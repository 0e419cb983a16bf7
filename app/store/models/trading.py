"""Trading tables: the record of every bot tick.

`bot_ticks` is what proves exactly-once scheduling: one row per (bot, planned tick), and the
unique constraint on that pair is the last line of defence should two workers ever race to
the same tick. `skipped` counts the planned ticks a late tick jumped over (a bot that fell
more than one interval behind resumes at the latest due boundary instead of replaying old
candles), so every planned boundary is accounted for by exactly one row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.store.base import Base, JSONType, UTCDateTime


class BotTick(Base):
    """One executed tick of one bot: when it was planned, who ran it, what came of it."""

    __tablename__ = "bot_ticks"
    __table_args__ = (UniqueConstraint("bot_id", "planned_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    bot_id: Mapped[int] = mapped_column(ForeignKey("bots.id", ondelete="CASCADE"))
    planned_at: Mapped[datetime] = mapped_column(UTCDateTime())
    worker: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # ok | no_data | paused | error
    outcome: Mapped[str] = mapped_column(String(16))
    skipped: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    candle_ts: Mapped[int | None] = mapped_column(BigInteger)
    signal: Mapped[int | None] = mapped_column(SmallInteger)
    action: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
