"""Signal bots: a per-bot secret token, and signals received in the shape TradingView alerts
send (`{"id", "action", "symbol", "amount" | "percentage", "price", "timestamp"}`).

A token is `<bot id>.<secret>`; only the secret's SHA-256 is stored, the token is shown once
and rotating it replaces the old one. A signal is checked (token, symbol of the bot, action,
a `timestamp` inside the replay window), then recorded: `queued` for the bot's next tick
(`app.engine.signals` runs it through the bot's sizing, protections, gates and broker), or
`refused` at once when trading is stopped or the bot is not running. The same alert `id`
twice is one row and runs once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.domain.strategies.signal import SIGNAL
from app.errors import NotFound, Unauthorized, ValidationFailed
from app.store.base import as_utc, utcnow
from app.store.emergency_flag import emergency_stop_active
from app.store.models import Bot
from app.store.models.signals import BotSignal, BotSignalToken
from app.store.paging import fetch_page
from config import get_settings

ACTIONS = {"buy": "buy", "long": "buy", "sell": "sell", "exit": "sell", "close": "sell"}


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _owned_signal_bot(session: Session, user_id: int, bot_id: int) -> Bot:
    bot = session.get(Bot, bot_id)
    if bot is None or bot.user_id != user_id:
        raise NotFound("bot not found")
    if bot.strategy != SIGNAL:
        raise ValidationFailed(
            f"bot {bot_id} runs strategy {bot.strategy!r}; only a 'signal' bot takes signals",
            code="not_a_signal_bot",
        )
    return bot


def rotate_token(session: Session, user_id: int, bot_id: int) -> str:
    """A new token for the owner's signal bot (the old one stops working); shown once."""
    bot = _owned_signal_bot(session, user_id, bot_id)
    secret = secrets.token_urlsafe(32)
    row = session.get(BotSignalToken, bot.id)
    if row is None:
        session.add(BotSignalToken(bot_id=bot.id, token_hash=_digest(secret), created_at=utcnow()))
    else:
        row.token_hash, row.created_at = _digest(secret), utcnow()
    session.flush()
    return f"{bot.id}.{secret}"


def bot_for_token(session: Session, token: str) -> Bot:
    """The bot a token opens; 401 for anything else (no hint which part was wrong)."""
    bot_part, _, secret = token.partition(".")
    refused = Unauthorized("invalid signal token", code="invalid_signal_token")
    if not bot_part.isdigit() or not secret or len(bot_part) > 18:
        raise refused
    row = session.get(BotSignalToken, int(bot_part))
    if row is None or not hmac.compare_digest(row.token_hash, _digest(secret)):
        raise refused
    bot = session.get(Bot, row.bot_id)
    if bot is None:
        raise refused
    return bot


def _invalid(field: str, message: str, code: str = "validation_error") -> ValidationFailed:
    return ValidationFailed(message, code=code, details=[{"loc": ["body", field], "msg": message}])


def _same_symbol(sent: str, bot_symbol: str) -> bool:
    """`ETH/BTC`, `ETH-BTC`, `ETHBTC` and `BINANCE:ETHBTC` all name the bot's `ETH/BTC`."""
    plain = sent.split(":")[-1].upper().replace("/", "").replace("-", "").replace("_", "")
    return plain == bot_symbol.upper().replace("/", "")


@dataclass(frozen=True)
class Received:
    signal: BotSignal
    duplicate: bool


def receive(
    session: Session,
    token: str,
    *,
    action: str,
    symbol: str,
    alert_id: str | None = None,
    amount: Decimal | None = None,
    percentage: Decimal | None = None,
    price: Decimal | None = None,
    sent_at: datetime | None = None,
) -> Received:
    """Check and record one signal (see the module docstring)."""
    bot = bot_for_token(session, token)
    now = utcnow()
    verb = ACTIONS.get(action.strip().lower())
    if verb is None:
        raise _invalid("action", f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    if not _same_symbol(symbol, bot.symbol):
        raise _invalid("symbol", f"this bot trades {bot.symbol}, not {symbol!r}", "wrong_symbol")
    if amount is not None and percentage is not None:
        raise _invalid("amount", "give amount or percentage, not both")
    if verb == "sell" and (amount is not None or percentage is not None):
        raise _invalid(
            "amount" if amount is not None else "percentage",
            "an exit signal sells the whole position; partial exits are not supported",
            "partial_exit_unsupported",
        )
    window = timedelta(seconds=get_settings().signal_replay_seconds)
    sent = as_utc(sent_at)
    if sent is not None and abs(now - sent) > window:
        raise _invalid(
            "timestamp",
            f"the signal is more than {int(window.total_seconds())} s away from now "
            "(a replayed or delayed alert)",
            "stale_signal",
        )
    if alert_id is not None:
        existing = session.scalar(
            select(BotSignal).where(BotSignal.bot_id == bot.id, BotSignal.alert_id == alert_id)
        )
        if existing is not None:
            return Received(existing, duplicate=True)
    row = BotSignal(
        bot_id=bot.id,
        alert_id=alert_id,
        action=verb,
        symbol=bot.symbol,
        amount=amount,
        percentage=percentage,
        price=price,
        state="queued",
        created_at=now,
    )
    if emergency_stop_active(session):
        row.state, row.outcome, row.processed_at = "refused", "emergency stop active", now
    elif bot.status != "running":
        row.state, row.processed_at = "refused", now
        row.outcome = f"bot is {bot.status}" + (
            f" ({bot.pause_reason})" if bot.pause_reason else ""
        )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:  # the same alert id, inserted by a concurrent request meanwhile
        existing = session.scalar(
            select(BotSignal).where(BotSignal.bot_id == bot.id, BotSignal.alert_id == alert_id)
        )
        if existing is None:
            raise
        return Received(existing, duplicate=True)
    return Received(row, duplicate=False)


def list_signals(
    session: Session, user_id: int, bot_id: int, *, limit: int, offset: int
) -> tuple[list[BotSignal], int]:
    """The bot's signals, newest first, with what became of each."""
    bot = session.get(Bot, bot_id)
    if bot is None or bot.user_id != user_id:
        raise NotFound("bot not found")
    return fetch_page(
        session, BotSignal, [BotSignal.bot_id == bot_id], [BotSignal.id.desc()],
        limit=limit, offset=offset,
    )  # fmt: skip


def signal_view(row: BotSignal) -> dict[str, Any]:
    return {
        "id": row.id,
        "alert_id": row.alert_id,
        "action": row.action,
        "symbol": row.symbol,
        "amount": row.amount,
        "percentage": row.percentage,
        "price": row.price,
        "state": row.state,
        "outcome": row.outcome,
        "created_at": row.created_at,
        "processed_at": row.processed_at,
    }
