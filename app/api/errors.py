"""The one error envelope: every 4xx/5xx leaves as
`{"error": {"code", "message", "details", "request_id"}}`, never an HTML page or a traceback."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, g, jsonify
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from app.errors import AppError

log = logging.getLogger("tradewind.errors")

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = {
        "error": {
            "code": code,
            "message": message,
            "details": details or [],
            "request_id": g.get("request_id"),
        }
    }
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    if status == 413:  # the body was not read: the connection cannot carry another request
        response.headers["Connection"] = "close"
    return response


def _app_error(exc: AppError) -> Response:
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    headers = {}
    if status == 405 and exc.valid_methods:  # type: ignore[attr-defined]
        headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
    retry_after = exc.response.headers.get("Retry-After") if exc.response is not None else None
    if retry_after:
        headers["Retry-After"] = retry_after
    return error_response(
        status, HTTP_CODES.get(status, "http_error"), exc.description or exc.name, headers=headers
    )


def _database_unavailable(exc: Exception) -> Response:
    log.error("database unavailable: %s", type(exc).__name__)
    return error_response(503, "database_unavailable", "the database is unavailable; retry shortly")


def _unexpected(exc: Exception) -> Response:
    if current_app.config.get("RERAISE_UNEXPECTED"):
        raise exc
    log.exception("unhandled error (request_id=%s)", g.get("request_id"))
    return error_response(500, "internal_error", "an internal error occurred")


def init_app(app: Flask) -> None:
    app.register_error_handler(AppError, _app_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(OperationalError, _database_unavailable)
    app.register_error_handler(PoolTimeout, _database_unavailable)
    app.register_error_handler(Exception, _unexpected)
