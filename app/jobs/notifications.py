"""Send due notifications from the outbox (every worker, every second; leases keep each
delivery with one worker at a time)."""

from __future__ import annotations

import logging

from app.jobs.scheduler import worker_id
from app.services.notifications import deliver_due

log = logging.getLogger("tradewind.jobs.notifications")


def run() -> None:
    """Scheduler entry point; never raises."""
    try:
        deliver_due(worker_id())
    except Exception:
        log.exception("notification delivery failed")
