"""Transactions that must land: a real Postgres deadlock makes one side the victim; the side
run by `run_transaction` is retried in a new transaction and commits, and an error that a
retry cannot fix is raised at once."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app.store.db import new_session, session_scope
from app.store.models import User
from app.store.retry import run_transaction
from tests.support.databases import db_backend

pytestmark = pytest.mark.skipif(
    db_backend() == "sqlite", reason="SQLite has one writer at a time: no deadlock to meet"
)


def test_a_deadlock_victim_is_retried_and_commits(make_user) -> None:
    first, second = make_user().id, make_user().id
    holder_has_first, errors = threading.Event(), []
    attempts = []

    def holder() -> None:
        """Locks `first`, then (after the retried side locked `second`) wants `second`."""
        db = new_session()
        try:
            db.execute(update(User).where(User.id == first).values(role="user"))
            holder_has_first.set()
            time.sleep(0.3)
            db.execute(update(User).where(User.id == second).values(role="user"))
            db.commit()
        except Exception as exc:
            errors.append(exc)
            db.rollback()
        finally:
            db.close()

    def work(db):  # type: ignore[no-untyped-def]
        attempts.append(1)
        db.execute(update(User).where(User.id == second).values(is_disabled=True))
        holder_has_first.wait(5)
        db.execute(update(User).where(User.id == first).values(is_disabled=True))
        return len(attempts)

    thread = threading.Thread(target=holder)
    thread.start()
    done = run_transaction(work, budget_seconds=10, what="test")
    thread.join(10)
    # we waited first, so our deadlock check ran first: we were the victim, then retried
    assert done == 2 and errors == []
    with session_scope() as db:
        assert set(db.scalars(select(User.is_disabled).where(User.id.in_([first, second])))) == {
            True
        }


def test_an_error_a_retry_cannot_fix_is_raised_at_once(make_user) -> None:
    email = make_user().email
    attempts = []

    def work(db):  # type: ignore[no-untyped-def]
        attempts.append(1)
        db.add(User(email=email, password_hash="!"))
        db.flush()

    with pytest.raises(IntegrityError):
        run_transaction(work, budget_seconds=5, what="test")
    assert len(attempts) == 1
