"""The Redis circuit breaker against a real Redis behind a blackholing proxy: once Redis has
gone silent, callers take the no-Redis path, and each cooldown lets exactly one of them probe
(one timeout), however many threads are asking."""

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


def test_a_silent_redis_costs_one_probe_per_cooldown_not_one_per_thread(silent_redis) -> None:
    key = redis_key("breaker-test")
    assert ask(key)[0] == "ok"  # the connection is up before the silence
    silent_redis.blackhole()
    assert ask(key)[0] == "failed"  # the first timeout opens the breaker

    answers: list[tuple[str, float]] = []
    until = time.monotonic() + 4 * COOLDOWN

    def keep_asking() -> None:
        while time.monotonic() < until:
            answers.append(ask(key))
            time.sleep(0.01)

    threads = [threading.Thread(target=keep_asking) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    probes = [took for outcome, took in answers if outcome != "skipped"]
    skipped = [took for outcome, took in answers if outcome == "skipped"]
    assert probes, "no caller ever probed Redis again"
    # one probe per cooldown (each probe's timeout delays the next window): 4 at most
    assert len(probes) <= 4, f"{len(probes)} callers waited on the silent Redis"
    assert all(outcome == "failed" for outcome, _ in answers if outcome != "skipped")
    assert max(skipped) < TIMEOUT / 2, "a caller on the no-Redis path waited for Redis"

    silent_redis.heal()
    deadline = time.monotonic() + 10 * COOLDOWN
    while ask(key)[0] != "ok":  # the next probe finds Redis back and closes the breaker
        assert time.monotonic() < deadline, "the breaker never closed after Redis came back"
        time.sleep(0.05)
    assert [ask(key)[0] for _ in range(THREADS)] == ["ok"] * THREADS
