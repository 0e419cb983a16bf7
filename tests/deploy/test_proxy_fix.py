"""Behind one proxy (nginx, Railway's edge) with TRUSTED_PROXY_COUNT=1 the app sees the
client's address and scheme, which per-IP rate limits and audit records rely on; without it,
forwarded headers are ignored (a client cannot spoof its address)."""

from __future__ import annotations

from flask import Flask, request

from config import Settings, use_settings

FORWARDED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}


def probe_app(settings: Settings) -> Flask:
    from app.factory import create_app

    app = create_app(settings)
    app.add_url_rule(
        "/_probe/peer", "probe_peer", lambda: {"ip": request.remote_addr, "scheme": request.scheme}
    )
    return app


def test_trusted_proxy_count_uses_forwarded_headers(settings: Settings, app: Flask) -> None:
    behind_proxy = settings.model_copy(update={"trusted_proxy_count": 1})
    try:
        client = probe_app(behind_proxy).test_client()
        peer = client.get("/_probe/peer", headers=FORWARDED).get_json()
    finally:
        use_settings(settings)
    assert peer == {"ip": "203.0.113.9", "scheme": "https"}


def test_forwarded_headers_are_ignored_by_default(settings: Settings, app: Flask) -> None:
    assert settings.trusted_proxy_count == 0
    peer = probe_app(settings).test_client().get("/_probe/peer", headers=FORWARDED).get_json()
    assert peer == {"ip": "127.0.0.1", "scheme": "http"}
