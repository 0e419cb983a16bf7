"""The optional Redis client: built on first use, never at import; `None` when not configured.

Redis only ever speeds things up or spreads news between workers (cache, rate limits, pub/sub,
revoked-token lookups). Postgres stays the source of truth, so callers must cope with `None`
and with Redis errors.

An unreachable Redis must cost milliseconds, not seconds: every socket operation is bounded by
`REDIS_TIMEOUT_SECONDS`, and a circuit breaker opens on the first connection failure or
timeout. While it is open (`REDIS_BREAKER_SECONDS`) `get_redis()` answers `None`, so callers
take their no-Redis path at once; each cooldown a background probe asks again, and its success
closes it. The outage is logged once when it starts (with its cause) and once when Redis is
back.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from app.observability.outages import Outage
from config import get_settings

if TYPE_CHECKING:
    from redis import Redis

_lock = threading.Lock()
_client: Redis | None = None
_client_pid: int | None = None
_outage = Outage("redis")


class _Breaker:
    """Open after a failure, for `cooldown` seconds. Then a background thread asks Redis again
    (a PING) while every caller keeps its no-Redis path; the probe's success closes it. After
    the first failure, a dead Redis costs no caller a timeout at all."""

    def __init__(self) -> None:
        self.open_until = 0.0
        self.cooldown = 5.0
        self._probe_lock = threading.Lock()

    def is_open(self) -> bool:
        if not self.open_until:
            return False
        with self._probe_lock:
            now = time.monotonic()
            if now < self.open_until:
                return True
            self.open_until = now + self.cooldown  # until the probe answers, or its next turn
        threading.Thread(target=_probe, name="redis-probe", daemon=True).start()
        return True

    def failed(self, exc: BaseException) -> None:
        self.open_until = time.monotonic() + self.cooldown
        _outage.failed(exc)

    def succeeded(self) -> None:
        if self.open_until:
            self.open_until = 0.0
        _outage.recovered()


breaker = _Breaker()


@lru_cache(maxsize=1)
def _guarded_connection() -> type:
    """A redis-py connection class that reports failures and successes to the breaker
    (built on first use: importing redis is not free)."""
    import redis
    from redis.connection import Connection

    failures = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)

    class GuardedConnection(Connection):
        def connect(self, *args: Any, **kwargs: Any) -> None:
            try:
                super().connect(*args, **kwargs)
            except failures as exc:
                breaker.failed(exc)
                raise

        def read_response(self, *args: Any, **kwargs: Any) -> Any:
            try:
                response = super().read_response(*args, **kwargs)
            except failures as exc:
                breaker.failed(exc)
                raise
            breaker.succeeded()
            return response

    return GuardedConnection


def get_redis() -> Redis | None:
    """The process's Redis client for `REDIS_URL`; None when Redis is not configured or is
    known to be unreachable right now (the breaker is open)."""
    settings = get_settings()
    if not settings.redis_url or breaker.is_open():
        return None
    return _connected_client()


def _connected_client() -> Redis:
    global _client, _client_pid

    settings = get_settings()
    with _lock:
        if _client is None or _client_pid != os.getpid():
            import redis as redis_lib

            timeout = settings.redis_timeout_seconds
            breaker.cooldown = settings.redis_breaker_seconds
            pool = redis_lib.ConnectionPool.from_url(
                settings.redis_url,
                connection_class=_guarded_connection(),
                socket_connect_timeout=timeout,
                socket_timeout=timeout,
                health_check_interval=30,
            )
            _client = redis_lib.Redis(connection_pool=pool)
            _client_pid = os.getpid()
        return _client


def _probe() -> None:
    """Ask a silent Redis again; its answer closes the breaker (`GuardedConnection`)."""
    with contextlib.suppress(Exception):  # a failure already re-opened the breaker
        _connected_client().ping()


def redis_key(*parts: object) -> str:
    """A key under the configured prefix, so deployments (and test runs) never collide."""
    return get_settings().redis_prefix + ":".join(str(p) for p in parts)


def reset_redis() -> None:
    global _client, _client_pid
    with _lock:
        if _client is not None:
            _client.close()
        _client = _client_pid = None
        breaker.open_until = 0.0
