"""Protections at trade time: the tick asks `check_before_trade` before it sizes an entry.

A trip that pauses the bot is written here, on the tick's own `bot` object and in the tick's
transaction: the bot is paused with `pause_reason = "protection:<name>"`, the trip is kept
(`protection_trips`: protections count only what happened after the newest trip), and the
owner gets an alert. Trips with a cooldown set `cooldown_until`; `resume_cooled_down_bots`
(run by self-healing) resumes those bots once it has passed, unless the emergency stop is on.
The cooldown after a trade only holds entries back and pauses nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import Numeric, cast, func, select, update
from sqlalchemy.orm import Session

from app.domain.protections import (
    ClosedTrade,
    ProtectionConfig,
    ProtectionFacts,
    Trip,
    evaluate_protections,
    parse_protections,
    start_of_day,
)
from app.domain.times import iso
from app.services.alerts import raise_alert
from app.services.bots import first_tick_at
from app.services.live_gates import live_eligibility
from app.store.base import as_utc
from app.store.emergency_flag import emergency_stop_active
from app.store.models import Bot
from app.store.models.ledger import EquitySnapshot, Fill, Order
from app.store.models.safety import ProtectionTrip
from config import get_settings

if TYPE_CHECKING:
    from config import Settings

log = logging.getLogger("tradewind.risk")

PROTECTION_PREFIX = "protection:"
LIVE_GATES_PREFIX = "live_gates:"
EMERGENCY_REASON = "emergency_stop"
RECENT_TRADES = 100


def default_protections(settings: Settings | None = None) -> ProtectionConfig:
    """Defaults from settings (`PROTECTION_<NAME>`); the built-in ones if those are invalid."""
    if settings is None:
        settings = get_settings()
    raw = {
        "max_drawdown": settings.protection_max_drawdown,
        "max_losing_streak": settings.protection_max_losing_streak,
        "losing_streak_cooldown_minutes": settings.protection_losing_streak_cooldown_minutes,
        "daily_loss_limit": settings.protection_daily_loss_limit,
        "stoploss_guard_trades": settings.protection_stoploss_guard_trades,
        "stoploss_guard_window_minutes": settings.protection_stoploss_guard_window_minutes,
        "stoploss_guard_cooldown_minutes": settings.protection_stoploss_guard_cooldown_minutes,
        "trade_cooldown_minutes": settings.protection_trade_cooldown_minutes,
    }
    try:
        return parse_protections(raw)
    except ValueError as exc:
        log.error("bad protection defaults in settings (%s); built-in defaults used", exc)
        return ProtectionConfig()


def bot_protections(bot: Bot, defaults: ProtectionConfig | None = None) -> ProtectionConfig:
    """The bot's protections over the defaults; a malformed value falls back to the defaults
    (which are on), so a bad row can never switch protections off."""
    defaults = defaults or default_protections()
    try:
        return parse_protections(bot.protections or {}, defaults)
    except ValueError as exc:
        log.warning("bot %s has invalid protections (%s); defaults apply", bot.id, exc)
        return defaults


def last_trip_at(session: Session, bot_id: int) -> datetime | None:
    return as_utc(
        session.scalar(
            select(func.max(ProtectionTrip.tripped_at)).where(ProtectionTrip.bot_id == bot_id)
        )
    )


def _recent_trades(session: Session, bot_id: int, since: datetime | None) -> list[ClosedTrade]:
    stmt = (
        select(Fill.filled_at, Fill.closed_trade_pnl, Order.reason)
        .join(Order, Order.id == Fill.order_id)
        .where(Fill.bot_id == bot_id, Fill.closed_trade_pnl.is_not(None))
        .order_by(Fill.id.desc())
        .limit(RECENT_TRADES)
    )
    if since is not None:
        stmt = stmt.where(Fill.filled_at > since)
    rows = session.execute(stmt).all()
    trades = [ClosedTrade(as_utc(at), Decimal(pnl), reason) for at, pnl, reason in rows]  # type: ignore[arg-type]
    trades.reverse()
    return trades


def _equity_points(
    session: Session, bot_id: int, since: datetime | None, now: datetime
) -> list[tuple[datetime, Decimal]]:
    """The few snapshots the rules need, not the whole curve: the peak since the last trip,
    the last one before today's reference instant, and the newest."""
    points: dict[datetime, Decimal] = {}
    mine = EquitySnapshot.bot_id == bot_id
    latest = session.execute(
        select(EquitySnapshot.ts, EquitySnapshot.equity)
        .where(mine)
        .order_by(EquitySnapshot.ts.desc())
        .limit(1)
    ).first()
    if latest is None:
        return []
    points[as_utc(latest[0])] = latest[1]  # type: ignore[index]
    # numeric max (on SQLite the ledger stores exact decimals as text)
    peak_value = cast(EquitySnapshot.equity, Numeric(38, 18))
    peak_stmt = select(EquitySnapshot.ts, EquitySnapshot.equity).where(mine)
    if since is not None:
        peak_stmt = peak_stmt.where(EquitySnapshot.ts > since)
    peak = session.execute(peak_stmt.order_by(peak_value.desc()).limit(1)).first()
    if peak is not None:
        points[as_utc(peak[0])] = peak[1]  # type: ignore[index]
    reference_at = start_of_day(now)
    if since is not None and since > reference_at:
        reference_at = since
    reference = session.execute(
        select(EquitySnapshot.ts, EquitySnapshot.equity)
        .where(mine, EquitySnapshot.ts <= reference_at)
        .order_by(EquitySnapshot.ts.desc())
        .limit(1)
    ).first()
    if reference is not None:
        points[as_utc(reference[0])] = reference[1]  # type: ignore[index]
    return sorted(points.items())


