"""Rows rendered as response JSON by Postgres itself, for the hottest reads.

A bot-list request spent about a third of its CPU turning rows into Python values and back
into text: psycopg2 parsing every timestamp, decimal and JSON column, SQLAlchemy's result
processing, pydantic validating and serialising. Postgres can write the same JSON in C
while it reads the rows, and the request passes that text through. The text must be what
the response model would have written: decimals as plain normalised text (`decimal_text`),
moments as ISO 8601 UTC with a `Z` (`iso`), JSON columns as they are stored, everything
else as its JSON value. `tests/api/test_bot_wire_json.py` holds both renderings side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Text, cast, func, literal_column
from sqlalchemy.dialects.postgresql import aggregate_order_by

from app.store.base import Money, UTCDateTime


def constant(text: str) -> ColumnElement[str]:
    """A text constant written into the SQL: a bound parameter would leave the prepared
    statement's parameter untyped (`json_build_object` takes any type)."""
    return literal_column("'" + text.replace("'", "''") + "'", Text)


def iso_text(moment: Any) -> ColumnElement[str]:
    """`iso(moment)` in SQL: microseconds only when there are any, NULL stays NULL (one
    `to_char`, then a whole second's zero fraction dropped: `to_char` is the costly part)."""
    utc = func.timezone(constant("UTC"), moment)
    text = func.to_char(utc, constant('YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
    return func.replace(text, constant(".000000Z"), constant("Z"))


def decimal_text_sql(amount: Any) -> ColumnElement[str]:
    """`decimal_text(amount)` in SQL: no trailing zeros, no exponent, "0" for zero."""
    return cast(func.trim_scale(amount), Text)


def wire_value(column: Any) -> Any:
    """A column as the response models write it."""
    if isinstance(column.type, Money):
        return decimal_text_sql(column)
    if isinstance(column.type, UTCDateTime):
        return iso_text(column)
    return column


def wire_object(columns: Any, names: Sequence[str]) -> ColumnElement[Any]:
    """A JSON object of `names` (in that order), each taken from the column of that name."""
    pairs: list[Any] = []
    for name in names:
        pairs += [constant(name), wire_value(columns[name])]
    return func.json_build_object(*pairs)


def wire_array(item: Any, order_by: Any) -> ColumnElement[str]:
    """The JSON array text of `item` over the rows, in `order_by` order (NULL for no rows)."""
    return cast(func.json_agg(aggregate_order_by(item, order_by)), Text)
