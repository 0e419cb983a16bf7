"""Units of work: a savepoint inside a transaction never commits on its own, and a failed
unit of work leaves nothing behind."""

from __future__ import annotations

import psycopg2.extensions
import pytest
from sqlalchemy import func, select, text, update

from app.store import db as db_module
from app.store.db import (
    ReadOnlySessionError,
    build_engine,
    new_read_connection,
    new_read_session,
    new_session,
    session_scope,
)
from app.store.models import User
from tests.support.databases import db_backend


def _emails() -> set[str]:
    with session_scope() as db:
        return set(db.scalars(select(User.email)))


def test_savepoint_first_is_rolled_back_with_its_transaction(app) -> None:  # type: ignore[no-untyped-def]
    session = new_session()
    try:
        with session.begin_nested():  # the first statement of the transaction
            session.add(User(email="nested@example.com", password_hash="x"))
        session.add(User(email="outer@example.com", password_hash="x"))
        session.flush()
        session.rollback()
    finally:
        session.close()
    assert _emails() == set()


def test_savepoint_rollback_keeps_the_outer_work(app) -> None:  # type: ignore[no-untyped-def]
    with session_scope() as db:
        db.add(User(email="kept@example.com", password_hash="x"))
        db.flush()
        with pytest.raises(RuntimeError), db.begin_nested():
            db.add(User(email="dropped@example.com", password_hash="x"))
            db.flush()
            raise RuntimeError("undo the inner part only")
    assert _emails() == {"kept@example.com"}


def test_session_scope_rolls_back_on_error(app) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError), session_scope() as db:
        db.add(User(email="lost@example.com", password_hash="x"))
        db.flush()
        raise ValueError("fail the unit of work")
    assert _emails() == set()


def test_read_session_refuses_writes(app) -> None:  # type: ignore[no-untyped-def]
    session = new_read_session()
    try:
        session.add(User(email="written@example.com", password_hash="x"))
        with pytest.raises(ReadOnlySessionError):
            session.flush()
        session.rollback()
        with pytest.raises(ReadOnlySessionError):
            session.execute(update(User).values(role="admin"))
    finally:
        session.close()
    assert _emails() == set()


def test_read_session_opens_no_transaction(app) -> None:  # type: ignore[no-untyped-def]
    """On Postgres the read pool's connections stay in autocommit: no BEGIN, no COMMIT."""
    if db_backend() == "sqlite":
        pytest.skip("one writer and no round trips on the embedded database")
    session = new_read_session()
    try:
        session.scalar(select(func.count()).select_from(User))
        raw = session.connection().connection.dbapi_connection
        assert raw is not None and raw.autocommit
        assert raw.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_IDLE
    finally:
        session.close()


def test_read_connection_opens_no_transaction(app) -> None:  # type: ignore[no-untyped-def]
    """The plain read connection of a hot read comes from the same autocommit pool."""
    if db_backend() == "sqlite":
        pytest.skip("one writer and no round trips on the embedded database")
    connection = new_read_connection()
    try:
        connection.scalar(select(func.count()).select_from(User))
        raw = connection.connection.dbapi_connection
        assert raw is not None and raw.autocommit
        assert raw.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_IDLE
    finally:
        connection.close()


def test_idle_connection_dropped_by_the_server_is_replaced(app, settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Without a ping on every checkout, a connection the server dropped while it sat idle
    is still found out (and replaced) before use."""
    if db_backend() == "sqlite":
        pytest.skip("no server to drop the connection")
    monkeypatch.setattr(db_module, "IDLE_PING_SECONDS", 0.0)
    engine = build_engine(settings)  # a pool of its own: its one connection is the dropped one
    try:
        with engine.connect() as conn:
            pid = conn.scalar(text("SELECT pg_backend_pid()"))
        url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        other = psycopg2.connect(url)
        try:
            with other.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s)", (pid,))
            other.commit()
        finally:
            other.close()
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT pg_backend_pid()")) != pid
    finally:
        engine.dispose()
