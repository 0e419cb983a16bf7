"""Paper-trading ledger: orders, fills, positions, balances, equity and pricing snapshots.

Money columns use the exact `Money` type of `app.store.base` (canonical text on SQLite), so
`flask reconcile` holds "to the smallest unit" on both databases.

One bot trades one symbol, so a bot has one `Position` row (its book: position, cost basis,
realised PnL, fees, and the capital it started with) and one `Balance` row per asset (quote
and base), each split into `free` and `locked` (reserved by open orders), never negative.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.store.base import MONEY_QUANTUM, Base, JSONType, Money, UTCDateTime, quantize, utcnow

__all__ = [
    "LEDGER_QUANTUM",
    "Balance",
    "EquitySnapshot",
    "Money",
    "Fill",
    "Order",
    "Position",
    "PricingSnapshot",
    "quantize",
]

ORDER_STATES = ("open", "filled", "cancelled", "rejected")
SUBMIT_STATES = ("pending", "unknown", "accepted")
LEDGER_QUANTUM = MONEY_QUANTUM


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

    Live orders (`app.engine.live_broker`) are `open` in the ledger from the moment they are
    recorded; `submit_state` says where they are on the exchange: `pending` (recorded, never
    sent), `unknown` (perhaps sent: only ever looked up, never sent again), `accepted` (the
    exchange has it as `exchange_order_id`). Paper orders leave all three columns NULL.
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
        CheckConstraint(
            "submit_state IS NULL OR submit_state IN ('pending', 'unknown', 'accepted')",
            name="submit_state",
        ),
        *_non_negative("reserved"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    bot_id: Mapped[int] = mapped_column(ForeignKey("bots.id", ondelete="CASCADE"))
    symbol: Mapped[str] = mapped_column(String(40))
    side: Mapped[str] = mapped_column(String(4))
    type: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(12), default="open", server_default="open")
    amount: Mapped[Decimal | None] = mapped_column(Money())
    quote_amount: Mapped[Decimal | None] = mapped_column(Money())
    price: Mapped[Decimal | None] = mapped_column(Money())
    reserved: Mapped[Decimal] = mapped_column(Money())
    filled_amount: Mapped[Decimal | None] = mapped_column(Money())
    average_price: Mapped[Decimal | None] = mapped_column(Money())
    cost: Mapped[Decimal | None] = mapped_column(Money())
    fee: Mapped[Decimal | None] = mapped_column(Money())
    client_order_id: Mapped[str] = mapped_column(String(64))
    fill_from: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    filled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    bootstrap: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    reason: Mapped[str | None] = mapped_column(Text)
    entry_tag: Mapped[str | None] = mapped_column(String(64))  # a tagged document entry's
    state_reason: Mapped[str | None] = mapped_column(Text)
    submit_state: Mapped[str | None] = mapped_column(String(10))
    exchange_order_id: Mapped[str | None] = mapped_column(String(64))
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


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
    amount: Mapped[Decimal] = mapped_column(Money())
    price: Mapped[Decimal] = mapped_column(Money())
    cost: Mapped[Decimal] = mapped_column(Money())
    fee: Mapped[Decimal] = mapped_column(Money())
    fee_asset: Mapped[str] = mapped_column(String(16))
    liquidity: Mapped[str] = mapped_column(String(5))
    realised_pnl: Mapped[Decimal] = mapped_column(Money())
    cost_basis_change: Mapped[Decimal] = mapped_column(Money())
    closed_trade_pnl: Mapped[Decimal | None] = mapped_column(Money())
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
    initial_capital: Mapped[Decimal] = mapped_column(Money())
    amount: Mapped[Decimal] = mapped_column(Money())
    cost_basis: Mapped[Decimal] = mapped_column(Money())
    avg_entry_price: Mapped[Decimal | None] = mapped_column(Money())
    realised_pnl: Mapped[Decimal] = mapped_column(Money())
    fees_paid: Mapped[Decimal] = mapped_column(Money())
    trip_pnl: Mapped[Decimal] = mapped_column(Money())
    trip_fees: Mapped[Decimal] = mapped_column(Money())
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
    free: Mapped[Decimal] = mapped_column(Money())
    locked: Mapped[Decimal] = mapped_column(Money())
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
    equity: Mapped[Decimal] = mapped_column(Money())
    cash: Mapped[Decimal] = mapped_column(Money())
    position_amount: Mapped[Decimal] = mapped_column(Money())
    price: Mapped[Decimal] = mapped_column(Money())


class PricingSnapshot(Base):
    """One portfolio valuation: its inputs (holdings, prices, pegs) and its result, so the
    same numbers can be shown again and recomputed (`app.services.portfolio.revalue`)."""

    __tablename__ = "pricing_snapshots"
    __table_args__ = (Index("ix_pricing_snapshots_user", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    base_currency: Mapped[str] = mapped_column(String(10))
    total: Mapped[Decimal] = mapped_column(Money())
    complete: Mapped[bool] = mapped_column(Boolean)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONType)
    valuation: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
