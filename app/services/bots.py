"""Bot use cases: create, read, edit, delete, and the lifecycle (start, pause, resume, stop,
exit). Every bot belongs to one user; another user's bot is "not found".

Lifecycle (anything else answers 409 `illegal_transition`):

    created --start--> running --pause--> paused --resume--> running
    created|running|paused --stop--> stopped --start--> running
    created|stopped --delete--> (soft-deleted; orders, trades and ticks are kept)

Scheduling invariant: `next_tick_at` is set exactly when the bot should tick (running, or an
exit is pending on a bot that is not running); the tick claim only looks at such bots.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    Select,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session

from app.domain.protections import parse_protections
from app.domain.times import from_ms, to_ms
from app.engine.broker import cancel_open_orders
from app.engine.ledger import BotPerformance, LedgerView, equity_curve, ledger_view, open_bot_ledger
from app.engine.ledger import bot_performance as ledger_performance
from app.engine.tick import position_amount, tick_grid
from app.errors import AppError, Conflict, NotFound
from app.market.registry import get_market_source
from app.services.audit import record_audit
from app.services.bot_settings import (
    check_exchange,
    check_market,
    check_stake,
    invalid_field,
    normalised_sizing,
)
from app.services.events import record_event
from app.services.live_gates import assert_live_allowed
from app.services.passwords import hash_password
from app.services.revocation import SUBJECT_WIDTH, subject_of, subject_params, subject_select
from app.services.strategies import resolve_strategy
from app.store.base import utcnow
from app.store.emergency_flag import TradingHalted, emergency_stop_active
from app.store.models import Bot, User
from app.store.models.ledger import EquitySnapshot, Fill, Order, Position
from app.store.paging import fetch_page
from app.store.prepared import id_parameter, text_parameter
from app.store.wire_json import wire_array, wire_object

log = logging.getLogger("tradewind.bots")

STATUSES = ("created", "running", "paused", "stopped")
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "start": (frozenset({"created", "stopped"}), "running"),
    "pause": (frozenset({"running"}), "paused"),
    "resume": (frozenset({"paused"}), "running"),
    "stop": (frozenset({"created", "running", "paused"}), "stopped"),
}
DELETABLE = frozenset({"created", "stopped"})
# what may change, and when (everything may change before the first start)
ALWAYS_EDITABLE = frozenset({"name"})
EDITABLE_WHEN_NOT_RUNNING = frozenset(
    {
        "strategy",
        "strategy_params",
        "strategy_document_id",
        "strategy_version",
        "sizing",
        "protections",
        "maker_fee",
        "taker_fee",
        "slippage_bps",
    }
)
EDITABLE_BEFORE_START = frozenset({"exchange", "symbol", "timeframe", "capital"})


class IllegalTransition(Conflict):
    code = "illegal_transition"


_invalid = invalid_field


# -- validation --------------------------------------------------------------------------


def _market_source(exchange: str) -> Any:
    return get_market_source(exchange)


def normalised_protections(protections: dict[str, Any] | None) -> dict[str, Any]:
    """Protections are validated by the safety rules; stored as given (defaults apply)."""
    try:
        parse_protections(protections or {})
    except ValueError as exc:
        raise _invalid("protections", str(exc), "invalid_protections") from None
    return dict(protections or {})


# -- reading -----------------------------------------------------------------------------


def get_bot(session: Session, user_id: int, bot_id: int, *, lock: bool = False) -> Bot:
    """The user's (not deleted) bot, or NotFound - also for another user's bot."""
    stmt = select(Bot).where(Bot.id == bot_id, Bot.user_id == user_id, Bot.deleted_at.is_(None))
    if lock:
        stmt = stmt.with_for_update()
    bot = session.scalars(stmt).one_or_none()
    if bot is None:
        raise NotFound(f"bot {bot_id} not found", code="bot_not_found")
    return bot


def list_bots(
    session: Session,
    user_id: int,
    *,
    status: str | None = None,
    symbol: str | None = None,
    strategy: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Bot], int]:
    """A page of the user's bots (newest first) and how many match in all."""
    where = [Bot.user_id == user_id, Bot.deleted_at.is_(None)]
    if status:
        where.append(Bot.status == status)
    if symbol:
        where.append(Bot.symbol == symbol)
    if strategy:
        where.append(Bot.strategy == strategy)
    return fetch_page(session, Bot, where, [Bot.id.desc()], limit=limit, offset=offset)


