"""Units of work: a savepoint inside a transaction never commits on its own, and a failed
unit of work leaves nothing behind."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.store.db import new_session, session_scope
from app.store.models import User


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
