"""Row locks taken in one global order, so that two transactions locking several rows of the
same table can wait for each other but never deadlock.

The rule of the code base: a statement that locks more than one row of `bots` (or `jobs`)
takes them in ascending id order. A plain `UPDATE ... WHERE id IN (...)` locks rows in the
order the plan happens to visit them; `in_id_order` makes such an UPDATE lock its rows
first, sorted by id, in an `ARRAY(SELECT ... ORDER BY id FOR UPDATE)` evaluated before the
update touches anything. SQLite has one writer at a time, so there the condition is used as
it is.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, any_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ColumnElement as _Element
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import ARRAY, Integer


class ArrayOf(_Element[Any]):
    """`ARRAY(<subquery>)`: a Postgres array built from a subquery's rows, evaluated once
    before the enclosing statement runs (an InitPlan).

    The subquery is part of the cache key, so a statement using it is compiled once and then
    taken from SQLAlchemy's cache (without it every claim was compiled anew)."""

    inherit_cache = True
    type = ARRAY(Integer)
    _traverse_internals = [("query", InternalTraversal.dp_clauseelement)]

    def __init__(self, query: Select[Any]) -> None:
        self.query = query.scalar_subquery()


@compiles(ArrayOf)
def _compile_array_of(element: ArrayOf, compiler: Any, **kw: Any) -> str:
    return f"ARRAY{compiler.process(element.query, **kw)}"


def id_array(query: Select[Any]) -> ArrayOf:
    return ArrayOf(query)


def dialect_name(db: Session | Connection) -> str:
    return db.dialect.name if isinstance(db, Connection) else db.get_bind().dialect.name


def in_id_order(
    session: Session | Connection,
    model: Any,
    where: ColumnElement[bool],
    *,
    skip_locked: bool = False,
) -> ColumnElement[bool]:
    """A WHERE clause selecting the rows of `model` matching `where`, locked in id order
    (Postgres) before the statement that uses it changes them."""
    if dialect_name(session) != "postgresql":
        return where
    locked = (
        select(model.id).where(where).order_by(model.id).with_for_update(skip_locked=skip_locked)
    )
    return model.id == any_(id_array(locked))
