"""Bots: CRUD, lifecycle and their ledger views. Thin: parse, call `app.services.bots`,
serialise. A bot of another user answers 404 like a bot that does not exist."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from flask import Blueprint, Flask
from pydantic import BaseModel, ConfigDict, Field

from app.api.jwt import auth_required, current_user
from app.api.paging import OffsetQuery, offset_page
from app.api.request_context import db_session
from app.api.validation import RequestModel, body, query, response
from app.openapi import answers
from app.services import bot_overview as overview_service
from app.services import bots as service

if TYPE_CHECKING:
    from app.store.models import Bot

bp = Blueprint("bots", __name__)

Status = Literal["created", "running", "paused", "stopped"]


class BotCreate(RequestModel):
    name: str = Field(min_length=1, max_length=100)
    exchange: str = Field(
        "replay",
        min_length=1,
        max_length=50,
        description='"replay" (recorded candles) or the configured exchange',
    )
    symbol: str = Field(min_length=1, max_length=40, examples=["ETH/BTC"])
    timeframe: str = Field(min_length=1, max_length=8, examples=["5m"])
    strategy: str = Field(min_length=1, max_length=50, examples=["sma_crossover"])
    strategy_params: dict[str, Any] = Field(
        default_factory=dict, description="checked against GET /api/strategies' schema"
    )
    capital: Decimal = Field(gt=0, le=Decimal("1e15"), description="quote currency")
    sizing: dict[str, Any] | None = Field(
        None, description="{mode: fixed|percent|kelly, ...}; default half-Kelly, bootstrapped"
    )
    protections: dict[str, Any] | None = None
    maker_fee: Decimal = Field(Decimal("0.001"), ge=0, le=Decimal("0.1"))
    taker_fee: Decimal = Field(Decimal("0.001"), ge=0, le=Decimal("0.1"))
    slippage_bps: Decimal = Field(Decimal("0"), ge=0, le=1000)
    mode: Literal["paper"] = "paper"


class BotPatch(RequestModel):
    NULLABLE = frozenset({"strategy_params", "sizing", "protections"})  # null: the defaults

    name: str | None = Field(None, min_length=1, max_length=100)
    exchange: str | None = Field(None, min_length=1, max_length=50)
    symbol: str | None = Field(None, min_length=1, max_length=40)
    timeframe: str | None = Field(None, min_length=1, max_length=8)
    strategy: str | None = Field(None, min_length=1, max_length=50)
    strategy_params: dict[str, Any] | None = None
    capital: Decimal | None = Field(None, gt=0, le=Decimal("1e15"))
    sizing: dict[str, Any] | None = None
    protections: dict[str, Any] | None = None
    maker_fee: Decimal | None = Field(None, ge=0, le=Decimal("0.1"))
    taker_fee: Decimal | None = Field(None, ge=0, le=Decimal("0.1"))
    slippage_bps: Decimal | None = Field(None, ge=0, le=1000)
    mode: Literal["paper", "live"] | None = None


class BotListQuery(OffsetQuery):
    status: Status | None = None
    symbol: str | None = Field(None, max_length=40)
    strategy: str | None = Field(None, max_length=50)


class PageQuery(OffsetQuery):
    limit: int = Field(100, ge=1, le=1000)  # ledger rows are small: larger pages


class EquityQuery(RequestModel):
    limit: int = Field(1000, ge=1, le=10_000)
    since: datetime | None = None


class BotOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    exchange: str
    symbol: str
    timeframe: str
    strategy: str
    strategy_params: dict[str, Any]
    sizing: dict[str, Any]
    protections: dict[str, Any]
    capital: Decimal
    maker_fee: Decimal
    taker_fee: Decimal
    slippage_bps: Decimal
    mode: str
    status: str
    pause_reason: str | None
    next_tick_at: datetime | None
    last_tick_at: datetime | None
    error_streak: int
    last_error: str | None
    paper_started_at: datetime | None
    exit_requested_at: datetime | None
    created_at: datetime
    updated_at: datetime


class BotPage(BaseModel):
    items: list[BotOut]
    total: int
    limit: int
    offset: int


class ItemsPage(BaseModel):
    """A page of ledger rows (orders, trades, positions, equity points)."""

    items: list[dict[str, Any]]
    total: int | None = None
    limit: int
    offset: int = 0


class BotSummary(BaseModel):
    """Equity and profit in the quote currency (decimal text), the largest drawdown as a
    fraction of its peak, and up to 40 equity points (numbers, for drawing)."""

    equity: str
    profit: str
    profit_pct: float | None
    max_drawdown: float
    curve: list[float]
    snapshots: int


class BotOverview(BotOut):
    summary: BotSummary


class BotOverviewPage(BaseModel):
    items: list[BotOverview]
    total: int
    limit: int
    offset: int


class Performance(BaseModel):
    bot_id: int
    metrics: dict[str, Any]
    equity: dict[str, Any]


@bp.post("/api/bots")
@auth_required
@body(BotCreate)
@response(BotOut, 201)
def create_bot(body: BotCreate) -> Any:
    data = body.model_dump(exclude_none=True)
    return BotOut.model_validate(service.create_bot(db_session(), current_user().id, data))


@bp.get("/api/bots")
@auth_required
@query(BotListQuery)
@response(BotPage)
def list_bots(query: BotListQuery) -> Any:
    bots, total = service.list_bots(
        db_session(),
        current_user().id,
        status=query.status,
        symbol=query.symbol,
        strategy=query.strategy,
        limit=query.limit,
        offset=query.offset,
    )
    return offset_page([BotOut.model_validate(b) for b in bots], total, query)


@bp.get("/api/bots/overview")
@auth_required
@query(BotListQuery)
@response(BotOverviewPage)
def bots_overview(query: BotListQuery) -> Any:
    """The bots list with each bot's equity, profit, drawdown and a short equity curve."""
    rows, total = overview_service.bots_overview(
        db_session(),
        current_user().id,
        status=query.status,
        symbol=query.symbol,
        strategy=query.strategy,
        limit=query.limit,
        offset=query.offset,
    )
    items = [
        BotOverview(**BotOut.model_validate(bot).model_dump(), summary=BotSummary(**summary))
        for bot, summary in rows
    ]
    return offset_page(items, total, query)


