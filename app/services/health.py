"""Readiness checks shared by `/api/health/ready` and `flask preflight`.

Readiness answers within `DB_READY_TIMEOUT_SECONDS` even when a server has gone silent (its
packets dropped, so no error ever comes): each check runs in a helper thread and a check with
no answer in time fails as "no answer". While one probe is stuck, later calls wait on it
rather than piling up threads and connections behind it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from app.store.redis import get_redis

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


@lru_cache(maxsize=1)
def migration_heads() -> frozenset[str]:
    """The head revision(s) of the migrations shipped with this code."""
    import logging

    from alembic.config import Config
    from alembic.script import ScriptDirectory

    for name in ("alembic", "alembic.runtime.plugins"):
        logging.getLogger(name).setLevel(logging.WARNING)

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return frozenset(ScriptDirectory.from_config(cfg).get_heads())


def check_database(engine: Engine, heads: frozenset[str] | None = None) -> list[Check]:
    """Database reachable, then migrations at head (two checks, the second needs the first).
    `heads` (read from the migration files when not given) is only local file work."""
    heads = migration_heads() if heads is None else heads
    try:
        try:
            current = _applied_revisions(engine)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            # a pooled connection the server dropped (say, a restart): the pool has now let
            # go of its connections that old, so one more try says how the database is now
            current = _applied_revisions(engine)
    except Exception as exc:
        return [
            Check(
                "database",
                False,
                f"unreachable ({type(exc).__name__})",
                "check DATABASE_URL and that the database server is running",
            )
        ]
    at_head = current == heads
    return [
        Check("database", True, "reachable"),
        Check(
            "migrations",
            at_head,
            f"at head {','.join(sorted(heads))}"
            if at_head
            else f"database at {','.join(sorted(current)) or 'nothing'}, code at "
            f"{','.join(sorted(heads))}",
            "" if at_head else "run `alembic upgrade head`",
        ),
    ]


def _applied_revisions(engine: Engine) -> frozenset[str]:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        try:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
            return frozenset(rows)
        except Exception:
            return frozenset()


def check_redis() -> Check | None:
    """Redis reachable, when it is configured (None when it is not)."""
    client = get_redis()
    if client is None:
        return None
    try:
        client.ping()
    except Exception as exc:
        return Check(
            "redis", False, f"unreachable ({type(exc).__name__})", "check REDIS_URL and Redis"
        )
    return Check("redis", True, "reachable")


def readiness(engine: Engine, timeout: float | None = None) -> list[Check]:
    """Every check, each bounded by `timeout` seconds (no bound when None)."""
    if timeout is None:
        checks = check_database(engine)
        redis_check = check_redis()
    else:
        heads = migration_heads()  # files, not the network: outside the bound
        checks = _bounded("database", lambda: check_database(engine, heads), timeout) or [
            Check("database", False, f"no answer within {timeout:g}s",
                  "check the database server and the network to it")
        ]  # fmt: skip
        redis_check = _bounded("redis", check_redis, timeout, default=_SILENT)
        if redis_check is _SILENT:
            redis_check = Check("redis", False, f"no answer within {timeout:g}s",
                                "check REDIS_URL and Redis")  # fmt: skip
    if redis_check is not None:
        checks.append(redis_check)
    return checks


_SILENT: Any = object()
_probes_lock = threading.Lock()
_probes: dict[str, tuple[dict[str, Any], threading.Event]] = {}


def _bounded(name: str, check: Callable[[], Any], timeout: float, default: Any = None) -> Any:
    """`check()` in a helper thread (one per name at a time); `default` if it has not
    answered within `timeout`."""
    with _probes_lock:
        probe = _probes.get(name)
        if probe is None or probe[1].is_set():
            probe = ({}, threading.Event())
            _probes[name] = probe
            threading.Thread(target=_run_probe, args=(check, *probe), name=f"ready-{name}",
                             daemon=True).start()  # fmt: skip
    box, done = probe
    if not done.wait(timeout):
        return default
    if "error" in box:
        raise box["error"]
    return box["value"]


def _run_probe(check: Callable[[], Any], box: dict[str, Any], done: threading.Event) -> None:
    try:
        box["value"] = check()
    except Exception as exc:  # raised to the caller that waits for it
        box["error"] = exc
    finally:
        done.set()
