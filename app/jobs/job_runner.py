"""Runs queued background jobs (analysis, backtests): one bounded batch per scheduler call.

Each call first requeues jobs whose worker stopped heartbeating (`requeue_stale_jobs`), then
claims due queued jobs one at a time (exactly once across workers) and runs each:

* a heartbeat thread renews the lease and saves progress every JOB_HEARTBEAT_SECONDS, and
  notices a cancel request or a lost job;
* the handler runs in this thread; `TransientJobError` (or a lost database connection) sends
  the job back to the queue with exponential backoff until `max_attempts` is used up, any
  other exception fails it, `JobCancelled` ends it cancelled;
* the result rows (the handler's `store`) and the final state are written in ONE transaction,
  fenced on this worker's lease and attempt: a worker whose job was requeued and taken over
  writes nothing, so a result is stored once however the job was retried.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError

from app.errors import AppError
from app.jobs.handlers import get_handler, registered_kinds
from app.jobs.scheduler import worker_id
from app.jobs.self_healing import report_stale_jobs
from app.observability.logging import log_context
from app.services.events import publish_event
from app.store import queue
from app.store.base import utcnow
from app.store.db import session_scope
from app.store.job_contract import JobCancelled, JobInfo, Registration, TransientJobError
from app.store.models import Job
from config import get_settings

log = logging.getLogger("tradewind.jobs.runner")

MAX_JOBS_PER_RUN = 5
MAX_BACKOFF_SECONDS = 300.0


@dataclass(frozen=True)
class RunnerConfig:
    lease_seconds: float
    heartbeat_seconds: float
    stale_seconds: float
    backoff_seconds: float

    @classmethod
    def from_settings(cls) -> RunnerConfig:
        settings = get_settings()
        return cls(
            lease_seconds=settings.job_lease_seconds,
            heartbeat_seconds=settings.job_heartbeat_seconds,
            stale_seconds=settings.job_stale_seconds,
            backoff_seconds=settings.job_retry_backoff_seconds,
        )


def backoff_delay(attempt: int, base: float) -> float:
    """Seconds before retry number `attempt`: base, 2*base, 4*base ... capped."""
    return float(min(MAX_BACKOFF_SECONDS, base * 2 ** max(0, attempt - 1)))


@dataclass
class RunningJob:
    """The `JobContext` a handler gets while this worker runs its job."""

    job: JobInfo
    fence: queue.Fence
    config: RunnerConfig
    _progress: float = 0.0
    _saved_progress: float = -1.0
    _lost: bool = False
    _cancel: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def job_id(self) -> int:
        return self.job.id

    @property
    def user_id(self) -> int | None:
        return self.job.user_id

    @property
    def payload(self) -> dict[str, Any]:
        return self.job.payload

    @property
    def owner(self) -> str:
        return self.fence.owner

    @property
    def lost(self) -> bool:
        return self._lost

    def report_progress(self, fraction: float) -> None:
        self._progress = max(0.0, min(1.0, float(fraction)))

    def heartbeat(self) -> None:
        with self._lock:  # the background thread and the handler may both call it
            progress = self._progress
            with session_scope() as session:
                pulse = queue.heartbeat(
                    session,
                    self.job.id,
                    self.fence,
                    now=utcnow(),
                    lease_seconds=self.config.lease_seconds,
                    progress=progress,
                )
        if not pulse.alive:
            self._lost = True
            return
        self._cancel = self._cancel or pulse.cancel_requested
        if progress != self._saved_progress:
            self._saved_progress = progress
            _publish_progress(self.job, progress)

    def cancelled(self) -> bool:
        if self._lost or self._cancel:
            return True
        with session_scope() as session:
            stop = queue.cancel_requested(session, self.job.id, self.fence)
        self._cancel = stop
        return stop

    def raise_if_cancelled(self) -> None:
        if self.cancelled():
            raise JobCancelled()


def _publish_progress(job: JobInfo, progress: float, state: str = queue.RUNNING) -> None:
    publish_event(
        job.user_id,
        "job_progress",
        {"job_id": job.id, "kind": job.kind, "state": state, "progress": round(progress, 4)},
    )


class _Heartbeat:
    """A daemon thread beating for one job until stopped."""

    def __init__(self, ctx: RunningJob) -> None:
        self._ctx = ctx
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"job-heartbeat-{ctx.job.id}", daemon=True
        )

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self._ctx.config.heartbeat_seconds):
            try:
                self._ctx.heartbeat()
            except Exception:  # a missed beat is not fatal; staleness decides
                log.warning("heartbeat of job %s failed", self._ctx.job.id, exc_info=True)
            if self._ctx.lost:
                return


@dataclass(frozen=True)
class Outcome:
    state: str  # succeeded | failed | cancelled | retry
    result: dict[str, Any] | None = None
    error: str | None = None


def _call_handler(registration: Registration, ctx: RunningJob) -> Outcome:
    try:
        return Outcome(queue.SUCCEEDED, result=registration.fn(ctx))
    except JobCancelled:
        return Outcome(queue.CANCELLED)
    except TransientJobError as exc:
        return Outcome("retry", error=str(exc) or type(exc).__name__)
    except (OperationalError, DBAPIError) as exc:
        if isinstance(exc, IntegrityError | DataError):
            log.exception("job %s failed", ctx.job.id)
            return Outcome(queue.FAILED, error="database integrity error")
        log.warning("job %s lost the database: %s", ctx.job.id, type(exc).__name__)
        return Outcome("retry", error="database unavailable")
    except AppError as exc:
        return Outcome(queue.FAILED, error=f"{exc.code}: {exc.message}")
    except Exception as exc:
        log.exception("job %s failed", ctx.job.id)
        return Outcome(queue.FAILED, error=f"unexpected error ({type(exc).__name__})")


class _LostJob(Exception):
    """The final move found the job no longer ours: roll the result rows back."""


def _finish(registration: Registration, ctx: RunningJob, outcome: Outcome) -> str | None:
    """Write results and the final state in one transaction; the new state, or None if lost."""
    now = utcnow()
    job, fence = ctx.job, ctx.fence
    try:
        with session_scope() as session:
            if outcome.state == queue.SUCCEEDED:
                result = outcome.result or {}
                if registration.store is not None:
                    result = registration.store(session, job, result) or result
                if not queue.succeed(session, job.id, fence, now=now, result=result):
                    raise _LostJob()
                return queue.SUCCEEDED
            if outcome.state == queue.CANCELLED:
                moved = queue.cancelled_by_worker(session, job.id, fence, now=now)
                return queue.CANCELLED if moved else None
            if outcome.state == "retry":
                delay = backoff_delay(job.attempt, ctx.config.backoff_seconds)
                return queue.retry_or_fail(
                    session, job.id, fence, now=now, error=outcome.error or "", delay=delay
                )
            moved = queue.fail(session, job.id, fence, now=now, error=outcome.error or "")
            return queue.FAILED if moved else None
    except (_LostJob, IntegrityError):
        return None
    except DataError as exc:
        # the database refuses the result itself: retrying would refuse it again
        log.error("job %s: result refused by the database (%s)", job.id, type(exc.orig).__name__)
        with session_scope() as session:
            error = "the result could not be stored (a value the database refuses)"
            moved = queue.fail(session, job.id, fence, now=now, error=error)
        return queue.FAILED if moved else None


def execute_job(job_id: int, owner: str, config: RunnerConfig) -> str | None:
    """Run a job this worker has just claimed; returns its new state (None: no longer ours)."""
    with session_scope() as session:
        row = session.get(Job, job_id)
        if row is None:
            return None
        job = JobInfo(
            row.id, row.user_id, row.kind, dict(row.payload), row.attempts, row.max_attempts
        )
    ctx = RunningJob(job, queue.Fence(owner, job.attempt), config)
    with log_context(job_id=job.id, user_id=job.user_id):
        registration = get_handler(job.kind)
        if registration is None:  # claimed by kind, so only if a handler vanished
            outcome = Outcome(queue.FAILED, error=f"no handler for job kind {job.kind!r}")
            registration = Registration(job.kind, lambda _ctx: {})
        else:
            started = time.monotonic()
            with _Heartbeat(ctx):
                outcome = _call_handler(registration, ctx)
            log.info(
                "job %s (%s) attempt %s ran %.2fs: %s",
                job.id,
                job.kind,
                job.attempt,
                time.monotonic() - started,
                outcome.state,
            )
        state = _finish(registration, ctx, outcome)
        if state is None:
            log.warning("job %s was taken over or cancelled meanwhile; result dropped", job.id)
        else:
            _publish_progress(job, 1.0 if state == queue.SUCCEEDED else ctx._progress, state)
        return state


def _report_stale(session: Any, moved: list[queue.Moved], stale_seconds: float) -> None:
    """Incidents and alerts for what we requeued, as self-healing records them (if present);
    in a savepoint, so a failing report never blocks the requeue itself."""
    try:
        with session.begin_nested():
            report_stale_jobs(session, moved, stale_seconds)
    except Exception:
        log.exception("could not record incidents for stale jobs %s", [m.id for m in moved])


def requeue_stale(config: RunnerConfig) -> list[queue.Moved]:
    """The heartbeat rule, applied by every runner too (self-healing may be switched off)."""
    with session_scope() as session:
        moved = queue.requeue_stale_jobs(session, utcnow(), config.stale_seconds)
        if moved:
            _report_stale(session, moved, config.stale_seconds)
    return moved


def run_once(
    owner: str | None = None, config: RunnerConfig | None = None, max_jobs: int = MAX_JOBS_PER_RUN
) -> list[tuple[int, str | None]]:
    """One batch: requeue stale jobs, then claim and run up to `max_jobs` due jobs."""
    owner = owner or worker_id()
    config = config or RunnerConfig.from_settings()
    requeue_stale(config)
    kinds = registered_kinds()
    done: list[tuple[int, str | None]] = []
    for _ in range(max_jobs):
        with session_scope() as session:
            ids = queue.claim_jobs(
                session,
                owner=owner,
                now=utcnow(),
                lease_seconds=config.lease_seconds,
                limit=1,
                kinds=kinds,
            )
        if not ids:
            break
        done.append((ids[0], execute_job(ids[0], owner, config)))
    return done


def run() -> None:
    """Scheduler entry point (every second in every worker); never raises."""
    try:
        run_once()
    except Exception:
        log.exception("job runner batch failed")
