"""The dashboard's pages over HTTP (no browser): sign-in redirects, security headers on every
response, another user's bot answering 404 in the envelope's words, assets with no CDN."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.services.passwords import hash_password
from app.store.db import session_scope
from app.store.models import Job
from app.web import pages

PASSWORD = "a-long-password-1"
PAGES = ["/bots", "/bots/new", "/backtests", "/searches", "/strategies", "/analysis", "/portfolio"]
STATIC = Path(pages.__file__).parent / "static"
TEMPLATES = Path(pages.__file__).parent / "templates"


def _signed_in(client: FlaskClient, make_user: Callable[..., Any], role: str = "user") -> Any:
    user = make_user(password_hash=hash_password(PASSWORD), role=role)
    response = client.post("/api/auth/session", json={"email": user.email, "password": PASSWORD})
    assert response.status_code == 200
    return user


def _csrf(client: FlaskClient) -> dict[str, str]:
    return {"X-CSRF-TOKEN": client.get_cookie("csrf_access_token").value}


@pytest.mark.parametrize("path", ["/", *PAGES, "/admin", "/bots/1", "/searches/1"])
def test_pages_send_strangers_to_sign_in(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_a_page_with_only_the_refresh_cookie_renews_instead_of_redirecting(
    client: FlaskClient, make_user: Callable[..., Any]
) -> None:
    _signed_in(client, make_user)
    client.delete_cookie("access_token_cookie")
    page = client.get("/bots")
    assert page.status_code == 200 and 'data-page="resume"' in page.get_data(as_text=True)


def test_every_response_carries_the_security_headers(
    client: FlaskClient, make_user: Callable[..., Any]
) -> None:
    _signed_in(client, make_user)
    for path in [*PAGES, "/signup", "/api/health/ping", "/docs", "/assets/css/app.css"]:
        response = client.get(path)
        assert response.status_code == 200, path
        csp = response.headers["Content-Security-Policy"]
        script_src = re.search(r"script-src ([^;]*)", csp).group(1)  # type: ignore[union-attr]
        assert script_src == "'self'", path  # no inline script, no eval, no other origin
        assert "frame-ancestors 'none'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "same-origin"
        response.close()


def test_pages_render_for_a_signed_in_user_and_admin_is_for_admins(
    client: FlaskClient, make_user: Callable[..., Any]
) -> None:
    user = _signed_in(client, make_user)
    for path in PAGES:
        page = client.get(path)
        assert page.status_code == 200, path
        assert user.email in page.get_data(as_text=True)
    forbidden = client.get("/admin")
    assert forbidden.status_code == 403
    assert "admin role required" in forbidden.get_data(as_text=True)
    assert client.get("/login").status_code == 302  # already signed in


def test_another_users_bot_page_is_not_found(
    client: FlaskClient, make_user: Callable[..., Any]
) -> None:
    _signed_in(client, make_user)
    bot = {"name": "mine", "symbol": "ETH/BTC", "timeframe": "5m", "strategy": "sma_crossover",
           "capital": "1"}  # fmt: skip
    bot_id = client.post("/api/bots", json=bot, headers=_csrf(client)).get_json()["id"]
    assert client.get(f"/bots/{bot_id}").status_code == 200
    assert client.get(f"/bots/{bot_id}/edit").status_code == 200

    client.delete("/api/auth/session", headers=_csrf(client))
    _signed_in(client, make_user)
    for path in (f"/bots/{bot_id}", f"/bots/{bot_id}/edit"):
        page = client.get(path)
        assert page.status_code == 404
        text = page.get_data(as_text=True)
        assert f"bot {bot_id} not found" in text and "bot_not_found" in text
        assert "mine" not in text


def test_sign_in_only_follows_local_next_urls(client: FlaskClient) -> None:
    for target, expected in [
        ("/bots/3", "/bots/3"),
        ("https://evil.example/", "/bots"),
        ("//evil.example/x", "/bots"),
        ("/\\evil.example", "/bots"),
    ]:
        page = client.get("/login", query_string={"next": target}).get_data(as_text=True)
        assert f'data-next="{expected}"' in page, target


def test_no_asset_comes_from_another_origin() -> None:
    """Templates and our scripts reference this server only (vendored files excepted)."""
    ours = [*TEMPLATES.rglob("*.html"), *(STATIC / "js").rglob("*.js"), STATIC / "css" / "app.css"]
    for path in ours:
        text = path.read_text()
        assert not re.search(r"src=\"https?://|<link[^>]*href=\"https?://", text), path
        assert "cdn" not in text.lower(), path
        assert "localStorage" not in text and "sessionStorage" not in text, path


def test_another_users_search_page_is_not_found(
    client: FlaskClient, make_user: Callable[..., Any]
) -> None:
    owner = _signed_in(client, make_user)
    with session_scope() as db:
        job = Job(user_id=owner.id, kind="search", payload={}, payload_hash="0" * 64)
        db.add(job)
        db.flush()
        search_id = job.id
    assert client.get(f"/searches/{search_id}").status_code == 200
    client.delete("/api/auth/session", headers=_csrf(client))
    _signed_in(client, make_user)
    assert client.get(f"/searches/{search_id}").status_code == 404
