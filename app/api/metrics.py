"""`GET /metrics` (Prometheus text format) and the per-request instrumentation.

Every request is counted by route template (never the raw path, so ids do not explode the
label set), method and status, and timed; its log records carry the request id and, once the
token is verified, the user id. `/metrics` is open in development and test; in production it
needs `Authorization: Bearer $METRICS_TOKEN`, or operators scrape the internal
`METRICS_PORT` served by the gunicorn master instead (see RAILWAY_DEPLOYMENT.md).
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Any

from flask import Blueprint, Flask, Response, g, has_request_context, request

from app.api.errors import error_response
from app.observability.gunicorn_logging import USER_ID_ENVIRON
from app.observability.logging import add_context_provider, bind_log_context, clear_log_context
from app.observability.metrics import (
    HTTP_REQUEST_DURATION,
    HTTP_REQUESTS,
    render_latest,
)
from app.services.emergency import refresh_stop_gauge
from config import get_settings

log = logging.getLogger("tradewind.metrics")

bp = Blueprint("metrics", __name__)
UNMATCHED_ROUTE = "<unmatched>"


def metrics_token() -> str | None:
    return get_settings().metrics_token


def _authorised() -> bool:
    token = metrics_token()
    if token is None:
        return not get_settings().is_production
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus metrics of every worker of this server (multiprocess mode under gunicorn)."""
    if not _authorised():
        if metrics_token() is None:
            return error_response(404, "not_found", "metrics are not exposed on this port")
        return error_response(
            401, "unauthorized", "metrics token required", headers={"WWW-Authenticate": "Bearer"}
        )
    refresh_stop_gauge()
    payload, content_type = render_latest()
    return Response(payload, mimetype=None, content_type=content_type)


metrics._tw_openapi = {  # type: ignore[attr-defined]
    "security": [{"metricsToken": []}, {}],
    "responses": {
        "200": {
            "description": "Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        "401": {"$ref": "#/components/responses/Error"},
        "404": {"$ref": "#/components/responses/Error"},
    },
}


def _jwt_user_id() -> dict[str, Any]:
    """The verified token's user id (flask-jwt-extended keeps it on `g` after verification)."""
    if not has_request_context():
        return {}
    subject = (g.get("_jwt_extended_jwt") or {}).get("sub")
    if subject is None:
        return {}
    return {"user_id": int(subject) if str(subject).isdigit() else subject}


def _start_request() -> None:
    g._tw_started = time.perf_counter()
    clear_log_context()
    bind_log_context(request_id=g.get("request_id"))


def _observe(response: Response) -> Response:
    route = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
    method = request.method
    HTTP_REQUESTS.labels(method, route, str(response.status_code)).inc()
    started = g.get("_tw_started")
    if started is not None:
        HTTP_REQUEST_DURATION.labels(method, route).observe(time.perf_counter() - started)
    user = _jwt_user_id().get("user_id")
    if user is not None:
        request.environ[USER_ID_ENVIRON] = user
    return response


def _end_request(_exc: BaseException | None) -> None:
    clear_log_context()


def init_app(app: Flask) -> None:
    add_context_provider(_jwt_user_id)
    app.before_request(_start_request)
    app.after_request(_observe)
    app.teardown_request(_end_request)
    app.register_blueprint(bp)