def protection_facts(session: Session, bot: Bot, now: datetime) -> ProtectionFacts:
    since = last_trip_at(session, bot.id)
    trades = _recent_trades(session, bot.id, since)
    last_exit = as_utc(
        session.scalar(
            select(func.max(Fill.filled_at)).where(
                Fill.bot_id == bot.id, Fill.closed_trade_pnl.is_not(None)
            )
        )
    )
    return ProtectionFacts(
        now=now,
        since=since,
        trades=trades,
        equity=_equity_points(session, bot.id, since, now),
        last_trade_at=last_exit,
    )


def pause_bot(session: Session, bot: Bot, reason: str, *, resume_at: datetime | None) -> None:
    """Pause the bot on its own ORM object, so the caller's tick commits it with the rest."""
    bot.status = "paused"
    bot.pause_reason = reason[:200]
    bot.cooldown_until = resume_at
    bot.next_tick_at = None if bot.exit_requested_at is None else bot.next_tick_at
    session.flush()


def trip_protection(session: Session, bot: Bot, trip: Trip, now: datetime) -> None:
    pause_bot(session, bot, trip.reason, resume_at=trip.resume_at)
    session.add(
        ProtectionTrip(
            bot_id=bot.id,
            protection=trip.protection,
            message=trip.message,
            tripped_at=now,
            resume_at=trip.resume_at,
        )
    )
    session.flush()
    until = f"; resumes at {iso(trip.resume_at)}" if trip.resume_at else ""
    raise_alert(
        session,
        user_id=bot.user_id,
        severity="warning",
        code=f"protection_{trip.protection}",
        message=f"bot {bot.name!r} (#{bot.id}) paused by {trip.protection}: {trip.message}{until}",
        bot_id=bot.id,
    )


def check_live_gates(session: Session, bot: Bot, now: datetime) -> str | None:
    """For a live bot: pause it (reason `live_gates:<codes>`) when its gates no longer hold."""
    result = live_eligibility(session, bot, now=now)
    if result["live_allowed"]:
        return None
    codes = ",".join(r["code"] for r in result["reasons"])
    reason = f"{LIVE_GATES_PREFIX}{codes}"
    pause_bot(session, bot, reason, resume_at=None)
    raise_alert(
        session,
        user_id=bot.user_id,
        severity="critical",
        code="live_gates_failed",
        message=f"live bot {bot.name!r} (#{bot.id}) paused: "
        + "; ".join(r["message"] for r in result["reasons"]),
        bot_id=bot.id,
    )
    return reason


def check_before_trade(session: Session, bot: Bot, now: datetime) -> str | None:
    """None to go on with an entry; else why not. When the reason needs the bot paused, it
    is paused here (status, pause_reason, alert) - the caller only skips the entry."""
    now = as_utc(now)  # type: ignore[assignment]
    if emergency_stop_active(session):
        return EMERGENCY_REASON  # the stop itself paused the bot
    if bot.mode == "live":
        reason = check_live_gates(session, bot, now)
        if reason is not None:
            return reason
    trip = evaluate_protections(bot_protections(bot), protection_facts(session, bot, now))
    if trip is None:
        return None
    if trip.pause:
        trip_protection(session, bot, trip, now)
    return trip.reason


def cooled_down_bot_ids(session: Session, now: datetime) -> list[int]:
    """Bots paused by a protection whose cooldown has passed."""
    return list(
        session.scalars(
            select(Bot.id).where(
                Bot.status == "paused",
                Bot.deleted_at.is_(None),
                Bot.pause_reason.like(f"{PROTECTION_PREFIX}%"),
                Bot.cooldown_until.is_not(None),
                Bot.cooldown_until <= now,
            )
        )
    )


def resume_after_cooldown(session: Session, bot_id: int, now: datetime) -> Bot | None:
    """Resume one bot whose protection cooldown has passed (compare-and-set, so a person
    pausing or stopping it meanwhile wins); never during an emergency stop."""
    if emergency_stop_active(session):
        return None
    bot = session.get(Bot, bot_id, populate_existing=True)
    if bot is None or bot.cooldown_until is None or bot.cooldown_until > now:
        return None
    moved = session.execute(
        update(Bot)
        .where(
            Bot.id == bot.id,
            Bot.status == "paused",
            Bot.deleted_at.is_(None),
            Bot.pause_reason.like(f"{PROTECTION_PREFIX}%"),
            Bot.cooldown_until == bot.cooldown_until,
        )
        .values(
            status="running",
            pause_reason=None,
            cooldown_until=None,
            next_tick_at=first_tick_at(bot, now),
        ),
        execution_options={"synchronize_session": False},
    ).rowcount  # type: ignore[attr-defined]
    if moved != 1:
        return None
    session.refresh(bot)
    raise_alert(
        session,
        user_id=bot.user_id,
        severity="info",
        code="protection_resumed",
        message=f"bot {bot.name!r} (#{bot.id}) resumed after its protection cooldown",
        bot_id=bot.id,
    )
    return bot


def resume_cooled_down_bots(session: Session, now: datetime) -> list[Bot]:
    """Resume every bot whose protection cooldown has passed."""
    resumed = []
    for bot_id in cooled_down_bot_ids(session, now):
        bot = resume_after_cooldown(session, bot_id, now)
        if bot is not None:
            resumed.append(bot)
    return resumed
