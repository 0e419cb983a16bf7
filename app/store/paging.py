"""One page of a filtered, ordered query plus the total count, as every list endpoint needs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

T = TypeVar("T")


def fetch_page(
    session: Session,
    model: type[T],
    where: Sequence[ColumnElement[bool]],
    order_by: Sequence[Any],
    *,
    limit: int,
    offset: int,
) -> tuple[list[T], int]:
    """The rows of `model` matching every condition of `where`, in `order_by` order, from
    `offset` on (at most `limit`), and how many rows match in all.

    One round trip: the total rides along each row as a window count (computed before the
    limit). Only a page past the end, which has no row to carry it, costs a second query.
    """
    result = session.execute(
        select(model, func.count().over().label("total"))
        .where(*where)
        .order_by(*order_by)
        .offset(offset)
        .limit(limit)
    ).all()
    if result:
        return [row[0] for row in result], int(result[0].total)
    if offset == 0:
        return [], 0
    total = session.scalar(select(func.count()).select_from(model).where(*where)) or 0
    return [], int(total)
