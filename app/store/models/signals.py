"""Signal bots: each bot's secret token (its hash) and every signal it was sent.

`bot_signals` keeps what became of each signal (`queued` until the bot's next tick, then
`executed` or `refused` with the reason); `(bot_id, alert_id)` is unique, so one alert
delivered twice is one row and runs once.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.store.base import Base, Money, UTCDateTime, utcnow


class BotSignalToken(Base):
    __tablename__ = "bot_signal_tokens"

    bot_id: Mapped[int] = mapped_column(ForeignKey("bots.id", ondelete="CASCADE"), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class BotSignal(Base):
    __tablename__ = "bot_signals"
    __table_args__ = (
        UniqueConstraint("bot_id", "alert_id", name="uq_bot_signals_alert"),
        Index("ix_bot_signals_queue", "bot_id", "state", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    bot_id: Mapped[int] = mapped_column(ForeignKey("bots.id", ondelete="CASCADE"))
    alert_id: Mapped[str | None] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(8))
    symbol: Mapped[str] = mapped_column(String(40))
    amount: Mapped[Decimal | None] = mapped_column(Money())
    percentage: Mapped[Decimal | None] = mapped_column(Money())
    price: Mapped[Decimal | None] = mapped_column(Money())
    state: Mapped[str] = mapped_column(String(10), default="queued")
    outcome: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