# The bot list and a bot's page as plain rows (for reading only), each read in one round trip
# together with the token's subject check (`subject_select`): the user's columns and
# "revoked" lead every row, the bot's columns follow. Statements are built once (a statement
# built per request costs more Python than its round trip); a filter left out is NULL.
Accept = Callable[[User | None, bool], None]
_INTERNAL = frozenset(
    {"user_id", "lease_owner", "lease_until", "cooldown_until", "deleted_at", "last_candle_ts"}
)
_READ = tuple(c for c in Bot.__table__.columns if c.key not in _INTERNAL)
_READ_NAMES = tuple(c.key for c in _READ)
_STATUS, _SYMBOL, _STRATEGY = (text_parameter(n) for n in ("status", "symbol", "strategy"))
_LISTED = and_(
    Bot.user_id == id_parameter("user_id"),
    Bot.deleted_at.is_(None),
    or_(_STATUS.is_(None), Bot.status == _STATUS),
    or_(_SYMBOL.is_(None), Bot.symbol == _SYMBOL),
    or_(_STRATEGY.is_(None), Bot.strategy == _STRATEGY),
)
_PAGE = (
    select(*_READ, func.count().over().label("_total"))
    .where(_LISTED)
    .order_by(Bot.id.desc())
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
    .subquery("page")
)
_BOT_COUNT = select(func.count()).select_from(Bot).where(_LISTED)
_SUBJECT_PAGE = {
    in_family: subject_select(*_PAGE.c, in_family=in_family)
    .select_from(User.__table__.outerjoin(_PAGE, true()))
    .order_by(_PAGE.c.id.desc())
    for in_family in (False, True)
}
_OWN_BOT = and_(Bot.id == id_parameter("bot_id"), Bot.user_id == User.id, Bot.deleted_at.is_(None))
_SUBJECT_BOT = {
    in_family: subject_select(*_READ, in_family=in_family).select_from(
        User.__table__.outerjoin(Bot.__table__, _OWN_BOT)
    )
    for in_family in (False, True)
}


def _bot_columns(row: Row[Any]) -> dict[str, Any] | None:
    if row[SUBJECT_WIDTH] is None:  # the outer join found no bot
        return None
    return dict(zip(_READ_NAMES, row[SUBJECT_WIDTH:], strict=False))


