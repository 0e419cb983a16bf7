"""Parameter searches: validated up front (422), queued as a job (202), cancellable."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Flask, request
from pydantic import ConfigDict, Field

from app.api.backtests import BacktestRequest
from app.api.bots import BotOut
from app.api.jwt import auth_required, current_user
from app.api.paging import OffsetQuery, offset_page
from app.api.request_context import db_session
from app.api.types import ApiModel
from app.api.validation import RequestModel, body, query, response
from app.openapi import answers
from app.services import jobs as jobs_service
from app.services.searches import bot_from_search, submit_search
from app.services.searches import get_search as get_job
from app.services.searches import list_searches as list_jobs

bp = Blueprint("searches", __name__)


class SearchRequest(BacktestRequest):
    """The backtest the search varies (one pair, or several sharing one wallet), and how."""

    strategy_params: dict[str, Any] = Field(
        default_factory=dict, description="values of the parameters not searched"
    )
    ranges: dict[str, dict[str, Any]] = Field(
        description='per parameter {"low": 5, "high": 30} or {"choices": [..]}, within the '
        "strategy's declared range",
        examples=[{"fast": {"low": 5, "high": 30}, "slow": {"low": 20, "high": 100}}],
    )
    objective: str = Field(
        "sharpe", description="profit, sharpe, sortino, calmar or profit_dd (docs/backtesting.md)"
    )
    trials: int = Field(100, description="trial budget, 1..10000")
    timeout_seconds: float = Field(600, description="time budget in seconds, > 0")
    seed: int | None = Field(None, description="seed of the sampler, for a repeatable search")
    walk_forward: dict[str, Any] | None = Field(
        None,
        description='{"folds": 2..20, "in_sample": 0.5..0.9}: search each fold\'s first share, '
        "check the best parameters on the rest",
    )


class SearchListQuery(OffsetQuery):
    pass


class SearchOut(ApiModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    state: str
    progress: float
    error: str | None
    payload: dict[str, Any]
    result: dict[str, Any] | None = Field(
        None,
        description="summary, objective, trials_done, trials_lost (trials whose worker died "
        "mid-trial, run again), stopped_by, best, trials (walk-forward: folds, walk_forward)",
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class SearchSummaryOut(ApiModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    state: str
    progress: float
    error: str | None
    payload: dict[str, Any]
    created_at: datetime
    finished_at: datetime | None


class SearchPage(ApiModel):
    items: list[SearchSummaryOut]
    total: int
    limit: int
    offset: int


@bp.post("/api/searches")
@answers(409)
@auth_required
@body(SearchRequest)
@response(SearchOut, 202)
def submit(body: SearchRequest) -> Any:
    """Queue a parameter search (202); poll GET /api/searches/{id}. `Idempotency-Key` is
    honoured."""
    submission = submit_search(
        db_session(),
        current_user().id,
        body.model_dump(exclude_none=True, mode="python"),
        request.headers.get("Idempotency-Key"),
    )
    headers = {"Location": f"/api/searches/{submission.job.id}"}
    if not submission.created:
        headers["Idempotent-Replayed"] = "true"
    return SearchOut.model_validate(submission.job).model_dump(mode="json"), 202, headers


@bp.get("/api/searches")
@auth_required
@query(SearchListQuery)
@response(SearchPage)
def list_searches(query: SearchListQuery) -> Any:
    jobs, total = list_jobs(db_session(), current_user().id, limit=query.limit, offset=query.offset)
    return offset_page([SearchSummaryOut.model_validate(j) for j in jobs], total, query)


@bp.get("/api/searches/<int:search_id>")
@auth_required
@response(SearchOut)
def get_search(search_id: int) -> Any:
    return SearchOut.model_validate(get_job(db_session(), current_user().id, search_id))


@bp.delete("/api/searches/<int:search_id>")
@answers(202, 409)
@auth_required
@response(SearchOut)
def cancel_search(search_id: int) -> Any:
    """Cancel: a queued search at once (200), a running one after its current trial (202)."""
    session = db_session()
    get_job(session, current_user().id, search_id)
    job, outcome = jobs_service.cancel_job(session, current_user().id, search_id)
    return SearchOut.model_validate(job).model_dump(
        mode="json"
    ), 200 if outcome == "cancelled" else 202


class BotFromSearch(RequestModel):
    name: str | None = Field(None, min_length=1, max_length=100, description="the bot's name")
    symbol: str | None = Field(
        None, min_length=1, max_length=40,
        description="the pair the bot trades: one of the search's pairs (default: its first)",
    )  # fmt: skip


@bp.post("/api/searches/<int:search_id>/bot")
@answers(409)
@auth_required
@body(BotFromSearch)
@response(BotOut, 201)
def create_bot(search_id: int, body: BotFromSearch) -> Any:
    """A paper bot (created, not started) with the search's best parameters, on its market
    (one of its pairs), capital, sizing and fees; 409 while the search has not succeeded."""
    bot = bot_from_search(db_session(), current_user().id, search_id, body.name, body.symbol)
    return BotOut.model_validate(bot)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
