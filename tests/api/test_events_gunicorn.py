"""Event streams against a real gunicorn with two workers, on the suite's database (SQLite
with TEST_DB=sqlite, Postgres otherwise):

* without Redis, every event (made by either worker or by another process) reaches every open
  stream of its user, in the same order with the same ids, and a reconnect with
  `Last-Event-ID` to the other worker loses nothing and repeats nothing;
* across a Redis outage (a TCP proxy of the test's own, blackholed) events keep flowing and a
  resume delivers every missed event;
* after logout, and after the account is disabled, an open stream ends within 5 s;
* the per-user cap holds across both workers (429), without touching other users.

Readiness waits are generous (a loaded 2-core machine); outcomes are asserted exactly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from app.services.events import publish_event
from config import Settings
from tests.observability.helpers import EVENTS_URL, SseClient, ops_gunicorn
from tests.support.tcp_proxy import TcpProxy

BOT = {
    "name": "streamed",
    "symbol": "ETH/BTC",
    "timeframe": "5m",
    "strategy": "sma_crossover",
    "strategy_params": {"fast": 5, "slow": 20},
    "capital": "1.5",
}
OPEN_DEADLINE = 60.0


def stream_on(
    base: str, headers: dict[str, str], *, avoid: int | None = None, query: str = ""
) -> SseClient:
    """An open stream, on a worker other than `avoid` when given (connections land on
    whichever worker accepts first, so retry; streams closed meanwhile free their slots)."""
    deadline = time.monotonic() + OPEN_DEADLINE
    while time.monotonic() < deadline:
        client = SseClient(base, headers, query)
        if client.status == 200 and client.pid is not None and client.pid != avoid:
            return client
        client.close()
        time.sleep(0.3 if client.status in (429, 503) else 0.05)
    raise AssertionError(f"no stream on a worker other than {avoid} within {OPEN_DEADLINE}s")


def read(stream: SseClient, count: int) -> list[dict[str, Any]]:
    return [stream.next_event() for _ in range(count)]


def summary(events: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """What each event says, in order: a bot's new status, or the payload's marker."""
    return [
        (e["type"], e["data"].get("status") if e["type"] == "bot_status" else e["data"].get("n"))
        for e in events
    ]


def test_without_redis_every_stream_gets_every_event_and_resumes_on_the_other_worker(
    settings: Settings,
    tmp_path: Path,
    make_user: Callable[..., Any],
    auth_headers: Callable[..., Any],
) -> None:
    user, other = make_user(), make_user()
    headers = auth_headers(user)
    extra = {"REDIS_URL": "", "SSE_MAX_STREAMS_PER_USER": "50"}
    with ops_gunicorn(settings, tmp_path, workers=2, threads=8, **extra) as server:
        base = server.base
        first = stream_on(base, headers)
        second = stream_on(base, headers, avoid=first.pid)
        created = requests.post(base + "/api/bots", json=BOT, headers=headers, timeout=30)
        assert created.status_code == 201, created.text
        bot_id = created.json()["id"]
        # events committed by both workers (each request lands on either) and by this process
        actions = ["start", "pause", "resume", "pause", "resume", "stop"]
        for n, action in enumerate(actions):
            answer = requests.post(f"{base}/api/bots/{bot_id}/{action}", headers=headers,
                                   timeout=30)  # fmt: skip
            assert answer.status_code == 200, answer.text
            publish_event(user.id, "job_progress", {"n": n})
            publish_event(other.id, "job_progress", {"n": "not yours"})
        expected = [
            item
            for n, status in enumerate(
                ["running", "paused", "running", "paused", "running", "stopped"]
            )  # fmt: skip
            for item in (("bot_status", status), ("job_progress", n))
        ]
        seen_first = read(first, len(expected))
        seen_second = read(second, len(expected))
        assert summary(seen_first) == expected
        assert seen_second == seen_first  # same events, same ids, same order
        ids = [e["id"] for e in seen_first]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        assert all(e["sse_id"] == str(e["id"]) for e in seen_first)

        # the first stream drops after its fourth event; more happens; it reconnects with
        # Last-Event-ID and lands on the other worker
        first.close()
        for n in range(6, 9):
            publish_event(user.id, "job_progress", {"n": n})
        answer = requests.post(f"{base}/api/bots/{bot_id}/start", headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
        later = read(second, 4)
        assert summary(later) == [("job_progress", 6), ("job_progress", 7),
                                  ("job_progress", 8), ("bot_status", "running")]  # fmt: skip
        resumed = stream_on(base, {**headers, "Last-Event-ID": seen_first[3]["sse_id"]},
                            avoid=first.pid)  # fmt: skip
        assert resumed.pid == second.pid
        replayed = read(resumed, len(expected) - 4 + len(later))
        assert replayed == seen_first[4:] + later
        publish_event(user.id, "job_progress", {"n": 9})
        assert read(resumed, 1) == read(second, 1)
        for stream in (second, resumed):
            stream.close()


def test_a_resume_across_a_redis_outage_loses_nothing(
    settings: Settings,
    tmp_path: Path,
    make_user: Callable[..., Any],
    auth_headers: Callable[..., Any],
) -> None:
    user = make_user()
    headers = auth_headers(user)
    assert settings.redis_url
    with TcpProxy.for_url(settings.redis_url) as proxy:
        extra = {"REDIS_URL": proxy.proxied_url(settings.redis_url)}
        with ops_gunicorn(settings, tmp_path, workers=2, threads=8, **extra) as server:
            stream = stream_on(server.base, headers)
            for n in range(3):
                publish_event(user.id, "trade", {"n": n})
            before = read(stream, 3)

            proxy.blackhole()  # the workers' Redis goes silent; this process's does not
            for n in range(3, 6):
                publish_event(user.id, "trade", {"n": n})
            during = read(stream, 3)  # the pollers carry on without wake-ups
            stream.close()
            for n in range(6, 9):
                publish_event(user.id, "trade", {"n": n})
            resumed = stream_on(server.base, {**headers, "Last-Event-ID": during[-1]["sse_id"]})
            missed = read(resumed, 3)

            proxy.heal()
            for n in range(9, 11):
                publish_event(user.id, "trade", {"n": n})
            after = read(resumed, 2)
            resumed.close()
    got = before + during + missed + after
    assert [e["type"] for e in got] == ["trade"] * 11  # no resync: nothing was lost
    assert [e["data"]["n"] for e in got] == list(range(11))
    ids = [e["id"] for e in got]
    assert ids == sorted(ids) and len(set(ids)) == 11


def wait_for_end(stream: SseClient, limit: float = 15.0) -> tuple[float, list[str]]:
    """Seconds until the server ends the stream, and the lines it sent meanwhile."""
    started = time.monotonic()
    lines: list[str] = []
    for line in stream._lines:  # heartbeats every 0.5 s keep the read alive
        lines.append(line)
        assert time.monotonic() - started < limit, "the stream did not end"
    return time.monotonic() - started, lines


def test_streams_end_within_5_s_after_logout_and_after_disable(
    settings: Settings,
    tmp_path: Path,
    make_user: Callable[..., Any],
    auth_headers: Callable[..., Any],
) -> None:
    admin, leaving, disabled = make_user(role="admin"), make_user(), make_user()
    with ops_gunicorn(settings, tmp_path, workers=2, threads=8) as server:
        base = server.base
        leaving_headers = auth_headers(leaving)
        stream = stream_on(base, leaving_headers)
        publish_event(leaving.id, "job_progress", {"n": 1})
        assert read(stream, 1)[0]["data"] == {"n": 1}
        answer = requests.post(base + "/api/auth/logout", headers=leaving_headers, timeout=30)
        assert answer.status_code == 204, answer.text
        logout_took, logout_lines = wait_for_end(stream)
        stream.close()
        again = requests.get(base + EVENTS_URL, headers=leaving_headers, timeout=30)

        disabled_headers = auth_headers(disabled)
        stream = stream_on(base, disabled_headers)
        answer = requests.patch(f"{base}/api/admin/users/{disabled.id}",
                                json={"is_disabled": True}, headers=auth_headers(admin),
                                timeout=30)  # fmt: skip
        assert answer.status_code == 200, answer.text
        publish_event(disabled.id, "alert", {"n": "after disable"})
        publish_event(None, "alert", {"code": "emergency_stop", "severity": "critical"})
        disable_took, disable_lines = wait_for_end(stream)
        stream.close()
    assert logout_took < 5.0, f"the stream outlived logout by {logout_took:.1f}s"
    assert ": closed token_revoked" in logout_lines
    assert again.status_code == 401 and again.json()["error"]["code"] == "token_revoked"
    assert disable_took < 5.0, f"the stream outlived disable by {disable_took:.1f}s"
    assert ": closed account_disabled" in disable_lines
    assert not [line for line in disable_lines if line.startswith("data:")]  # nothing after


def test_the_cap_per_user_holds_across_workers(
    settings: Settings,
    tmp_path: Path,
    make_user: Callable[..., Any],
    auth_headers: Callable[..., Any],
) -> None:
    greedy, other = make_user(), make_user()
    headers = auth_headers(greedy)
    extra = {"SSE_MAX_STREAMS_PER_USER": "2"}
    with ops_gunicorn(settings, tmp_path, workers=2, threads=8, **extra) as server:
        base = server.base
        first = stream_on(base, headers)
        second = stream_on(base, headers, avoid=first.pid)  # one on each worker
        refused = [requests.get(base + EVENTS_URL, headers=headers, timeout=30)
                   for _ in range(4)]  # fmt: skip
        others = stream_on(base, auth_headers(other))
        first.close()
        replacement = stream_on(base, headers)  # the slot is freed within seconds
        for stream in (second, others, replacement):
            stream.close()
    assert {r.status_code for r in refused} == {429}
    assert {r.json()["error"]["code"] for r in refused} == {"too_many_streams_for_user"}
    assert all(r.headers.get("Retry-After") for r in refused)
    assert others.status == 200 and replacement.status == 200
