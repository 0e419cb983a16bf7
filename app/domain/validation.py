"""Pydantic validation that fails with the project's `ValidationFailed` (one error envelope)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from app.errors import ValidationFailed

M = TypeVar("M", bound=BaseModel)


def error_details(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors as the envelope's details: [{"loc": [...], "msg": "..."}]."""
    return [{"loc": list(err["loc"]), "msg": err["msg"]} for err in exc.errors(include_url=False)]


def validate_model(model: type[M], data: Any, message: str) -> M:
    """Validate `data` (None means "all defaults") into `model`, or raise ValidationFailed."""
    if isinstance(data, model):
        return data
    try:
        return model.model_validate({} if data is None else data)
    except ValidationError as exc:
        raise ValidationFailed(message, details=error_details(exc)) from None
