"""The optional Redis client: built on first use, never at import; `None` when not configured.

Redis only ever speeds things up or spreads news between workers (cache, rate limits, pub/sub,
revoked-token lookups). Postgres stays the source of truth, so callers must cope with `None`
and with Redis errors.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from config import get_settings

if TYPE_CHECKING:
    from redis import Redis

_lock = threading.Lock()
_client: Redis | None = None
_client_pid: int | None = None


def get_redis() -> Redis | None:
    """The process's Redis client for `REDIS_URL`, or None when Redis is not configured."""
    global _client, _client_pid

    url = get_settings().redis_url
    if not url:
        return None
    with _lock:
        if _client is None or _client_pid != os.getpid():
            import redis

            _client = redis.Redis.from_url(
                url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
            )
            _client_pid = os.getpid()
        return _client


def redis_key(*parts: object) -> str:
    """A key under the configured prefix, so deployments (and test runs) never collide."""
    return get_settings().redis_prefix + ":".join(str(p) for p in parts)


def reset_redis() -> None:
    global _client, _client_pid
    with _lock:
        if _client is not None:
            _client.close()
        _client = _client_pid = None
