"""Request parsing with pydantic v2: `@body(Model)` and `@query(Model)` hand the view a parsed
model (keyword arguments `body` and `query`); `@response(Model)` serialises what it returns.

The decorators also record their models on the view, which is where the OpenAPI document
comes from. Unknown fields are rejected: every request model should forbid extras
(`RequestModel` does).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, date, datetime
from functools import wraps
from typing import Any, ClassVar, TypeVar

from flask import Response, request
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from app.api.types import ApiModel
from app.errors import AppError, ValidationFailed

F = TypeVar("F", bound=Callable[..., Any])

# What every database we run on can store and compute with: signed 64-bit integers, and
# timestamps far enough from the ends of the calendar that a day either side still exists.
DB_INT_MAX = 2**63 - 1
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
MAX_JSON_DEPTH = 32
MAX_INT_DIGITS = 40


class RequestModel(ApiModel):
    """Base for request bodies and query strings: unknown fields are an error; integers fit a
    64-bit column; timestamps are read as UTC (naive ones are taken to be UTC) and lie between
    1970 and 9999."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    # fields of a partial update that may be given as null (the others may only be left out)
    NULLABLE: ClassVar[frozenset[str] | None] = None

    @field_validator("*", mode="before")
    @classmethod
    def _no_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and cls.NULLABLE is not None and info.field_name not in cls.NULLABLE:
            raise ValueError("may not be null; leave the field out to keep its current value")
        return value

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return storable(value)


def storable(value: Any) -> Any:
    """`value` as the database will hold it, or ValueError saying why it cannot be."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and abs(value) > DB_INT_MAX:
        raise ValueError(f"must be between -{DB_INT_MAX} and {DB_INT_MAX}")
    if isinstance(value, datetime):
        try:
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except OverflowError:
            raise ValueError("is outside the calendar once converted to UTC") from None
        if not EARLIEST <= value < LATEST:
            raise ValueError("must be between 1970-01-01T00:00:00Z and 9999-01-01T00:00:00Z")
        return value
    if isinstance(value, date) and not EARLIEST.date() <= value < LATEST.date():
        raise ValueError("must be between 1970-01-01 and 9998-12-31")
    return value


def nul_location(data: Any, where: str) -> list[str] | None:
    """Where a NUL character hides in a parsed document (no database stores one in text)."""
    stack: list[tuple[list[str], Any]] = [([where], data)]
    while stack:
        loc, item = stack.pop()
        if isinstance(item, str) and "\x00" in item:
            return loc
        if isinstance(item, dict):
            for key, value in item.items():
                if "\x00" in str(key):
                    return [*loc, str(key)]
                stack.append(([*loc, str(key)], value))
        elif isinstance(item, list):
            stack.extend(([*loc, str(i)], value) for i, value in enumerate(item))
    return None


def json_depth(data: Any) -> int:
    """How deeply arrays and objects nest in a parsed document (0 for a scalar)."""
    deepest, stack = 0, [(0, data)]
    while stack:
        depth, item = stack.pop()
        if isinstance(item, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            stack.extend((depth, v) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def pydantic_details(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors without the rejected input (it could hold a password or a secret)."""
    return [
        {"loc": [str(p) for p in err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


class _Unreadable(ValueError):
    """A number in a JSON document that no field could hold."""


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Unreadable(f"an integer has more than {MAX_INT_DIGITS} digits")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if len(text) > 100 or not math.isfinite(value):
        shown = text if len(text) <= 20 else text[:20] + "..."
        raise _Unreadable(f"the number {shown} is too large")
    return value


def _parse_constant(name: str) -> Any:
    raise _Unreadable(f"{name} is not a JSON number")


_TOO_DEEP = f"arrays and objects may nest at most {MAX_JSON_DEPTH} levels deep"


def _bad_json(message: str) -> AppError:
    return AppError(
        "request body is not valid JSON",
        code="malformed_json",
        details=[{"loc": ["body"], "msg": message}],
    )


def json_hint(exc: json.JSONDecodeError) -> str:
    """What is wrong and where, in words for the actual mistake."""
    where = f"line {exc.lineno}, column {exc.colno}"
    closing = exc.doc[exc.pos : exc.pos + 1]
    if exc.doc[: exc.pos].rstrip().endswith(",") and closing in ("]", "}"):
        return f"trailing comma before '{closing}' at {where}: JSON allows none, remove it"
    hint = f"{exc.msg} at {where}"
    if "'" in exc.doc[max(exc.pos - 1, 0) : exc.pos + 1]:
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
        data = json.loads(
            raw,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except UnicodeDecodeError:
        raise AppError("request body is not valid UTF-8", code="malformed_json") from None
    except json.JSONDecodeError as exc:
        raise _bad_json(json_hint(exc)) from None
    except _Unreadable as exc:
        raise _bad_json(str(exc)) from None
    except RecursionError:
        raise _bad_json(_TOO_DEEP) from None
    if json_depth(data) > MAX_JSON_DEPTH:
        raise _bad_json(_TOO_DEEP)
    return data


def parse_model(model: type[BaseModel], data: Any, where: str) -> BaseModel:
    nul_at = nul_location(data, where)
    if nul_at is not None:
        field = ".".join(nul_at[1:]) or where
        raise ValidationFailed(
            f"{field}: may not contain a NUL character",
            details=[{"loc": nul_at, "msg": "may not contain a NUL character"}],
        )
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


def json_text(body: str, status: int = 200) -> Response:
    """A response whose body is JSON text already written (by pydantic, or by the database:
    `app.store.wire_json`)."""
    return Response(body, status, mimetype="application/json")


def response(model: type[BaseModel], status: int = 200) -> Callable[[F], F]:
    """Serialise a returned model (or dict validated against it) with the given status,
    straight to the JSON body (one pass in pydantic's core, no intermediate dict)."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = view(*args, **kwargs)
            if isinstance(result, tuple) or hasattr(result, "status_code"):
                return result
            if not isinstance(result, BaseModel):
                result = model.model_validate(result)
            return json_text(result.model_dump_json(), status)

        wrapper._tw_response = (model, status)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator
