"""Browser tests: Playwright drives Debian's chromium against a real gunicorn (scheduler on,
replay market 300x fast, so paper bots trade within seconds) on this run's database and Redis.

Every page a test opens is watched: a console error or an uncaught exception fails the test.
Screenshots go to `test-artifacts/screenshots/` (gitignored) for a person to look at.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from config import Settings
from tests.support.databases import truncate_all
from tests.support.processes import ROOT, gunicorn, service_env

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
PASSWORD = "a-long-test-password"
REPLAY_SPEED = "300"  # a 5m replay candle closes every second


@dataclass
class Server:
    base: str
    log_path: Path

    def api(self, method: str, path: str, token: str | None = None, **kw: Any) -> Any:
        headers = kw.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, self.base + path, headers=headers, timeout=30, **kw)

    def register(self, email: str | None = None) -> tuple[str, str]:
        """A new account through the API; returns (email, bearer access token)."""
        email = email or f"web-{uuid.uuid4().hex[:10]}@example.com"
        creds = {"email": email, "password": PASSWORD}
        assert self.api("POST", "/api/auth/register", json=creds).status_code == 201
        login = self.api("POST", "/api/auth/login", json=creds)
        assert login.status_code == 200, login.text
        return email, login.json()["access_token"]


@pytest.fixture(scope="module")
def server(
    _app: Flask, settings: Settings, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A gunicorn over an emptied database (what a test before left - an emergency stop still
    active, say - must not reach the pages), shared by the module's tests."""
    from config import use_settings

    use_settings(settings)
    truncate_all(database_url)
    log_path = tmp_path_factory.mktemp("web") / "gunicorn.log"
    env = service_env(
        settings,
        SCHEDULER_ENABLED="true",
        REPLAY_SPEED=REPLAY_SPEED,
        RATELIMIT_REGISTER="1000 per minute",
        RATELIMIT_REGISTER_ACCOUNT="1000 per minute",
        RATELIMIT_LOGIN="1000 per minute",
        RATELIMIT_LOGIN_ACCOUNT="1000 per minute",
        SSE_HEARTBEAT_SECONDS="1",
    )
    with gunicorn(env, workers=2, threads=10, log_path=log_path) as (base, _proc):
        yield Server(base, log_path)


@dataclass
class Watched:
    """A page whose console errors and uncaught exceptions are collected."""

    page: Any
    errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"chromium not found at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(browser: Any, server: Server) -> Iterator[Callable[..., Any]]:
    """`open_page(width=1280)` -> a page in a fresh browser context (its own cookies)."""
    watched: list[Watched] = []
    contexts: list[Any] = []

    def make(width: int = 1280, height: int = 900) -> Any:
        context = browser.new_context(
            base_url=server.base, viewport={"width": width, "height": height}
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        entry = Watched(page)
        page.on("console", lambda msg: _console(entry, page, msg))
        page.on("pageerror", lambda exc: entry.errors.append(f"{page.url}: {exc}"))
        watched.append(entry)
        return page

    yield make
    errors = [e for w in watched for e in w.errors]
    for context in contexts:
        context.close()
    assert errors == [], "browser console errors:\n" + "\n".join(errors)


EXPECTED_4XX = re.compile(r"^Failed to load resource: the server responded with a status of 4\d\d")


def _console(entry: Watched, page: Any, msg: Any) -> None:
    """Console errors fail the test, except the browser's own note of a 4xx answer, which
    the tests provoke on purpose (validation, 401, 404) and the page shows in its words."""
    if msg.type == "error" and not EXPECTED_4XX.match(msg.text):
        entry.errors.append(f"{page.url}: {msg.text}")


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """Serious and critical accessibility violations on the page as it is now (axe-core)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text() + "\n;0")
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def sign_in(page: Any, email: str, password: str = PASSWORD, then: str = "/bots") -> None:
    page.goto("/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{then}")
