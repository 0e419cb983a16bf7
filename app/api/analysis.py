"""Market analysis jobs, their results, the watchlist and the analysis patterns.

Thin: parse, call `app.services.analysis` / `jobs` / `watchlist`, serialise. Job creation
answers 202 with the job; an `Idempotency-Key` header makes a retried request return the same
job (a reused key with a different body is 409). Another user's job answers 404.
"""

from __future__ import annotations

import datetime as dt
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from flask import Blueprint, Flask, request
from pydantic import ConfigDict, Field, StringConstraints

from app.api.jwt import auth_required, current_user
from app.api.paging import OffsetQuery, offset_page
from app.api.request_context import db_session
from app.api.types import ApiModel, DecimalText
from app.api.validation import RequestModel, body, query, response
from app.openapi import answers
from app.patterns import get_pattern_registry
from app.services import analysis as analysis_service
from app.services import jobs as jobs_service
from app.services import watchlist as watchlist_service
from app.services.jobs import Submission
from app.store.models import Job
from app.store.queue import STATES

bp = Blueprint("analysis", __name__)

Ticker = Annotated[
    str, StringConstraints(min_length=1, max_length=analysis_service.TICKER_MAX_LENGTH)
]
JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
assert set(JobState.__args__) == set(STATES)  # type: ignore[attr-defined]


class AnalysisOptions(RequestModel):
    capital: Decimal = Field(
        gt=0, le=Decimal("1e15"), allow_inf_nan=False, description="quote currency to allocate"
    )
    pattern: str | None = Field(
        None, min_length=1, max_length=64, description="a name from GET /api/patterns"
    )
    pattern_params: dict[str, Any] | None = Field(
        None, description="values for the pattern's parameters (defaults fill the rest)"
    )
    timeframe: str = Field(analysis_service.DEFAULT_TIMEFRAME, min_length=1, max_length=8)
    max_per_ticker: float = Field(
        analysis_service.DEFAULT_MAX_PER_TICKER,
        gt=0,
        le=1,
        description="largest share of the capital one ticker may get",
    )


class AnalyzeRequest(AnalysisOptions):
    tickers: list[Ticker] = Field(
        min_length=1, max_length=analysis_service.MAX_TICKERS, examples=[["ETH/BTC", "LTC-BTC"]]
    )


class BulkAnalyzeRequest(AnalysisOptions):
    tickers: list[Ticker] = Field(min_length=1, max_length=analysis_service.MAX_BULK_TICKERS)


class WatchlistAdd(RequestModel):
    ticker: Ticker = Field(examples=["ETH/BTC"])


class JobListQuery(OffsetQuery):
    state: JobState | None = None
    kind: str | None = Field(None, max_length=32)


class ResultsQuery(OffsetQuery):
    ticker: str | None = Field(None, max_length=analysis_service.TICKER_MAX_LENGTH)
    date: dt.date | None = Field(None, description="UTC day the result was produced")
    job_id: int | None = Field(None, ge=1)


