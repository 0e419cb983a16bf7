"""Statements marked PREPARED are planned once per connection and answer as before."""

from __future__ import annotations

import pytest
from sqlalchemy import String, bindparam, cast, literal_column, or_, select, text
from sqlalchemy.orm import Session

from app.store.base import utcnow
from app.store.claims import claim
from app.store.db import build_engine, new_read_connection
from app.store.models import Bot, User
from app.store.prepared import PREPARED
from tests.support.databases import db_backend

_EMAIL = cast(bindparam("email", type_=String), String)
_NAMED = (
    select(User.email, literal_column("'100%'").label("share"))
    .where(
        User.id >= bindparam("low"),
        or_(
            cast(bindparam("email", type_=String), String).is_(None),
            User.email == bindparam("email"),
        ),
    )
    .order_by(User.id)
)


def _prepared_here(conn) -> list[str]:  # type: ignore[no-untyped-def]
    return list(conn.scalars(text("SELECT statement FROM pg_prepared_statements ORDER BY name")))


def test_a_marked_statement_answers_as_the_plain_one(app, make_user, settings) -> None:  # type: ignore[no-untyped-def]
    first, second = make_user("a@example.com"), make_user("b@example.com")
    engine = build_engine(settings)
    try:
        with engine.connect() as conn:
            for email in (None, "b@example.com", None):
                params = {"low": first.id, "email": email}
                plain = conn.execute(_NAMED, params).all()
                marked = conn.execute(_NAMED.execution_options(**PREPARED), params).all()
                assert marked == plain
            assert [row.email for row in conn.execute(_NAMED, {"low": 0, "email": None})] == [
                first.email,
                second.email,
            ]
            assert conn.execute(_NAMED, {"low": 0, "email": None}).first().share == "100%"  # type: ignore[union-attr]
    finally:
        engine.dispose()


def test_postgres_plans_a_marked_statement_once_per_connection(app, make_user, settings) -> None:  # type: ignore[no-untyped-def]
    if db_backend() == "sqlite":
        pytest.skip("SQLite has no server-side PREPARE; its statements are cached in-process")
    user = make_user()
    marked = _NAMED.execution_options(**PREPARED)
    engine = build_engine(settings)
    try:
        with engine.connect() as conn:
            assert _prepared_here(conn) == []
            for _ in range(3):
                assert conn.execute(marked, {"low": user.id, "email": None}).all()
            statements = _prepared_here(conn)
            assert len(statements) == 1 and "$1" in statements[0] and "%%" not in statements[0]
            conn.rollback()  # a prepared statement outlives a rolled-back transaction
            assert conn.execute(marked, {"low": user.id, "email": user.email}).all()
            assert len(_prepared_here(conn)) == 1
            conn.invalidate()  # a new server connection: prepared again on first use
            conn.rollback()
            assert _prepared_here(conn) == []
            assert conn.execute(marked, {"low": user.id, "email": None}).all()
            assert len(_prepared_here(conn)) == 1
    finally:
        engine.dispose()


def test_the_hot_reads_of_a_request_run_prepared(client, make_user, auth_headers) -> None:  # type: ignore[no-untyped-def]
    if db_backend() == "sqlite":
        pytest.skip("SQLite has no server-side PREPARE")
    user = make_user()
    for _ in range(2):
        assert client.get("/api/bots", headers=auth_headers(user)).status_code == 200
    engine = new_read_connection().engine
    idle = [new_read_connection() for _ in range(max(engine.pool.checkedin(), 1))]
    try:  # every idle connection of the read pool, so the one that served the requests too
        statements = [s for conn in idle for s in _prepared_here(conn)]
    finally:
        for conn in idle:
            conn.close()
    assert any(
        "FROM users LEFT OUTER JOIN" in s and "count(*) OVER ()" in s and "revoked_tokens" in s
        for s in statements
    )


def test_a_claim_runs_prepared(app, make_user, settings) -> None:  # type: ignore[no-untyped-def]
    if db_backend() == "sqlite":
        pytest.skip("SQLite has no server-side PREPARE")
    engine = build_engine(settings)
    try:
        with Session(engine) as session:
            for _ in range(2):
                now = utcnow()
                claim(session, Bot, owner="w", now=now, lease_seconds=30, limit=5,
                      where=Bot.next_tick_at <= now, order_by=Bot.id)  # fmt: skip
            statements = _prepared_here(session.connection())
    finally:
        engine.dispose()
    assert len(statements) == 1 and "SKIP LOCKED" in statements[0]
