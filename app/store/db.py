"""Engine and sessions: one engine per process, one session per request or background unit.

`init_database(settings)` is called by the app factory and the worker entry points, never at
import. After a fork the inherited pool is dropped (`dispose_after_fork`) so two processes
never share a connection.

A connection is pinged before use only when it has sat idle in the pool for
IDLE_PING_SECONDS (a restarted server or a dropped link shows there); a pre-ping on every
checkout would cost a round trip per request and per claim. A connection that fails its
ping is replaced, and the pool drops its other connections of the same age.

`new_read_session()` is for reads that need no transaction (the hot GET routes), and
`new_read_connection()` for such reads made of plain statements only. On Postgres
it draws from a second pool whose connections stay in autocommit for life (switching a
connection in and out of autocommit costs a round trip each way, as much as the BEGIN and
COMMIT it saves), so such a request sends only its queries; the session refuses to write.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction, sessionmaker

from app.store.prepared import prepare_marked_statements

if TYPE_CHECKING:
    from config import Settings

_lock = threading.Lock()
_engine: Engine | None = None
_session_factory: sessionmaker[Session] | None = None
_read_factory: sessionmaker[Session] | None = None
_autocommit_engine: Engine | None = None
_engine_pid: int | None = None

IDLE_PING_SECONDS = 2.0


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


def ping_idle_connections(engine: Engine) -> None:
    """Ping a pooled connection before use when it has been idle for IDLE_PING_SECONDS."""

    def checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # the pool replaces this connection and every other one as old as it
            raise InvalidatePoolError(f"idle connection failed its ping: {exc}") from exc

    event.listen(engine, "checkin", checkin)
    event.listen(engine, "checkout", checkout)


def ensure_sqlite_directory(url: str) -> None:
    """Create the folder of a SQLite database file (a fresh clone has no `instance/`)."""
    if url.startswith("sqlite:///") and ":memory:" not in url:
        os.makedirs(os.path.dirname(os.path.abspath(url[len("sqlite:///") :])), exist_ok=True)


def build_engine(settings: Settings, *, autocommit: bool = False) -> Engine:
    """A new engine for the configured database with the pool the web workers need
    (`autocommit`: connections without transactions, for reads only; Postgres)."""
    url = settings.database_url
    if url.startswith("sqlite"):
        ensure_sqlite_directory(url)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "savepoint", _begin_before_first_savepoint)
        ping_idle_connections(engine)
        return engine
    engine = create_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_recycle=1800,
        pool_timeout=settings.db_connect_timeout_seconds + 2,
        connect_args=postgres_connect_args(settings),
        **({"isolation_level": "AUTOCOMMIT"} if autocommit else {}),
    )
    ping_idle_connections(engine)
    prepare_marked_statements(engine)
    return engine


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
    global _engine, _session_factory, _read_factory, _autocommit_engine, _engine_pid
    with _lock:
        if _engine is not None and str(_engine.url) == str(build_url(settings)):
            return _engine
        _dispose_all()
        _engine = build_engine(settings)
        _session_factory = sessionmaker(bind=_engine, expire_on_commit=False)
        if _engine.dialect.name == "postgresql":
            _autocommit_engine = build_engine(settings, autocommit=True)
        _read_factory = sessionmaker(
            bind=_autocommit_engine or _engine, expire_on_commit=False, autoflush=False
        )
        event.listen(_read_factory, "before_flush", _refuse_flush)
        event.listen(_read_factory, "do_orm_execute", _refuse_writes)
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


@contextmanager
def single_statement_scope() -> Iterator[Session | Connection]:
    """Where each statement is a whole unit of work (a claim, a release, a single read): on
    Postgres a connection of the autocommit engine, so a one-statement write costs one round
    trip instead of three (BEGIN, the statement, COMMIT) and is durable when it returns; on
    SQLite a `session_scope`."""
    get_engine()
    if _autocommit_engine is None:
        with session_scope() as session:
            yield session
        return
    with _autocommit_engine.connect() as connection:
        yield connection


def new_read_session() -> Session:
    """A session for reads only, without a transaction (each statement sees the data committed
    when it runs). Writing through it raises: a route that writes needs `new_session`."""
    get_engine()
    assert _read_factory is not None
    return _read_factory()


def new_read_connection() -> Connection:
    """A connection for reads only, as `new_read_session` without the ORM session around it:
    a hot read that sends plain statements skips the session's bookkeeping."""
    engine = get_engine()
    return (_autocommit_engine or engine).connect()


class ReadOnlySessionError(RuntimeError):
    """A write through a read-only session (a bug in the caller's choice of session)."""


def _refuse_flush(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    if session.new or session.dirty or session.deleted:
        raise ReadOnlySessionError("a read-only session cannot write")


def _refuse_writes(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        raise ReadOnlySessionError("a read-only session cannot write")


def engines() -> list[Engine]:
    """Every engine of this process (the read pool's too, when there is one)."""
    get_engine()
    return [e for e in (_engine, _autocommit_engine) if e is not None]


def dispose_after_fork() -> None:
    """Forget connections inherited from a parent process without closing them under it."""
    global _engine_pid
    for engine in (_engine, _autocommit_engine):
        if engine is not None:
            engine.dispose(close=False)
    if _engine is not None:
        _engine_pid = os.getpid()


def _dispose_all() -> None:
    global _autocommit_engine
    for engine in (_engine, _autocommit_engine):
        if engine is not None:
            engine.dispose()
    _autocommit_engine = None


def shutdown_database() -> None:
    global _engine, _session_factory, _read_factory, _engine_pid
    with _lock:
        _dispose_all()
        _engine = _session_factory = _read_factory = _engine_pid = None


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
