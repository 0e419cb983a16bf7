"""Models for analysis results and the watchlist.

One `AnalysisResult` row per (job, ticker): the unique constraint is what makes "the result is
stored once" hold even when a job is retried or finished by another worker after a crash.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from app.store.base import Base, UTCDateTime, utcnow

TICKER_LENGTH = 40  # a market symbol like ETH/BTC, as results and watchlists store it


class AnalysisResult(Base):
    """The outcome of one ticker in one analysis job: a signal with its numbers, or an error."""

    __tablename__ = "analysis_results"
    __table_args__ = (
        UniqueConstraint("job_id", "ticker"),
        Index("ix_analysis_results_user_ticker", "user_id", "ticker", "created_at"),
        Index("ix_analysis_results_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    ticker: Mapped[str] = mapped_column(String(TICKER_LENGTH))
    timeframe: Mapped[str] = mapped_column(String(8))
    pattern: Mapped[str | None] = mapped_column(String(64))
    signal: Mapped[str | None] = mapped_column(String(8))
    score: Mapped[float | None] = mapped_column(Float)
    allocation: Mapped[Decimal | None]
    as_of: Mapped[datetime | None] = mapped_column(UTCDateTime())
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, server_default=func.now()
    )


class WatchlistItem(Base):
    """A ticker a user follows; `POST /api/watchlist/analyze` analyses all of them at once."""

    __tablename__ = "watchlist_items"
    __table_args__ = (UniqueConstraint("user_id", "ticker"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    ticker: Mapped[str] = mapped_column(String(TICKER_LENGTH))
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, server_default=func.now()
    )
