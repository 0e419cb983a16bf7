"""Alerts: notices a person should see. A user sees their own; admins also see system alerts
(`user_id` NULL). Raising one never fails the caller's unit of work for want of Redis."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.services.events import record_event
from app.store.base import utcnow
from app.store.models import User
from app.store.models.safety import Alert

log = logging.getLogger("tradewind.alerts")

SEVERITIES = ("info", "warning", "critical")
_LOG_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}


def raise_alert(
    session: Session,
    *,
    user_id: int | None,
    severity: str,
    code: str,
    message: str,
    bot_id: int | None = None,
) -> Alert:
    """Record an alert (user_id None: a system alert for admins) and its event, in the
    session's transaction."""
    if severity not in SEVERITIES:
        raise ValueError(f"unknown alert severity {severity!r}")
    alert = Alert(
        user_id=user_id,
        bot_id=bot_id,
        severity=severity,
        code=code,
        message=message,
        created_at=utcnow(),
    )
    session.add(alert)
    session.flush()
    log.log(
        _LOG_LEVELS[severity],
        "alert %s (%s) user=%s bot=%s: %s",
        code,
        severity,
        user_id,
        bot_id,
        message,
    )
    data = alert_view(alert)
    record_event(session, user_id, "alert", data)
    return alert


def alert_view(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "user_id": alert.user_id,
        "bot_id": alert.bot_id,
        "severity": alert.severity,
        "code": alert.code,
        "message": alert.message,
        "created_at": alert.created_at,
        "acknowledged_at": alert.acknowledged_at,
        "system": alert.user_id is None,
    }


def _visible_to(user: User) -> Any:
    if user.role == "admin":
        return or_(Alert.user_id == user.id, Alert.user_id.is_(None))
    return Alert.user_id == user.id


def list_alerts(
    session: Session,
    user: User,
    *,
    unacknowledged: bool = False,
    before_id: int | None = None,
    limit: int = 50,
) -> list[Alert]:
    """Newest first; page with `before_id` (the smallest id of the previous page)."""
    stmt = select(Alert).where(_visible_to(user))
    if unacknowledged:
        stmt = stmt.where(Alert.acknowledged_at.is_(None))
    if before_id is not None:
        stmt = stmt.where(Alert.id < before_id)
    return list(session.scalars(stmt.order_by(Alert.id.desc()).limit(limit)))


def acknowledge_alert(
    session: Session, user: User, alert_id: int, *, now: datetime | None = None
) -> Alert:
    """Mark an alert seen; acknowledging twice keeps the first time. Others' alerts: 404."""
    alert = session.scalar(select(Alert).where(Alert.id == alert_id, _visible_to(user)))
    if alert is None:
        raise NotFound("alert not found")
    if alert.acknowledged_at is None:
        alert.acknowledged_at = now or utcnow()
        alert.acknowledged_by_user_id = user.id
        session.flush()
    return alert
