"""APScheduler inside a worker process: started after fork, never at import or in the master.

One `BackgroundScheduler` per process runs the periodic jobs it is given (the table of
`app.jobs.periodic`); a job never overlaps itself within a process (`skip_when_busy`) and
never raises out of the scheduler.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.observability.outages import Outage

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

    from config import Settings

log = logging.getLogger("tradewind.scheduler")


@dataclass(frozen=True)
class PeriodicJob:
    """One row of the periodic-job table (`app.jobs.periodic`)."""

    name: str
    run: Callable[[], object]
    seconds: float
    flag: str | None = None  # a boolean Settings field that must be true


_lock = threading.Lock()
_scheduler: BackgroundScheduler | None = None
_owner_id: str | None = None


def worker_id() -> str:
    """A name for this process that is unique across machines, used as the lease owner."""
    global _owner_id
    if _owner_id is None or not _owner_id.endswith(f":{os.getpid()}"):
        _owner_id = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}:{os.getpid()}"
    return _owner_id


def skip_when_busy(name: str, target: Callable[[], object]) -> Callable[[], None]:
    """A job run that returns at once, silently, while the previous run of the same job is
    still going (a tick dispatcher that waits for the next due bot runs about as long as
    its interval). APScheduler is given `max_instances=2` so that it never warns about an
    overlap that is expected; this lock keeps one run at a time. A failing job logs once
    per outage (`Outage`), with a count when it recovers."""
    busy = threading.Lock()
    outage = Outage(f"periodic job {name}")

    def run() -> None:
        if not busy.acquire(blocking=False):
            return
        try:
            target()
            outage.recovered()
        except Exception as exc:
            outage.failed(exc, "failed")
        finally:
            busy.release()

    return run


def _guarded(job: PeriodicJob) -> Callable[[], None]:
    return skip_when_busy(job.name, job.run)


def enabled_jobs(settings: Settings, jobs: Iterable[PeriodicJob]) -> list[PeriodicJob]:
    return [j for j in jobs if j.flag is None or getattr(settings, j.flag)]


def start_scheduler(settings: Settings, jobs: Iterable[PeriodicJob]) -> bool:
    """Start this process's scheduler with those of `jobs` whose flag is on; a second call is
    a no-op. True when it started."""
    global _scheduler
    from apscheduler.schedulers.background import BackgroundScheduler

    with _lock:
        if _scheduler is not None:
            return False
        scheduler = BackgroundScheduler(
            timezone="UTC",
            job_defaults={"coalesce": True, "max_instances": 2, "misfire_grace_time": 30},
        )
        enabled = enabled_jobs(settings, jobs)
        for job in enabled:
            scheduler.add_job(_guarded(job), "interval", seconds=job.seconds, id=job.name)
        scheduler.start()
        _scheduler = scheduler
        log.info(
            "scheduler started in pid %s with jobs %s",
            os.getpid(),
            [j.name for j in enabled],
        )
        return True


def stop_scheduler(wait: bool = True) -> None:
    """Stop the scheduler if it runs (waiting for running jobs); a second call is a no-op."""
    global _scheduler
    with _lock:
        scheduler, _scheduler = _scheduler, None
    if scheduler is None:
        return
    if scheduler.running:
        scheduler.shutdown(wait=wait)
    log.info("scheduler stopped in pid %s", os.getpid())


def scheduler_running() -> bool:
    return _scheduler is not None and _scheduler.running


def running_scheduler() -> BackgroundScheduler | None:
    """This process's running scheduler (for job groups added by the lifecycle), or None."""
    scheduler = _scheduler
    return scheduler if scheduler is not None and scheduler.running else None
