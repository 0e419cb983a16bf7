"""Accounts tables: refresh-token families, revoked access tokens, encrypted exchange
credentials and the audit trail.

Refresh tokens are rows so that rotation can be checked (a used token presented again means
it was stolen: its whole family is revoked). Access tokens are only rows once revoked, and
only until they would have expired anyway (`prune_expired_revocations`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from app.store.base import Base, JSONType, TimestampMixin, UTCDateTime, utcnow


class RefreshToken(Base):
    """One issued refresh token. A login starts a family; every refresh marks the presented
    token used and issues the next one in the same family."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (
        Index("ix_refresh_tokens_family_id", "family_id", "revoked_at"),
        Index("ix_refresh_tokens_user_id", "user_id"),
        Index("ix_refresh_tokens_expires_at", "expires_at"),
    )

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    replaced_by: Mapped[str | None] = mapped_column(String(64))


class RevokedToken(Base):
    """A revoked access token (logout), kept until the token would have expired."""

    __tablename__ = "revoked_tokens"
    __table_args__ = (Index("ix_revoked_tokens_expires_at", "expires_at"),)

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(32))
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ExchangeCredential(TimestampMixin, Base):
    """A user's exchange API credentials: one Fernet token holds key, secret, passphrase and
    uid; only the last four characters of the key are kept in clear, to tell keys apart."""

    __tablename__ = "exchange_credentials"
    __table_args__ = (UniqueConstraint("user_id", "label"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    exchange: Mapped[str] = mapped_column(String(50))
    label: Mapped[str] = mapped_column(String(100))
    key_hint: Mapped[str] = mapped_column(String(8))
    ciphertext: Mapped[str] = mapped_column(Text)


class AuditLog(Base):
    """Who did what to whom, when and from where. Never holds a secret."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_created_at", "created_at"),
        Index("ix_audit_log_action", "action", "created_at"),
        Index("ix_audit_log_actor_user_id", "actor_user_id", "created_at"),
        Index("ix_audit_log_target_user_id", "target_user_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, server_default=func.now()
    )
    action: Mapped[str] = mapped_column(String(64))
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    target_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    ip: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
