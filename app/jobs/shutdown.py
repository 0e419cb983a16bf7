"""Clean shutdown: hand back every lease this process holds so others resume at once."""

from __future__ import annotations

import logging

from app.jobs.scheduler import worker_id
from app.store.claims import release_all
from app.store.db import session_scope
from app.store.models import Bot, Job

log = logging.getLogger("tradewind.shutdown")


def release_own_leases() -> int:
    owner = worker_id()
    with session_scope() as session:
        released = release_all(session, Bot, owner=owner) + release_all(session, Job, owner=owner)
    if released:
        log.info("released %d leases held by %s", released, owner)
    return released
