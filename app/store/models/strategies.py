"""Users' strategy documents: one row per document, one immutable row per saved version.

A bot or a backtest names a (document, version) pair, so editing a document (which adds a
version) never changes what a running bot trades. Deleting a document hides it from its owner
(`deleted_at`); its versions stay for the bots and backtest results that ran them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.store.base import Base, TimestampMixin, UTCDateTime, utcnow


class StrategyDocument(TimestampMixin, Base):
    __tablename__ = "strategy_documents"
    __table_args__ = (Index("ix_strategy_documents_user_id", "user_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(80))
    latest_version: Mapped[int] = mapped_column(Integer, default=1)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class StrategyVersion(Base):
    __tablename__ = "strategy_versions"
    __table_args__ = (UniqueConstraint("document_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(
        ForeignKey("strategy_documents.id", ondelete="CASCADE")
    )
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
