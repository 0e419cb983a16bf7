"""Periodic clean-up: analysis results, bot tick records, realtime events and finished
notifications past their retention, expired token revocations, and the trial rows of
searches finished a day ago (their result keeps what a user reads).

Runs in every worker (every 600 s); deletes are idempotent, so overlapping runs only repeat
work that is already done. Deletion goes in bounded batches to keep transactions short.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.services.events import prune_events
from app.services.notifications import prune_notifications
from app.services.revocation import prune_expired_revocations
from app.store import search_trials
from app.store.base import utcnow
from app.store.db import session_scope
from app.store.models.analysis import AnalysisResult
from app.store.models.trading import BotTick
from config import get_settings

log = logging.getLogger("tradewind.jobs.cleanup")

BATCH = 5000
MAX_BATCHES = 20
SEARCH_TRIALS_KEPT = timedelta(days=1)


def delete_batch_before(session: Session, column: Any, cutoff: datetime) -> int:
    """Delete up to one batch of the rows of `column`'s table whose `column` < cutoff."""
    table = column.class_
    ids = select(table.id).where(column < cutoff).limit(BATCH)
    result = session.execute(
        delete(table).where(table.id.in_(ids.scalar_subquery())),
        execution_options={"synchronize_session": False},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _delete_all_before(column: Any, cutoff: datetime) -> int:
    removed = 0
    for _ in range(MAX_BATCHES):
        with session_scope() as session:
            n = delete_batch_before(session, column, cutoff)
        removed += n
        if n < BATCH:
            break
    return removed


def _prune_search_trials(finished_before: datetime) -> int:
    removed = 0
    for _ in range(MAX_BATCHES):
        with session_scope() as session:
            n = search_trials.prune_finished(session, finished_before=finished_before)
        removed += n
        if n == 0:
            break
    return removed


def run_once(now: datetime | None = None) -> dict[str, int]:
    settings = get_settings()
    now = now or utcnow()
    removed = {
        "analysis_results": _delete_all_before(
            AnalysisResult.created_at, now - timedelta(days=settings.analysis_retention_days)
        ),
        "bot_ticks": _delete_all_before(
            BotTick.planned_at, now - timedelta(days=settings.bot_tick_retention_days)
        ),
    }
    removed["events"] = prune_events(now)
    removed["notifications"] = prune_notifications(now)
    with session_scope() as session:
        removed["revocations"] = int(prune_expired_revocations(session, now) or 0)
    removed["search_trials"] = _prune_search_trials(now - SEARCH_TRIALS_KEPT)
    if any(removed.values()):
        log.info("clean-up removed %s", removed)
    return removed


def run() -> None:
    """Scheduler entry point; never raises."""
    try:
        run_once()
    except Exception:
        log.exception("clean-up failed")
