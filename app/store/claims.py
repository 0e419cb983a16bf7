"""Exactly-once claims: a row (a due bot, a queued job) is leased to one worker before it runs.

Postgres: `SELECT ... FOR UPDATE SKIP LOCKED` then one `UPDATE` of the chosen ids, so
concurrent claimers never wait on each other and never take the same row. SQLite: a single
`UPDATE ... WHERE id IN (SELECT ...) AND <lease free> RETURNING id`, atomic because SQLite
serialises writers. Either way the lease has an expiry, so a worker that dies mid-run leaves
a row that another worker reclaims once `lease_until` has passed; `release` and `renew` are
fenced on the owner, so a worker whose lease was taken over cannot write its stale result.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session


def lease_free(model: Any, now: datetime) -> ColumnElement[bool]:
    return or_(model.lease_until.is_(None), model.lease_until < now)


def claim(
    session: Session,
    model: Any,
    *,
    owner: str,
    now: datetime,
    lease_seconds: float,
    limit: int,
    where: ColumnElement[bool],
    order_by: Any,
    values: dict[str, Any] | None = None,
) -> list[int]:
    """Lease up to `limit` rows matching `where` whose lease is free; returns their ids.

    The caller commits (`session_scope`) so the claim is durable before the work starts.
    `values` are extra columns set in the same statement (e.g. a job's state -> running).
    """
    lease_until = now + timedelta(seconds=lease_seconds)
    changes = {"lease_owner": owner, "lease_until": lease_until, **(values or {})}
    candidates = (
        select(model.id).where(where, lease_free(model, now)).order_by(order_by).limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        ids = list(session.scalars(candidates.with_for_update(skip_locked=True)))
        if not ids:
            return []
        session.execute(
            update(model).where(model.id.in_(ids)).values(**changes),
            execution_options={"synchronize_session": False},
        )
        return ids
    result = session.execute(
        update(model)
        .where(model.id.in_(candidates.scalar_subquery()), where, lease_free(model, now))
        .values(**changes)
        .returning(model.id),
        execution_options={"synchronize_session": False},
    )
    return [row[0] for row in result]


def release(
    session: Session, model: Any, row_id: int, *, owner: str, values: dict[str, Any] | None = None
) -> bool:
    """Clear the lease (and set `values`) only if `owner` still holds it."""
    result = session.execute(
        update(model)
        .where(model.id == row_id, model.lease_owner == owner)
        .values(lease_owner=None, lease_until=None, **(values or {})),
        execution_options={"synchronize_session": False},
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def renew(
    session: Session,
    model: Any,
    row_id: int,
    *,
    owner: str,
    now: datetime,
    lease_seconds: float,
    values: dict[str, Any] | None = None,
) -> bool:
    """Extend a held lease (a heartbeat); False means the lease was lost to another worker."""
    result = session.execute(
        update(model)
        .where(model.id == row_id, model.lease_owner == owner)
        .values(lease_until=now + timedelta(seconds=lease_seconds), **(values or {})),
        execution_options={"synchronize_session": False},
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def release_all(session: Session, model: Any, *, owner: str) -> int:
    """Give back every lease this owner holds (clean shutdown)."""
    result = session.execute(
        update(model).where(model.lease_owner == owner).values(lease_owner=None, lease_until=None),
        execution_options={"synchronize_session": False},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
