"""Bots: CRUD, lifecycle and their ledger views. Thin: parse, call `app.services.bots`,
serialise. A bot of another user answers 404 like a bot that does not exist."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from flask import Blueprint, Flask
from pydantic import ConfigDict, Field

from app.api.jwt import (
    accept_subject,
    auth_checked_in_query,
    auth_required,
    current_user,
    token_claims,
)
from app.api.ledger_models import (
    BalanceOut,
    EquityList,
    EquityPointOut,
    EquitySummaryOut,
    MetricsOut,
    OrderOut,
    OrderPage,
    PerformanceOut,
    PositionList,
    PositionOut,
    TradeOut,
    TradePage,
)
from app.api.paging import OffsetQuery, offset_page, offset_page_json
from app.api.request_context import db_connection, db_session, read_only
from app.api.types import ApiModel, DecimalText, UtcTime
from app.api.validation import RequestModel, body, json_text, query, response
from app.openapi import answers
from app.services import bot_overview as overview_service
from app.services import bots as service

if TYPE_CHECKING:
    from app.engine.ledger import LedgerView
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
    strategy: str | None = Field(
        None, min_length=1, max_length=50, examples=["sma_crossover"],
        description="a template name (GET /api/strategies); or give strategy_document_id",
    )
    strategy_document_id: int | None = Field(None, ge=1, description="one of your documents")
    strategy_version: int | None = Field(None, ge=1, description="default: its latest version")
    strategy_params: dict[str, Any] = Field(
        default_factory=dict, description="checked against the strategy's parameters"
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
    strategy_document_id: int | None = Field(None, ge=1)
    strategy_version: int | None = Field(None, ge=1)
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


class BotOut(ApiModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    exchange: str
    symbol: str
    timeframe: str
    strategy: str
    strategy_document_id: int | None = None
    strategy_version: int | None = None
    strategy_params: dict[str, Any]
    sizing: dict[str, Any]
    protections: dict[str, Any]
    capital: DecimalText
    maker_fee: DecimalText
    taker_fee: DecimalText
    slippage_bps: DecimalText
    mode: str
    status: str
    pause_reason: str | None
    next_tick_at: UtcTime | None
    last_tick_at: UtcTime | None
    error_streak: int
    last_error: str | None
    paper_started_at: UtcTime | None
    exit_requested_at: UtcTime | None
    created_at: UtcTime
    updated_at: UtcTime


BOT_FIELDS = tuple(BotOut.model_fields)  # what the database writes for `BotOut` on Postgres


class BotPage(ApiModel):
    items: list[BotOut]
    total: int
    limit: int
    offset: int


class BotSummary(ApiModel):
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


class BotOverviewPage(ApiModel):
    items: list[BotOverview]
    total: int
    limit: int
    offset: int


@bp.post("/api/bots")
@auth_required
@body(BotCreate)
@response(BotOut, 201)
def create_bot(body: BotCreate) -> Any:
    data = body.model_dump(exclude_none=True)
    return BotOut.model_validate(service.create_bot(db_session(), current_user().id, data))


@bp.get("/api/bots")
@read_only
@auth_checked_in_query
@query(BotListQuery)
@response(BotPage)
def list_bots(query: BotListQuery) -> Any:
    connection, claims = db_connection(), token_claims()
    window = {"status": query.status, "symbol": query.symbol, "strategy": query.strategy,
              "limit": query.limit, "offset": query.offset}  # fmt: skip
    if service.renders_json(connection):
        items, total = service.list_bots_json(
            connection, claims, accept_subject, BOT_FIELDS, **window
        )
        return json_text(offset_page_json(items, total, query))
    rows, total = service.list_bot_rows(connection, claims, accept_subject, **window)
    return BotPage.model_validate(offset_page(rows, total, query))


@bp.get("/api/bots/overview")
@read_only
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
@read_only
@auth_checked_in_query
@response(BotOut)
def get_bot(bot_id: int) -> Any:
    return BotOut.model_validate(
        service.bot_row(db_connection(), token_claims(), accept_subject, bot_id)
    )


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
@read_only
@auth_required
@query(PageQuery)
@response(OrderPage)
def bot_orders(bot_id: int, query: PageQuery) -> Any:
    """The bot's orders, newest first."""
    rows, total = service.bot_orders(
        db_session(), _own_bot(bot_id), limit=query.limit, offset=query.offset
    )
    return offset_page([OrderOut.model_validate(o) for o in rows], total, query)


@bp.get("/api/bots/<int:bot_id>/trades")
@read_only
@auth_required
@query(PageQuery)
@response(TradePage)
def bot_trades(bot_id: int, query: PageQuery) -> Any:
    """The bot's executions (fills), newest first; a closing fill carries the round trip's
    net result in `closed_trade_pnl`."""
    rows, total = service.bot_trades(
        db_session(), _own_bot(bot_id), limit=query.limit, offset=query.offset
    )
    return offset_page([TradeOut.model_validate(r) for r in rows], total, query)


@bp.get("/api/bots/<int:bot_id>/positions")
@read_only
@auth_required
@response(PositionList)
def bot_positions(bot_id: int) -> Any:
    """The bot's book for its symbol, valued at the market's last price when one is known."""
    items = [_position_out(v) for v in service.bot_positions(db_session(), _own_bot(bot_id))]
    return PositionList(items=items, total=len(items), limit=len(items))


@bp.get("/api/bots/<int:bot_id>/equity")
@read_only
@auth_required
@query(EquityQuery)
@response(EquityList)
def bot_equity(bot_id: int, query: EquityQuery) -> Any:
    """Equity snapshots, oldest first (the newest `limit` of them)."""
    rows = service.bot_equity(db_session(), _own_bot(bot_id), limit=query.limit, since=query.since)
    return EquityList(items=[EquityPointOut.model_validate(s) for s in rows], limit=query.limit)


@bp.get("/api/bots/<int:bot_id>/performance")
@read_only
@auth_required
@response(PerformanceOut)
def bot_performance(bot_id: int) -> Any:
    """Total return, drawdown, Sharpe/Sortino, exposure and trade statistics (docs/metrics.md)."""
    perf = service.bot_performance(db_session(), _own_bot(bot_id))
    m = perf.metrics
    return PerformanceOut(
        bot_id=bot_id,
        metrics=MetricsOut.model_validate(m.to_dict()),
        equity=EquitySummaryOut(
            points=perf.points, start=m.start_equity, end=m.end_equity, capital=perf.capital
        ),
    )


def _own_bot(bot_id: int) -> Bot:
    """The current user's bot (another user's answers 404 like a missing one)."""
    return service.get_bot(db_session(), current_user().id, bot_id)


def _position_out(view: LedgerView) -> PositionOut:
    return PositionOut(
        symbol=view.symbol,
        base=view.base,
        quote=view.quote,
        amount=view.position,
        avg_entry_price=view.avg_entry_price,
        cost_basis=view.cost_basis,
        initial_capital=view.initial_capital,
        cash=view.cash,
        realised_pnl=view.realised_pnl,
        fees_paid=view.fees_paid,
        open_orders=view.open_orders,
        price=view.price,
        equity=view.equity,
        unrealised_pnl=view.unrealised_pnl,
        balances={a: BalanceOut(**parts) for a, parts in view.balances.items()},
    )


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
