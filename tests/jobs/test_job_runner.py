"""The job runner in one process: claims, heartbeats, progress, retries with backoff, failures,
cancellation between units of work, and a fenced final write when a job was taken over.

Test handlers are added to the handler table (`app.jobs.handlers.JOB_HANDLERS`) for one test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app.errors import ValidationFailed
from app.jobs import handlers, job_runner
from app.services.jobs import submit
from app.store import queue
from app.store.base import utcnow
from app.store.db import session_scope
from app.store.job_contract import JobContext, Registration, TransientJobError
from app.store.models import Job
from app.store.models.analysis import AnalysisResult

CONFIG = job_runner.RunnerConfig(
    lease_seconds=60, heartbeat_seconds=30, stale_seconds=60, backoff_seconds=0
)


@pytest.fixture
def user(make_user: Callable[..., Any]) -> Any:
    return make_user()


@pytest.fixture
def kinds(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Test kinds added to the handler table for one test and removed afterwards."""
    yield monkeypatch


def _register(kinds: pytest.MonkeyPatch, kind: str, fn: Any, **kw: Any) -> None:
    kinds.setitem(handlers.JOB_HANDLERS, kind, Registration(kind, fn, **kw))


def _submit(user: Any, kind: str, payload: dict[str, Any] | None = None, **kw: Any) -> int:
    with session_scope() as s:
        return submit(s, user.id, kind, payload or {}, **kw).job.id


def _job(job_id: int) -> Job:
    with session_scope() as s:
        job = s.get(Job, job_id)
        assert job is not None
        s.expunge(job)
        return job


def test_a_job_runs_once_with_progress_and_heartbeats(user: Any, kinds: pytest.MonkeyPatch) -> None:
    seen: list[tuple[float, Any]] = []

    def work(ctx: JobContext) -> dict[str, Any]:
        for i in range(4):
            ctx.report_progress((i + 1) / 4)
            if i == 1:
                ctx.heartbeat()
                seen.append((_job(ctx.job_id).progress, _job(ctx.job_id).heartbeat_at))
        return {"units": 4, "payload": ctx.payload, "user": ctx.user_id}

    _register(kinds, "t_ok", work)
    job_id = _submit(user, "t_ok", {"x": 1})
    started = utcnow()
    assert job_runner.run_once(owner="w1", config=CONFIG) == [(job_id, "succeeded")]
    assert seen[0][0] == 0.5 and seen[0][1] >= started  # progress saved with the heartbeat
    job = _job(job_id)
    assert job.result == {"units": 4, "payload": {"x": 1}, "user": user.id}
    assert (job.state, job.progress, job.attempts, job.lease_owner) == ("succeeded", 1.0, 1, None)
    assert job_runner.run_once(owner="w2", config=CONFIG) == []  # exactly once


def test_transient_errors_retry_with_backoff_then_succeed(
    user: Any, kinds: pytest.MonkeyPatch
) -> None:
    def flaky(ctx: Any) -> dict[str, Any]:
        if ctx.job.attempt < 3:
            raise TransientJobError(f"exchange timeout on attempt {ctx.job.attempt}")
        return {"attempt": ctx.job.attempt}

    _register(kinds, "t_flaky", flaky)
    job_id = _submit(user, "t_flaky")
    slow = job_runner.RunnerConfig(60, 30, 60, backoff_seconds=120)
    before = utcnow()
    assert job_runner.run_once(owner="w1", config=slow) == [(job_id, "queued")]
    job = _job(job_id)
    assert job.error == "exchange timeout on attempt 1" and job.attempts == 1
    assert job.run_after is not None and job.run_after >= before + timedelta(seconds=120)
    assert job_runner.run_once(owner="w1", config=slow) == []  # not due during the backoff
    assert job_runner.backoff_delay(2, 120) == 240 and job_runner.backoff_delay(9, 120) == 300

    assert job_runner.run_once(owner="w1", config=CONFIG, max_jobs=1) == []  # still not due
    with session_scope() as s:  # time passes
        s.execute(Job.__table__.update().where(Job.id == job_id).values(run_after=utcnow()))
    assert job_runner.run_once(owner="w1", config=CONFIG) == [
        (job_id, "queued"),
        (job_id, "succeeded"),
    ]
    job = _job(job_id)
    assert (job.state, job.attempts, job.result) == ("succeeded", 3, {"attempt": 3})


def test_retries_are_bounded(user: Any, kinds: pytest.MonkeyPatch) -> None:
    def down(_ctx: Any) -> dict[str, Any]:
        raise TransientJobError("still down")

    _register(kinds, "t_down", down)
    job_id = _submit(user, "t_down", max_attempts=2)
    outcomes = job_runner.run_once(owner="w1", config=CONFIG)
    assert outcomes == [(job_id, "queued"), (job_id, "failed")]
    job = _job(job_id)
    assert (job.state, job.attempts, job.error) == ("failed", 2, "still down")


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (ValueError("secret=hunter2"), "unexpected error (ValueError)"),
        (ValidationFailed("capital too small"), "validation_error: capital too small"),
    ],
)
def test_other_errors_fail_the_job_at_once(
    user: Any, kinds: pytest.MonkeyPatch, error: Exception, message: str
) -> None:
    def broken(_ctx: Any) -> dict[str, Any]:
        raise error

    _register(kinds, "t_broken", broken)
    job_id = _submit(user, "t_broken")
    assert job_runner.run_once(owner="w1", config=CONFIG) == [(job_id, "failed")]
    job = _job(job_id)
    assert (job.state, job.attempts, job.error) == ("failed", 1, message)


def test_cancellation_is_observed_between_units(user: Any, kinds: pytest.MonkeyPatch) -> None:
    done: list[int] = []

    def long(ctx: JobContext) -> dict[str, Any]:
        for i in range(10):
            ctx.raise_if_cancelled()
            done.append(i)
            if i == 3:  # the user cancels while unit 3 runs
                with session_scope() as s:
                    assert queue.request_cancel(s, ctx.job_id, now=utcnow()).action == (
                        "cancel_requested"
                    )
        return {"done": len(done)}

    _register(kinds, "t_long", long)
    job_id = _submit(user, "t_long")
    assert job_runner.run_once(owner="w1", config=CONFIG) == [(job_id, "cancelled")]
    assert done == [0, 1, 2, 3]
    job = _job(job_id)
    assert job.state == "cancelled" and job.result is None and job.finished_at is not None


def test_a_worker_that_lost_its_job_writes_nothing(user: Any, kinds: pytest.MonkeyPatch) -> None:
    def slow(ctx: JobContext) -> dict[str, Any]:
        # meanwhile the job is declared stale and requeued (this worker looked dead)
        with session_scope() as s:
            moved = queue.requeue_stale_jobs(s, utcnow() + timedelta(hours=1), 60)
        assert [m.id for m in moved] == [ctx.job_id]
        assert ctx.cancelled()  # the handler learns the job is no longer its own
        return {"stale": True}

    _register(kinds, "t_slow", slow)
    job_id = _submit(user, "t_slow")
    with session_scope() as s:
        assert queue.claim_jobs(s, owner="w1", now=utcnow(), lease_seconds=60) == [job_id]
    assert job_runner.execute_job(job_id, "w1", CONFIG) is None
    job = _job(job_id)
    assert (job.state, job.result, job.lease_owner) == ("queued", None, None)


def test_a_taken_over_analysis_stores_its_results_once(
    user: Any, make_user: Callable[..., Any]
) -> None:
    from app.services.analysis import build_payload, submit_analysis

    with session_scope() as s:
        payload = build_payload(["ETH/BTC", "LTC/BTC"], 100)
        job_id = submit_analysis(s, user.id, payload).job.id
    now = utcnow()
    with session_scope() as s:  # worker A claims, then stops heartbeating
        assert queue.claim_jobs(s, owner="A", now=now, lease_seconds=60) == [job_id]
    later = now + timedelta(minutes=5)
    with session_scope() as s:
        queue.requeue_stale_jobs(s, later, 60)
    with session_scope() as s:  # worker B takes over (attempt 2)
        assert queue.claim_jobs(s, owner="B", now=later, lease_seconds=600) == [job_id]
    assert job_runner.execute_job(job_id, "A", CONFIG) is None  # A wakes up: refused
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(AnalysisResult)) == 0
    assert job_runner.execute_job(job_id, "B", CONFIG) == "succeeded"
    assert job_runner.execute_job(job_id, "A", CONFIG) is None
    with session_scope() as s:
        rows = s.scalars(select(AnalysisResult.ticker).where(AnalysisResult.job_id == job_id))
        assert sorted(rows) == ["ETH/BTC", "LTC/BTC"]
    job = _job(job_id)
    assert (job.state, job.attempts) == ("succeeded", 2)


def test_only_kinds_with_a_handler_are_claimed(user: Any) -> None:
    job_id = _submit(user, "nobody_runs_this")
    assert "nobody_runs_this" not in handlers.registered_kinds()
    assert "analysis" in handlers.registered_kinds()
    assert job_runner.run_once(owner="w1", config=CONFIG) == []
    assert _job(job_id).state == "queued"


def test_the_scheduler_entry_point_never_raises(user: Any, kinds: pytest.MonkeyPatch) -> None:
    def boom(_ctx: Any) -> dict[str, Any]:
        raise RuntimeError("bug")

    _register(kinds, "t_boom", boom)
    job_id = _submit(user, "t_boom")
    job_runner.run()
    assert _job(job_id).state == "failed"


def test_the_runner_requeues_stale_jobs_and_records_the_incident(
    user: Any, kinds: pytest.MonkeyPatch
) -> None:
    from app.store.models.safety import Incident

    _register(kinds, "t_again", lambda ctx: {"attempt": ctx.job.attempt})
    job_id = _submit(user, "t_again")
    with session_scope() as s:  # a worker claimed it, then died: its heartbeat is old
        assert queue.claim_jobs(s, owner="dead", now=utcnow(), lease_seconds=60) == [job_id]
        s.execute(
            Job.__table__.update()
            .where(Job.id == job_id)
            .values(heartbeat_at=utcnow() - timedelta(minutes=10))
        )
    assert job_runner.run_once(owner="w1", config=CONFIG) == [(job_id, "succeeded")]
    assert _job(job_id).result == {"attempt": 2}
    with session_scope() as s:
        incidents = list(s.scalars(select(Incident).where(Incident.job_id == job_id)))
    assert [i.kind for i in incidents] == ["stale_job"]


def test_a_result_the_database_refuses_fails_the_job_at_once(
    user: Any, kinds: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import DataError

    def refuse(session: Any, job: Any, result: dict[str, Any]) -> dict[str, Any]:
        raise DataError("INSERT ...", {}, ValueError("value too long"))

    _register(kinds, "t_refused", lambda ctx: {"x": 1}, store=refuse)
    job_id = _submit(user, "t_refused")
    assert job_runner.run_once(owner="w1", config=CONFIG) == [(job_id, "failed")]
    job = _job(job_id)
    assert job.state == "failed" and "could not be stored" in (job.error or "")
    assert job.attempts == 1  # not requeued, not retried: it would be refused again


def test_a_stuck_job_raises_one_incident_whatever_its_attempts(
    user: Any, kinds: pytest.MonkeyPatch
) -> None:
    from app.store.models.safety import Alert, Incident

    job_id = _submit(user, "t_never_claimed_here")
    for _attempt in range(3):  # claimed, then its worker dies: three times over
        with session_scope() as s:
            assert queue.claim_jobs(s, owner="dead", now=utcnow(), lease_seconds=60) == [job_id]
            s.execute(
                Job.__table__.update()
                .where(Job.id == job_id)
                .values(heartbeat_at=utcnow() - timedelta(minutes=10))
            )
        job_runner.requeue_stale(CONFIG)
    assert _job(job_id).state == "failed"
    with session_scope() as s:
        incidents = list(s.scalars(select(Incident).where(Incident.job_id == job_id)))
        admin_alerts = list(s.scalars(select(Alert).where(Alert.code == "stale_job")))
        owner_alerts = list(s.scalars(select(Alert).where(Alert.code == "job_failed")))
    assert [i.kind for i in incidents] == ["stale_job"]
    assert len(admin_alerts) == 1
    assert [a.user_id for a in owner_alerts] == [user.id]  # the owner still hears it failed