@bp.get("/api/bots/<int:bot_id>")
@auth_required
@response(BotOut)
def get_bot(bot_id: int) -> Any:
    return BotOut.model_validate(service.get_bot(db_session(), current_user().id, bot_id))


@bp.patch("/api/bots/<int:bot_id>")
@answers(409)
@auth_required
@body(BotPatch)
@response(BotOut)
def update_bot(bot_id: int, body: BotPatch) -> Any:
    changes = body.model_dump(exclude_unset=True)
    bot = service.update_bot(db_session(), current_user().id, bot_id, changes)
    return BotOut.model_validate(bot)


@bp.delete("/api/bots/<int:bot_id>")
@answers(409)
@auth_required
def delete_bot(bot_id: int) -> Any:
    service.delete_bot(db_session(), current_user().id, bot_id)
    return "", 204


def _lifecycle_view(action: str) -> Any:
    @auth_required
    @response(BotOut)
    def view(bot_id: int) -> Any:
        bot = service.change_status(db_session(), current_user().id, bot_id, action)
        return BotOut.model_validate(bot)

    view = answers(409)(view)
    view.__name__ = f"{action}_bot"
    view.__doc__ = f"{action.capitalize()} the bot (409 illegal_transition from a wrong state)."
    return view


for _action in ("start", "pause", "resume", "stop"):
    bp.add_url_rule(
        f"/api/bots/<int:bot_id>/{_action}", view_func=_lifecycle_view(_action), methods=["POST"]
    )


@bp.post("/api/bots/<int:bot_id>/exit")
@answers(409)
@auth_required
@response(BotOut, 202)
def exit_position(bot_id: int) -> Any:
    """Close the position at market on the next tick (the bot keeps ticking until flat)."""
    return BotOut.model_validate(service.request_exit(db_session(), current_user().id, bot_id))


@bp.get("/api/bots/<int:bot_id>/orders")
@auth_required
@query(PageQuery)
@response(ItemsPage)
def bot_orders(bot_id: int, query: PageQuery) -> Any:
    return _ledger_page(service.bot_orders, bot_id, query)


@bp.get("/api/bots/<int:bot_id>/trades")
@auth_required
@query(PageQuery)
@response(ItemsPage)
def bot_trades(bot_id: int, query: PageQuery) -> Any:
    return _ledger_page(service.bot_trades, bot_id, query)


@bp.get("/api/bots/<int:bot_id>/positions")
@auth_required
@response(ItemsPage)
def bot_positions(bot_id: int) -> Any:
    items = service.bot_positions(db_session(), _own_bot(bot_id))
    return ItemsPage(items=items, total=len(items), limit=len(items))


@bp.get("/api/bots/<int:bot_id>/equity")
@auth_required
@query(EquityQuery)
@response(ItemsPage)
def bot_equity(bot_id: int, query: EquityQuery) -> Any:
    items = service.bot_equity(db_session(), _own_bot(bot_id), limit=query.limit, since=query.since)
    return ItemsPage(items=items, limit=query.limit)


@bp.get("/api/bots/<int:bot_id>/performance")
@auth_required
@response(Performance)
def bot_performance(bot_id: int) -> Any:
    return service.bot_performance(db_session(), _own_bot(bot_id))


def _own_bot(bot_id: int) -> Bot:
    """The current user's bot (another user's answers 404 like a missing one)."""
    return service.get_bot(db_session(), current_user().id, bot_id)


def _ledger_page(fetch: Callable[..., tuple[list[Any], int]], bot_id: int, query: PageQuery) -> Any:
    """One page of a bot's ledger rows: orders and trades are paged the same way."""
    items, total = fetch(db_session(), _own_bot(bot_id), limit=query.limit, offset=query.offset)
    return offset_page(items, total, query)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
