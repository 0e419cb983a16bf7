"""Notification channels: add (signed webhook, Telegram, Discord), list, change, delete, send
a test message, read the delivery log. Secrets are write-only; a webhook's signing key is in
the creation answer and nowhere else."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from flask import Blueprint, Flask
from pydantic import ConfigDict, Field, StrictBool, model_validator

from app.api.jwt import auth_required, current_user
from app.api.paging import OffsetQuery, offset_page
from app.api.request_context import db_session
from app.api.types import ApiModel
from app.api.validation import RequestModel, body, query, response
from app.openapi import answers
from app.services import notifications
from app.services.notification_outbox import EVENT_KINDS

bp = Blueprint("notifications", __name__)

EventName = str


class ChannelBody(RequestModel):
    kind: Literal["webhook", "telegram", "discord"]
    name: str = Field(min_length=1, max_length=100)
    events: list[EventName] = Field(
        min_length=1, max_length=len(EVENT_KINDS), examples=[["trade_closed", "bot_paused"]]
    )
    url: str | None = Field(None, min_length=1, max_length=2000, description="webhook, discord")
    bot_token: str | None = Field(None, min_length=1, max_length=200, description="telegram")
    chat_id: str | None = Field(None, min_length=1, max_length=80, description="telegram")


class ChannelPatch(RequestModel):
    name: str | None = Field(None, min_length=1, max_length=100)
    events: list[EventName] | None = Field(None, min_length=1, max_length=len(EVENT_KINDS))
    enabled: StrictBool | None = None

    @model_validator(mode="after")
    def _something(self) -> ChannelPatch:
        if self.name is None and self.events is None and self.enabled is None:
            raise ValueError("give name, events and/or enabled")
        return self


class ChannelOut(ApiModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    name: str
    target: str = Field(description="where it sends, without any secret")
    events: list[str]
    enabled: bool
    consecutive_failures: int
    disabled_reason: str | None
    created_at: datetime


class CreatedChannelOut(ChannelOut):
    signing_key: str | None = Field(
        None, description="webhooks only: the HMAC key, shown in this answer only"
    )


class ChannelList(ApiModel):
    items: list[ChannelOut]


class AttemptOut(ApiModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    delivery_id: int | None = Field(description="the id the payload carried; null for a test")
    event: str
    attempt: int
    ok: bool
    status: int | None
    error: str | None
    duration_ms: int
    created_at: datetime


class AttemptPage(ApiModel):
    items: list[AttemptOut]
    total: int
    limit: int
    offset: int


class EventKindsOut(ApiModel):
    events: dict[str, str]


@bp.get("/api/notifications/events")
@auth_required
@response(EventKindsOut)
def event_kinds() -> EventKindsOut:
    """The event kinds a channel can select, with what each means."""
    return EventKindsOut(events=dict(EVENT_KINDS))


@bp.post("/api/notifications/channels")
@answers(409)
@auth_required
@body(ChannelBody)
@response(CreatedChannelOut, 201)
def create(body: ChannelBody) -> Any:
    channel, key = notifications.create_channel(
        db_session(),
        current_user().id,
        kind=body.kind,
        name=body.name,
        events=body.events,
        url=body.url,
        bot_token=body.bot_token,
        chat_id=body.chat_id,
    )
    out = CreatedChannelOut.model_validate(channel)
    out.signing_key = key
    return out.model_dump(mode="json"), 201


@bp.get("/api/notifications/channels")
@auth_required
@response(ChannelList)
def listing() -> ChannelList:
    rows = notifications.list_channels(db_session(), current_user().id)
    return ChannelList(items=[ChannelOut.model_validate(r) for r in rows])


@bp.get("/api/notifications/channels/<int:channel_id>")
@auth_required
@response(ChannelOut)
def get_channel(channel_id: int) -> ChannelOut:
    return ChannelOut.model_validate(
        notifications.get_channel(db_session(), current_user().id, channel_id)
    )


@bp.patch("/api/notifications/channels/<int:channel_id>")
@auth_required
@body(ChannelPatch)
@response(ChannelOut)
def update(channel_id: int, body: ChannelPatch) -> ChannelOut:
    channel = notifications.update_channel(
        db_session(),
        current_user().id,
        channel_id,
        name=body.name,
        events=body.events,
        enabled=body.enabled,
    )
    return ChannelOut.model_validate(channel)


@bp.delete("/api/notifications/channels/<int:channel_id>")
@auth_required
def delete(channel_id: int) -> tuple[str, int]:
    notifications.delete_channel(db_session(), current_user().id, channel_id)
    return "", 204


@bp.post("/api/notifications/channels/<int:channel_id>/test")
@auth_required
@response(AttemptOut)
def send_test(channel_id: int) -> AttemptOut:
    """Send a test message now; the answer (and the delivery log) says how it went."""
    attempt = notifications.send_test(db_session(), current_user().id, channel_id)
    return AttemptOut.model_validate(attempt)


@bp.get("/api/notifications/channels/<int:channel_id>/deliveries")
@auth_required
@query(OffsetQuery)
@response(AttemptPage)
def deliveries(channel_id: int, query: OffsetQuery) -> Any:
    """The channel's delivery log, newest first: every try, with its status or error."""
    rows, total = notifications.list_attempts(
        db_session(), current_user().id, channel_id, limit=query.limit, offset=query.offset
    )
    return offset_page([AttemptOut.model_validate(r).model_dump(mode="json") for r in rows],
                       total, query)  # fmt: skip


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
