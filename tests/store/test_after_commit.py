"""After-commit callbacks run once after the outer commit, never for work that rolled back,
and survive the rollback of an unrelated savepoint."""

from __future__ import annotations

import pytest

from app.store.after_commit import on_commit
from app.store.db import new_session
from app.store.models import User


def _user(email: str) -> User:
    return User(email=email, password_hash="x")


def test_runs_after_the_outer_commit_only(app) -> None:  # type: ignore[no-untyped-def]
    ran: list[str] = []
    session = new_session()
    try:
        with session.begin_nested():
            session.add(_user("a@example.com"))
            on_commit(session, lambda: ran.append("inner"))
        assert ran == []  # the savepoint was released, the transaction is still open
        on_commit(session, lambda: ran.append("outer"))
        session.commit()
        assert ran == ["inner", "outer"]
        session.commit()
        assert ran == ["inner", "outer"]  # once
    finally:
        session.close()


def test_dropped_with_its_savepoint_kept_for_others(app) -> None:  # type: ignore[no-untyped-def]
    ran: list[str] = []
    session = new_session()
    try:
        with session.begin_nested():
            session.add(_user("ok@example.com"))
            on_commit(session, lambda: ran.append("kept"))
        with pytest.raises(RuntimeError), session.begin_nested():
            session.add(_user("bad@example.com"))
            on_commit(session, lambda: ran.append("dropped"))
            raise RuntimeError("this bot's tick fails")
        session.commit()
        assert ran == ["kept"]
    finally:
        session.close()


def test_outer_rollback_drops_everything_and_keys_dedupe(app) -> None:  # type: ignore[no-untyped-def]
    ran: list[str] = []
    session = new_session()
    try:
        session.add(_user("x@example.com"))
        on_commit(session, lambda: ran.append("lost"))
        session.rollback()
        on_commit(session, lambda: ran.append("first"), key="submit:1")
        on_commit(session, lambda: ran.append("second"), key="submit:1")
        session.commit()
        assert ran == ["second"]
    finally:
        session.close()
