#!/usr/bin/env python3
"""Post-deploy smoke check: is this Tradewind deployment alive, ready and usable?

    python scripts/smoke_check.py https://tradewind.example.com

Checks, in order: liveness (`/api/health/ping`), readiness (`/api/health/ready`: database
reachable, migrations at head, Redis when configured), the OpenAPI document, and a
register -> login -> `/api/auth/me` round trip with a throw-away account
(`smoke-<random>@example.com`). Use `--email/--password` (or SMOKE_EMAIL/SMOKE_PASSWORD) to log
in with an existing account instead of registering one, or `--no-auth` to skip the round trip.

Prints one line per check and exits 0 when all pass, 1 when any fails, 2 on bad usage.
Standard library only, so it runs from any machine with Python 3.9+.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import urllib.error
import urllib.request
from typing import Any


class CheckFailed(Exception):
    """A check did not pass; the message says why."""


def call(
    base: str,
    method: str,
    path: str,
    *,
    body: dict[str, Any] | None = None,
    token: str | None = None,
    timeout: float = 10.0,
) -> tuple[int, Any]:
    """One HTTP request; returns (status, decoded JSON or text). Network errors fail the check."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base.rstrip("/") + path, data=data, method=method)
    request.add_header("Accept", "application/json")
    request.add_header("User-Agent", "tradewind-smoke-check")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        raise CheckFailed(f"{method} {path}: cannot connect ({exc})") from None
    text = raw.decode("utf-8", "replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def expect(status: int, payload: Any, wanted: int, what: str) -> None:
    if status != wanted:
        reason = payload.get("error", {}).get("message") if isinstance(payload, dict) else None
        suffix = f": {reason}" if reason else ""
        raise CheckFailed(f"{what}: HTTP {status} (wanted {wanted}){suffix}")


def check_ping(base: str, timeout: float) -> str:
    status, payload = call(base, "GET", "/api/health/ping", timeout=timeout)
    expect(status, payload, 200, "ping")
    return "alive"


def check_ready(base: str, timeout: float) -> str:
    status, payload = call(base, "GET", "/api/health/ready", timeout=timeout)
    expect(status, payload, 200, "ready")
    checks = payload.get("checks", {}) if isinstance(payload, dict) else {}
    return ", ".join(f"{name} ok" for name in checks) or "ready"


def check_openapi(base: str, timeout: float) -> str:
    status, doc = call(base, "GET", "/openapi.json", timeout=timeout)
    expect(status, doc, 200, "openapi")
    if not isinstance(doc, dict) or not str(doc.get("openapi", "")).startswith("3.1"):
        raise CheckFailed("openapi: not an OpenAPI 3.1 document")
    paths = doc.get("paths", {})
    for required in ("/api/health/ping", "/api/auth/login"):
        if required not in paths:
            raise CheckFailed(f"openapi: {required} missing from the document")
    return f"{len(paths)} paths"


def check_auth(base: str, timeout: float, email: str | None, password: str | None) -> str:
    registered = False
    if not email:
        email = f"smoke-{secrets.token_hex(6)}@example.com"
        password = "Sm0ke!" + secrets.token_urlsafe(18)
        status, payload = call(
            base,
            "POST",
            "/api/auth/register",
            body={"email": email, "password": password},
            timeout=timeout,
        )
        expect(status, payload, 201, "register")
        registered = True
    status, payload = call(
        base, "POST", "/api/auth/login", body={"email": email, "password": password},
        timeout=timeout,
    )
    expect(status, payload, 200, "login")
    token = payload.get("access_token") if isinstance(payload, dict) else None
    if not token:
        raise CheckFailed("login: no access_token in the answer")
    status, me = call(base, "GET", "/api/auth/me", token=token, timeout=timeout)
    expect(status, me, 200, "me")
    if not isinstance(me, dict) or str(me.get("email", "")).lower() != email.lower():
        raise CheckFailed("me: the token does not belong to the account that logged in")
    return f"{'registered and ' if registered else ''}logged in as {email}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base_url", help="e.g. https://tradewind.example.com")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    parser.add_argument("--email", default=os.environ.get("SMOKE_EMAIL"))
    parser.add_argument("--password", default=os.environ.get("SMOKE_PASSWORD"))
    parser.add_argument("--no-auth", action="store_true", help="skip the login round trip")
    args = parser.parse_args(argv)
    if bool(args.email) != bool(args.password):
        parser.error("--email and --password go together")
    if not args.base_url.startswith(("http://", "https://")):
        parser.error("BASE_URL must start with http:// or https://")

    checks = [
        ("ping", lambda: check_ping(args.base_url, args.timeout)),
        ("ready", lambda: check_ready(args.base_url, args.timeout)),
        ("openapi", lambda: check_openapi(args.base_url, args.timeout)),
    ]
    if not args.no_auth:
        checks.append(
            ("auth", lambda: check_auth(args.base_url, args.timeout, args.email, args.password))
        )
    failed = 0
    for name, run in checks:
        try:
            print(f"ok    {name:8} {run()}")
        except CheckFailed as exc:
            failed += 1
            print(f"FAIL  {name:8} {exc}")
    print("smoke check " + ("passed" if not failed else f"FAILED ({failed} of {len(checks)})"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
