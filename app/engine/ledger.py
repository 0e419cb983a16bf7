"""The ledger seen from above the broker: opening a bot's books, equity, closed trades and the
numbers the performance metrics (`app.domain.metrics`) are computed from.

Writes here are plain inserts/updates in the caller's transaction (no commit); fills and
cancels go through `app.engine.broker`, which owns the atomic fill.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal, localcontext

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.metrics import (
    ClosedTrade,
    PerformanceMetrics,
    compute_metrics,
)
from app.domain.times import to_ms
from app.engine.broker import book_of, bot_decimal
from app.engine.fill_model import Book
from app.errors import NotFound, ValidationFailed
from app.market.base import timeframe_seconds
from app.store.base import as_utc, utcnow
from app.store.models import Bot
from app.store.models.ledger import (
    Balance,
    EquitySnapshot,
    Fill,
    Order,
    Position,
    quantize,
)

__all__ = [
    "BotPerformance",
    "LedgerView",
    "bot_equity",
    "bot_performance",
    "closed_trade_pnls",
    "closed_trades",
    "equity_curve",
    "get_book",
    "ledger_view",
    "list_orders",
    "open_bot_ledger",
    "record_equity_snapshot",
    "split_symbol",
]


def split_symbol(symbol: str) -> tuple[str, str]:
    """("ETH", "BTC") for "ETH/BTC" (and "BTC/USDT:USDT" -> ("BTC", "USDT"))."""
    base, sep, quote = symbol.partition("/")
    quote = quote.split(":", 1)[0]
    if not sep or not base or not quote:
        raise ValidationFailed(f"symbol must look like BASE/QUOTE, got {symbol!r}")
    return base.upper(), quote.upper()


def open_bot_ledger(session: Session, bot: Bot) -> Position:
    """Create the bot's books: position (empty) and balances (quote = capital, base = 0).
    Idempotent: a second call returns the existing position and changes nothing."""
    existing = session.get(Position, bot.id)
    if existing is not None:
        return existing
    base, quote = split_symbol(bot.symbol)
    capital = bot_decimal(bot, bot.capital)
    if not capital.is_finite() or capital <= 0:
        raise ValidationFailed(f"capital must be > 0, got {capital:f}")
    now = utcnow()
    zero = Decimal(0)
    position = Position(
        bot_id=bot.id,
        symbol=bot.symbol,
        base=base,
        quote=quote,
        initial_capital=quantize(capital),
        amount=zero,
        cost_basis=zero,
        avg_entry_price=None,
        realised_pnl=zero,
        fees_paid=zero,
        trip_pnl=zero,
        trip_fees=zero,
        created_at=now,
        updated_at=now,
    )
    session.add(position)
    session.add(Balance(bot_id=bot.id, asset=quote, free=capital, locked=zero, updated_at=now))
    if base != quote:
        session.add(Balance(bot_id=bot.id, asset=base, free=zero, locked=zero, updated_at=now))
    session.flush()
    return position


def _position(session: Session, bot_id: int) -> Position:
    position = session.get(Position, bot_id)
    if position is None:
        raise NotFound(f"bot {bot_id} has no ledger")
    return position


def get_book(session: Session, bot_id: int) -> Book:
    """The bot's book, read without locking (for display and valuation)."""
    position = _position(session, bot_id)
    balances = {
        b.asset: b for b in session.scalars(select(Balance).where(Balance.bot_id == bot_id))
    }
    return book_of(position, balances[position.quote], balances[position.base])


def bot_equity(session: Session, bot: Bot, price: Decimal) -> Decimal:
    """Cash (free + reserved) plus the position at `price`, in the bot's quote currency."""
    return get_book(session, bot.id).equity(price)


def closed_trades(session: Session, bot_id: int) -> list[ClosedTrade]:
    """Round trips (flat -> position -> flat), oldest first, net of every fee they paid."""
    rows = session.execute(
        select(Fill.closed_trade_pnl, Fill.trade_opened_at, Fill.candle_ts)
        .where(Fill.bot_id == bot_id, Fill.closed_trade_pnl.is_not(None))
        .order_by(Fill.id)
    ).all()
    return [
        ClosedTrade(
            pnl=pnl,
            entry_ts=to_ms(opened or closed),
            exit_ts=to_ms(closed),
        )
        for pnl, opened, closed in rows
    ]


def closed_trade_pnls(session: Session, bot_id: int) -> list[Decimal]:
    """Net PnL of each closed round trip, oldest first (what Kelly sizing learns from)."""
    return list(
        session.scalars(
            select(Fill.closed_trade_pnl)
            .where(Fill.bot_id == bot_id, Fill.closed_trade_pnl.is_not(None))
            .order_by(Fill.id)
        )
    )