class JobSummary(ApiModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    state: str
    progress: float
    attempts: int
    max_attempts: int
    error: str | None
    cancel_requested: bool
    created_at: datetime
    run_after: datetime | None
    started_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None = None


class JobOut(JobSummary):
    payload: dict[str, Any]
    result: dict[str, Any] | None


class JobPage(ApiModel):
    items: list[JobSummary]
    total: int
    limit: int
    offset: int


class AnalysisResultOut(ApiModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    job_id: int
    ticker: str
    timeframe: str
    pattern: str | None
    signal: str | None
    score: float | None
    allocation: DecimalText | None
    as_of: datetime | None
    data: dict[str, Any]
    error: str | None
    created_at: datetime


class ResultPage(ApiModel):
    items: list[AnalysisResultOut]
    total: int
    limit: int
    offset: int


class WatchlistItemOut(ApiModel):
    model_config = ConfigDict(from_attributes=True)

    ticker: str
    created_at: datetime


class WatchlistOut(ApiModel):
    items: list[WatchlistItemOut]


class PatternsOut(ApiModel):
    patterns: list[dict[str, Any]]
    problems: list[dict[str, Any]] = Field(
        description="pattern files that failed validation (file, line, reason); the last good "
        "version of such a file stays active"
    )


def _summary(job: Job, model: type[JobSummary] = JobSummary) -> dict[str, Any]:
    out = model.model_validate(job)
    if job.started_at is not None and job.finished_at is not None:
        out.duration_seconds = (job.finished_at - job.started_at).total_seconds()
    return out.model_dump(mode="json")


def _accepted(submission: Submission) -> tuple[dict[str, Any], int, dict[str, str]]:
    headers = {"Location": f"/api/jobs/{submission.job.id}"}
    if not submission.created:
        headers["Idempotent-Replayed"] = "true"
    return _summary(submission.job, JobOut), 202, headers


def _idempotency_key() -> str | None:
    return request.headers.get("Idempotency-Key")


def _options(data: AnalysisOptions) -> dict[str, Any]:
    return {
        "timeframe": data.timeframe,
        "pattern": data.pattern,
        "pattern_params": data.pattern_params,
        "max_per_ticker": data.max_per_ticker,
    }


@bp.post("/api/analyze")
@answers(409)
@auth_required
@body(AnalyzeRequest)
@response(JobOut, 202)
def analyze(body: AnalyzeRequest) -> Any:
    """Queue an analysis of 1..50 tickers; 202 with the job (poll GET /api/jobs/{id})."""
    payload = analysis_service.build_payload(body.tickers, body.capital, **_options(body))
    session = db_session()
    return _accepted(
        analysis_service.submit_analysis(session, current_user().id, payload, _idempotency_key())
    )


@bp.post("/api/analyze/bulk")
@answers(409)
@auth_required
@body(BulkAnalyzeRequest)
@response(JobOut, 202)
def analyze_bulk(body: BulkAnalyzeRequest) -> Any:
    """Queue ONE job over up to 500 tickers, with one result per ticker."""
    payload = analysis_service.build_payload(
        body.tickers, body.capital, limit=analysis_service.MAX_BULK_TICKERS, **_options(body)
    )
    return _accepted(
        analysis_service.submit_analysis(
            db_session(), current_user().id, payload, _idempotency_key()
        )
    )


@bp.get("/api/jobs")
@auth_required
@query(JobListQuery)
@response(JobPage)
def list_jobs(query: JobListQuery) -> Any:
    jobs, total = jobs_service.list_jobs(
        db_session(),
        current_user().id,
        state=query.state,
        kind=query.kind,
        limit=query.limit,
        offset=query.offset,
    )
    return offset_page([_summary(j) for j in jobs], total, query)


@bp.get("/api/jobs/<int:job_id>")
@auth_required
@response(JobOut)
def get_job(job_id: int) -> Any:
    return _summary(jobs_service.get_job(db_session(), current_user().id, job_id), JobOut)


@bp.delete("/api/jobs/<int:job_id>")
@answers(202, 409)
@auth_required
@response(JobOut)
def cancel_job(job_id: int) -> Any:
    """Cancel: a queued job at once (200), a running one between two tickers (202)."""
    job, outcome = jobs_service.cancel_job(db_session(), current_user().id, job_id)
    return _summary(job, JobOut), 200 if outcome == "cancelled" else 202


@bp.get("/api/analysis-results")
@auth_required
@query(ResultsQuery)
@response(ResultPage)
def list_results(query: ResultsQuery) -> Any:
    rows, total = analysis_service.list_results(
        db_session(),
        current_user().id,
        ticker=query.ticker,
        on=query.date,
        job_id=query.job_id,
        limit=query.limit,
        offset=query.offset,
    )
    return offset_page([AnalysisResultOut.model_validate(r) for r in rows], total, query)


@bp.get("/api/watchlist")
@auth_required
@response(WatchlistOut)
def get_watchlist() -> Any:
    items = watchlist_service.list_items(db_session(), current_user().id)
    return {"items": [WatchlistItemOut.model_validate(i) for i in items]}


@bp.post("/api/watchlist")
@answers(200)
@auth_required
@body(WatchlistAdd)
@response(WatchlistItemOut, 201)
def add_to_watchlist(body: WatchlistAdd) -> Any:
    """Add a ticker: 201 when new, 200 when it was already on the list."""
    item, created = watchlist_service.add_item(db_session(), current_user().id, body.ticker)
    return WatchlistItemOut.model_validate(item).model_dump(mode="json"), 201 if created else 200


@bp.delete("/api/watchlist/<path:ticker>")
@auth_required
def remove_from_watchlist(ticker: str) -> Any:
    """Remove a ticker (`/api/watchlist/ETH/BTC` or `/api/watchlist/ETH-BTC`); 204."""
    watchlist_service.remove_item(db_session(), current_user().id, ticker)
    return "", 204


@bp.post("/api/watchlist/analyze")
@answers(409)
@auth_required
@body(AnalysisOptions)
@response(JobOut, 202)
def analyze_watchlist(body: AnalysisOptions) -> Any:
    """Queue one analysis job over every ticker on the watchlist."""
    return _accepted(
        watchlist_service.analyze_watchlist(
            db_session(),
            current_user().id,
            capital=body.capital,
            idempotency_key=_idempotency_key(),
            **_options(body),
        )
    )


@bp.get("/api/patterns")
@auth_required
@response(PatternsOut)
def list_patterns() -> Any:
    """Analysis patterns (reloaded from PATTERNS_DIR when their files change)."""
    registry = get_pattern_registry()
    return {
        "patterns": [p.describe() for p in registry.patterns()],
        "problems": [p.to_dict() for p in registry.problems()],
    }


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
