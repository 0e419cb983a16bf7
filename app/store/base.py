"""Declarative base with a constraint naming convention and the column types we share."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, DefaultContext
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, Numeric, String, TypeDecorator, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | str | None) -> datetime | None:
    """Any timestamp (naive, `Z`, an offset, ISO text) as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """`timestamptz` on Postgres; on SQLite naive values are read back as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        value = as_utc(value)
        if value is not None and dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return as_utc(value)


MONEY_QUANTUM = Decimal("1E-18")
# Room for 38 digits (the default context's 28 would refuse a large amount), built once:
# entering a local context per call cost more than the quantize, and every money value read
# from the database goes through it.
_MONEY_CONTEXT = DefaultContext.copy()
_MONEY_CONTEXT.prec = 60
_ZERO = Decimal(0).quantize(MONEY_QUANTUM)


def quantize(value: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """`value` on the 18-decimal money grid (half-even unless told)."""
    result = value.quantize(MONEY_QUANTUM, rounding=rounding, context=_MONEY_CONTEXT)
    return result if result else _ZERO  # no "-0"


class Money(TypeDecorator[Decimal]):
    """Money, prices and amounts, exact on both databases: `numeric(38,18)` on Postgres and
    canonical decimal text on SQLite (where SQLAlchemy would bind `Numeric` through a float
    and turn 0.1 into 0.100000000000000006). Values are quantised to 18 decimals on the way
    in, so sums of stored values are exact."""

    impl = Numeric(38, 18, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(48))
        return dialect.type_descriptor(Numeric(38, 18, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            value = Decimal(str(value))
        if not value.is_finite():
            raise ValueError(f"money amounts must be finite, got {value}")
        value = quantize(value)
        return format(value, "f") if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return quantize(value if isinstance(value, Decimal) else Decimal(str(value)))


JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), Decimal: Money(), dict[str, Any]: JSONType}


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, onupdate=utcnow, server_default=func.now()
    )
