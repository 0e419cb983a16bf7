"""Submitting, reading and cancelling background jobs.

Submission is idempotent without a read-then-write race: the job is inserted with
`INSERT ... ON CONFLICT DO NOTHING`, and the two unique indexes decide which request wins:

* `(user_id, idempotency_key)`: the same key returns the job it created; the same key with a
  different kind or payload is a 409 (the key was reused for another request);
* `uq_jobs_active_payload` (partial, active jobs only): an identical job (same kind and
  payload) already queued or running for the user is returned instead of a duplicate.

A concurrent insert of the same row waits for the winner to commit and then finds its row
(Postgres), or is serialised by the database lock (SQLite), so N racing requests create one job.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound, ValidationFailed
from app.store import queue
from app.store.base import utcnow
from app.store.models import Job
from app.store.paging import fetch_page
from config import get_settings

MAX_IDEMPOTENCY_KEY_LENGTH = 200


@dataclass(frozen=True)
class Submission:
    job: Job
    created: bool  # False: an existing job was returned (same key, or identical active job)


def payload_hash(kind: str, payload: dict[str, Any]) -> str:
    canonical = json.dumps(
        {"kind": kind, "payload": payload}, sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_idempotency_key(key: str | None) -> str | None:
    if key is None:
        return None
    key = key.strip()
    if not key:
        return None
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise ValidationFailed(
            f"Idempotency-Key must be 1..{MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters",
            details=[{"loc": ["header", "Idempotency-Key"], "msg": "invalid key"}],
        )
    return key


def _insert(session: Session, row: dict[str, Any]) -> int | None:
    """Insert unless a unique index says the job exists; its id, or None on conflict."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(Job).values(**row).on_conflict_do_nothing().returning(Job.id)
    return session.execute(stmt).scalar_one_or_none()


def _by_key(session: Session, user_id: int | None, key: str) -> Job | None:
    return session.scalars(
        select(Job)
        .where(Job.user_id == user_id, Job.idempotency_key == key)
        .execution_options(populate_existing=True)
    ).first()


def _active_twin(session: Session, user_id: int | None, kind: str, digest: str) -> Job | None:
    return session.scalars(
        select(Job)
        .where(
            Job.user_id == user_id,
            Job.kind == kind,
            Job.payload_hash == digest,
            Job.state.in_(queue.ACTIVE),
        )
        .execution_options(populate_existing=True)
    ).first()


def submit(
    session: Session,
    user_id: int | None,
    kind: str,
    payload: dict[str, Any],
    idempotency_key: str | None = None,
    *,
    max_attempts: int | None = None,
) -> Submission:
    """Queue a job (or return the one this request already created); see the module doc."""
    key = check_idempotency_key(idempotency_key)
    digest = payload_hash(kind, payload)
    now = utcnow()
    row = {
        "user_id": user_id,
        "kind": kind,
        "state": queue.QUEUED,
        "payload": payload,
        "payload_hash": digest,
        "idempotency_key": key,
        "max_attempts": max_attempts or get_settings().job_max_attempts,
        "run_after": now,
        "created_at": now,
        "updated_at": now,
    }
    for _ in range(5):  # the conflicting job may finish between our two statements
        job_id = _insert(session, row)
        if job_id is not None:
            job = session.get(Job, job_id, populate_existing=True)
            assert job is not None
            return Submission(job, created=True)
        if key is not None:
            existing = _by_key(session, user_id, key)
            if existing is not None:
                if existing.payload_hash != digest:
                    raise Conflict(
                        "this Idempotency-Key was already used for a different request",
                        code="idempotency_key_reused",
                        details=[{"loc": ["header", "Idempotency-Key"], "msg": "key reused"}],
                    )
                return Submission(existing, created=False)
        twin = _active_twin(session, user_id, kind, digest)
        if twin is not None:
            return Submission(twin, created=False)
    raise Conflict("the job could not be queued (conflicting submissions); retry")


def submit_job(
    session: Session,
    user_id: int | None,
    kind: str,
    payload: dict[str, Any],
    idempotency_key: str | None = None,
) -> Job:
    """Contract for other features: queue a job of `kind`; idempotent as described above."""
    return submit(session, user_id, kind, payload, idempotency_key).job


def get_job(session: Session, user_id: int, job_id: int) -> Job:
    """The user's job; another user's job is 404, like a missing one."""
    job = session.get(Job, job_id, populate_existing=True)
    if job is None or job.user_id != user_id:
        raise NotFound("job not found")
    return job


def list_jobs(
    session: Session,
    user_id: int,
    *,
    state: str | None = None,
    kind: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Job], int]:
    """The user's jobs, newest first, and the total matching count."""
    where = [Job.user_id == user_id]
    if state:
        where.append(Job.state == state)
    if kind:
        where.append(Job.kind == kind)
    order = [Job.created_at.desc(), Job.id.desc()]
    return fetch_page(session, Job, where, order, limit=limit, offset=offset)


def cancel_job(session: Session, user_id: int, job_id: int) -> tuple[Job, str]:
    """Cancel the user's job: at once when queued, between two units of work when running.

    Returns the job as it is now and what happened ("cancelled" or "cancel_requested"); a
    job that already finished is a 409.
    """
    get_job(session, user_id, job_id)
    outcome = queue.request_cancel(session, job_id, now=utcnow())
    job = get_job(session, user_id, job_id)
    if outcome.action == "none":
        raise Conflict(
            f"job {job_id} already finished ({outcome.state}); nothing to cancel",
            code="job_finished",
        )
    return job, outcome.action
