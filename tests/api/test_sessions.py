"""Browser sessions: tokens in httpOnly cookies with double-submit CSRF; refresh rotation,
reuse detection and logout apply to cookies as to bearer tokens; bearer clients unchanged."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient

from app.services.passwords import hash_password

PASSWORD = "a-long-password-1"


def _user(make_user: Callable[..., Any]) -> Any:
    return make_user(password_hash=hash_password(PASSWORD))


def _sign_in(client: FlaskClient, user: Any) -> Any:
    return client.post("/api/auth/session", json={"email": user.email, "password": PASSWORD})


def _cookie(client: FlaskClient, name: str, path: str = "/") -> str | None:
    found = client.get_cookie(name, path=path)
    return found.value if found is not None else None


def test_sign_in_sets_http_only_cookies_and_returns_no_token(
    client: FlaskClient, make_user: Callable[..., Any]
) -> None:
    user = _user(make_user)
    response = _sign_in(client, user)
    assert response.status_code == 200
    body = response.get_json()
    assert body["user"]["email"] == user.email and body["expires_in"] > 0
    assert "access_token" not in body and "refresh_token" not in body
    set_cookies = response.headers.getlist("Set-Cookie")
    by_name = {c.split("=", 1)[0]: c for c in set_cookies}
    assert "HttpOnly" in by_name["access_token_cookie"]
    assert "SameSite=Lax" in by_name["access_token_cookie"]
    assert "HttpOnly" in by_name["refresh_token_cookie"]
    assert "Path=/api/auth/session" in by_name["refresh_token_cookie"]
    assert "HttpOnly" not in by_name["csrf_access_token"]  # the page must read it

    me = client.get("/api/auth/me")
    assert me.status_code == 200 and me.get_json()["id"] == user.id


def test_state_changing_requests_need_the_csrf_header(
    client: FlaskClient, make_user: Callable[..., Any]
) -> None:
    _sign_in(client, _user(make_user))
    bot = {"name": "b", "symbol": "ETH/BTC", "timeframe": "5m", "strategy": "sma_crossover",
           "capital": "1"}  # fmt: skip
    refused = client.post("/api/bots", json=bot)
    assert refused.status_code == 401
    assert "CSRF" in refused.get_json()["error"]["message"]
    wrong = client.post("/api/bots", json=bot, headers={"X-CSRF-TOKEN": "forged"})
    assert wrong.status_code == 401
    csrf = _cookie(client, "csrf_access_token")
    made = client.post("/api/bots", json=bot, headers={"X-CSRF-TOKEN": csrf})
    assert made.status_code == 201, made.get_json()
    # reads need no CSRF header, the hot ones (which check the token in their own query) too
    assert client.get("/api/bots").get_json()["items"] == [made.get_json()]
    assert client.get(f"/api/bots/{made.get_json()['id']}").get_json() == made.get_json()


def test_bearer_tokens_still_work_without_csrf(
    client: FlaskClient, make_user: Callable[..., Any], auth_headers: Callable[..., Any]
) -> None:
    user = make_user()
    bot = {"name": "b", "symbol": "ETH/BTC", "timeframe": "5m", "strategy": "sma_crossover",
           "capital": "1"}  # fmt: skip
    assert client.post("/api/bots", json=bot, headers=auth_headers(user)).status_code == 201


def test_refresh_rotates_the_cookie_and_reuse_revokes_the_family(
    client: FlaskClient, make_user: Callable[..., Any]
) -> None:
    _sign_in(client, _user(make_user))
    old_refresh = _cookie(client, "refresh_token_cookie", "/api/auth/session")
    old_csrf = _cookie(client, "csrf_refresh_token")
    missing_csrf = client.post("/api/auth/session/refresh")
    assert missing_csrf.status_code == 401

    renewed = client.post("/api/auth/session/refresh", headers={"X-CSRF-TOKEN": old_csrf})
    assert renewed.status_code == 200, renewed.get_json()
    assert _cookie(client, "refresh_token_cookie", "/api/auth/session") != old_refresh
    assert client.get("/api/auth/me").status_code == 200

    # replaying the spent refresh cookie (a thief's copy) revokes the whole login
    client.set_cookie("refresh_token_cookie", old_refresh, path="/api/auth/session")
    client.set_cookie("csrf_refresh_token", old_csrf)
    replay = client.post("/api/auth/session/refresh", headers={"X-CSRF-TOKEN": old_csrf})
    assert replay.status_code == 401
    me = client.get("/api/auth/me")
    assert me.status_code == 401 and me.get_json()["error"]["code"] == "token_revoked"


def test_sign_out_revokes_and_clears_the_cookies(
    client: FlaskClient, make_user: Callable[..., Any]
) -> None:
    _sign_in(client, _user(make_user))
    access = _cookie(client, "access_token_cookie")
    refresh = _cookie(client, "refresh_token_cookie", "/api/auth/session")
    refresh_csrf = _cookie(client, "csrf_refresh_token")
    assert client.delete("/api/auth/session").status_code == 401  # no CSRF header
    csrf = _cookie(client, "csrf_access_token")
    out = client.delete("/api/auth/session", headers={"X-CSRF-TOKEN": csrf})
    assert out.status_code == 204
    assert _cookie(client, "access_token_cookie") is None
    assert _cookie(client, "refresh_token_cookie", "/api/auth/session") is None

    client.set_cookie("access_token_cookie", access)
    me = client.get("/api/auth/me")
    assert me.status_code == 401 and me.get_json()["error"]["code"] == "token_revoked"
    client.set_cookie("refresh_token_cookie", refresh, path="/api/auth/session")
    client.set_cookie("csrf_refresh_token", refresh_csrf)
    again = client.post("/api/auth/session/refresh", headers={"X-CSRF-TOKEN": refresh_csrf})
    assert again.status_code == 401


def test_wrong_password_answers_in_the_envelope(
    client: FlaskClient, make_user: Callable[..., Any]
) -> None:
    user = _user(make_user)
    response = client.post("/api/auth/session", json={"email": user.email, "password": "nope"})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_credentials"
    set_cookies = response.headers.getlist("Set-Cookie")
    assert not any(c.startswith("access_token_cookie") for c in set_cookies)


def test_browser_and_api_logins_share_their_rate_limit(
    app: Any, client: FlaskClient, make_user: Callable[..., Any], settings: Any
) -> None:
    from app.api.rate_limit import reset_rate_limits
    from config import use_settings

    use_settings(settings.model_copy(update={"ratelimit_login_account": "3 per minute"}))
    reset_rate_limits()
    try:
        user = _user(make_user)
        wrong = {"email": user.email, "password": "wrong-password"}
        for path in ("/api/auth/login", "/api/auth/session", "/api/auth/login"):
            assert client.post(path, json=wrong).status_code == 401
        assert client.post("/api/auth/session", json=wrong).status_code == 429
    finally:
        use_settings(settings)
        reset_rate_limits()
