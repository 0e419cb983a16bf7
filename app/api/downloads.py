"""Admin: queue a candle download (`POST /api/admin/candle-downloads`); poll the job at
GET /api/jobs/{id}. The terminal twin is `flask download-candles`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Flask, request
from pydantic import Field

from app.api.analysis import JobOut
from app.api.jwt import admin_required, current_user
from app.api.request_context import db_session
from app.api.validation import RequestModel, body, response
from app.services import candle_downloads

bp = Blueprint("downloads", __name__)


class DownloadRequest(RequestModel):
    exchange: str = Field(min_length=1, max_length=50, examples=["binance"])
    symbols: list[str] = Field(
        min_length=1, max_length=candle_downloads.MAX_SYMBOLS, examples=[["BTC/USDT"]]
    )
    timeframe: str = Field(min_length=1, max_length=8, examples=["1h"])
    start: datetime = Field(description="first candle (inclusive), UTC")
    end: datetime | None = Field(None, description="end of the range (exclusive), default now")


@bp.post("/api/admin/candle-downloads")
@admin_required
@body(DownloadRequest)
@response(JobOut, 202)
def queue_download(body: DownloadRequest) -> Any:
    """Queue a download (202 with the job); running it again later fetches only what is new."""
    spec = candle_downloads.build_spec(
        body.exchange, body.symbols, body.timeframe, body.start, body.end
    )
    submission = candle_downloads.submit_download(
        db_session(), current_user().id, spec, request.headers.get("Idempotency-Key")
    )
    headers = {"Location": f"/api/jobs/{submission.job.id}"}
    if not submission.created:
        headers["Idempotent-Replayed"] = "true"
    return JobOut.model_validate(submission.job).model_dump(mode="json"), 202, headers


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
