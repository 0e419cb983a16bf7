"""Liveness and readiness: what load balancers and deploy pipelines ask."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, jsonify

from app.api.errors import error_response
from app.services.health import readiness
from app.store.db import get_engine
from config import get_settings

bp = Blueprint("health", __name__)


@bp.get("/api/health/ping")
@bp.get("/health")
def ping() -> Response:
    """Liveness: touches nothing, so it answers even when the database is down."""
    return jsonify({"status": "ok"})


@bp.get("/api/health/ready")
def ready() -> Response:
    """Readiness: database reachable, migrations at head, Redis reachable when configured."""
    checks = readiness(get_engine(), timeout=get_settings().db_ready_timeout_seconds)
    body = {c.name: {"ok": c.ok, "detail": c.detail} for c in checks}
    failed = [c for c in checks if not c.ok]
    if failed:
        return error_response(
            503,
            "not_ready",
            "not ready: " + ", ".join(c.name for c in failed),
            details=[{"loc": [c.name], "msg": c.detail} for c in failed],
        )
    return jsonify({"status": "ready", "checks": body})


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
