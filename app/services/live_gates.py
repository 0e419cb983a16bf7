"""Live-trading gates for one bot: gather the facts, let `app.domain.live_gates` decide.

`live_eligibility` answers the API; `assert_live_allowed` is what switching a bot to live
calls (409 `live_not_allowed` with one detail per failing gate); the tick and self-healing
pause a live bot whose gates stop holding (`app.services.risk.check_live_gates`).
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.domain.live_gates import GateFacts, GateLimits, evaluate_gates, max_drawdown
from app.errors import Conflict
from app.market.registry import REPLAY_EXCHANGE
from app.store.base import as_utc, utcnow
from app.store.emergency_flag import emergency_stop_active
from app.store.models import Bot
from app.store.models.accounts import ExchangeCredential
from app.store.models.ledger import EquitySnapshot, Fill
from config import get_settings

if TYPE_CHECKING:
    from config import Settings

log = logging.getLogger("tradewind.gates")


class LiveNotAllowed(Conflict):
    code = "live_not_allowed"


def _current(settings: Settings | None) -> Settings:
    if settings is None:
        return get_settings()
    return settings


def gate_limits(settings: Settings | None = None) -> GateLimits:
    """Limits from settings (LIVE_MIN_PAPER_DAYS, LIVE_MAX_DRAWDOWN, LIVE_MIN_CLOSED_TRADES)."""
    settings = _current(settings)
    return GateLimits(
        min_paper_days=settings.live_min_paper_days,
        max_drawdown=Decimal(str(settings.live_max_drawdown)),
        min_closed_trades=settings.live_min_closed_trades,
    )


def _has_credentials(session: Session, bot: Bot) -> bool:
    return (
        session.scalar(
            select(ExchangeCredential.id)
            .where(
                ExchangeCredential.user_id == bot.user_id,
                func.lower(ExchangeCredential.exchange) == bot.exchange.lower(),
            )
            .limit(1)
        )
        is not None
    )


def paper_drawdown(session: Session, bot_id: int) -> Decimal:
    """Worst peak-to-trough fall of the bot's recorded equity."""
    curve = session.scalars(
        select(EquitySnapshot.equity)
        .where(EquitySnapshot.bot_id == bot_id)
        .order_by(EquitySnapshot.ts)
    ).all()
    return max_drawdown(list(curve))


def closed_trade_count(session: Session, bot_id: int) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Fill)
            .where(Fill.bot_id == bot_id, Fill.closed_trade_pnl.is_not(None))
        )
        or 0
    )


def gate_facts(session: Session, bot: Bot, settings: Settings, now: datetime) -> GateFacts:
    return GateFacts(
        now=now,
        live_trading_enabled=settings.live_trading_enabled,
        emergency_stop=emergency_stop_active(session),
        paper_started_at=as_utc(bot.paper_started_at),
        has_credentials=_has_credentials(session, bot),
        max_drawdown=paper_drawdown(session, bot.id),
        closed_trades=closed_trade_count(session, bot.id),
        market_trades_live=bot.exchange.lower() != REPLAY_EXCHANGE,
    )


def live_eligibility(
    session: Session, bot: Bot, settings: Settings | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """`{"live_allowed": bool, "reasons": [{"code", "message"}]}` for this bot, now."""
    settings = _current(settings)
    facts = gate_facts(session, bot, settings, as_utc(now) or utcnow())  # type: ignore[arg-type]
    reasons = evaluate_gates(facts, gate_limits(settings))
    return {
        "live_allowed": not reasons,
        "reasons": [{"code": r.code, "message": r.message} for r in reasons],
    }


def assert_live_allowed(
    session: Session, bot: Bot, settings: Settings | None = None, now: datetime | None = None
) -> None:
    """Raise 409 `live_not_allowed` (one detail per failing gate) unless the bot may go live."""
    result = live_eligibility(session, bot, settings, now)
    if result["live_allowed"]:
        return
    raise LiveNotAllowed(
        "the bot may not trade live: " + "; ".join(r["message"] for r in result["reasons"]),
        details=[
            {"loc": ["body", "mode"], "code": r["code"], "msg": r["message"]}
            for r in result["reasons"]
        ],
    )
