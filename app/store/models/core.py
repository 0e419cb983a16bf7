"""The tables every feature touches: users, bots and the system-wide state row.

Feature-specific tables live in their own modules beside this one; all are imported by
`app.store.models` so that Alembic and the tests see one complete metadata.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.store.base import Base, JSONType, TimestampMixin, UTCDateTime


class User(TimestampMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="user", server_default="user")
    is_disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    base_currency: Mapped[str] = mapped_column(String(10), default="USD", server_default="USD")


class Bot(TimestampMixin, Base):
    """A user's bot. Scheduling columns (`next_tick_at`, `lease_*`) drive exactly-once ticks."""

    __tablename__ = "bots"
    __table_args__ = (
        Index("ix_bots_due", "status", "next_tick_at"),
        Index("ix_bots_user_id", "user_id"),
        Index("ix_bots_next_tick_at", "next_tick_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    exchange: Mapped[str] = mapped_column(String(50), default="replay")
    symbol: Mapped[str] = mapped_column(String(40))
    timeframe: Mapped[str] = mapped_column(String(8))
    strategy: Mapped[str] = mapped_column(String(50))
    strategy_params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    sizing: Mapped[dict[str, Any]] = mapped_column(default=dict)
    protections: Mapped[dict[str, Any]] = mapped_column(default=dict)
    capital: Mapped[Decimal]
    maker_fee: Mapped[Decimal] = mapped_column(default=Decimal("0.001"))
    taker_fee: Mapped[Decimal] = mapped_column(default=Decimal("0.001"))
    slippage_bps: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    mode: Mapped[str] = mapped_column(String(8), default="paper", server_default="paper")
    status: Mapped[str] = mapped_column(String(16), default="created", server_default="created")
    pause_reason: Mapped[str | None] = mapped_column(String(200))
    next_tick_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_tick_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error_streak: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    paper_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cooldown_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # open time (epoch ms) of the newest closed candle a tick acted on: one decision per candle
    last_candle_ts: Mapped[int | None] = mapped_column(BigInteger)
    # set by POST /api/bots/{id}/exit; the next tick sells the position, even when not running
    exit_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # a user's strategy document (and the version the bot runs); None: `strategy` is a template
    strategy_document_id: Mapped[int | None] = mapped_column(
        ForeignKey("strategy_documents.id", ondelete="SET NULL")
    )
    strategy_version: Mapped[int | None] = mapped_column(Integer)


class SystemState(Base):
    """One row (id = 1): the emergency-stop flag that every order transaction re-checks."""

    __tablename__ = "system_state"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    emergency_stop: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    reason: Mapped[str | None] = mapped_column(Text)
    changed_by_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Job(TimestampMixin, Base):
    """A background job (analysis, backtest). State moves only forward, by conditional update:
    queued -> running -> succeeded | failed | cancelled (see `app.store.queue`)."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key"),
        Index("ix_jobs_claim", "state", "run_after"),
        Index("ix_jobs_user_id", "user_id", "created_at"),
        # At most one identical active job per user: concurrent duplicates collide here.
        Index(
            "uq_jobs_active_payload",
            "user_id",
            "kind",
            "payload_hash",
            unique=True,
            postgresql_where=text("state IN ('queued', 'running')"),
            sqlite_where=text("state IN ('queued', 'running')"),
        ),
        CheckConstraint(
            "state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name="state"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="queued", server_default="queued")
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    payload_hash: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    error: Mapped[str | None] = mapped_column(Text)
    progress: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    max_attempts: Mapped[int] = mapped_column(Integer, default=3, server_default="3")
    run_after: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_requested: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
