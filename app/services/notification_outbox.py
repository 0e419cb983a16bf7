"""Which events become notifications, and the outbox rows written with them.

`enqueue(session, events)` is called wherever events are recorded (`services.events`), in
the same transaction: each event that maps to a notification kind gets one outbox row per
enabled channel of its owner that selected the kind (an emergency stop or resume: every
user's channels). So a notification exists exactly when its event was committed, and once.
Events that map to no kind cost nothing; the others cost one query for the channels.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from app.store.base import utcnow
from app.store.models import Bot
from app.store.models.ledger import Order
from app.store.models.notifications import NotificationChannel, NotificationDelivery

EVENT_KINDS: dict[str, str] = {
    "trade_opened": "a bot bought (a trade opened)",
    "trade_closed": "a bot sold (a trade closed), with its profit and exit reason",
    "bot_paused": "a bot was paused or stopped by an error",
    "protection_tripped": "a protection paused a bot",
    "live_gate_changed": "a live bot's gates no longer hold (it was paused)",
    "emergency_stop": "an administrator stopped all trading (sent to every user)",
    "emergency_resume": "the emergency stop was cleared (sent to every user)",
    "job_finished": "a background job (backtest, analysis, download) finished",
}
BROADCAST_KINDS = frozenset({"emergency_stop", "emergency_resume"})
_FINISHED = frozenset({"succeeded", "failed", "cancelled"})

Event = tuple[int | None, str, dict[str, Any] | None]


@dataclass(frozen=True)
class Notice:
    kind: str
    user_id: int | None  # None: every user (broadcast kinds)
    data: dict[str, Any]


def classify(user_id: int | None, event_type: str, data: dict[str, Any] | None) -> Notice | None:
    """The notification an event stands for, if any."""
    data = data or {}
    if event_type == "trade" and user_id is not None:
        kind = "trade_opened" if data.get("side") == "buy" else "trade_closed"
        return Notice(kind, user_id, data)
    if event_type == "bot_status" and user_id is not None and data.get("status") == "paused":
        return Notice("bot_paused", user_id, data)
    if event_type == "job_progress" and user_id is not None and data.get("state") in _FINISHED:
        return Notice("job_finished", user_id, data)
    if event_type == "alert":
        code = str(data.get("code") or "")
        if code in BROADCAST_KINDS:  # the owners' copies of the stop are covered by this one
            return Notice(code, None, data) if user_id is None else None
        if user_id is None:
            return None
        if code.startswith("protection_") and code != "protection_resumed":
            return Notice("protection_tripped", user_id, data)
        if code == "live_gates_failed":
            return Notice("live_gate_changed", user_id, data)
    return None


def _text(session: Session, notice: Notice) -> tuple[str, dict[str, Any]]:
    """A sentence for chat channels, and the payload data (with what the sentence used)."""
    d = dict(notice.data)
    bot = session.get(Bot, d["bot_id"]) if d.get("bot_id") else None
    who = f"{bot.name} ({bot.symbol})" if bot is not None else f"bot #{d.get('bot_id')}"
    if bot is not None:
        d.setdefault("bot_name", bot.name)
        d.setdefault("symbol", bot.symbol)
    kind = notice.kind
    if kind == "trade_opened":
        return f"{who}: bought {d.get('amount')} at {d.get('price')}", d
    if kind == "trade_closed":
        order = session.get(Order, d["order_id"]) if d.get("order_id") else None
        d["exit_reason"] = order.reason if order is not None else None
        d["profit"] = d.get("closed_trade_pnl")
        reason = f" ({d['exit_reason']})" if d["exit_reason"] else ""
        return (
            f"{who}: sold {d.get('amount')} at {d.get('price')}{reason}; profit {d['profit']}",
            d,
        )
    if kind == "bot_paused":
        return f"{who} paused: {d.get('pause_reason') or 'by its owner'}", d
    if kind == "job_finished":
        return f"job #{d.get('job_id')} ({d.get('kind')}) {d.get('state')}", d
    return str(d.get("message") or kind), d


def enqueue(session: Session, events: Iterable[Event]) -> int:
    """Write the outbox rows for these events in the session's transaction; how many."""
    notices = [n for n in (classify(*e) for e in events) if n is not None]
    if not notices:
        return 0
    owners = {n.user_id for n in notices if n.user_id is not None}
    query = select(NotificationChannel).where(NotificationChannel.enabled.is_(True))
    if not any(n.user_id is None for n in notices):
        query = query.where(NotificationChannel.user_id.in_(owners))
    channels = list(session.scalars(query.order_by(NotificationChannel.id)))
    if not channels:
        return 0
    now = utcnow()
    rows = []
    for notice in notices:
        wanted = [
            c
            for c in channels
            if notice.kind in (c.events or [])
            and (notice.user_id is None or c.user_id == notice.user_id)
        ]
        if not wanted:
            continue
        text, data = _text(session, notice)
        payload = json.loads(
            json.dumps({"text": text, "data": data, "created_at": now.isoformat()}, default=str)
        )
        rows += [
            {
                "channel_id": c.id,
                "event": notice.kind,
                "payload": payload,
                "state": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for c in wanted
        ]
    if rows:
        session.execute(insert(NotificationDelivery), rows)
    return len(rows)
