"""Exactly-once claims: a row (a due bot, a queued job) is leased to one worker before it runs.

Postgres: one statement claims and leases a batch,
`UPDATE ... WHERE id = ANY(ARRAY(SELECT id ... FOR UPDATE SKIP LOCKED LIMIT n)) RETURNING id`,
so concurrent claimers never wait on each other and never take the same row; it is a prepared
statement (`app.store.prepared`), planned once per connection rather than once a batch. SQLite: a
single `UPDATE ... WHERE id IN (SELECT ...) AND <lease free> RETURNING id`, atomic because
SQLite serialises writers (a compare-and-set on the lease). `release_batch` hands a batch
back in one statement. Either way the lease has an expiry, so a worker that dies mid-run
leaves a row that another worker reclaims once `lease_until` has passed; `release`,
`release_batch` and `renew` are fenced on the owner, so a worker whose lease was taken over
cannot write its stale result.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, any_, or_, select, update
from sqlalchemy.orm import Session

from app.store.locking import dialect_name, id_array, in_id_order
from app.store.prepared import PREPARED


def lease_free(model: Any, now: datetime) -> ColumnElement[bool]:
    return or_(model.lease_until.is_(None), model.lease_until < now)


def claim(
    session: Session | Connection,
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

    The caller commits (`session_scope`, or `single_statement_scope` where each statement
    commits on its own) so the claim is durable before the work starts.
    `values` are extra columns set in the same statement (e.g. a job's state -> running).
    """
    lease_until = now + timedelta(seconds=lease_seconds)
    changes = {"lease_owner": owner, "lease_until": lease_until, **(values or {})}
    candidates = (
        select(model.id).where(where, lease_free(model, now)).order_by(order_by).limit(limit)
    )
    if dialect_name(session) == "postgresql":
        locked = candidates.with_for_update(skip_locked=True)
        return list(
            session.scalars(
                update(model)
                .where(model.id == any_(id_array(locked)))
                .values(**changes)
                .returning(model.id),
                execution_options={"synchronize_session": False, **PREPARED},
            )
        )
    result = session.execute(
        update(model)
        .where(model.id.in_(candidates.scalar_subquery()), where, lease_free(model, now))
        .values(**changes)
        .returning(model.id),
        execution_options={"synchronize_session": False},
    )
    return [row[0] for row in result]


def release(
    session: Session | Connection,
    model: Any,
    row_id: int,
    *,
    owner: str,
    values: dict[str, Any] | None = None,
) -> bool:
    """Clear the lease (and set `values`) only if `owner` still holds it."""
    result = session.execute(
        update(model)
        .where(model.id == row_id, model.lease_owner == owner)
        .values(lease_owner=None, lease_until=None, **(values or {})),
        execution_options={"synchronize_session": False},
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def release_batch(
    session: Session | Connection,
    model: Any,
    ids: list[int],
    *,
    owner: str,
    values: dict[str, Any] | None = None,
) -> int:
    """Clear the leases of a batch (and set the same `values` on each) in one statement,
    only on the rows `owner` still holds; returns how many it released."""
    if not ids:
        return 0
    result = session.execute(
        update(model)
        .where(in_id_order(session, model, and_(model.id.in_(ids), model.lease_owner == owner)))
        .values(lease_owner=None, lease_until=None, **(values or {})),
        execution_options={"synchronize_session": False},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def renew(
    session: Session | Connection,
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
    """Give back every lease this owner holds (clean shutdown), rows locked in id order."""
    result = session.execute(
        update(model)
        .where(in_id_order(session, model, model.lease_owner == owner))
        .values(lease_owner=None, lease_until=None),
        execution_options={"synchronize_session": False},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
