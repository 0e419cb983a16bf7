"""Helps with the trials of searches another worker coordinates (Postgres only).

Every worker runs it every second; each call takes trials for a few seconds at most, so a
search spreads over every worker on every machine, and adding machines adds speed.
"""

from __future__ import annotations

import logging

from app.jobs.scheduler import worker_id
from app.services.search_workers import help_searches

log = logging.getLogger("tradewind.jobs.search_trials")


def run() -> None:
    """Scheduler entry point; never raises."""
    try:
        help_searches(worker_id())
    except Exception:
        log.exception("helping with search trials failed")
