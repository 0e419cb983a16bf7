"""The queued signals of a signal bot, taken one per tick and settled with what the tick did.

The tick (`app.engine.tick`) turns the oldest queued signal into its entry or exit and runs
it through the same path as a strategy's signal (sizing, protections, live gates, the
emergency stop inside the order's transaction, the broker); `settle` records the outcome on
the signal row in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.store.models.signals import BotSignal
from config import get_settings


def next_signal(
    session: Session, bot_id: int, now: datetime, before_write: Callable[[], None]
) -> BotSignal | None:
    """The oldest queued signal of the (row-locked) bot still inside the replay window;
    older ones (queued while the bot was paused, say) are refused as expired, not run late."""
    max_age = timedelta(seconds=get_settings().signal_replay_seconds)
    queued = session.scalars(
        select(BotSignal)
        .where(BotSignal.bot_id == bot_id, BotSignal.state == "queued")
        .order_by(BotSignal.id)
        .limit(50)
    )
    for row in queued:
        if now - row.created_at <= max_age:
            return row
        before_write()
        row.state, row.processed_at = "refused", now
        row.outcome = f"expired: not run within {int(max_age.total_seconds())} s"
    return None


def signal_stake(row: BotSignal, *, price: Decimal, cash: Decimal) -> Decimal | None:
    """The quote stake a buy signal asks for: `amount` in base units at the reference price,
    or `percentage` of the bot's free cash; capped at that cash. None when the signal names no
    size, so the bot's own sizing applies."""
    if row.amount is not None:
        return min(row.amount * price, cash)
    if row.percentage is not None:
        return cash * row.percentage / 100
    return None


def settle(row: BotSignal, action: str | None, details: dict[str, Any], *, held: bool,
           now: datetime) -> None:  # fmt: skip
    """Record what became of the signal: executed (an order was placed) or refused, why."""
    row.processed_at = now
    if action in ("buy", "sell"):
        row.state = "executed"
        order = details.get("order") or {}
        row.outcome = f"{action} order {order.get('client_order_id', '')}".strip()
        return
    row.state = "refused"
    if action == "halted":
        row.outcome = "emergency stop active: no order placed"
    elif action == "held":
        row.outcome = f"held back: {details.get('held')}"
    elif action == "no_stake":
        row.outcome = f"sizing gave no stake ({(details.get('sizing') or {}).get('reason')})"
    elif action == "rejected":
        row.outcome = f"refused by the broker: {(details.get('rejected') or {}).get('message')}"
    elif row.action == "buy" and held:
        row.outcome = "already in a position"
    elif row.action == "sell" and not held:
        row.outcome = "no position to sell"
    else:
        row.outcome = "an order is already on its way"
