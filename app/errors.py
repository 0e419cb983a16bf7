"""Application errors that every layer may raise.

These classes know nothing about Flask: services, the engine and the market layer raise them,
and `app.api.errors` turns each into the one JSON error envelope with its HTTP status.
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """Base of every error the client is meant to see, with a stable machine-readable code."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details = details or []
        self.headers = headers or {}


class ValidationFailed(AppError):
    status = 422
    code = "validation_error"

    def under(self, field: str, code: str) -> ValidationFailed:
        """This failure of a nested value, reported under the request body's `field` (each
        detail's path prefixed with it) with `code`."""
        details = [{"loc": ["body", field, *d.get("loc", [])], "msg": d.get("msg", "")}
                   for d in self.details]  # fmt: skip
        return ValidationFailed(f"{self.message}: {details[0]['msg'] if details else 'invalid'}",
                                code=code, details=details)  # fmt: skip


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"


class Forbidden(AppError):
    status = 403
    code = "forbidden"


class NotFound(AppError):
    status = 404
    code = "not_found"


class Conflict(AppError):
    status = 409
    code = "conflict"


class ServiceUnavailable(AppError):
    status = 503
    code = "service_unavailable"
