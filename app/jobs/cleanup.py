"""Periodic clean-up: analysis results past their retention, expired token revocations.

Runs in every worker (every 600 s); deletes are idempotent, so overlapping runs only repeat
work that is already done. Deletion goes in bounded batches to keep transactions short.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.store.base import utcnow
from app.store.db import session_scope
from app.store.models.analysis import AnalysisResult

log = logging.getLogger("tradewind.jobs.cleanup")

BATCH = 5000
MAX_BATCHES = 20


def delete_old_results(session: Session, now: datetime, retention_days: float) -> int:
    """Delete up to one batch of analysis results created before now - retention."""
    cutoff = now - timedelta(days=retention_days)
    ids = select(AnalysisResult.id).where(AnalysisResult.created_at < cutoff).limit(BATCH)
    result = session.execute(
        delete(AnalysisResult).where(AnalysisResult.id.in_(ids.scalar_subquery())),
        execution_options={"synchronize_session": False},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def prune_revocations(session: Session, now: datetime) -> int:
    """Expired revoked-token rows, when the accounts feature provides the pruning."""
    try:
        from app.auth.revocation import prune_expired_revocations  # type: ignore[attr-defined]
    except ImportError:
        return 0
    return int(prune_expired_revocations(session, now) or 0)


def run_once(now: datetime | None = None) -> dict[str, int]:
    from config import get_settings

    now = now or utcnow()
    retention = get_settings().analysis_retention_days
    removed = 0
    for _ in range(MAX_BATCHES):
        with session_scope() as session:
            n = delete_old_results(session, now, retention)
        removed += n
        if n < BATCH:
            break
    with session_scope() as session:
        revocations = prune_revocations(session, now)
    if removed or revocations:
        log.info("clean-up removed %d analysis results, %d revocations", removed, revocations)
    return {"analysis_results": removed, "revocations": revocations}


def run() -> None:
    """Scheduler entry point; never raises."""
    try:
        run_once()
    except Exception:
        log.exception("clean-up failed")
