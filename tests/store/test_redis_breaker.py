"""The Redis circuit breaker against a real Redis behind a blackholing proxy: once Redis has
gone silent, no caller waits for it again, however many threads are asking (a background probe
asks each cooldown), and once Redis answers again the breaker closes by itself."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from app.store.redis import get_redis, redis_key, reset_redis
from config import use_settings
from tests.support.tcp_proxy import TcpProxy

TIMEOUT = 0.2
COOLDOWN = 0.5
THREADS = 8


@pytest.fixture
def silent_redis(app: Any, settings: Any) -> Iterator[TcpProxy]:
    with TcpProxy.for_url(settings.redis_url) as proxy:
        use_settings(settings.model_copy(update={
            "redis_url": proxy.proxied_url(settings.redis_url),
            "redis_timeout_seconds": TIMEOUT,
            "redis_breaker_seconds": COOLDOWN,
        }))  # fmt: skip
        reset_redis()
        try:
            yield proxy
        finally:
            use_settings(settings)
            reset_redis()


def ask(key: str) -> tuple[str, float]:
    """One caller's read: 'skipped' (no client), 'ok' or 'failed', and how long it took."""
    started = time.monotonic()
    client = get_redis()
    if client is None:
        return "skipped", time.monotonic() - started
    try:
        client.get(key)
    except Exception:  # noqa: BLE001 - a timeout or a refused connection, both count
        return "failed", time.monotonic() - started
    return "ok", time.monotonic() - started


def test_after_the_first_timeout_no_caller_waits_for_a_silent_redis(silent_redis) -> None:
    key = redis_key("breaker-test")
    assert ask(key)[0] == "ok"  # the connection is up before the silence
    silent_redis.blackhole()
    assert ask(key)[0] == "failed"  # the first timeout opens the breaker

    answers: list[tuple[str, float]] = []
    until = time.monotonic() + 4 * COOLDOWN  # several cooldowns, so several probes fail

    def keep_asking() -> None:
        while time.monotonic() < until:
            answers.append(ask(key))
            time.sleep(0.01)

    threads = [threading.Thread(target=keep_asking) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert {outcome for outcome, _ in answers} == {"skipped"}
    assert max(took for _, took in answers) < TIMEOUT / 2, "a caller waited on the silent Redis"

    silent_redis.heal()
    deadline = time.monotonic() + 10 * COOLDOWN
    while ask(key)[0] != "ok":  # no caller probes: the background probe finds Redis back
        assert time.monotonic() < deadline, "the breaker never closed after Redis came back"
        time.sleep(0.05)
    assert [ask(key)[0] for _ in range(THREADS)] == ["ok"] * THREADS
