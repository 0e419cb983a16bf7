"""Register, login, me: normalised unique emails, password policy, argon2 with rehash on
login, audit rows for success and failure, and bad input answered in the envelope with
nothing written."""

from __future__ import annotations

from typing import Any

import pytest
from argon2 import PasswordHasher
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.store.db import session_scope
from app.store.models import User
from app.store.models.accounts import AuditLog, RefreshToken
from tests.auth.conftest import PASSWORD, bearer


def count(model: Any) -> int:
    with session_scope() as db:
        return int(db.scalar(select(func.count()).select_from(model)) or 0)


def audit_actions() -> list[tuple[str, int | None, dict[str, Any]]]:
    with session_scope() as db:
        rows = db.scalars(select(AuditLog).order_by(AuditLog.id)).all()
        return [(r.action, r.target_user_id, r.details) for r in rows]


def error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()["error"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


def test_register_normalises_email_and_hides_the_hash(client: FlaskClient) -> None:
    response = client.post(
        "/api/auth/register", json={"email": "  Alice@Example.COM ", "password": PASSWORD}
    )
    assert response.status_code == 201
    user = response.get_json()["user"]
    assert user["email"] == "alice@example.com"
    assert user["role"] == "user" and user["is_disabled"] is False
    assert "password" not in response.get_data(as_text=True)
    with session_scope() as db:
        stored = db.scalar(select(User.password_hash))
    assert stored is not None and stored.startswith("$argon2id$") and PASSWORD not in stored


def test_email_is_unique_case_insensitively(client: FlaskClient, register) -> None:  # type: ignore[no-untyped-def]
    register("bob@example.com")
    response = client.post(
        "/api/auth/register", json={"email": "BOB@example.com", "password": PASSWORD}
    )
    assert error(response, 409)["code"] == "email_taken"
    assert count(User) == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "carol@example.com", "password": "too-short"}, "password"),
        ({"email": "carol@example.com", "password": "Carol@Example.com"}, "password"),
        ({"email": "not-an-email", "password": PASSWORD}, "email"),
        ({"email": "carol@example", "password": PASSWORD}, "email"),
        ({"email": "ca rol@example.com", "password": PASSWORD}, "email"),
        ({"email": "carol@example.com"}, "password"),
        ({"password": PASSWORD}, "email"),
        ({"email": 42, "password": PASSWORD}, "email"),
        ({"email": "carol@example.com", "password": ["a list"]}, "password"),
        ({"email": "carol@example.com", "password": 12345678901}, "password"),
        ({"email": "c" * 250 + "@example.com", "password": PASSWORD}, "email"),
        ({"email": "carol@example.com", "password": "p" * 1025}, "password"),
        ({"email": "carol@example.com", "password": PASSWORD, "role": "admin"}, "role"),
    ],
)
def test_bad_registrations_are_422_and_write_nothing(
    client: FlaskClient, payload: dict[str, Any], field: str
) -> None:
    body = error(client.post("/api/auth/register", json=payload), 422)
    assert body["code"] == "validation_error"
    assert ["body", field] in [d["loc"] for d in body["details"]]
    assert "p" * 50 not in str(body) and PASSWORD not in str(body)
    assert count(User) == 0 and count(AuditLog) == 0


def test_malformed_json_and_wrong_content_type(client: FlaskClient) -> None:
    bad = client.post("/api/auth/register", data="{'email':", content_type="application/json")
    assert error(bad, 400)["code"] == "malformed_json"
    form = client.post("/api/auth/register", data={"email": "x@example.com"})
    assert error(form, 415)["code"] == "unsupported_media_type"
    not_object = client.post("/api/auth/login", json=["a@example.com", PASSWORD])
    assert error(not_object, 422)["code"] == "validation_error"
    assert count(User) == 0


def test_login_returns_a_working_token_pair(client: FlaskClient, register, login) -> None:  # type: ignore[no-untyped-def]
    user = register("dave@example.com")
    tokens = login("DAVE@example.com")
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 15 * 60
    assert tokens["user"]["id"] == user["id"]
    me = client.get("/api/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200 and me.get_json()["email"] == "dave@example.com"
    assert count(RefreshToken) == 1
    actions = [a for a, _t, _d in audit_actions()]
    assert actions == ["auth.registered", "auth.login_succeeded"]


@pytest.mark.parametrize(
    ("email", "password", "reason"),
    [
        ("erin@example.com", "wrong password!", "wrong_password"),
        ("nobody@example.com", PASSWORD, "unknown_email"),
    ],
)
def test_failed_login_is_401_and_audited_although_the_request_rolls_back(
    client: FlaskClient, register, email: str, password: str, reason: str
) -> None:  # type: ignore[no-untyped-def]
    user = register("erin@example.com")
    response = client.post("/api/auth/login", json={"email": email, "password": password})
    body = error(response, 401)
    assert body["code"] == "invalid_credentials"
    assert body["message"] == "invalid email or password"  # same for unknown email and bad password
    failed = [(t, d) for a, t, d in audit_actions() if a == "auth.login_failed"]
    expected_target = user["id"] if reason == "wrong_password" else None
    assert failed == [(expected_target, {"email": email, "reason": reason})]
    assert count(RefreshToken) == 0


def test_disabled_account_cannot_log_in(client: FlaskClient, register) -> None:  # type: ignore[no-untyped-def]
    register("frank@example.com")
    with session_scope() as db:
        db.scalars(select(User)).one().is_disabled = True
    response = client.post(
        "/api/auth/login", json={"email": "frank@example.com", "password": PASSWORD}
    )
    assert error(response, 401)["code"] == "account_disabled"
    wrong = client.post(
        "/api/auth/login", json={"email": "frank@example.com", "password": "not the password"}
    )
    assert error(wrong, 401)["code"] == "invalid_credentials"  # no hint without the password


def test_login_rehashes_when_parameters_changed(client: FlaskClient, make_user, login) -> None:  # type: ignore[no-untyped-def]
    old_hash = PasswordHasher(time_cost=2, memory_cost=4096, parallelism=2).hash(PASSWORD)
    make_user(email="gina@example.com", password_hash=old_hash)
    login("gina@example.com")
    with session_scope() as db:
        new_hash = db.scalar(select(User.password_hash))
    assert new_hash != old_hash and new_hash is not None
    assert "m=4096,t=2,p=2" in old_hash and "m=4096,t=2,p=2" not in new_hash
    login("gina@example.com")  # the new hash verifies, and is not rehashed again
    with session_scope() as db:
        assert db.scalar(select(User.password_hash)) == new_hash


def test_me_requires_a_token(client: FlaskClient) -> None:
    assert error(client.get("/api/auth/me"), 401)["code"] == "unauthorized"
