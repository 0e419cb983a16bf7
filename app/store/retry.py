"""Transactions that must get through: retried when the database picks them as a deadlock
victim or refuses them for serialization, and while the database is briefly unreachable.

A unit of work that has to land (the emergency stop) runs in `run_transaction`: each attempt
is a fresh session and transaction, committed here, and a transient failure starts a new
attempt after a short backoff until `budget_seconds` have passed; then the last error is
raised for the caller to report. Errors that retrying cannot fix (a constraint, a bug) are
raised at once.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from app.store.db import session_scope

log = logging.getLogger("tradewind.store.retry")

T = TypeVar("T")

# deadlock_detected, serialization_failure, lock_not_available, query_canceled
# (statement_timeout), idle_in_transaction_session_timeout, admin/crash shutdown
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001", "55P03", "57014", "25P03", "57P01", "57P02"})


def is_transient(exc: BaseException) -> bool:
    """True for failures that a new attempt may not meet: lock conflicts, timeouts, and a
    connection that was lost or could not be made."""
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    code = getattr(exc.orig, "pgcode", None)
    if code is not None:
        return code in RETRYABLE_SQLSTATES
    text = str(exc.orig).lower()
    # psycopg2 connection failures carry no SQLSTATE; SQLite reports a busy database
    return type(exc.orig).__name__ == "OperationalError" or "database is locked" in text


def run_transaction(
    work: Callable[[Session], T],
    *,
    budget_seconds: float,
    what: str,
    backoff_seconds: float = 0.05,
) -> T:
    """Run `work` in a transaction of its own and commit it, retrying transient failures
    (each in a new transaction) until `budget_seconds` have passed. On Postgres each
    attempt waits for row locks at most for what is left of the budget (`lock_timeout`)."""
    deadline = time.monotonic() + budget_seconds
    attempt = 0
    while True:
        attempt += 1
        try:
            with session_scope() as session:
                _bound_lock_waits(session, deadline)
                return work(session)
        except Exception as exc:
            if not is_transient(exc):
                raise
            pause = min(backoff_seconds * 2 ** min(attempt - 1, 5), 1.0) * random.uniform(0.5, 1)
            if time.monotonic() + pause >= deadline:
                log.error("%s failed after %d attempts: %s", what, attempt, _brief(exc))
                raise
            log.warning("%s: attempt %d failed (%s); retrying", what, attempt, _brief(exc))
            time.sleep(pause)


def _bound_lock_waits(session: Session, deadline: float) -> None:
    if session.get_bind().dialect.name == "postgresql":
        left_ms = max(int((deadline - time.monotonic()) * 1000), 100)
        session.execute(select(func.set_config("lock_timeout", f"{left_ms}ms", True)))


def _brief(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return f"{type(orig).__name__}: {str(orig).splitlines()[0] if str(orig) else ''}"
