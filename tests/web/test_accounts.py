"""Signing up, in and out in a real browser: the session lives in httpOnly cookies (never in
script-readable storage), and signing out revokes it on the server, not just in the browser."""

from __future__ import annotations

import uuid
from typing import Any

import requests

from tests.web.conftest import PASSWORD, Server, axe_violations, screenshot, sign_in


def test_sign_up_sign_in_and_sign_out(open_page: Any, server: Server) -> None:
    page = open_page()
    email = f"new-{uuid.uuid4().hex[:8]}@example.com"

    page.goto("/")
    page.wait_for_url("**/login")
    assert axe_violations(page) == []
    screenshot(page, "login")
    page.click("text=Create one")
    page.wait_for_url("**/signup")

    # the API's validation message appears next to its field
    page.fill("#email", email)
    page.fill("#password", "short")
    page.click("button[type=submit]")
    password_error = page.locator("#password-error")
    password_error.wait_for(state="visible")
    assert "10" in password_error.inner_text()
    assert page.get_attribute("#password", "aria-invalid") == "true"
    assert axe_violations(page) == []
    screenshot(page, "signup-error")

    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/bots")
    page.locator("#bots-empty").wait_for(state="visible")
    assert email in page.locator(".who").inner_text()

    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["access_token_cookie"]["httpOnly"] is True
    assert cookies["access_token_cookie"]["sameSite"] == "Lax"
    assert cookies["refresh_token_cookie"]["httpOnly"] is True
    assert cookies["csrf_access_token"]["httpOnly"] is False
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    assert "access_token_cookie" not in page.evaluate("document.cookie")
    stolen = cookies["access_token_cookie"]["value"]
    assert requests.get(
        server.base + "/api/auth/me", cookies={"access_token_cookie": stolen}, timeout=10
    ).status_code == 200

    page.click("#sign-out")
    page.wait_for_url("**/login")
    names = {c["name"] for c in page.context.cookies()}
    assert "access_token_cookie" not in names and "refresh_token_cookie" not in names
    # the old cookie was revoked on the server: replaying it is refused
    replay = requests.get(
        server.base + "/api/auth/me", cookies={"access_token_cookie": stolen}, timeout=10
    )
    assert replay.status_code == 401 and replay.json()["error"]["code"] == "token_revoked"
    page.goto("/bots")
    page.wait_for_url("**/login?next=/bots")

    # a wrong password is reported in the envelope's words
    page.fill("#email", email)
    page.fill("#password", "not-the-password")
    page.click("button[type=submit]")
    problem = page.locator(".form-error")
    problem.wait_for(state="visible")
    assert "invalid email or password" in problem.inner_text().lower()

    sign_in(page, email)
    assert page.url.endswith("/bots")