def record_equity_snapshot(
    session: Session, bot: Bot, price: Decimal, *, ts: datetime
) -> EquitySnapshot:
    """The bot's equity at `ts` valued at `price`; one row per bot and `ts` (a retried tick
    gets the row it already wrote)."""
    ts = as_utc(ts)  # type: ignore[assignment]
    existing = session.scalar(
        select(EquitySnapshot).where(EquitySnapshot.bot_id == bot.id, EquitySnapshot.ts == ts)
    )
    if existing is not None:
        return existing
    book = get_book(session, bot.id)
    snap = EquitySnapshot(
        bot_id=bot.id,
        ts=ts,
        equity=book.equity(price),
        cash=book.cash,
        position_amount=book.position,
        price=price,
    )
    session.add(snap)
    session.flush()
    return snap


def equity_curve(
    session: Session, bot_id: int, *, since: datetime | None = None, limit: int | None = None
) -> list[EquitySnapshot]:
    """Equity snapshots oldest first (the newest `limit` when a limit is given)."""
    stmt = select(EquitySnapshot).where(EquitySnapshot.bot_id == bot_id)
    if since is not None:
        stmt = stmt.where(EquitySnapshot.ts >= as_utc(since))
    if limit is not None:
        rows = list(session.scalars(stmt.order_by(EquitySnapshot.ts.desc()).limit(limit)))
        return rows[::-1]
    return list(session.scalars(stmt.order_by(EquitySnapshot.ts)))


@dataclass(frozen=True)
class BotPerformance:
    """The metrics of a bot, over how many equity points, from what starting capital."""

    metrics: PerformanceMetrics
    points: int
    capital: Decimal | None


def bot_performance(session: Session, bot: Bot) -> BotPerformance:
    """Total return, drawdown, Sharpe/Sortino, exposure and trade stats from the bot's equity
    snapshots and closed trades (the formulas are the domain's, `app.domain.metrics`).

    The curve has one point per candle up to the last candle the bot saw: snapshots are
    forward-filled, since while flat and idle the equity does not move (and is not stored)."""
    curve = equity_curve(session, bot.id)
    position = session.get(Position, bot.id)
    tf_ms = timeframe_seconds(bot.timeframe) * 1000
    ts = np.array([to_ms(s.ts) for s in curve], dtype=np.int64)
    values = np.array([float(s.equity) for s in curve], dtype=np.float64)
    if ts.size:
        end = int(ts[-1])
        if bot.last_candle_ts is not None:
            end = max(end, int(bot.last_candle_ts) + tf_ms)
        grid = np.arange(ts[0], end + 1, tf_ms, dtype=np.int64)
        idx = np.searchsorted(ts, grid, side="right") - 1
        ts, values = grid, values[idx]
    opened = position.opened_at if position is not None and position.amount > 0 else None
    metrics = compute_metrics(
        ts,
        values,
        closed_trades(session, bot.id),
        open_since_ts=to_ms(opened) if opened else None,
    )
    capital = position.initial_capital if position is not None else None
    return BotPerformance(metrics, int(ts.size), capital)


def list_orders(
    session: Session, bot_id: int, *, state: str | None = None, limit: int = 100
) -> list[Order]:
    """The bot's orders, newest first."""
    stmt = select(Order).where(Order.bot_id == bot_id)
    if state is not None:
        stmt = stmt.where(Order.state == state)
    return list(session.scalars(stmt.order_by(Order.id.desc()).limit(limit)))


@dataclass(frozen=True)
class LedgerView:
    """A bot's ledger at a glance (what an API would show)."""

    symbol: str
    base: str
    quote: str
    initial_capital: Decimal
    cash: Decimal
    position: Decimal
    avg_entry_price: Decimal | None
    cost_basis: Decimal
    realised_pnl: Decimal
    fees_paid: Decimal
    balances: dict[str, dict[str, Decimal]]
    open_orders: int
    equity: Decimal | None
    unrealised_pnl: Decimal | None
    price: Decimal | None = None


def ledger_view(session: Session, bot: Bot, price: Decimal | None = None) -> LedgerView:
    position = _position(session, bot.id)
    book = get_book(session, bot.id)
    balances = {
        b.asset: {"free": b.free, "locked": b.locked}
        for b in session.scalars(select(Balance).where(Balance.bot_id == bot.id))
    }
    open_orders = len(list_orders(session, bot.id, state="open", limit=10_000))
    equity = book.equity(price) if price is not None else None
    unrealised = None
    if price is not None:
        with localcontext() as ctx:
            ctx.prec = 80  # a product of two 38-digit numbers, never rounded before the grid
            unrealised = quantize(book.position * price - book.cost_basis, ROUND_FLOOR)
    return LedgerView(
        symbol=position.symbol,
        base=position.base,
        quote=position.quote,
        initial_capital=position.initial_capital,
        cash=book.cash,
        position=book.position,
        avg_entry_price=position.avg_entry_price,
        cost_basis=book.cost_basis,
        realised_pnl=book.realised_pnl,
        fees_paid=book.fees_paid,
        balances=balances,
        open_orders=open_orders,
        equity=equity,
        unrealised_pnl=unrealised,
        price=price,
    )
