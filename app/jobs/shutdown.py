"""Clean shutdown: hand back every lease this process holds so others resume at once."""

from __future__ import annotations

import logging
from typing import Any

from app.jobs.scheduler import worker_id
from app.store.claims import release_all
from app.store.db import session_scope
from app.store.models import Bot, Job

log = logging.getLogger("tradewind.shutdown")


def release_own_leases(models: tuple[Any, ...] = (Bot, Job)) -> int:
    """Hand back this process's leases on `models` (bots first: their ticks are due every
    candle; jobs once the scheduler has stopped running them)."""
    owner = worker_id()
    with session_scope() as session:
        released = sum(release_all(session, model, owner=owner) for model in models)
    if released:
        log.info("released %d leases held by %s", released, owner)
    return released


def release_bot_leases() -> int:
    return release_own_leases((Bot,))


def release_job_leases() -> int:
    return release_own_leases((Job,))
