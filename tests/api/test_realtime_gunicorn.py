"""Events reach every worker: two SSE streams served by different gunicorn workers both
receive the same event, delivered through Redis pub/sub (the only path between them)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.services.events import publish_event
from config import Settings
from tests.observability.helpers import SseClient, ops_gunicorn

MAX_ATTEMPTS = 60


def test_two_workers_see_the_same_event(
    settings: Settings,
    tmp_path: Path,
    make_user: Callable[..., Any],
    auth_headers: Callable[..., Any],
) -> None:
    user, other = make_user(), make_user()
    headers = auth_headers(user)
    with ops_gunicorn(settings, tmp_path, workers=2, threads=4) as (base, _dir, _log):
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
