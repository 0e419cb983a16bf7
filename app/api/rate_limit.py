"""Rate limiting (Flask-Limiter) that any feature may use: `@limiter.limit("5 per minute")`.

Counters live in Redis when `REDIS_URL` is set (keys under the configured prefix, so shared by
every worker and machine of a deployment), in process memory otherwise. When Redis goes away
the limiter falls back to counters shared by the processes of this machine (a SQLite file in
the temp folder) and returns to Redis once it answers again: a limit then holds per machine
instead of per deployment, and requests never fail because of it. A breach answers 429 in
the error envelope with `Retry-After`.

`client_ip` is the peer address; behind a reverse proxy the app must trust its
`X-Forwarded-For` (werkzeug ProxyFix) for per-IP limits to mean per client.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, request
from flask_limiter import Limiter, RequestLimit
from limits.storage import MemoryStorage, Storage
from limits.strategies import STRATEGIES

from app.store.redis import redis_key
from config import get_settings


class _QuietMemoryStorage(MemoryStorage):
    """limits' MemoryStorage starts a timer thread when built; this one starts it with the
    first hit, so building the app starts no thread (see tests/test_architecture.py)."""

    STORAGE_SCHEME = ["tradewind-memory"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any):
        self.storage = Counter()
        self.locks = defaultdict(threading.RLock)
        self.expirations = {}
        self.events = {}
        self.timer = threading.Timer(0.01, lambda: None)  # never started; incr() replaces it
        Storage.__init__(self, uri, wrap_exceptions=wrap_exceptions, **options)


class _MachineStorage(Storage):
    """Fixed-window counters in a SQLite file in the machine's temp folder, one per Redis
    prefix: the fallback while Redis is unreachable, shared by every worker process of this
    machine (per-process memory would let each worker count on its own, so a limit of 5
    failed logins would hold only after 5 x workers)."""

    STORAGE_SCHEME = ["tradewind-machine"]

    def __init__(self, path: str, wrap_exceptions: bool = False, **options: Any) -> None:
        self.path = path
        self._local = threading.local()
        Storage.__init__(self, None, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return sqlite3.Error

    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = sqlite3.connect(self.path, timeout=2, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE IF NOT EXISTS hits (key TEXT PRIMARY KEY, "
                         "count INTEGER NOT NULL, expires REAL NOT NULL)")  # fmt: skip
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM hits WHERE key = ? AND expires <= ?", (key, now))
            conn.execute(
                "INSERT INTO hits (key, count, expires) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET count = count + excluded.count",
                (key, amount, now + expiry),
            )
            (count,) = conn.execute("SELECT count FROM hits WHERE key = ?", (key,)).fetchone()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return int(count)

    def _row(self, key: str) -> tuple[int, float] | None:
        row = self._db().execute(
            "SELECT count, expires FROM hits WHERE key = ? AND expires > ?", (key, time.time())
        ).fetchone()
        return (int(row[0]), float(row[1])) if row else None

    def get(self, key: str) -> int:
        row = self._row(key)
        return row[0] if row else 0

    def get_expiry(self, key: str) -> float:
        row = self._row(key)
        return row[1] if row else time.time()

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        return self._db().execute("DELETE FROM hits").rowcount

    def clear(self, key: str) -> None:
        self._db().execute("DELETE FROM hits WHERE key = ?", (key,))


def machine_fallback_path(prefix: str) -> str:
    digest = hashlib.sha256(prefix.encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"tradewind-ratelimit-{digest}.sqlite3")


class _Limiter(Limiter):
    def _check_request_limit(
        self, callable_name: str | None = None, in_middleware: bool = True
    ) -> None:
        """Skip the before_request pass where it has nothing to check: route limits are
        checked by their own decorator, so the pass only matters for app-wide, default,
        blueprint or hinted limits. This keeps ~0.2 ms off every other request."""
        if in_middleware and not self._middleware_limits(request.endpoint):
            return
        super()._check_request_limit(callable_name=callable_name, in_middleware=in_middleware)

    def _middleware_limits(self, endpoint: str | None) -> bool:
        manager = self.limit_manager
        return bool(
            manager._application_limits
            or manager._default_limits
            or manager._blueprint_limits
            or manager.has_hints(endpoint or "")
        )

    def _Limiter__configure_fallbacks(self, app: Flask, strategy: str) -> None:  # noqa: N802
        """Flask-Limiter's fallback while Redis is unreachable: counters shared by the
        processes of this machine (`_MachineStorage`)."""
        self._in_memory_fallback_enabled = True
        self._fallback_storage = _MachineStorage(machine_fallback_path(redis_key("ratelimit")))
        self._fallback_limiter = STRATEGIES[strategy](self._fallback_storage)


def client_ip() -> str:
    return request.remote_addr or "unknown"


def hashed(value: str) -> str:
    """A stable, non-reversible key part (keeps emails out of Redis keys and limiter logs)."""
    return hashlib.sha256(value.encode()).hexdigest()[:24]


def json_field_key(field: str, prefix: str) -> Callable[[], str]:
    """A key function on a (normalised) field of the JSON body, e.g. the account of a login."""

    def key() -> str:
        data = request.get_json(silent=True, cache=True)
        value = data.get(field) if isinstance(data, dict) else None
        if not isinstance(value, str) or not value.strip():
            return f"{prefix}:none"
        return f"{prefix}:{hashed(value.strip().lower())}"

    return key


def _retry_after(limit: RequestLimit) -> Response:
    seconds = max(1, round(limit.reset_at - time.time()))
    response = Response(status=429)
    response.headers["Retry-After"] = str(seconds)
    return response


limiter = _Limiter(
    key_func=client_ip,
    strategy="fixed-window",
    swallow_errors=True,
    in_memory_fallback_enabled=True,
    on_breach=_retry_after,
    headers_enabled=False,
)


def storage_settings() -> tuple[str, dict[str, Any]]:
    settings = get_settings()
    if settings.redis_url:
        return settings.redis_url, {
            "key_prefix": redis_key("ratelimit"),
            "socket_connect_timeout": 1,
            "socket_timeout": 1,
        }
    return "tradewind-memory://", {}


def reset_rate_limits() -> None:
    """Forget every counter of this deployment's prefix (tests start each case fresh)."""
    limiter.reset()
    fallback = getattr(limiter, "_fallback_storage", None)
    if fallback is not None:
        fallback.reset()


def init_app(app: Flask) -> None:
    uri, options = storage_settings()
    app.config["RATELIMIT_STORAGE_URI"] = uri
    app.config["RATELIMIT_STORAGE_OPTIONS"] = options
    app.config["RATELIMIT_ENABLED"] = get_settings().ratelimit_enabled
    limiter.init_app(app)
    limiter._storage_dead = False  # a storage just built is presumed reachable until it fails
