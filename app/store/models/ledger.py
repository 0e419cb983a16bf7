"""Paper-trading ledger: orders, fills, positions, balances, equity and pricing snapshots.

Money columns use `ExactDecimal`, not the shared `Money`: on SQLite SQLAlchemy binds `Numeric`
through a float, which turns 0.1 into 0.100000000000000006 and would make `flask reconcile`
fail "to the smallest unit". `ExactDecimal` is `numeric(38,18)` on Postgres and canonical
decimal text on SQLite; every value is quantised to 18 decimals on the way in, so sums of
stored values are exact on both.

One bot trades one symbol, so a bot has one `Position` row (its book: position, cost basis,
realised PnL, fees, and the capital it started with) and one `Balance` row per asset (quote
and base), each split into `free` and `locked` (reserved by open orders), never negative.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeEngine

from app.store.base import Base, JSONType, UTCDateTime, utcnow

__all__ = [
    "LEDGER_QUANTUM",
    "Balance",
    "EquitySnapshot",
    "ExactDecimal",
    "Fill",
    "Order",
    "Position",
    "PricingSnapshot",
    "quantize",
]

LEDGER_QUANTUM = Decimal("1E-18")
ORDER_STATES = ("open", "filled", "cancelled", "rejected")


def quantize(value: Decimal) -> Decimal:
    """`value` on the ledger's 18-decimal grid (half-even), with enough precision for 38 digits."""
    with localcontext() as ctx:
        ctx.prec = 60
        result = value.quantize(LEDGER_QUANTUM)
    return result if result else Decimal(0).quantize(LEDGER_QUANTUM)  # no "-0"


class ExactDecimal(TypeDecorator[Decimal]):
    """Exact decimal storage on Postgres (numeric) and SQLite (canonical text)."""

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
            raise ValueError(f"ledger amounts must be finite, got {value}")
        value = quantize(value)
        return format(value, "f") if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return quantize(value if isinstance(value, Decimal) else Decimal(str(value)))


def _non_negative(*columns: str) -> tuple[CheckConstraint, ...]:
    # CAST keeps the comparison numeric on SQLite, where the values are stored as text.
    return tuple(
        CheckConstraint(f"CAST({c} AS NUMERIC) >= 0", name=f"{c}_non_negative") for c in columns
    )


class Order(Base):
    """A paper order. `client_order_id` (bot + tick) makes a retried tick place nothing twice.

    `reserved` is what the order locked when it was placed (quote for buys, base for sells);
    filling or cancelling releases exactly that. `fill_from` is the open time of the first
    candle the order may fill on. `reason` is why it was placed; `state_reason` why it was
    cancelled or rejected.
    """

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("client_order_id"),
        Index("ix_orders_bot_state", "bot_id", "state"),
        Index("ix_orders_bot_created", "bot_id", "created_at"),
        CheckConstraint("side IN ('buy', 'sell')", name="side"),
        CheckConstraint("type IN ('market', 'limit')", name="type"),
        CheckConstraint("state IN ('open', 'filled', 'cancelled', 'rejected')", name="state"),
        CheckConstraint("amount IS NOT NULL OR quote_amount IS NOT NULL", name="sized"),
        *_non_negative("reserved"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    bot_id: Mapped[int] = mapped_column(ForeignKey("bots.id", ondelete="CASCADE"))
    symbol: Mapped[str] = mapped_column(String(40))
    side: Mapped[str] = mapped_column(String(4))
    type: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(12), default="open", server_default="open")
    amount: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    quote_amount: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    price: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    reserved: Mapped[Decimal] = mapped_column(ExactDecimal())
    filled_amount: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    average_price: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    cost: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    fee: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    client_order_id: Mapped[str] = mapped_column(String(64))
    fill_from: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    filled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    bootstrap: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    reason: Mapped[str | None] = mapped_column(Text)
    state_reason: Mapped[str | None] = mapped_column(Text)


