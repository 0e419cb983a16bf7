"""Admin endpoints: 403 for users; users listed and changed by admins; a disabled user's
tokens stop at once; every change is audited; the audit log pages and filters."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from app.store.base import utcnow
from app.store.db import session_scope
from app.store.models import User
from app.store.models.accounts import AuditLog
from tests.auth.conftest import bearer
from tests.services.safety_helpers import get_bot, make_bot, set_bot


@pytest.fixture
def admin(make_user, auth_headers) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    user = make_user(email="root@example.com", role="admin")
    return {"user": user, "headers": auth_headers(user)}


@pytest.fixture
def bob(register, login) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    user = register("bob@example.com")
    return {"user": user, **login("bob@example.com")}


ADMIN_ROUTES = [
    ("get", "/api/admin/users", None),
    ("patch", "/api/admin/users/1", {"role": "admin"}),
    ("get", "/api/admin/audit-log", None),
]


@pytest.mark.parametrize(("method", "path", "payload"), ADMIN_ROUTES)
def test_users_get_403_on_admin_routes(
    client: FlaskClient, bob: dict[str, Any], method: str, path: str, payload: Any
) -> None:
    response = getattr(client, method)(path, json=payload, headers=bearer(bob["access_token"]))
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"
    with session_scope() as db:
        assert db.get(User, bob["user"]["id"]).role == "user"  # type: ignore[union-attr]


@pytest.mark.parametrize(("method", "path", "payload"), ADMIN_ROUTES)
def test_admin_routes_need_a_token(
    client: FlaskClient, method: str, path: str, payload: Any
) -> None:
    assert getattr(client, method)(path, json=payload).status_code == 401


def test_list_users_paginated(client: FlaskClient, admin: dict[str, Any], make_user) -> None:  # type: ignore[no-untyped-def]
    for i in range(4):
        make_user(email=f"u{i}@example.com")
    page = client.get("/api/admin/users?page=2&per_page=2", headers=admin["headers"]).get_json()
    assert page["total"] == 5 and page["page"] == 2 and page["per_page"] == 2
    assert [u["email"] for u in page["items"]] == ["u1@example.com", "u2@example.com"]
    assert "password_hash" not in str(page)
    bad = client.get("/api/admin/users?per_page=0", headers=admin["headers"])
    assert bad.status_code == 422


def test_role_change_takes_effect_at_once_and_is_audited(
    client: FlaskClient, admin: dict[str, Any], bob: dict[str, Any]
) -> None:
    url = f"/api/admin/users/{bob['user']['id']}"
    promoted = client.patch(url, json={"role": "admin"}, headers=admin["headers"])
    assert promoted.status_code == 200 and promoted.get_json()["role"] == "admin"
    # bob's existing token now reaches admin routes; demoted, it no longer does
    assert client.get("/api/admin/users", headers=bearer(bob["access_token"])).status_code == 200
    client.patch(url, json={"role": "user"}, headers=admin["headers"])
    assert client.get("/api/admin/users", headers=bearer(bob["access_token"])).status_code == 403
    with session_scope() as db:
        rows = db.scalars(
            select(AuditLog)
            .where(AuditLog.action == "admin.user_role_changed")
            .order_by(AuditLog.id)
        ).all()
        assert [(r.details["from"], r.details["to"]) for r in rows] == [
            ("user", "admin"),
            ("admin", "user"),
        ]
        assert {r.actor_user_id for r in rows} == {admin["user"].id}
        assert {r.target_user_id for r in rows} == {bob["user"]["id"]}


def test_disabled_user_tokens_stop_at_once(
    client: FlaskClient, admin: dict[str, Any], bob: dict[str, Any], auth_headers
) -> None:  # type: ignore[no-untyped-def]
    familyless = auth_headers(User(id=bob["user"]["id"]))  # minted outside any login
    assert client.get("/api/auth/me", headers=bearer(bob["access_token"])).status_code == 200
    assert client.get("/api/auth/me", headers=familyless).status_code == 200
    url = f"/api/admin/users/{bob['user']['id']}"
    response = client.patch(url, json={"is_disabled": True}, headers=admin["headers"])
    assert response.status_code == 200 and response.get_json()["is_disabled"] is True
    refused = client.get("/api/auth/me", headers=bearer(bob["access_token"]))
    assert refused.status_code == 401
    assert refused.get_json()["error"]["code"] == "token_revoked"  # its family went with it
    refused = client.get("/api/auth/me", headers=familyless)
    assert refused.status_code == 401
    assert refused.get_json()["error"]["code"] == "account_unavailable"
    assert client.post("/api/auth/refresh", headers=bearer(bob["refresh_token"])).status_code == 401
    # re-enabled, the old session stays dead (its family was revoked); a new login works
    client.patch(url, json={"is_disabled": False}, headers=admin["headers"])
    assert client.post("/api/auth/refresh", headers=bearer(bob["refresh_token"])).status_code == 401
    relog = client.post(
        "/api/auth/login", json={"email": "bob@example.com", "password": "correct horse battery"}
    )
    assert relog.status_code == 200


def test_disabling_a_user_pauses_their_bots_and_enabling_leaves_them_paused(
    client: FlaskClient, admin: dict[str, Any], bob: dict[str, Any], make_user
) -> None:  # type: ignore[no-untyped-def]
    owner = bob["user"]["id"]
    running = make_bot(owner, status="running")
    cooling = make_bot(owner, status="paused")
    set_bot(cooling, cooldown_until=utcnow() + timedelta(minutes=30), pause_reason="cooldown")
    stopped = make_bot(owner, status="stopped")
    someone_elses = make_bot(make_user().id, status="running")
    url = f"/api/admin/users/{owner}"
    assert (
        client.patch(url, json={"is_disabled": True}, headers=admin["headers"]).status_code == 200
    )
    for bot_id in (running, cooling):
        bot = get_bot(bot_id)
        assert (bot.status, bot.pause_reason) == ("paused", "account_disabled")
        assert bot.next_tick_at is None and bot.cooldown_until is None  # nothing ticks or resumes
    assert get_bot(stopped).status == "stopped" and get_bot(stopped).pause_reason is None
    assert get_bot(someone_elses).status == "running"
    assert (
        client.patch(url, json={"is_disabled": False}, headers=admin["headers"]).status_code == 200
    )
    for bot_id in (running, cooling):
        bot = get_bot(bot_id)
        assert (bot.status, bot.pause_reason, bot.next_tick_at) == (
            "paused",
            "account_disabled",
            None,
        )


@pytest.mark.parametrize(
    "payload",
    [{}, {"role": "root"}, {"is_disabled": "yes"}, {"role": None, "is_disabled": None}, {"x": 1}],
)
def test_bad_patches_are_422_and_change_nothing(
    client: FlaskClient, admin: dict[str, Any], bob: dict[str, Any], payload: dict[str, Any]
) -> None:
    url = f"/api/admin/users/{bob['user']['id']}"
    response = client.patch(url, json=payload, headers=admin["headers"])
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "validation_error"
    with session_scope() as db:
        user = db.get(User, bob["user"]["id"])
        assert user is not None and user.role == "user" and not user.is_disabled


def test_unknown_user_is_404(client: FlaskClient, admin: dict[str, Any]) -> None:
    response = client.patch(
        "/api/admin/users/99999", json={"role": "user"}, headers=admin["headers"]
    )
    assert response.status_code == 404


def test_admin_cannot_lock_themselves_out(client: FlaskClient, admin: dict[str, Any]) -> None:
    url = f"/api/admin/users/{admin['user'].id}"
    for payload in ({"role": "user"}, {"is_disabled": True}):
        response = client.patch(url, json=payload, headers=admin["headers"])
        assert response.status_code == 409
        assert response.get_json()["error"]["code"] == "self_lockout"


def test_audit_log_filters_and_pages(
    client: FlaskClient, admin: dict[str, Any], bob: dict[str, Any], register
) -> None:  # type: ignore[no-untyped-def]
    carol = register("carol@example.com")
    client.post("/api/auth/login", json={"email": "carol@example.com", "password": "nope nope!"})
    headers = admin["headers"]

    everything = client.get("/api/admin/audit-log", headers=headers).get_json()
    actions = [e["action"] for e in everything["items"]]
    assert actions[0] == "auth.login_failed"  # newest first
    assert everything["total"] == len(actions) == 4  # bob: registered, login; carol: both

    only_carol = client.get(f"/api/admin/audit-log?user_id={carol['id']}", headers=headers)
    assert {e["action"] for e in only_carol.get_json()["items"]} == {
        "auth.registered",
        "auth.login_failed",
    }
    failed = client.get("/api/admin/audit-log?action=auth.login_failed", headers=headers).get_json()
    assert failed["total"] == 1 and failed["items"][0]["target_user_id"] == carol["id"]
    assert "nope" not in str(failed)

    future = (utcnow() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    past = (utcnow() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")  # naive = UTC
    assert (
        client.get(f"/api/admin/audit-log?since={future}", headers=headers).get_json()["total"] == 0
    )
    window = client.get(f"/api/admin/audit-log?since={past}&until={future}", headers=headers)
    assert window.get_json()["total"] == 4

    page = client.get("/api/admin/audit-log?per_page=3&page=2", headers=headers).get_json()
    assert [e["id"] for e in page["items"]] == [everything["items"][3]["id"]]
    for bad in ("since=yesterday", "user_id=abc", "per_page=500", "colour=red"):
        assert client.get(f"/api/admin/audit-log?{bad}", headers=headers).status_code == 422
