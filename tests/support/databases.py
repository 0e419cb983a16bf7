"""Throw-away databases for a test run: a fresh Postgres database (or SQLite file) per run,
migrated with `alembic upgrade head`, so tests never depend on data left by hand."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import psycopg2
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def db_backend() -> str:
    """`TEST_DB=sqlite` runs the suite on the embedded default; Postgres otherwise."""
    return os.environ.get("TEST_DB", "postgres").lower()


def alembic_config(database_url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["database_url"] = database_url
    cfg.attributes["configure_logger"] = False
    return cfg


def create_postgres_database(prefix: str = "tw_test") -> str:
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(f"{POSTGRES_ADMIN_URL}/postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return f"postgresql+psycopg2://{POSTGRES_ADMIN_URL.split('://', 1)[1]}/{name}"


def drop_postgres_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    conn = psycopg2.connect(f"{POSTGRES_ADMIN_URL}/postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def create_test_database(tmp_dir: Path) -> str:
    """A new, migrated database for this run; returns its SQLAlchemy URL."""
    if db_backend() == "sqlite":
        url = f"sqlite:///{tmp_dir / f'tradewind-{uuid.uuid4().hex[:8]}.sqlite3'}"
    else:
        url = create_postgres_database()
    command.upgrade(alembic_config(url), "head")
    return url


def drop_test_database(url: str) -> None:
    dispose_reset_engines()
    if url.startswith("postgresql"):
        drop_postgres_database(url)


_reset_engines: dict[str, Engine] = {}


def _reset_engine(url: str) -> Engine:
    """One small engine per database for resets, kept for the run: creating one per test
    costs more than the reset itself."""
    engine = _reset_engines.get(url)
    if engine is None:
        pool = {"poolclass": NullPool} if url.startswith("sqlite") else {}
        engine = _reset_engines[url] = create_engine(url, **pool)
    return engine


def truncate_all(url: str) -> None:
    """Empty every table (keeping the migration version) and put back the system-state row.

    Rows are deleted child-first rather than TRUNCATEd: a test leaves a handful of rows, and
    on Postgres TRUNCATE of every table costs about 100 ms (it swaps each table's files) where
    these DELETEs cost a few. Sequences restart, so ids are as predictable as after TRUNCATE.
    """
    import app.store.models  # noqa: F401
    from app.store.base import Base

    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with _reset_engine(url).begin() as conn:
        for table in tables:
            conn.execute(text(f"DELETE FROM {table}"))
        if conn.dialect.name == "postgresql":
            conn.execute(
                text("SELECT setval(oid, 1, false) FROM pg_class WHERE relkind = 'S'")
            )
            conn.execute(text("INSERT INTO system_state (id, emergency_stop) VALUES (1, false)"))
        else:
            conn.execute(text("INSERT INTO system_state (id, emergency_stop) VALUES (1, 0)"))


def dispose_reset_engines() -> None:
    for engine in _reset_engines.values():
        engine.dispose()
    _reset_engines.clear()
