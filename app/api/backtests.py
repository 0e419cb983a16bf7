"""Backtests: queued as jobs over HTTP, or run in the terminal with `flask backtest`.

Both run `app.engine.backtest` - the strategy, sizing and paper fill code of a live bot.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from flask import Blueprint, Flask, request
from pydantic import ConfigDict, Field

from app.api.jwt import auth_required, current_user
from app.api.paging import OffsetQuery, offset_page
from app.api.request_context import db_session
from app.api.types import ApiModel
from app.api.validation import RequestModel, body, query, response
from app.openapi import answers
from app.services.backtests import get_backtest as get_job
from app.services.backtests import list_backtests as list_jobs
from app.services.backtests import submit_backtest

bp = Blueprint("backtests", __name__)


class BacktestRequest(RequestModel):
    strategy: str | None = Field(
        None, min_length=1, max_length=50, examples=["sma_crossover"],
        description="a template name (GET /api/strategies); or give strategy_document_id",
    )
    strategy_document_id: int | None = Field(None, ge=1, description="one of your documents")
    strategy_version: int | None = Field(None, ge=1, description="default: its latest version")
    strategy_params: dict[str, Any] = Field(default_factory=dict)
    exchange: str = Field("replay", min_length=1, max_length=50)
    symbol: str | None = Field(None, min_length=1, max_length=40, examples=["ETH/BTC"],
                               description="one pair; or give symbols")  # fmt: skip
    symbols: list[Annotated[str, Field(min_length=1, max_length=40)]] | None = Field(
        None, min_length=1, max_length=50, examples=[["ETH/BTC", "LTC/BTC"]],
        description="several pairs sharing one wallet (one quote currency), walked in time "
        "order and, at one timestamp, in this order",
    )
    max_open_trades: int | None = Field(
        None, ge=1, le=1000, description="with symbols: trades open at once (default: one per pair)"
    )
    timeframe: str = Field(min_length=1, max_length=8, examples=["5m"])
    start: datetime | None = Field(None, description="first candle (inclusive), UTC")
    end: datetime | None = Field(None, description="end of the range (exclusive), UTC")
    capital: Decimal = Field(gt=0, le=Decimal("1e15"))
    sizing: dict[str, Any] | None = Field(None, description='e.g. {"mode": "fixed", "stake": 0.1}')
    maker_fee: Decimal = Field(Decimal("0.001"), ge=0, lt=Decimal("0.1"))
    taker_fee: Decimal = Field(Decimal("0.001"), ge=0, lt=Decimal("0.1"))
    slippage_bps: Decimal = Field(Decimal("0"), ge=0, le=1000)


class BacktestListQuery(OffsetQuery):
    pass  # no filters yet; its own name keeps the OpenAPI component as it was


class BacktestOut(ApiModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    state: str
    progress: float
    error: str | None
    payload: dict[str, Any]
    result: dict[str, Any] | None = Field(
        None, description="summary, metrics, report, trades, skipped_entries, equity_curve"
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class BacktestSummaryOut(ApiModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    state: str
    progress: float
    error: str | None
    payload: dict[str, Any]
    created_at: datetime
    finished_at: datetime | None


class BacktestPage(ApiModel):
    items: list[BacktestSummaryOut]
    total: int
    limit: int
    offset: int


@bp.post("/api/backtests")
@answers(409)
@auth_required
@body(BacktestRequest)
@response(BacktestOut, 202)
def submit(body: BacktestRequest) -> Any:
    """Queue a backtest (202); poll GET /api/backtests/{id}. `Idempotency-Key` is honoured."""
    submission = submit_backtest(
        db_session(),
        current_user().id,
        body.model_dump(exclude_none=True),
        request.headers.get("Idempotency-Key"),
    )
    headers = {"Location": f"/api/backtests/{submission.job.id}"}
    if not submission.created:
        headers["Idempotent-Replayed"] = "true"
    return BacktestOut.model_validate(submission.job).model_dump(mode="json"), 202, headers


@bp.get("/api/backtests")
@auth_required
@query(BacktestListQuery)
@response(BacktestPage)
def list_backtests(query: BacktestListQuery) -> Any:
    jobs, total = list_jobs(db_session(), current_user().id, limit=query.limit, offset=query.offset)
    return offset_page([BacktestSummaryOut.model_validate(j) for j in jobs], total, query)


@bp.get("/api/backtests/<int:backtest_id>")
@auth_required
@response(BacktestOut)
def get_backtest(backtest_id: int) -> Any:
    return BacktestOut.model_validate(get_job(db_session(), current_user().id, backtest_id))


# -- flask backtest ----------------------------------------------------------------------


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
