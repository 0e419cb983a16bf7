"""Liveness and readiness in-process (the multi-process and outage cases are in
tests/test_gunicorn.py)."""

from __future__ import annotations

from flask.testing import FlaskClient


def test_ping_and_alias(client: FlaskClient) -> None:
    for path in ("/api/health/ping", "/health"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.get_json() == {"status": "ok"}


def test_ready_reports_each_check(client: FlaskClient) -> None:
    response = client.get("/api/health/ready")
    assert response.status_code == 200, response.get_json()
    checks = response.get_json()["checks"]
    assert checks["database"]["ok"] and checks["migrations"]["ok"] and checks["redis"]["ok"]


def test_cors_allows_configured_origin_only(app, settings) -> None:  # type: ignore[no-untyped-def]
    from app.factory import create_app

    cors_app = create_app(settings.model_copy(update={"cors_origins": "https://dash.example"}))
    client = cors_app.test_client()
    ok = client.get("/api/health/ping", headers={"Origin": "https://dash.example"})
    assert ok.headers.get("Access-Control-Allow-Origin") == "https://dash.example"
    other = client.get("/api/health/ping", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    from config import use_settings

    use_settings(settings)
