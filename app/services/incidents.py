"""Incidents: what self-healing (and the safety services) found wrong and what they did about
it, kept as rows so an operator can read the history at `GET /api/admin/incidents`."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.observability.metrics import INCIDENTS
from app.store.base import utcnow
from app.store.models.safety import Incident

log = logging.getLogger("tradewind.incidents")


def _count(kind: str) -> None:
    INCIDENTS.labels(kind=kind).inc()


def incident_exists(session: Session, kind: str, *, job_id: int) -> bool:
    """Whether this job already has an incident of this kind (ever)."""
    stmt = select(Incident.id).where(Incident.kind == kind, Incident.job_id == job_id).limit(1)
    return session.scalar(stmt) is not None


def record_incident(
    session: Session,
    kind: str,
    message: str,
    *,
    bot_id: int | None = None,
    job_id: int | None = None,
    details: dict[str, Any] | None = None,
    dedupe_seconds: float | None = None,
    now: datetime | None = None,
) -> Incident | None:
    """Record one finding. With `dedupe_seconds`, the same kind for the same bot/job within
    that window is not recorded again (returns None): a row that stays broken is reported
    once per window, not on every scan."""
    now = now or utcnow()
    if dedupe_seconds:
        since = now - timedelta(seconds=dedupe_seconds)
        seen = session.scalar(
            select(Incident.id)
            .where(
                Incident.kind == kind,
                Incident.bot_id.is_(None) if bot_id is None else Incident.bot_id == bot_id,
                Incident.job_id.is_(None) if job_id is None else Incident.job_id == job_id,
                Incident.created_at >= since,
            )
            .limit(1)
        )
        if seen is not None:
            return None
    incident = Incident(
        kind=kind,
        message=message,
        bot_id=bot_id,
        job_id=job_id,
        details=details or {},
        created_at=now,
    )
    session.add(incident)
    session.flush()
    _count(kind)
    log.warning("incident %s bot=%s job=%s: %s", kind, bot_id, job_id, message)
    return incident


def list_incidents(
    session: Session,
    *,
    kind: str | None = None,
    bot_id: int | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[Incident]:
    """Newest first; page with `before_id`."""
    stmt = select(Incident)
    if kind is not None:
        stmt = stmt.where(Incident.kind == kind)
    if bot_id is not None:
        stmt = stmt.where(Incident.bot_id == bot_id)
    if before_id is not None:
        stmt = stmt.where(Incident.id < before_id)
    return list(session.scalars(stmt.order_by(Incident.id.desc()).limit(limit)))


def incident_view(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "kind": incident.kind,
        "message": incident.message,
        "bot_id": incident.bot_id,
        "job_id": incident.job_id,
        "details": incident.details,
        "created_at": incident.created_at,
    }
