"""The job state machine: the ONLY code that changes `jobs.state`.

    queued -> running -> succeeded | failed | cancelled
    queued -> cancelled                  (cancelled before a worker took it)
    running -> queued                    (retry after a transient error, or a worker that
                                          stopped heartbeating; bounded by max_attempts)

Every move is one conditional UPDATE (`WHERE state = :expected`, plus the lease owner and the
attempt number for moves made by the worker that runs the job), so of two racing actors exactly
one wins and the other learns it from the row count; there is no read-then-write anywhere.
A move that is not in `TRANSITIONS` raises `IllegalTransition` before touching the database,
and the database itself refuses unknown state names (check constraint `ck_jobs_state`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from app.errors import Conflict
from app.observability.metrics import JOBS
from app.store.claims import claim
from app.store.models import Job

log = logging.getLogger("tradewind.jobs.states")

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"

STATES: tuple[str, ...] = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
ACTIVE: frozenset[str] = frozenset({QUEUED, RUNNING})
TERMINAL: frozenset[str] = frozenset({SUCCEEDED, FAILED, CANCELLED})
TRANSITIONS: frozenset[tuple[str, str]] = frozenset(
    {
        (QUEUED, RUNNING),
        (QUEUED, CANCELLED),
        (RUNNING, SUCCEEDED),
        (RUNNING, FAILED),
        (RUNNING, CANCELLED),
        (RUNNING, QUEUED),
    }
)
MAX_ERROR_LENGTH = 2000


class IllegalTransition(Conflict):
    code = "illegal_job_transition"


@dataclass(frozen=True)
class Moved:
    """A job that one bulk move changed, with what the caller needs to report it."""

    id: int
    user_id: int | None
    kind: str
    attempts: int
    state: str


@dataclass(frozen=True)
class Fence:
    """Who runs the job: moves by a worker only succeed while it still holds this attempt."""

    owner: str
    attempt: int

    def where(self) -> list[ColumnElement[bool]]:
        return [Job.lease_owner == self.owner, Job.attempts == self.attempt]


def check_transition(source: str, target: str) -> None:
    if (source, target) not in TRANSITIONS:
        raise IllegalTransition(
            f"a job cannot move from {source!r} to {target!r}",
            details=[{"loc": ["state"], "msg": f"allowed: {sorted(TRANSITIONS)}"}],
        )


def _count(target: str, n: int) -> None:
    if not n:
        return
    JOBS.labels(state=target).inc(n)


def transition(
    session: Session,
    source: str,
    target: str,
    *,
    where: Iterable[ColumnElement[bool]] = (),
    values: dict[str, Any] | None = None,
) -> list[Moved]:
    """Move every job matching `where` that is in `source` to `target`, in one statement.

    Returns the jobs that moved (possibly none: another actor got there first). Callers use the
    named operations below; this is the single place where the state column is written.
    """
    check_transition(source, target)
    stmt = (
        update(Job)
        .where(Job.state == source, *where)
        .values(state=target, **(values or {}))
        .returning(Job.id, Job.user_id, Job.kind, Job.attempts)
    )
    rows = session.execute(stmt, execution_options={"synchronize_session": False}).all()
    _count(target, len(rows))
    return [Moved(r.id, r.user_id, r.kind, r.attempts, target) for r in rows]


def _one(session: Session, job_id: int, source: str, target: str, **kw: Any) -> bool:
    where = [Job.id == job_id, *kw.pop("where", [])]
    return bool(transition(session, source, target, where=where, **kw))


def _error_text(error: str | None) -> str | None:
    return None if error is None else error[:MAX_ERROR_LENGTH]


# -- queued -> running ---------------------------------------------------------------------


def claim_jobs(
    session: Session,
    *,
    owner: str,
    now: datetime,
    lease_seconds: float,
    limit: int = 1,
    kinds: Iterable[str] | None = None,
) -> list[int]:
    """Lease up to `limit` due queued jobs to `owner` and move them to running (exactly once
    across workers: the shared claim of `app.store.claims`). The caller commits."""
    check_transition(QUEUED, RUNNING)
    conditions = [Job.state == QUEUED, or_(Job.run_after.is_(None), Job.run_after <= now)]
    if kinds is not None:
        kinds = list(kinds)
        if not kinds:
            return []
        conditions.append(Job.kind.in_(kinds))
    ids = claim(
        session,
        Job,
        owner=owner,
        now=now,
        lease_seconds=lease_seconds,
        limit=limit,
        where=and_(*conditions),
        order_by=Job.id,
        values={
            "state": RUNNING,
            "attempts": Job.attempts + 1,
            "started_at": now,
            "heartbeat_at": now,
            "progress": 0.0,
        },
    )
    _count(RUNNING, len(ids))
    return ids


# -- while running (no state change) -------------------------------------------------------


@dataclass(frozen=True)
class Pulse:
    alive: bool  # False: the job is no longer ours (requeued, cancelled, taken over)
    cancel_requested: bool


def heartbeat(
    session: Session,
    job_id: int,
    fence: Fence,
    *,
    now: datetime,
    lease_seconds: float,
    progress: float | None = None,
) -> Pulse:
    """Prove the worker is alive: extend the lease, stamp `heartbeat_at`, save progress."""
    values: dict[str, Any] = {
        "heartbeat_at": now,
        "lease_until": now + timedelta(seconds=lease_seconds),
    }
    if progress is not None:
        values["progress"] = max(0.0, min(1.0, float(progress)))
    row = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == RUNNING, *fence.where())
        .values(**values)
        .returning(Job.cancel_requested),
        execution_options={"synchronize_session": False},
    ).first()
    if row is None:
        return Pulse(alive=False, cancel_requested=False)
    return Pulse(alive=True, cancel_requested=bool(row[0]))


def cancel_requested(session: Session, job_id: int, fence: Fence) -> bool:
    """True when the job should stop: a user asked, or it is no longer ours to run."""
    row = session.execute(
        select(Job.cancel_requested, Job.state, Job.lease_owner, Job.attempts).where(
            Job.id == job_id
        )
    ).first()
    if row is None:
        return True
    return bool(row.cancel_requested) or (row.state, row.lease_owner, row.attempts) != (
        RUNNING,
        fence.owner,
        fence.attempt,
    )


# -- running -> final / back to queued -----------------------------------------------------


def _released(now: datetime) -> dict[str, Any]:
    return {"lease_owner": None, "lease_until": None, "finished_at": now}


def succeed(
    session: Session, job_id: int, fence: Fence, *, now: datetime, result: dict[str, Any]
) -> bool:
    return _one(
        session,
        job_id,
        RUNNING,
        SUCCEEDED,
        where=fence.where(),
        values={**_released(now), "result": result, "progress": 1.0, "error": None},
    )


def fail(session: Session, job_id: int, fence: Fence, *, now: datetime, error: str) -> bool:
    return _one(
        session,
        job_id,
        RUNNING,
        FAILED,
        where=fence.where(),
        values={**_released(now), "error": _error_text(error)},
    )


def cancelled_by_worker(session: Session, job_id: int, fence: Fence, *, now: datetime) -> bool:
    """The worker saw the cancel request between two units of work and stopped."""
    return _one(
        session,
        job_id,
        RUNNING,
        CANCELLED,
        where=fence.where(),
        values={**_released(now), "error": "cancelled by request"},
    )


def retry_or_fail(
    session: Session, job_id: int, fence: Fence, *, now: datetime, error: str, delay: float
) -> str | None:
    """After a transient error: back to queued (due after `delay`) while attempts remain,
    otherwise failed. Returns the new state, or None when the job was no longer ours."""
    if _one(
        session,
        job_id,
        RUNNING,
        QUEUED,
        where=[*fence.where(), Job.attempts < Job.max_attempts, Job.cancel_requested.is_(False)],
        values={
            "lease_owner": None,
            "lease_until": None,
            "run_after": now + timedelta(seconds=delay),
            "error": _error_text(error),
        },
    ):
        return QUEUED
    if fail(session, job_id, fence, now=now, error=error):
        return FAILED
    return None


# -- by the user ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CancelOutcome:
    action: str  # "cancelled" (was queued), "cancel_requested" (running), "none" (finished)
    state: str | None  # the job's state afterwards (None: no such job)


def request_cancel(session: Session, job_id: int, *, now: datetime) -> CancelOutcome:
    """Cancel a queued job at once, or ask a running one to stop between units of work; a
    finished job is left as it is."""
    state: str | None = None
    for _ in range(3):  # the job may move between two statements: look again
        if _one(
            session,
            job_id,
            QUEUED,
            CANCELLED,
            values={"finished_at": now, "error": "cancelled by request", "cancel_requested": True},
        ):
            return CancelOutcome("cancelled", CANCELLED)
        flagged = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == RUNNING)
            .values(cancel_requested=True)
            .returning(Job.id),
            execution_options={"synchronize_session": False},
        ).first()
        if flagged is not None:
            return CancelOutcome("cancel_requested", RUNNING)
        state = session.scalar(select(Job.state).where(Job.id == job_id))
        if state not in ACTIVE:
            break
    return CancelOutcome("none", state)


# -- self-healing --------------------------------------------------------------------------


def requeue_stale_jobs(session: Session, now: datetime, stale_after_seconds: float) -> list[Moved]:
    """Running jobs whose worker stopped heartbeating for `stale_after_seconds`: requeued while
    attempts remain, failed when they are used up, cancelled when a cancel was requested.

    Safe to call from any number of workers at once: each job moves at most once, and a job
    whose heartbeat lands in the meantime no longer matches the conditional update.
    """
    cutoff = now - timedelta(seconds=stale_after_seconds)
    stale = or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < cutoff)
    lost = f"worker lost: no heartbeat for {stale_after_seconds:g}s"
    moved = transition(
        session,
        RUNNING,
        CANCELLED,
        where=[stale, Job.cancel_requested.is_(True)],
        values={**_released(now), "error": f"cancelled by request ({lost})"},
    )
    moved += transition(
        session,
        RUNNING,
        QUEUED,
        where=[stale, Job.cancel_requested.is_(False), Job.attempts < Job.max_attempts],
        values={"lease_owner": None, "lease_until": None, "run_after": now, "error": lost},
    )
    moved += transition(
        session,
        RUNNING,
        FAILED,
        where=[stale, Job.cancel_requested.is_(False), Job.attempts >= Job.max_attempts],
        values={**_released(now), "error": f"{lost}; attempts exhausted"},
    )
    for job in moved:
        log.warning(
            "stale job %s (%s, attempt %s) -> %s", job.id, job.kind, job.attempts, job.state
        )
    return moved
