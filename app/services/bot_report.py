"""A bot's trade report: the same report a backtest carries (`app.domain.report`), built
from the bot's fills, its orders' reasons and its equity snapshots."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.report import RoundTrip, build_report
from app.domain.times import to_ms
from app.engine.ledger import equity_curve
from app.services.bots import bot_performance
from app.store.models import Bot
from app.store.models.ledger import Fill, Order

MAX_ROUND_TRIPS = 10_000


def bot_round_trips(session: Session, bot: Bot) -> list[RoundTrip]:
    """Round trips (flat -> position -> flat), oldest first: the buys' average price and
    cost (fees included) against the sells', the closing order's reason as exit reason and
    the opening order's entry tag."""
    rows = session.execute(
        select(Fill, Order.reason, Order.entry_tag)
        .join(Order, Order.id == Fill.order_id)
        .where(Fill.bot_id == bot.id)
        .order_by(Fill.id)
    ).all()
    trips: list[RoundTrip] = []
    bought = paid = cost = sold = proceeds = Decimal(0)
    first_ts: int | None = None
    tag: str | None = None
    for fill, reason, entry_tag in rows:
        fee = fill.fee if fill.fee_asset != _base(bot) else fill.fee * fill.price
        if fill.side == "buy":
            bought += fill.amount
            paid += fill.cost
            cost += fill.cost + fee
            if first_ts is None:
                first_ts, tag = to_ms(fill.candle_ts), entry_tag
        else:
            sold += fill.amount
            proceeds += fill.cost
        if fill.closed_trade_pnl is None:
            continue
        opened = to_ms(fill.trade_opened_at) if fill.trade_opened_at else first_ts
        trips.append(RoundTrip(
            entry_ts=opened if opened is not None else to_ms(fill.candle_ts),
            exit_ts=to_ms(fill.candle_ts),
            entry_price=(paid / bought) if bought else fill.price,
            exit_price=(proceeds / sold) if sold else fill.price,
            amount=bought, cost_basis=cost, pnl=fill.closed_trade_pnl,
            exit_reason=reason or "unknown", entry_tag=tag,
        ))  # fmt: skip
        bought = paid = cost = sold = proceeds = Decimal(0)
        first_ts = tag = None
    return trips


def _base(bot: Bot) -> str:
    return bot.symbol.split("/")[0]


def bot_report(session: Session, bot: Bot) -> dict[str, Any]:
    """The report of a bot's run so far (docs/backtesting.md, "The report")."""
    snaps = equity_curve(session, bot.id)
    ts = np.array([to_ms(s.ts) for s in snaps], dtype=np.int64)
    equity = np.array([float(s.equity) for s in snaps], dtype=np.float64)
    closes = np.array([float(s.price) for s in snaps], dtype=np.float64)
    perf = bot_performance(session, bot)
    return build_report(
        bot_round_trips(session, bot), ts, equity, capital=perf.capital or bot.capital,
        closes=closes, metrics=perf.metrics, max_round_trips=MAX_ROUND_TRIPS,
    )  # fmt: skip
