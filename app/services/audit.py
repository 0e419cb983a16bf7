"""The audit trail: who did what to whom, when, from where.

`record_audit` adds a row to the caller's transaction. A row that must survive a failed request
(a refused login, a detected token theft) is written in a unit of work of its own by the caller.
Detail values under secret-looking names are dropped, so a careless caller cannot store one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_
from sqlalchemy.orm import Session

from app.store.models.accounts import AuditLog
from app.store.paging import fetch_page

SECRET_MARKERS = ("password", "secret", "token", "api_key", "apikey", "passphrase", "ciphertext")
MAX_DETAIL_TEXT = 500


def _clean(details: dict[str, Any] | None) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in (details or {}).items():
        if any(marker in key.lower() for marker in SECRET_MARKERS):
            continue
        if isinstance(value, str) and len(value) > MAX_DETAIL_TEXT:
            value = value[:MAX_DETAIL_TEXT]
        clean[key] = value
    return clean


def record_audit(
    session: Session,
    action: str,
    *,
    actor_user_id: int | None = None,
    target_user_id: int | None = None,
    details: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditLog:
    """Add one audit row to the session's transaction (flushed, so it has an id)."""
    row = AuditLog(
        action=action,
        actor_user_id=actor_user_id,
        target_user_id=target_user_id,
        details=_clean(details),
        ip=ip[:64] if ip else None,
    )
    session.add(row)
    session.flush()
    return row


@dataclass(frozen=True)
class AuditFilter:
    user_id: int | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def list_audit(
    session: Session, where: AuditFilter, *, page: int, per_page: int
) -> tuple[list[AuditLog], int]:
    """Newest first. `user_id` matches the actor or the target; `until` is exclusive."""
    conditions = []
    if where.user_id is not None:
        conditions.append(
            or_(AuditLog.actor_user_id == where.user_id, AuditLog.target_user_id == where.user_id)
        )
    if where.action:
        conditions.append(AuditLog.action == where.action)
    if where.since is not None:
        conditions.append(AuditLog.created_at >= where.since)
    if where.until is not None:
        conditions.append(AuditLog.created_at < where.until)
    return fetch_page(
        session,
        AuditLog,
        conditions,
        [AuditLog.created_at.desc(), AuditLog.id.desc()],
        limit=per_page,
        offset=(page - 1) * per_page,
    )
