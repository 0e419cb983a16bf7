"""Request parsing with pydantic v2: `@body(Model)` and `@query(Model)` hand the view a parsed
model (keyword arguments `body` and `query`); `@response(Model)` serialises what it returns.

The decorators also record their models on the view, which is where the OpenAPI document
comes from. Unknown fields are rejected: every request model should forbid extras
(`RequestModel` does).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ConfigDict, ValidationError

from app.errors import AppError, ValidationFailed

F = TypeVar("F", bound=Callable[..., Any])


class RequestModel(BaseModel):
    """Base for request bodies and query strings: unknown fields are an error."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def pydantic_details(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors without the rejected input (it could hold a password or a secret)."""
    return [
        {"loc": [str(p) for p in err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def json_hint(exc: json.JSONDecodeError) -> str:
    hint = f"{exc.msg} at line {exc.lineno}, column {exc.colno}"
    if "double quotes" in exc.msg or "'" in exc.doc[max(exc.pos - 1, 0) : exc.pos + 1]:
        hint += "; JSON needs double quotes around names and strings, not single quotes"
    return hint


def read_json_body() -> Any:
    """The request's JSON document, or a 415/400/413 in the envelope explaining why not."""
    limit = request.max_content_length
    if request.content_length is not None and limit is not None and request.content_length > limit:
        raise AppError("request body too large", code="payload_too_large", status=413)
    raw = request.get_data(cache=True)
    if not raw.strip():
        if request.mimetype not in ("", "application/json"):
            raise AppError(
                "Content-Type must be application/json",
                code="unsupported_media_type",
                status=415,
            )
        return {}
    if not request.is_json:
        raise AppError(
            "Content-Type must be application/json", code="unsupported_media_type", status=415
        )
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise AppError("request body is not valid UTF-8", code="malformed_json") from None
    except json.JSONDecodeError as exc:
        raise AppError(
            "request body is not valid JSON",
            code="malformed_json",
            details=[{"loc": ["body"], "msg": json_hint(exc)}],
        ) from None


def parse_model(model: type[BaseModel], data: Any, where: str) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = pydantic_details(exc)
        for item in details:
            item["loc"] = [where, *item["loc"]]
        first = details[0] if details else {"loc": [where], "msg": "invalid"}
        message = f"{'.'.join(first['loc'][1:]) or where}: {first['msg']}"
        raise ValidationFailed(message, details=details) from None


def _query_data(model: type[BaseModel]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key in request.args:
        values = request.args.getlist(key)
        field = model.model_fields.get(key)
        is_list = field is not None and "list" in str(field.annotation).lower()
        data[key] = values if is_list or len(values) > 1 else values[0]
    return data


def body(model: type[BaseModel]) -> Callable[[F], F]:
    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            kwargs["body"] = parse_model(model, read_json_body(), "body")
            return view(*args, **kwargs)

        wrapper._tw_body = model  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator


def query(model: type[BaseModel]) -> Callable[[F], F]:
    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            kwargs["query"] = parse_model(model, _query_data(model), "query")
            return view(*args, **kwargs)

        wrapper._tw_query = model  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator


def response(model: type[BaseModel], status: int = 200) -> Callable[[F], F]:
    """Serialise a returned model (or dict validated against it) with the given status."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = view(*args, **kwargs)
            if isinstance(result, tuple) or hasattr(result, "status_code"):
                return result
            if not isinstance(result, BaseModel):
                result = model.model_validate(result)
            return result.model_dump(mode="json"), status

        wrapper._tw_response = (model, status)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator
