"""Job submission: canonical payload hashing, idempotency keys, one active identical job,
defaults, and the cancel service's answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from app.errors import Conflict, NotFound, ValidationFailed
from app.services import jobs as service
from app.store import queue
from app.store.base import utcnow
from app.store.db import session_scope
from app.store.models import Job


@pytest.fixture
def user(make_user: Callable[..., Any]) -> Any:
    return make_user()


def _count() -> int:
    with session_scope() as s:
        return int(s.scalar(select(func.count()).select_from(Job)) or 0)


def test_payload_hash_is_canonical() -> None:
    a = service.payload_hash("analysis", {"b": 1, "a": [1, 2]})
    assert a == service.payload_hash("analysis", {"a": [1, 2], "b": 1})
    assert a != service.payload_hash("backtest", {"a": [1, 2], "b": 1})
    assert a != service.payload_hash("analysis", {"a": [2, 1], "b": 1})


def test_submit_job_contract(user: Any) -> None:
    with session_scope() as s:
        job = service.submit_job(s, user.id, "analysis", {"x": 1})
        assert (job.state, job.attempts, job.max_attempts, job.kind) == ("queued", 0, 3, "analysis")
        assert job.run_after is not None and job.idempotency_key is None
        assert service.submit_job(s, user.id, "analysis", {"x": 1}).id == job.id
    assert _count() == 1


def test_idempotency_key_returns_the_same_job_even_after_it_finished(user: Any) -> None:
    with session_scope() as s:
        first = service.submit(s, user.id, "analysis", {"x": 1}, "k1")
    assert first.created
    with session_scope() as s:
        s.execute(Job.__table__.update().values(state="running", lease_owner="w", attempts=1))
        queue.succeed(s, first.job.id, queue.Fence("w", 1), now=utcnow(), result={})
    with session_scope() as s:
        again = service.submit(s, user.id, "analysis", {"x": 1}, "  k1 ")
        assert (again.job.id, again.created, again.job.state) == (first.job.id, False, "succeeded")
        with pytest.raises(Conflict) as info:
            service.submit(s, user.id, "analysis", {"x": 2}, "k1")
        assert info.value.code == "idempotency_key_reused"
        with pytest.raises(Conflict):
            service.submit(s, user.id, "backtest", {"x": 1}, "k1")
    assert _count() == 1


def test_keys_are_per_user(user: Any, make_user: Callable[..., Any]) -> None:
    other = make_user()
    with session_scope() as s:
        mine = service.submit(s, user.id, "analysis", {"x": 1}, "shared")
        theirs = service.submit(s, other.id, "analysis", {"x": 1}, "shared")
    assert mine.created and theirs.created and mine.job.id != theirs.job.id


def test_identical_active_job_is_reused_until_it_finishes(user: Any) -> None:
    with session_scope() as s:
        first = service.submit(s, user.id, "analysis", {"x": 1})
        keyed = service.submit(s, user.id, "analysis", {"x": 1}, "new-key")
    assert keyed.job.id == first.job.id and not keyed.created
    with session_scope() as s:
        queue.request_cancel(s, first.job.id, now=utcnow())
    with session_scope() as s:
        fresh = service.submit(s, user.id, "analysis", {"x": 1})
    assert fresh.created and fresh.job.id != first.job.id


@pytest.mark.parametrize("key", ["", "   "])
def test_blank_keys_mean_no_key(user: Any, key: str) -> None:
    with session_scope() as s:
        job = service.submit(s, user.id, "analysis", {"x": 1}, key).job
        assert job.idempotency_key is None


@pytest.mark.parametrize("key", ["x" * 201, "tab\tkey", "ключ"])
def test_bad_keys_are_refused(user: Any, key: str) -> None:
    with session_scope() as s, pytest.raises(ValidationFailed):
        service.submit(s, user.id, "analysis", {"x": 1}, key)
    assert _count() == 0


def test_cancel_service(user: Any, make_user: Callable[..., Any]) -> None:
    with session_scope() as s:
        job_id = service.submit_job(s, user.id, "analysis", {"x": 1}).id
    with session_scope() as s, pytest.raises(NotFound):
        service.cancel_job(s, make_user().id, job_id)
    with session_scope() as s:
        job, action = service.cancel_job(s, user.id, job_id)
        assert (job.state, action) == ("cancelled", "cancelled")
    with session_scope() as s, pytest.raises(Conflict, match="already finished"):
        service.cancel_job(s, user.id, job_id)


def test_list_jobs_filters_and_pages(user: Any) -> None:
    with session_scope() as s:
        ids = [service.submit_job(s, user.id, "analysis", {"n": i}).id for i in range(5)]
        service.submit_job(s, user.id, "backtest", {"n": 0})
        queue.request_cancel(s, ids[0], now=utcnow())
    with session_scope() as s:
        jobs, total = service.list_jobs(s, user.id, kind="analysis", limit=2)
        assert total == 5 and [j.id for j in jobs] == [ids[4], ids[3]]
        jobs, total = service.list_jobs(s, user.id, kind="analysis", limit=2, offset=4)
        assert [j.id for j in jobs] == [ids[0]]
        cancelled, total = service.list_jobs(s, user.id, state="cancelled")
        assert total == 1 and cancelled[0].id == ids[0]
