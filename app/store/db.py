"""Engine and sessions: one engine per process, one session per request or background unit.

`init_database(settings)` is called by the app factory and the worker entry points, never at
import. After a fork the inherited pool is dropped (`dispose_after_fork`) so two processes
never share a connection.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from config import Settings

_lock = threading.Lock()
_engine: Engine | None = None
_session_factory: sessionmaker[Session] | None = None
_engine_pid: int | None = None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _begin_before_first_savepoint(conn: Any, _name: str) -> None:
    """pysqlite opens a transaction only before a write, so a SAVEPOINT issued first would
    start (and, on release, commit) a transaction of its own; begin the real one first."""
    dbapi_connection = conn.connection.dbapi_connection
    if not dbapi_connection.in_transaction:
        dbapi_connection.execute("BEGIN")


def ensure_sqlite_directory(url: str) -> None:
    """Create the folder of a SQLite database file (a fresh clone has no `instance/`)."""
    if url.startswith("sqlite:///") and ":memory:" not in url:
        os.makedirs(os.path.dirname(os.path.abspath(url[len("sqlite:///") :])), exist_ok=True)


def build_engine(settings: Settings) -> Engine:
    """A new engine for the configured database with the pool the web workers need."""
    url = settings.database_url
    if url.startswith("sqlite"):
        ensure_sqlite_directory(url)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_pre_ping=True,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "savepoint", _begin_before_first_savepoint)
        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_recycle=1800,
        pool_timeout=settings.db_connect_timeout_seconds + 2,
        connect_args=postgres_connect_args(settings),
    )


def postgres_connect_args(settings: Settings) -> dict[str, Any]:
    """libpq options that bound every wait on the server: the connect itself, a statement
    (stuck on a lock or not), a transaction left idle, and a server gone silent (keepalives
    for an idle connection, TCP_USER_TIMEOUT for one waiting on unacknowledged data)."""
    options = [
        f"-c statement_timeout={settings.db_statement_timeout_ms}",
        f"-c idle_in_transaction_session_timeout={settings.db_idle_in_transaction_timeout_ms}",
    ]
    return {
        "connect_timeout": settings.db_connect_timeout_seconds,
        "options": " ".join(options),
        "keepalives": 1,
        "keepalives_idle": settings.db_tcp_keepalives_idle_seconds,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "tcp_user_timeout": settings.db_tcp_user_timeout_ms,
    }


def init_database(settings: Settings) -> Engine:
    """Create (once per process) the engine and session factory for these settings."""
    global _engine, _session_factory, _engine_pid
    with _lock:
        if _engine is not None and str(_engine.url) == str(build_url(settings)):
            return _engine
        if _engine is not None:
            _engine.dispose()
        _engine = build_engine(settings)
        _session_factory = sessionmaker(bind=_engine, expire_on_commit=False)
        _engine_pid = os.getpid()
        return _engine


def build_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return str(make_url(settings.database_url))


def initialised() -> bool:
    """Whether this process has a database (background threads stop when it is shut down)."""
    return _engine is not None


def get_engine() -> Engine:
    if _engine is None:
        raise RuntimeError("database not initialised: call init_database(settings) first")
    if _engine_pid != os.getpid():
        dispose_after_fork()
    return _engine


def new_session() -> Session:
    get_engine()
    assert _session_factory is not None
    return _session_factory()


def dispose_after_fork() -> None:
    """Forget connections inherited from a parent process without closing them under it."""
    global _engine_pid
    if _engine is not None:
        _engine.dispose(close=False)
        _engine_pid = os.getpid()


def shutdown_database() -> None:
    global _engine, _session_factory, _engine_pid
    with _lock:
        if _engine is not None:
            _engine.dispose()
        _engine = _session_factory = _engine_pid = None


@contextmanager
def session_scope() -> Iterator[Session]:
    """One unit of work for background jobs: commit on success, roll back on any error."""
    session = new_session()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
