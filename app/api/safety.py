"""Safety endpoints: the emergency stop, live-trading eligibility, alerts and incidents.
Thin: parse, call one service, serialise."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from flask import Blueprint, Flask, request
from pydantic import Field

from app.api.jwt import admin_required, auth_required, current_user
from app.api.request_context import db_session
from app.api.types import ApiModel
from app.api.validation import RequestModel, body, query, response
from app.services import alerts as alert_service
from app.services import emergency, incidents, live_gates
from app.services.bots import get_bot

bp = Blueprint("safety", __name__)


class StopRequest(RequestModel):
    reason: str = Field(min_length=1, max_length=500, description="why trading is stopped")


class ResumeRequest(RequestModel):
    note: str | None = Field(None, max_length=500)


class EmergencyState(ApiModel):
    active: bool
    reason: str | None
    changed_at: datetime | None
    changed_by_user_id: int | None


class StopResult(EmergencyState):
    cancelled_orders: int
    paused_bots: int
    complete: bool = Field(
        description="false when the flag holds but cancelling orders or pausing bots failed: "
        "no new order is placed; press again to finish"
    )


class ResumeResult(EmergencyState):
    was_active: bool


class GateReasonOut(ApiModel):
    code: Literal[
        "live_trading_disabled",
        "emergency_stop_active",
        "paper_days_insufficient",
        "no_exchange_credentials",
        "drawdown_too_high",
        "too_few_closed_trades",
        "market_never_live",
    ]
    message: str


class Eligibility(ApiModel):
    live_allowed: bool
    reasons: list[GateReasonOut]


class AlertQuery(RequestModel):
    unacknowledged: bool = False
    before_id: int | None = Field(None, ge=1)
    limit: int = Field(50, ge=1, le=200)


class AlertOut(ApiModel):
    id: int
    user_id: int | None
    bot_id: int | None
    severity: Literal["info", "warning", "critical"]
    code: str
    message: str
    created_at: datetime
    acknowledged_at: datetime | None
    system: bool


class AlertList(ApiModel):
    items: list[AlertOut]


class IncidentQuery(RequestModel):
    kind: str | None = Field(None, max_length=64)
    bot_id: int | None = Field(None, ge=1)
    before_id: int | None = Field(None, ge=1)
    limit: int = Field(50, ge=1, le=200)


class IncidentOut(ApiModel):
    id: int
    kind: str
    message: str
    bot_id: int | None
    job_id: int | None
    details: dict[str, Any]
    created_at: datetime


class IncidentList(ApiModel):
    items: list[IncidentOut]


@bp.post("/api/admin/emergency-stop")
@admin_required
@body(StopRequest)
@response(StopResult)
def emergency_stop(body: StopRequest) -> Any:
    """Stop all trading now: no order is placed anywhere once this has answered (200).
    A 503 `emergency_stop_not_recorded` means the database did not take the stop in time:
    trading may still be running, press again."""
    return emergency.emergency_stop(
        actor_user_id=current_user().id, reason=body.reason, ip=request.remote_addr
    )


@bp.post("/api/admin/emergency-resume")
@admin_required
@body(ResumeRequest)
@response(ResumeResult)
def emergency_resume(body: ResumeRequest) -> Any:
    """Allow trading again; bots stay paused until their owners resume them."""
    return emergency.emergency_resume(
        actor_user_id=current_user().id, note=body.note, ip=request.remote_addr
    )


@bp.get("/api/emergency-stop/status")
@auth_required
@response(EmergencyState)
def emergency_status() -> Any:
    return emergency.emergency_status(db_session())


@bp.get("/api/bots/<int:bot_id>/live-eligibility")
@auth_required
@response(Eligibility)
def live_eligibility(bot_id: int) -> Any:
    """Whether this bot may switch to live trading, with a code per failing gate."""
    session = db_session()
    return live_gates.live_eligibility(session, get_bot(session, current_user().id, bot_id))


@bp.get("/api/alerts")
@auth_required
@query(AlertQuery)
@response(AlertList)
def list_alerts(query: AlertQuery) -> Any:
    """Your alerts, newest first (admins also see system alerts); page with `before_id`."""
    rows = alert_service.list_alerts(
        db_session(),
        current_user(),
        unacknowledged=query.unacknowledged,
        before_id=query.before_id,
        limit=query.limit,
    )
    return {"items": [alert_service.alert_view(a) for a in rows]}


@bp.post("/api/alerts/<int:alert_id>/ack")
@auth_required
@response(AlertOut)
def acknowledge_alert(alert_id: int) -> Any:
    alert = alert_service.acknowledge_alert(db_session(), current_user(), alert_id)
    return alert_service.alert_view(alert)


@bp.get("/api/admin/incidents")
@admin_required
@query(IncidentQuery)
@response(IncidentList)
def list_incidents(query: IncidentQuery) -> Any:
    """What self-healing found and did, newest first; page with `before_id`."""
    rows = incidents.list_incidents(
        db_session(),
        kind=query.kind,
        bot_id=query.bot_id,
        before_id=query.before_id,
        limit=query.limit,
    )
    return {"items": [incidents.incident_view(i) for i in rows]}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
