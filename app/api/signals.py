"""Signal bots: `POST /api/signals/{token}` takes an alert (TradingView's JSON shape), the
owner rotates the token and reads what became of each signal."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from flask import Blueprint, Flask, request
from pydantic import AliasChoices, Field, model_validator

from app.api.jwt import auth_required, current_user
from app.api.paging import OffsetQuery, offset_page
from app.api.rate_limit import hashed, limiter
from app.api.request_context import db_session
from app.api.types import ApiModel
from app.api.validation import RequestModel, body, query, response
from app.openapi import answers
from app.services import signals
from config import get_settings

bp = Blueprint("signals", __name__)


def signal_limit() -> str:
    return get_settings().signal_rate_limit


def _token_key() -> str:
    """Per bot (the id part of the token), so one noisy alert cannot starve another bot."""
    token = str((request.view_args or {}).get("token", ""))
    return f"signal:{hashed(token.partition('.')[0])}"


class SignalBody(RequestModel):
    id: str | None = Field(None, min_length=1, max_length=100, description="alert id (dedupe)")
    action: str = Field(min_length=1, max_length=16, examples=["buy"])
    symbol: str = Field(
        min_length=1, max_length=60, validation_alias=AliasChoices("symbol", "ticker")
    )
    amount: Decimal | None = Field(None, gt=0, le=Decimal("1e15"))
    percentage: Decimal | None = Field(None, gt=0, le=100)
    price: Decimal | None = Field(None, gt=0, le=Decimal("1e15"))
    timestamp: datetime | None = Field(None, description="when the alert fired (replay window)")

    @model_validator(mode="after")
    def _one_size(self) -> SignalBody:
        if self.amount is not None and self.percentage is not None:
            raise ValueError("give amount or percentage, not both")
        return self


class SignalOut(ApiModel):
    id: int
    alert_id: str | None
    action: str
    symbol: str
    amount: Decimal | None
    percentage: Decimal | None
    price: Decimal | None
    state: str = Field(description="queued | executed | refused")
    outcome: str | None
    created_at: datetime
    processed_at: datetime | None


class ReceivedOut(ApiModel):
    signal: SignalOut
    duplicate: bool


class TokenOut(ApiModel):
    token: str = Field(description="shown once; POST signals to /api/signals/{token}")


class SignalPage(ApiModel):
    items: list[SignalOut]
    total: int
    limit: int
    offset: int


@bp.post("/api/signals/<token>")
@answers(401, 429)
@limiter.limit(signal_limit, key_func=_token_key, error_message="too many signals for this bot")
@body(SignalBody)
@response(ReceivedOut, 202)
def receive(token: str, body: SignalBody) -> Any:
    """Take a signal (no login: the token is the credential). 202 with the recorded signal,
    queued for the bot's next tick or refused with the reason; the same alert `id` again
    answers the first record (`duplicate: true`) and runs nothing. 401: a wrong token."""
    got = signals.receive(
        db_session(),
        token,
        action=body.action,
        symbol=body.symbol,
        alert_id=body.id,
        amount=body.amount,
        percentage=body.percentage,
        price=body.price,
        sent_at=body.timestamp,
    )
    out = ReceivedOut(signal=SignalOut(**signals.signal_view(got.signal)), duplicate=got.duplicate)
    return out.model_dump(mode="json"), 202


@bp.post("/api/bots/<int:bot_id>/signal-token")
@answers(422)
@auth_required
@response(TokenOut, 201)
def rotate_token(bot_id: int) -> Any:
    """A new token for a `signal` bot, shown this once; the previous token stops working."""
    token = signals.rotate_token(db_session(), current_user().id, bot_id)
    return TokenOut(token=token).model_dump(mode="json"), 201


@bp.get("/api/bots/<int:bot_id>/signals")
@auth_required
@query(OffsetQuery)
@response(SignalPage)
def list_signals(bot_id: int, query: OffsetQuery) -> Any:
    """The bot's signals, newest first, with what became of each."""
    rows, total = signals.list_signals(
        db_session(), current_user().id, bot_id, limit=query.limit, offset=query.offset
    )
    items = [SignalOut(**signals.signal_view(r)).model_dump(mode="json") for r in rows]
    return offset_page(items, total, query)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
