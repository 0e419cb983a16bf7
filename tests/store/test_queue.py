"""The job state machine: every legal move works once, every illegal one is refused, and moves
made by a worker only succeed while it still holds the job (lease owner and attempt)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app.store import queue
from app.store.base import utcnow
from app.store.db import session_scope
from app.store.models import Job
from app.store.queue import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    STATES,
    SUCCEEDED,
    TRANSITIONS,
    Fence,
    IllegalTransition,
)

OWNER = "worker-a"
FENCE = Fence(OWNER, 1)


@pytest.fixture
def user(make_user: Callable[..., Any]) -> Any:
    return make_user()


@pytest.fixture
def make_job(user: Any) -> Callable[..., int]:
    """Insert a job directly in any state (test set-up, not a transition)."""
    counter = itertools.count()

    def make(state: str = QUEUED, **fields: Any) -> int:
        now = utcnow()
        defaults: dict[str, Any] = {
            "user_id": user.id,
            "kind": "analysis",
            "state": state,
            "payload": {"n": next(counter)},
            "payload_hash": f"hash-{next(counter)}",
            "run_after": now - timedelta(seconds=1),
        }
        if state == RUNNING:
            defaults.update(
                lease_owner=OWNER,
                lease_until=now + timedelta(seconds=60),
                attempts=1,
                heartbeat_at=now,
                started_at=now,
            )
        defaults.update(fields)
        with session_scope() as s:
            job = Job(**defaults)
            s.add(job)
            s.flush()
            return job.id

    return make


def _state(job_id: int) -> str:
    with session_scope() as s:
        return s.scalar(select(Job.state).where(Job.id == job_id))  # type: ignore[return-value]


def _job(job_id: int) -> Job:
    with session_scope() as s:
        job = s.get(Job, job_id)
        assert job is not None
        s.expunge(job)
        return job


ILLEGAL = [(a, b) for a in STATES for b in (*STATES, "paused") if (a, b) not in TRANSITIONS]


def test_the_machine_is_the_documented_one() -> None:
    assert {
        (QUEUED, RUNNING),
        (QUEUED, CANCELLED),
        (RUNNING, SUCCEEDED),
        (RUNNING, FAILED),
        (RUNNING, CANCELLED),
        (RUNNING, QUEUED),
    } == TRANSITIONS
    # nothing leaves a final state
    assert not [t for t in TRANSITIONS if t[0] in queue.TERMINAL]


@pytest.mark.parametrize(("source", "target"), ILLEGAL)
def test_every_illegal_transition_is_refused(
    make_job: Callable[..., int], source: str, target: str
) -> None:
    job_id = make_job(source)
    with session_scope() as s, pytest.raises(IllegalTransition):
        queue.transition(s, source, target, where=[Job.id == job_id])
    assert _state(job_id) == source


def test_the_database_refuses_an_unknown_state(make_job: Callable[..., int]) -> None:
    job_id = make_job(QUEUED)
    with pytest.raises(IntegrityError), session_scope() as s:
        s.execute(update(Job).where(Job.id == job_id).values(state="paused"))
    assert _state(job_id) == QUEUED


@pytest.mark.parametrize(("source", "target"), sorted(TRANSITIONS))
def test_a_legal_transition_only_applies_from_its_source(
    make_job: Callable[..., int], source: str, target: str
) -> None:
    others = {s: make_job(s) for s in STATES if s != source}
    job_id = make_job(source)
    with session_scope() as s:
        moved = queue.transition(s, source, target, where=[Job.id.in_([*others.values(), job_id])])
    assert [m.id for m in moved] == [job_id]
    assert _state(job_id) == target
    for state, other in others.items():
        assert _state(other) == state
    with session_scope() as s:  # a second identical move finds nothing to move
        assert queue.transition(s, source, target, where=[Job.id == job_id]) == []


WORKER_MOVES: dict[str, Callable[[Any, int], object]] = {
    "succeed": lambda s, j: queue.succeed(s, j, FENCE, now=utcnow(), result={"ok": 1}),
    "fail": lambda s, j: queue.fail(s, j, FENCE, now=utcnow(), error="boom"),
    "cancelled_by_worker": lambda s, j: queue.cancelled_by_worker(s, j, FENCE, now=utcnow()),
    "retry_or_fail": lambda s, j: queue.retry_or_fail(
        s, j, FENCE, now=utcnow(), error="flaky", delay=5
    ),
}


@pytest.mark.parametrize("move", sorted(WORKER_MOVES))
@pytest.mark.parametrize("current", [QUEUED, SUCCEEDED, FAILED, CANCELLED])
def test_worker_moves_need_a_running_job(
    make_job: Callable[..., int], move: str, current: str
) -> None:
    # even with the lease fields of this worker, a job that is not running cannot be finished
    job_id = make_job(current, lease_owner=OWNER, attempts=1)
    with session_scope() as s:
        assert not WORKER_MOVES[move](s, job_id)
    assert _state(job_id) == current


@pytest.mark.parametrize("move", sorted(WORKER_MOVES))
@pytest.mark.parametrize("fence", [Fence("worker-b", 1), Fence(OWNER, 2)])
def test_worker_moves_are_fenced_on_owner_and_attempt(
    make_job: Callable[..., int], move: str, fence: Fence
) -> None:
    job_id = make_job(RUNNING, lease_owner=fence.owner, attempts=fence.attempt)
    with session_scope() as s:  # FENCE is worker-a attempt 1: not the holder
        assert not WORKER_MOVES[move](s, job_id)
    assert _state(job_id) == RUNNING


def test_worker_moves_from_running(make_job: Callable[..., int]) -> None:
    expected = {
        "succeed": SUCCEEDED,
        "fail": FAILED,
        "cancelled_by_worker": CANCELLED,
        "retry_or_fail": QUEUED,
    }
    for move, target in expected.items():
        job_id = make_job(RUNNING)
        with session_scope() as s:
            assert WORKER_MOVES[move](s, job_id)
        job = _job(job_id)
        assert job.state == target
        assert job.lease_owner is None and job.lease_until is None
    succeeded = _job(job_id - 3)
    assert succeeded.result == {"ok": 1} and succeeded.progress == 1.0
    assert succeeded.finished_at is not None


def test_retry_backs_off_then_fails_when_attempts_are_used_up(
    make_job: Callable[..., int],
) -> None:
    job_id = make_job(RUNNING, max_attempts=2)
    now = utcnow()
    with session_scope() as s:
        assert queue.retry_or_fail(s, job_id, FENCE, now=now, error="flaky", delay=30) == QUEUED
    job = _job(job_id)
    assert job.run_after == now + timedelta(seconds=30) and job.error == "flaky"
    with session_scope() as s:  # not due yet: nobody claims it
        assert queue.claim_jobs(s, owner=OWNER, now=now, lease_seconds=60) == []
    with session_scope() as s:
        later = now + timedelta(seconds=31)
        assert queue.claim_jobs(s, owner=OWNER, now=later, lease_seconds=60) == [job_id]
    assert _job(job_id).attempts == 2
    with session_scope() as s:
        final = queue.retry_or_fail(s, job_id, Fence(OWNER, 2), now=now, error="x", delay=1)
    assert final == FAILED
    assert _state(job_id) == FAILED


def test_claim_takes_only_due_queued_jobs_of_known_kinds(make_job: Callable[..., int]) -> None:
    due = make_job(QUEUED)
    make_job(QUEUED, run_after=utcnow() + timedelta(hours=1))
    make_job(QUEUED, kind="backtest")
    for state in (RUNNING, SUCCEEDED, FAILED, CANCELLED):
        make_job(state)
    with session_scope() as s:
        ids = queue.claim_jobs(
            s, owner="worker-b", now=utcnow(), lease_seconds=60, limit=10, kinds=["analysis"]
        )
    assert ids == [due]
    job = _job(due)
    assert (job.state, job.lease_owner, job.attempts) == (RUNNING, "worker-b", 1)
    with session_scope() as s:
        assert (
            queue.claim_jobs(
                s, owner="worker-c", now=utcnow(), lease_seconds=60, kinds=["analysis"]
            )
            == []
        )


def test_user_cancel(make_job: Callable[..., int]) -> None:
    queued, running = make_job(QUEUED), make_job(RUNNING)
    finished = {s: make_job(s) for s in (SUCCEEDED, FAILED, CANCELLED)}
    with session_scope() as s:
        assert queue.request_cancel(s, queued, now=utcnow()).action == CANCELLED
        assert queue.request_cancel(s, running, now=utcnow()).action == "cancel_requested"
        for state, job_id in finished.items():
            assert queue.request_cancel(s, job_id, now=utcnow()) == queue.CancelOutcome(
                "none", state
            )
        assert queue.request_cancel(s, 10**9, now=utcnow()) == queue.CancelOutcome("none", None)
    assert _state(queued) == CANCELLED
    job = _job(running)
    assert job.state == RUNNING and job.cancel_requested
    with session_scope() as s:
        assert queue.cancel_requested(s, running, FENCE)
        assert not queue.heartbeat(s, queued, FENCE, now=utcnow(), lease_seconds=5).alive
        pulse = queue.heartbeat(s, running, FENCE, now=utcnow(), lease_seconds=5)
    assert pulse.alive and pulse.cancel_requested
    for state, job_id in finished.items():
        assert _state(job_id) == state


def test_requeue_stale_jobs(make_job: Callable[..., int]) -> None:
    now = utcnow()
    old = now - timedelta(seconds=120)
    fresh = make_job(RUNNING, heartbeat_at=now - timedelta(seconds=5))
    retry = make_job(RUNNING, heartbeat_at=old, attempts=1, max_attempts=3)
    exhausted = make_job(RUNNING, heartbeat_at=old, attempts=3, max_attempts=3)
    cancel = make_job(RUNNING, heartbeat_at=old, cancel_requested=True)
    queued = make_job(QUEUED, heartbeat_at=old)
    with session_scope() as s:
        moved = queue.requeue_stale_jobs(s, now, stale_after_seconds=60)
    assert {(m.id, m.state) for m in moved} == {
        (retry, QUEUED),
        (exhausted, FAILED),
        (cancel, CANCELLED),
    }
    assert _state(fresh) == RUNNING and _state(queued) == QUEUED
    requeued = _job(retry)
    assert requeued.lease_owner is None and "no heartbeat" in (requeued.error or "")
    with session_scope() as s:  # the old worker comes back: its result is refused
        assert not queue.succeed(s, retry, FENCE, now=now, result={})
        assert queue.requeue_stale_jobs(s, now, stale_after_seconds=60) == []
    assert _state(retry) == QUEUED
