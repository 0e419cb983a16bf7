"""Readiness checks shared by `/api/health/ready` and `flask preflight`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

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


def check_database(engine: Engine) -> list[Check]:
    """Database reachable, then migrations at head (two checks, the second needs the first)."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            try:
                rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
                current = frozenset(rows)
            except Exception:
                current = frozenset()
    except Exception as exc:
        return [
            Check(
                "database",
                False,
                f"unreachable ({type(exc).__name__})",
                "check DATABASE_URL and that the database server is running",
            )
        ]
    heads = migration_heads()
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


def readiness(engine: Engine) -> list[Check]:
    checks = check_database(engine)
    redis_check = check_redis()
    if redis_check is not None:
        checks.append(redis_check)
    return checks
