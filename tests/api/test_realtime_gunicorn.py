"""Events reach every worker: two SSE streams served by different gunicorn workers both
receive the same event (with Redis as the wake-up; tests/api/test_events_gunicorn.py runs the
same without it), streams end on shutdown, and streams never take every thread."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.services.events import publish_event
from config import Settings
from tests.observability.helpers import SseClient, json_lines, ops_gunicorn
from tests.support.processes import stop_process

MAX_ATTEMPTS = 60


def test_two_workers_see_the_same_event(
    settings: Settings,
    tmp_path: Path,
    make_user: Callable[..., Any],
    auth_headers: Callable[..., Any],
) -> None:
    user, other = make_user(), make_user()
    headers = auth_headers(user)
    with ops_gunicorn(settings, tmp_path, workers=2, threads=4) as server:
        base = server.base
        by_worker: dict[int, SseClient] = {}
        for _ in range(MAX_ATTEMPTS):
            client = SseClient(base, headers)
            if client.pid is not None and client.pid not in by_worker:
                by_worker[client.pid] = client
            else:  # same worker again (or its stream cap reached): try another connection
                client.close()
                time.sleep(0.05)
            if len(by_worker) == 2:
                break
        assert len(by_worker) == 2, "could not get streams on two different workers"

        publish_event(other.id, "trade", {"not": "yours"})
        publish_event(user.id, "trade", {"side": "buy", "price": "0.0215"})
        received = [stream.next_event() for stream in by_worker.values()]
        for stream in by_worker.values():
            stream.close()

    first, second = received
    assert first == second
    assert first["type"] == "trade" and first["user_id"] == user.id
    assert first["data"] == {"side": "buy", "price": "0.0215"}
    assert first["sse_id"] == str(first["id"])


def test_shutdown_ends_open_streams_cleanly(
    settings: Settings,
    tmp_path: Path,
    make_user: Callable[..., Any],
    auth_headers: Callable[..., Any],
) -> None:
    """SIGTERM ends open streams at once (clients reconnect elsewhere) instead of holding the
    worker until gunicorn kills it at the end of graceful_timeout."""
    headers = {**auth_headers(make_user()), "X-Request-ID": "open-at-shutdown"}
    with ops_gunicorn(settings, tmp_path, workers=1, threads=4) as server:
        stream = SseClient(server.base, headers)
        assert stream.status == 200
        assert stop_process(server.proc) == 0
        rest = list(stream.response.iter_lines())  # the server closed the stream: EOF
        stream.close()
    assert all(line.startswith(b":") or not line for line in rest)
    access = [e for e in json_lines(server.log_path) if e["logger"] == "gunicorn.access"]
    assert any(e.get("request_id") == "open-at-shutdown" and e["status"] == 200 for e in access)


def test_streams_never_take_every_thread(
    settings: Settings,
    tmp_path: Path,
    make_user: Callable[..., Any],
    auth_headers: Callable[..., Any],
) -> None:
    """One worker with 4 threads serves at most 2 streams (threads - 2): the third is refused
    with 503 and Retry-After while ordinary requests keep being answered."""
    import requests

    headers = auth_headers(make_user())
    with ops_gunicorn(settings, tmp_path, workers=1, threads=4) as server:
        streams = [SseClient(server.base, headers) for _ in range(2)]
        assert [s.status for s in streams] == [200, 200]
        refused = requests.get(server.base + "/api/realtime/events", headers=headers, timeout=10)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "too_many_streams"
        assert refused.headers["Retry-After"] == "5"
        for _ in range(5):
            assert requests.get(server.base + "/api/health/ping", timeout=10).status_code == 200
        for stream in streams:
            stream.close()
