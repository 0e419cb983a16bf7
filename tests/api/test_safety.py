"""Safety over HTTP: who may stop and resume, what the status shows, the eligibility of a
bot, alerts (own only; admins also system ones) and their acknowledgement, incidents."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.services.alerts import raise_alert
from app.services.incidents import record_incident
from app.store.base import utcnow
from app.store.db import session_scope
from app.store.models import Bot
from tests.services.safety_helpers import make_bot, set_bot


@pytest.fixture
def admin(make_user):
    return make_user(role="admin")


@pytest.fixture
def user(make_user):
    return make_user()


def test_only_admins_stop_and_a_reason_is_required(client, admin, user, auth_headers) -> None:
    url = "/api/admin/emergency-stop"
    assert client.post(url, json={"reason": "x"}).status_code == 401
    denied = client.post(url, json={"reason": "x"}, headers=auth_headers(user))
    assert denied.status_code == 403 and denied.json["error"]["code"] == "forbidden"
    for payload in ({}, {"reason": ""}, {"reason": "   "}, {"reason": "x", "extra": 1}):
        bad = client.post(url, json=payload, headers=auth_headers(admin))
        assert bad.status_code == 422, payload
        assert bad.json["error"]["code"] == "validation_error"
    status = client.get("/api/emergency-stop/status", headers=auth_headers(user))
    assert status.json["active"] is False


def test_stop_status_and_resume_over_http(client, admin, user, auth_headers) -> None:
    bot_id = make_bot(user.id, status="running")
    stopped = client.post(
        "/api/admin/emergency-stop", json={"reason": "feed broken"}, headers=auth_headers(admin)
    )
    assert stopped.status_code == 200
    assert stopped.json["active"] is True and stopped.json["paused_bots"] == 1
    status = client.get("/api/emergency-stop/status", headers=auth_headers(user)).json
    assert status["active"] is True and status["reason"] == "feed broken"
    assert status["changed_by_user_id"] == admin.id and status["changed_at"]
    assert client.post("/api/admin/emergency-resume", headers=auth_headers(user)).status_code == 403
    resumed = client.post("/api/admin/emergency-resume", headers=auth_headers(admin))
    assert resumed.status_code == 200 and resumed.json["active"] is False
    assert resumed.json["was_active"] is True
    with session_scope() as db:
        assert db.get(Bot, bot_id).pause_reason == "emergency_stop"
    codes = {a["code"] for a in client.get("/api/alerts", headers=auth_headers(user)).json["items"]}
    assert codes == {"emergency_stop"}


def test_live_eligibility_of_own_bot_only(client, user, make_user, auth_headers) -> None:
    bot_id = make_bot(user.id)
    set_bot(bot_id, paper_started_at=utcnow() - timedelta(days=1))
    answer = client.get(f"/api/bots/{bot_id}/live-eligibility", headers=auth_headers(user))
    assert answer.status_code == 200 and answer.json["live_allowed"] is False
    codes = [r["code"] for r in answer.json["reasons"]]
    assert codes[:3] == [
        "live_trading_disabled",
        "paper_days_insufficient",
        "market_never_live",  # a replay bot: not "no credentials", which it could never add
    ]
    assert "no_exchange_credentials" not in codes
    assert all(r["message"] for r in answer.json["reasons"])
    other = client.get(f"/api/bots/{bot_id}/live-eligibility", headers=auth_headers(make_user()))
    assert other.status_code == 404 and other.json["error"]["code"] == "bot_not_found"
    assert (
        client.get("/api/bots/999999/live-eligibility", headers=auth_headers(user)).status_code
        == 404
    )


def test_alerts_are_private_and_admins_also_see_system_ones(
    client, admin, user, make_user, auth_headers
) -> None:
    stranger = make_user()
    with session_scope() as db:
        mine = raise_alert(db, user_id=user.id, severity="warning", code="a", message="yours").id
        theirs = raise_alert(db, user_id=stranger.id, severity="info", code="b", message="no").id
        system = raise_alert(db, user_id=None, severity="critical", code="c", message="ops").id
    seen = client.get("/api/alerts", headers=auth_headers(user)).json["items"]
    assert [a["id"] for a in seen] == [mine] and seen[0]["system"] is False
    admin_seen = client.get("/api/alerts", headers=auth_headers(admin)).json["items"]
    assert [a["id"] for a in admin_seen] == [system] and admin_seen[0]["system"] is True
    assert client.post(f"/api/alerts/{theirs}/ack", headers=auth_headers(user)).status_code == 404
    assert client.post(f"/api/alerts/{system}/ack", headers=auth_headers(user)).status_code == 404
    acked = client.post(f"/api/alerts/{mine}/ack", headers=auth_headers(user))
    assert acked.status_code == 200 and acked.json["acknowledged_at"]
    again = client.post(f"/api/alerts/{mine}/ack", headers=auth_headers(user))
    assert again.json["acknowledged_at"] == acked.json["acknowledged_at"]
    open_only = client.get("/api/alerts?unacknowledged=true", headers=auth_headers(user))
    assert open_only.json["items"] == []


def test_alerts_page_newest_first(client, user, auth_headers) -> None:
    with session_scope() as db:
        ids = [
            raise_alert(db, user_id=user.id, severity="info", code="n", message=str(i)).id
            for i in range(5)
        ]
    first = client.get("/api/alerts?limit=2", headers=auth_headers(user)).json["items"]
    assert [a["id"] for a in first] == ids[::-1][:2]
    rest = client.get(
        f"/api/alerts?limit=10&before_id={first[-1]['id']}", headers=auth_headers(user)
    )
    assert [a["id"] for a in rest.json["items"]] == ids[::-1][2:]
    bad = client.get("/api/alerts?limit=0", headers=auth_headers(user))
    assert bad.status_code == 422


def test_incidents_are_for_admins(client, admin, user, auth_headers) -> None:
    with session_scope() as db:
        record_incident(db, "stuck_bot", "bot 1 rescheduled", bot_id=1, details={"x": 1})
        record_incident(db, "stale_job", "job 2 requeued", job_id=2)
    assert client.get("/api/admin/incidents", headers=auth_headers(user)).status_code == 403
    items = client.get("/api/admin/incidents", headers=auth_headers(admin)).json["items"]
    assert [i["kind"] for i in items] == ["stale_job", "stuck_bot"]
    assert items[1]["details"] == {"x": 1} and items[1]["bot_id"] == 1
    only = client.get("/api/admin/incidents?kind=stuck_bot", headers=auth_headers(admin))
    assert [i["kind"] for i in only.json["items"]] == ["stuck_bot"]


def test_stop_is_audited_with_the_caller_address(client, admin, auth_headers) -> None:
    from app.store.models.accounts import AuditLog

    client.post(
        "/api/admin/emergency-stop",
        json={"reason": "drill"},
        headers=auth_headers(admin),
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )
    with session_scope() as db:
        (row,) = db.scalars(select(AuditLog).where(AuditLog.action == "emergency_stop"))
        assert row.ip == "10.1.2.3" and row.actor_user_id == admin.id