class Fill(Base):
    """One execution. Orders fill in full, so an order has at most one fill.

    `cost_basis_change` is what the fill added to (buy: +cost) or removed from (sell) the
    position's cost basis; `realised_pnl` is proceeds minus the cost removed (before fees).
    A fill that closes the position carries the round trip's net result in
    `closed_trade_pnl` (realised PnL minus every fee since `trade_opened_at`).
    """

    __tablename__ = "fills"
    __table_args__ = (
        UniqueConstraint("order_id"),
        Index("ix_fills_bot_id", "bot_id", "id"),
        CheckConstraint("side IN ('buy', 'sell')", name="side"),
        CheckConstraint("liquidity IN ('maker', 'taker')", name="liquidity"),
        *_non_negative("amount", "price", "cost", "fee"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    bot_id: Mapped[int] = mapped_column(ForeignKey("bots.id", ondelete="CASCADE"))
    side: Mapped[str] = mapped_column(String(4))
    amount: Mapped[Decimal] = mapped_column(ExactDecimal())
    price: Mapped[Decimal] = mapped_column(ExactDecimal())
    cost: Mapped[Decimal] = mapped_column(ExactDecimal())
    fee: Mapped[Decimal] = mapped_column(ExactDecimal())
    fee_asset: Mapped[str] = mapped_column(String(16))
    liquidity: Mapped[str] = mapped_column(String(5))
    realised_pnl: Mapped[Decimal] = mapped_column(ExactDecimal())
    cost_basis_change: Mapped[Decimal] = mapped_column(ExactDecimal())
    closed_trade_pnl: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    trade_opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    candle_ts: Mapped[datetime] = mapped_column(UTCDateTime())
    filled_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Position(Base):
    """A bot's book for its symbol (one row per bot, created by `open_bot_ledger`)."""

    __tablename__ = "positions"
    __table_args__ = _non_negative("amount", "cost_basis", "fees_paid", "initial_capital")

    bot_id: Mapped[int] = mapped_column(
        ForeignKey("bots.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    symbol: Mapped[str] = mapped_column(String(40))
    base: Mapped[str] = mapped_column(String(16))
    quote: Mapped[str] = mapped_column(String(16))
    initial_capital: Mapped[Decimal] = mapped_column(ExactDecimal())
    amount: Mapped[Decimal] = mapped_column(ExactDecimal())
    cost_basis: Mapped[Decimal] = mapped_column(ExactDecimal())
    avg_entry_price: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    realised_pnl: Mapped[Decimal] = mapped_column(ExactDecimal())
    fees_paid: Mapped[Decimal] = mapped_column(ExactDecimal())
    trip_pnl: Mapped[Decimal] = mapped_column(ExactDecimal())
    trip_fees: Mapped[Decimal] = mapped_column(ExactDecimal())
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Balance(Base):
    """What a bot holds of one asset; `locked` is reserved by its open orders."""

    __tablename__ = "balances"
    __table_args__ = _non_negative("free", "locked")

    bot_id: Mapped[int] = mapped_column(
        ForeignKey("bots.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    asset: Mapped[str] = mapped_column(String(16), primary_key=True)
    free: Mapped[Decimal] = mapped_column(ExactDecimal())
    locked: Mapped[Decimal] = mapped_column(ExactDecimal())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


class EquitySnapshot(Base):
    """A bot's equity in its quote currency at one instant (one per bot and `ts`)."""

    __tablename__ = "equity_snapshots"
    __table_args__ = (UniqueConstraint("bot_id", "ts"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bot_id: Mapped[int] = mapped_column(ForeignKey("bots.id", ondelete="CASCADE"))
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    equity: Mapped[Decimal] = mapped_column(ExactDecimal())
    cash: Mapped[Decimal] = mapped_column(ExactDecimal())
    position_amount: Mapped[Decimal] = mapped_column(ExactDecimal())
    price: Mapped[Decimal] = mapped_column(ExactDecimal())


class PricingSnapshot(Base):
    """One portfolio valuation: its inputs (holdings, prices, pegs) and its result, so the
    same numbers can be shown again and recomputed (`app.services.portfolio.revalue`)."""

    __tablename__ = "pricing_snapshots"
    __table_args__ = (Index("ix_pricing_snapshots_user", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    base_currency: Mapped[str] = mapped_column(String(10))
    total: Mapped[Decimal] = mapped_column(ExactDecimal())
    complete: Mapped[bool] = mapped_column(Boolean)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONType)
    valuation: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