def list_bot_rows(
    connection: Connection,
    claims: dict[str, Any],
    accept: Accept,
    *,
    status: str | None = None,
    symbol: str | None = None,
    strategy: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """As `list_bots` for the user the token `claims` name, as plain column dicts, read in one
    round trip with the token's check: `accept(user, revoked)` sees the subject first and
    raises to refuse it (then nothing read is returned). Only a page past the end costs a
    second query, its count."""
    found = _list_params(claims, accept, status, symbol, strategy, limit, offset)
    if found is None:
        return [], 0
    params, in_family = found
    rows = connection.execute(_SUBJECT_PAGE[in_family], params).all()
    accept(*subject_of(rows[0] if rows else None))
    items = [item for item in map(_bot_columns, rows) if item is not None]
    if items:
        return items, int(rows[0][-1])
    return [], _total_past_the_end(connection, params)


def _list_params(
    claims: dict[str, Any],
    accept: Accept,
    status: str | None,
    symbol: str | None,
    strategy: str | None,
    limit: int,
    offset: int,
) -> tuple[dict[str, Any], bool] | None:
    """A list statement's parameters and which statement (a refresh family or not); None,
    once `accept` has seen no subject, when the token names no user."""
    found = subject_params(claims)
    if found is None:
        accept(None, False)
        return None
    params, in_family = found
    params.update(status=status or None, symbol=symbol or None, strategy=strategy or None,
                  limit=limit, offset=offset)  # fmt: skip
    return params, in_family


def _total_past_the_end(connection: Connection, params: dict[str, Any]) -> int:
    """How many bots match when the page came back empty (none, from the first page)."""
    if params["offset"] == 0:
        return 0
    return int(connection.execute(_BOT_COUNT, params).scalar_one())


def renders_json(connection: Connection) -> bool:
    """Whether the database writes the bot list's response JSON itself (`list_bots_json`)."""
    return connection.dialect.name == "postgresql"


@cache
def _json_page(names: tuple[str, ...], in_family: bool) -> Select[Any]:
    listed = (
        select(Bot.id, wire_object(Bot.__table__.c, names).label("item"),
               func.count().over().label("total"))
        .where(_LISTED)
        .order_by(Bot.id.desc())
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
        .subquery("listed")
    )  # fmt: skip
    page = select(
        wire_array(listed.c.item, listed.c.id.desc()).label("page_items"),
        func.max(listed.c.total).label("total"),
    ).subquery("page")
    return subject_select(page.c.page_items, page.c.total, in_family=in_family).select_from(
        User.__table__.outerjoin(page, true())
    )


def list_bots_json(
    connection: Connection,
    claims: dict[str, Any],
    accept: Accept,
    names: tuple[str, ...],
    *,
    status: str | None = None,
    symbol: str | None = None,
    strategy: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[str, int]:
    """As `list_bot_rows` on Postgres, each bot already written as a JSON object of the
    fields `names` (`app.store.wire_json`): the items' JSON array text and the total."""
    found = _list_params(claims, accept, status, symbol, strategy, limit, offset)
    if found is None:
        return "[]", 0
    params, in_family = found
    row = connection.execute(_json_page(names, in_family), params).first()
    accept(*subject_of(row))
    if row is not None and row.page_items is not None:
        return row.page_items, int(row.total)
    return "[]", _total_past_the_end(connection, params)


def bot_row(
    connection: Connection, claims: dict[str, Any], accept: Accept, bot_id: int
) -> dict[str, Any]:
    """The bot `bot_id` of the user the token `claims` name (not deleted) as plain column
    dicts, read in one round trip with the token's check (`accept`, as `list_bot_rows`);
    NotFound as `get_bot`."""
    found = subject_params(claims)
    if found is None:
        accept(None, False)
        raise NotFound(f"bot {bot_id} not found", code="bot_not_found")
    params, in_family = found
    params["bot_id"] = bot_id
    row = connection.execute(_SUBJECT_BOT[in_family], params).first()
    accept(*subject_of(row))
    bot = None if row is None else _bot_columns(row)
    if bot is None:
        raise NotFound(f"bot {bot_id} not found", code="bot_not_found")
    return bot


# -- writing -----------------------------------------------------------------------------


def create_bot(session: Session, user_id: int, data: dict[str, Any]) -> Bot:
    """A new bot in state `created` (nothing ticks, no money moves until it is started)."""
    exchange = check_exchange(data.get("exchange") or "replay")
    mode = data.get("mode") or "paper"
    if mode != "paper":
        raise _invalid("mode", "only paper bots can be created; live trading is earned later")
    choice = resolve_strategy(
        session, user_id, name=data.get("strategy"),
        document_id=data.get("strategy_document_id"), version=data.get("strategy_version"),
        params=data.get("strategy_params"), timeframe=data["timeframe"],
    )  # fmt: skip
    bot = Bot(
        user_id=user_id,
        name=data["name"],
        exchange=exchange,
        symbol=data["symbol"],
        timeframe=data["timeframe"],
        strategy=choice.name,
        strategy_params=choice.params,
        strategy_document_id=choice.document_id,
        strategy_version=choice.version,
        sizing=normalised_sizing(data.get("sizing")),
        protections=normalised_protections(data.get("protections")),
        capital=Decimal(data["capital"]),
        maker_fee=Decimal(data.get("maker_fee", Decimal("0.001"))),
        taker_fee=Decimal(data.get("taker_fee", Decimal("0.001"))),
        slippage_bps=Decimal(data.get("slippage_bps", Decimal("0"))),
        mode="paper",
        status="created",
    )
    check_stake(bot.sizing, bot.capital)
    check_market(bot.exchange, bot.symbol, bot.timeframe)
    session.add(bot)
    session.flush()
    log.info(
        "bot %s created by user %s (%s %s %s)",
        bot.id,
        user_id,
        bot.symbol,
        bot.timeframe,
        bot.strategy,
    )
    return bot


def update_bot(session: Session, user_id: int, bot_id: int, changes: dict[str, Any]) -> Bot:
    """Apply the given fields; what may change depends on the bot's state (see module doc)."""
    bot = get_bot(session, user_id, bot_id, lock=True)
    changes = {k: v for k, v in changes.items()}
    if "mode" in changes:
        _change_mode(session, bot, changes.pop("mode"))
    for field in changes:
        if field in ALWAYS_EDITABLE:
            continue
        if field in EDITABLE_WHEN_NOT_RUNNING and bot.status != "running":
            continue
        if field in EDITABLE_BEFORE_START and bot.status == "created":
            continue
        when = "before the first start" if field in EDITABLE_BEFORE_START else "while paused"
        raise Conflict(
            f"{field} can only be changed {when} (bot is {bot.status})",
            code="bot_not_editable",
            details=[{"loc": ["body", field], "msg": f"bot is {bot.status}"}],
        )
    if "exchange" in changes:
        changes["exchange"] = check_exchange(changes["exchange"])
    if _STRATEGY_FIELDS & set(changes) or "timeframe" in changes:
        changes.update(_strategy_changes(session, user_id, bot, changes))
    if "sizing" in changes:
        changes["sizing"] = normalised_sizing(changes["sizing"])
    if "protections" in changes:
        changes["protections"] = normalised_protections(changes["protections"])
    check_stake(changes.get("sizing", bot.sizing), Decimal(changes.get("capital", bot.capital)))
    for field, value in changes.items():
        setattr(bot, field, value)
    if {"exchange", "symbol", "timeframe"} & set(changes):
        check_market(bot.exchange, bot.symbol, bot.timeframe)
    session.flush()
    return bot


_STRATEGY_FIELDS = frozenset(
    {"strategy", "strategy_params", "strategy_document_id", "strategy_version"}
)


def _strategy_changes(
    session: Session, user_id: int, bot: Bot, changes: dict[str, Any]
) -> dict[str, Any]:
    """The bot's strategy fields after `changes`: a template name replaces a document; a
    document keeps the version the bot runs unless a version (or another document) is given,
    so saving a new version of a document never changes a bot by itself."""
    if "strategy" in changes and "strategy_document_id" not in changes:
        document_id = None
    else:
        document_id = changes.get("strategy_document_id", bot.strategy_document_id)
    if "strategy_version" in changes:
        version = changes["strategy_version"]
    elif document_id is not None and document_id == bot.strategy_document_id:
        version = bot.strategy_version
    else:
        version = None
    switched = document_id != bot.strategy_document_id or (
        document_id is None and changes.get("strategy", bot.strategy) != bot.strategy
    )
    params = changes.get("strategy_params")
    if params is None:
        params = {} if switched else bot.strategy_params
    choice = resolve_strategy(
        session, user_id, name=None if document_id is not None else
        changes.get("strategy", bot.strategy), document_id=document_id, version=version,
        params=params, timeframe=changes.get("timeframe", bot.timeframe),
    )  # fmt: skip
    return {
        "strategy": choice.name,
        "strategy_params": choice.params,
        "strategy_document_id": choice.document_id,
        "strategy_version": choice.version,
    }


def _change_mode(session: Session, bot: Bot, mode: str) -> None:
    """Paper -> live only through the live-trading gates (409 with the reasons otherwise);
    live -> paper is always allowed. Both are audited."""
    if mode == bot.mode:
        return
    if mode == "live":
        assert_live_allowed(session, bot)
    elif _has_open_orders(session, bot.id):
        raise Conflict(
            "the bot has open orders on its exchange: stop it (which cancels them) first",
            code="open_live_orders",
        )
    previous, bot.mode = bot.mode, mode
    record_audit(
        session,
        "bot.mode_changed",
        actor_user_id=bot.user_id,
        details={"bot_id": bot.id, "from": previous, "to": mode},
    )
    log.warning("bot %s switched from %s to %s trading", bot.id, previous, mode)


def _has_open_orders(session: Session, bot_id: int) -> bool:
    return (
        session.scalar(select(Order.id).where(Order.bot_id == bot_id, Order.state == "open"))
        is not None
    )


def delete_bot(session: Session, user_id: int, bot_id: int) -> None:
    """Soft delete: the bot disappears from the API, its ledger and tick history stay."""
    bot = get_bot(session, user_id, bot_id, lock=True)
    if bot.status not in DELETABLE:
        raise IllegalTransition(
            f"a {bot.status} bot cannot be deleted; stop it first",
            details=[{"loc": ["status"], "msg": bot.status}],
        )
    bot.deleted_at = utcnow()
    bot.next_tick_at = None
    session.flush()


def first_tick_at(bot: Bot, now: datetime) -> datetime:
    """The planned time of a (re)started bot's first tick: the latest candle boundary, so it
    acts on the newest closed candle at once - unless a tick already ran for that boundary."""
    last = None if bot.last_tick_at is None else to_ms(bot.last_tick_at)
    return from_ms(tick_grid(bot.exchange, bot.timeframe).first_due(to_ms(now), last))


def change_status(
    session: Session, user_id: int, bot_id: int, action: str, *, now: datetime | None = None
) -> Bot:
    """start | pause | resume | stop, or IllegalTransition (409) naming what is allowed."""
    if action not in TRANSITIONS:
        raise AppError(f"unknown action {action!r}", code="unknown_action", status=404)
    now = now or utcnow()
    bot = get_bot(session, user_id, bot_id, lock=True)
    allowed_from, target = TRANSITIONS[action]
    if target == "running" and emergency_stop_active(session):
        raise TradingHalted("the emergency stop is active: bots stay paused until it is resumed")
    if bot.status not in allowed_from:
        raise IllegalTransition(
            f"cannot {action} a {bot.status} bot",
            details=[
                {
                    "loc": ["status"],
                    "msg": f"{action} needs one of "
                    f"{', '.join(sorted(allowed_from))}; the bot is {bot.status}",
                }
            ],
        )
    previous = bot.status
    bot.status = target
    if target == "running":
        if bot.paper_started_at is None:
            _open_ledger(session, bot)
            bot.paper_started_at = now
        bot.pause_reason = None
        bot.error_streak = 0
        bot.next_tick_at = first_tick_at(bot, now)
    elif target == "paused":
        bot.pause_reason = "paused by its owner"
        bot.next_tick_at = first_tick_at(bot, now) if bot.exit_requested_at else None
    elif target == "stopped":
        bot.pause_reason = None
        if bot.paper_started_at is not None:
            _cancel_open_orders(session, bot, "bot stopped")
        bot.next_tick_at = first_tick_at(bot, now) if bot.exit_requested_at else None
    session.flush()
    announce_status(session, bot, previous)
    log.info("bot %s: %s -> %s", bot.id, previous, bot.status)
    return bot


ACCOUNT_DISABLED = "account_disabled"


def pause_user_bots(session: Session, user_id: int, reason: str) -> list[int]:
    """Pause every running bot of a user, and hold those waiting out a protection cooldown,
    with `reason`: nothing of theirs trades or resumes by itself (re-enabling the account
    leaves them paused for their owner to review). Returns the bots paused."""
    bots = session.scalars(
        select(Bot)
        .where(
            Bot.user_id == user_id,
            Bot.deleted_at.is_(None),
            or_(
                Bot.status == "running",
                and_(Bot.status == "paused", Bot.cooldown_until.is_not(None)),
            ),
        )
        .with_for_update()
    ).all()
    for bot in bots:
        previous = bot.status
        bot.status, bot.pause_reason = "paused", reason
        bot.cooldown_until = bot.next_tick_at = None
        session.flush()
        announce_status(session, bot, previous)
    if bots:
        log.warning("user %s: %d bots paused (%s)", user_id, len(bots), reason)
    return [bot.id for bot in bots]


def request_exit(
    session: Session, user_id: int, bot_id: int, *, now: datetime | None = None
) -> Bot:
    """Ask the bot's next tick to sell its whole position at market (even when the bot is
    paused or stopped: such a bot keeps ticking until the position is closed). The sell is
    placed by a tick, so it is as exactly-once as any other order."""
    now = now or utcnow()
    bot = get_bot(session, user_id, bot_id, lock=True)
    if bot.paper_started_at is None or not has_open_position(session, bot):
        raise Conflict("the bot holds no position to exit", code="no_position")
    if bot.exit_requested_at is None:
        bot.exit_requested_at = now
    if bot.next_tick_at is None:
        bot.next_tick_at = first_tick_at(bot, now)
    session.flush()
    return bot


# -- ledger glue (the ledger helper owns the tables) -------------------------------------


def _open_ledger(session: Session, bot: Bot) -> None:
    open_bot_ledger(session, bot)


def _cancel_open_orders(session: Session, bot: Bot, reason: str) -> int:
    return cancel_open_orders(session, bot_id=bot.id, reason=reason)


def has_open_position(session: Session, bot: Bot) -> bool:
    return position_amount(session, bot) > 0


def announce_status(session: Session, bot: Bot, previous: str) -> None:
    """A `bot_status` event for the owner's dashboards, in the change's transaction."""
    data = {
        "bot_id": bot.id,
        "status": bot.status,
        "previous": previous,
        "pause_reason": bot.pause_reason,
    }
    record_event(session, bot.user_id, "bot_status", data)


# -- ledger views --------------------------------------------------------------------------


def bot_orders(session: Session, bot: Bot, *, limit: int, offset: int) -> tuple[list[Order], int]:
    """The bot's orders, newest first, and how many there are."""
    rows, total = fetch_page(
        session, Order, [Order.bot_id == bot.id], [Order.id.desc()], limit=limit, offset=offset
    )
    return list(rows), int(total)


TRADE_COLUMNS = (
    Fill.id,
    Fill.order_id,
    Order.client_order_id,
    Fill.side,
    Fill.amount,
    Fill.price,
    Fill.cost,
    Fill.fee,
    Fill.fee_asset,
    Fill.liquidity,
    Fill.realised_pnl,
    Fill.closed_trade_pnl,
    # the sell that closes a round trip: why (exit_signal, stop_loss, trailing_stop, roi, ...)
    case((Fill.closed_trade_pnl.is_not(None), Order.reason), else_=None).label("exit_reason"),
    Order.bootstrap,
    Fill.candle_ts,
    Fill.filled_at,
)


def bot_trades(
    session: Session, bot: Bot, *, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """The bot's executions (fills) with their order's id and bootstrap flag, newest first
    (one mapping of column -> value per fill), and how many there are."""
    where = Fill.bot_id == bot.id
    total = session.scalar(select(func.count()).select_from(Fill).where(where)) or 0
    rows = session.execute(
        select(*TRADE_COLUMNS)
        .join(Order, Order.id == Fill.order_id)
        .where(where)
        .order_by(Fill.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return [dict(row._mapping) for row in rows], int(total)


def _last_price(bot: Bot) -> Decimal | None:
    try:
        return _market_source(bot.exchange).last_price(bot.symbol)
    except Exception as exc:  # a view still answers without a live price
        log.info("no last price for bot %s: %s", bot.id, exc)
        return None


def bot_positions(session: Session, bot: Bot) -> list[LedgerView]:
    """The bot's book for its symbol, valued at the market's last price (if available)."""
    if session.get(Position, bot.id) is None:
        return []
    return [ledger_view(session, bot, _last_price(bot))]


def bot_equity(
    session: Session, bot: Bot, *, limit: int, since: datetime | None
) -> list[EquitySnapshot]:
    """Equity snapshots, oldest first. Snapshots are written when something can change the
    equity (a position is held, an order or fill happened); in between it is unchanged."""
    return equity_curve(session, bot.id, since=since, limit=limit)


def bot_performance(session: Session, bot: Bot) -> BotPerformance:
    """The bot's performance metrics (see `app.engine.ledger.bot_performance`)."""
    return ledger_performance(session, bot)


# -- demo data -----------------------------------------------------------------------------

DEMO_EMAIL = "demo@tradewind.local"
DEMO_PASSWORD = "tradewind-demo"
DEMO_BOTS: tuple[dict[str, Any], ...] = (
    {"name": "demo ETH fast SMA", "symbol": "ETH/BTC", "strategy": "sma_crossover",
     "strategy_params": {"fast": 3, "slow": 8}},
    {"name": "demo LTC RSI", "symbol": "LTC/BTC", "strategy": "rsi_mean_reversion",
     "strategy_params": {"period": 6, "oversold": 35.0, "overbought": 65.0}},
    {"name": "demo XMR Bollinger", "symbol": "XMR/BTC", "strategy": "bollinger_breakout",
     "strategy_params": {"period": 12, "k": 1.5}},
    {"name": "demo ETH MACD", "symbol": "ETH/BTC", "strategy": "macd_trend",
     "strategy_params": {"fast": 6, "slow": 13, "signal": 4}},
)  # fmt: skip


def seed_demo(session: Session, *, now: datetime | None = None) -> tuple[Any, list[Bot], int]:
    """A demo user with a few running paper bots on the replay market; safe to run again
    (existing demo bots are kept and started if they are not running). Returns (user, bots,
    how many bots were created)."""
    now = now or utcnow()
    user = session.scalar(select(User).where(User.email == DEMO_EMAIL))
    if user is None:
        user = User(email=DEMO_EMAIL, password_hash=hash_password(DEMO_PASSWORD), role="user")
        session.add(user)
        session.flush()
    existing = {
        b.name: b
        for b in session.scalars(
            select(Bot).where(Bot.user_id == user.id, Bot.deleted_at.is_(None))
        )
    }
    bots, created = [], 0
    for spec in DEMO_BOTS:
        bot = existing.get(spec["name"])
        if bot is None:
            bot = create_bot(
                session,
                user.id,
                {**spec, "exchange": "replay", "timeframe": "5m", "capital": Decimal("1")},
            )
            created += 1
        if bot.status in TRANSITIONS["start"][0]:
            change_status(session, user.id, bot.id, "start", now=now)
        bots.append(bot)
    return user, bots, created
