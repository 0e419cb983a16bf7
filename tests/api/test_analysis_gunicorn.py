"""Job creation under real concurrency: 100 simultaneous requests against gunicorn (several
worker processes, several threads each) with the same Idempotency-Key create exactly one job,
and simultaneous identical requests without a key are folded into one active job."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import func, select

from app.store.db import session_scope
from app.store.models import Job
from config import Settings
from tests.support.processes import gunicorn, service_env

REQUESTS = 100


def _fire(base: str, headers: dict[str, str], bodies: list[dict[str, Any]]) -> list[Any]:
    """Send every body at the same moment (a barrier releases all threads together)."""
    barrier = threading.Barrier(len(bodies))
    sessions = [requests.Session() for _ in bodies]

    def send(i: int) -> tuple[int, dict[str, Any], dict[str, str]]:
        barrier.wait()
        resp = sessions[i].post(f"{base}/api/analyze", json=bodies[i], headers=headers, timeout=60)
        return resp.status_code, resp.json(), dict(resp.headers)

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        results = list(pool.map(send, range(len(bodies))))
    for s in sessions:
        s.close()
    return results


def _jobs(user_id: int) -> list[tuple[int, str]]:
    with session_scope() as s:
        return [
            (j.id, j.state)
            for j in s.scalars(select(Job).where(Job.user_id == user_id).order_by(Job.id))
        ]


def test_concurrent_submissions_create_one_job(
    settings: Settings,
    tmp_path: Path,
    make_user: Callable[..., Any],
    auth_headers: Callable[[Any], dict[str, str]],
) -> None:
    user = make_user()
    headers = auth_headers(user)
    body = {"tickers": ["ETH/BTC", "LTC/BTC"], "capital": 1000}
    env = service_env(settings)
    with gunicorn(env, workers=3, threads=8, log_path=tmp_path / "gunicorn.log") as (base, _):
        keyed = _fire(base, {**headers, "Idempotency-Key": "same-key"}, [body] * REQUESTS)
        statuses = [status for status, _, _ in keyed]
        assert statuses == [202] * REQUESTS, {s for s in statuses}
        ids = {payload["id"] for _, payload, _ in keyed}
        assert len(ids) == 1
        replayed = [h.get("Idempotent-Replayed") for _, _, h in keyed]
        assert replayed.count(None) == 1  # exactly one request created it
        assert len(_jobs(user.id)) == 1

        # the same key with another body: refused, whoever races
        other = _fire(
            base, {**headers, "Idempotency-Key": "same-key"}, [{**body, "capital": 7}] * 20
        )
        assert {status for status, _, _ in other} == {409}

        # no key, identical bodies: folded into one active job
        unkeyed = _fire(base, headers, [{**body, "capital": 5}] * 50)
        assert {status for status, _, _ in unkeyed} == {202}
        assert len({payload["id"] for _, payload, _ in unkeyed}) == 1

    jobs = _jobs(user.id)
    assert len(jobs) == 2 and all(state == "queued" for _, state in jobs)
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 2
