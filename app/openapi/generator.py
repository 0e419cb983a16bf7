"""Build the OpenAPI 3.1 document from the app's URL map.

Every rule appears, with or without models. What a view declares is read from the attributes
the decorators leave on it (looking through `__wrapped__` chains): `_tw_body`, `_tw_query`,
`_tw_response` (model, status) from `app.api.validation`, `_tw_auth` ("user" / "admin") from
`app.api.jwt`, and `_tw_openapi` (a dict merged into the operation) for anything special such
as a non-JSON response. Schemas come from pydantic (JSON Schema 2020-12, which OpenAPI 3.1
uses as is), hoisted into `components.schemas`.
"""

from __future__ import annotations

import copy
import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from app.openapi.models import ErrorEnvelope

OPENAPI_VERSION = "3.1.0"
API_TITLE = "Tradewind API"
API_VERSION = "0.1.0"
REF_TEMPLATE = "#/components/schemas/{model}"
ERROR_REF = {"$ref": "#/components/responses/Error"}
IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})
_RULE_ARG = re.compile(r"<(?:(?P<conv>\w+)(?:\((?P<args>[^)]*)\))?:)?(?P<name>\w+)>")
_CONVERTER_SCHEMAS: dict[str, dict[str, Any]] = {
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "uuid": {"type": "string", "format": "uuid"},
    "path": {"type": "string"},
    "string": {"type": "string"},
    "default": {"type": "string"},
    "any": {"type": "string"},
}
ERROR_STATUS_TEXT = {
    "400": "The body is not a readable JSON document (syntax, nesting, number size)",
    "401": "Missing, invalid, expired or revoked access token",
    "403": "Authenticated but not allowed (admin role required)",
    "404": "Not found (another user's resource also answers 404)",
    "409": "The resource's state does not allow this (the message says which state)",
    "413": "Request body too large",
    "415": "Content-Type must be application/json",
    "422": "The request failed validation",
    "423": "Locked",
    "429": "Too many requests (Retry-After says when to try again)",
    "502": "The exchange answered with an error",
    "503": "A dependency is unavailable; retry shortly",
}
F = TypeVar("F", bound=Callable[..., Any])


def answers(*statuses: int) -> Callable[[F], F]:
    """Declare the error statuses a view answers besides those its decorators imply (401
    from auth, 404 from a path id, 400/413/415/422 from a body, 422 from a query)."""

    def decorator(view: F) -> F:
        known = view_attr(view, "_tw_statuses") or frozenset()
        view._tw_statuses = known | {str(s) for s in statuses}  # type: ignore[attr-defined]
        return view

    return decorator


def error_response(status: str) -> dict[str, Any]:
    """The envelope as the answer of one status, with what that status means here."""
    text = ERROR_STATUS_TEXT.get(status)
    return {**ERROR_REF, "description": text} if text else {**ERROR_REF}


def view_attr(view: Callable[..., Any], name: str) -> Any:
    """An attribute a decorator recorded anywhere on the view's `__wrapped__` chain."""
    seen: set[int] = set()
    current: Any = view
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        value = current.__dict__.get(name) if hasattr(current, "__dict__") else None
        if value is not None:
            return value
        current = getattr(current, "__wrapped__", None)
    return None


def openapi_path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    """`/api/bots/<int:bot_id>` -> (`/api/bots/{bot_id}`, [its path parameter])."""
    params: list[dict[str, Any]] = []

    def replace(match: re.Match[str]) -> str:
        converter = match.group("conv") or "default"
        params.append(
            {
                "name": match.group("name"),
                "in": "path",
                "required": True,
                "schema": dict(_CONVERTER_SCHEMAS.get(converter, {"type": "string"})),
            }
        )
        return "{" + match.group("name") + "}"

    return _RULE_ARG.sub(replace, rule), params


class _Schemas:
    """Collects every model first, then renders them in one pass so names never collide."""

    def __init__(self) -> None:
        self._wanted: list[tuple[type[BaseModel], str]] = [(ErrorEnvelope, "serialization")]
        self.refs: dict[tuple[type[BaseModel], str], dict[str, Any]] = {}
        self.components: dict[str, Any] = {}

    def want(self, model: type[BaseModel], mode: str) -> None:
        if (model, mode) not in self._wanted:
            self._wanted.append((model, mode))

    def render(self) -> None:
        refs, defs = models_json_schema(self._wanted, ref_template=REF_TEMPLATE)  # type: ignore[arg-type]
        self.refs = {key: value for key, value in refs.items()}  # type: ignore[misc]
        self.components = defs.get("$defs", {})

    def ref(self, model: type[BaseModel], mode: str) -> dict[str, Any]:
        return dict(self.refs[(model, mode)])

    def definition(self, model: type[BaseModel], mode: str) -> dict[str, Any]:
        ref = self.refs[(model, mode)]
        if "$ref" in ref:
            return self.components[ref["$ref"].rsplit("/", 1)[1]]
        return ref


def _routes(app: Any) -> Iterator[tuple[Any, str, Callable[..., Any]]]:
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        view = app.view_functions.get(rule.endpoint)
        if view is None:
            continue
        for method in sorted((rule.methods or set()) - IGNORED_METHODS):
            yield rule, method, view


def _docstring(view: Callable[..., Any]) -> tuple[str, str]:
    doc = inspect.cleandoc(view.__doc__ or "")
    if not doc:
        return "", ""
    first, _, rest = doc.partition("\n\n")
    return " ".join(first.split()), rest.strip()


def _query_parameters(schemas: _Schemas, model: type[BaseModel]) -> list[dict[str, Any]]:
    definition = schemas.definition(model, "validation")
    required = set(definition.get("required", []))
    params = []
    for name, prop in definition.get("properties", {}).items():
        prop = copy.deepcopy(prop)
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        description = prop.pop("description", None)
        prop.pop("title", None)
        if description:
            param["description"] = description
        param["schema"] = prop
        params.append(param)
    return params


def _operation(
    schemas: _Schemas,
    rule: Any,
    method: str,
    view: Callable[..., Any],
    path_params: list[Any],
    shadows: bool = False,
) -> dict[str, Any]:
    body_model = view_attr(view, "_tw_body")
    query_model = view_attr(view, "_tw_query")
    declared = view_attr(view, "_tw_response")
    auth = view_attr(view, "_tw_auth")
    extra = view_attr(view, "_tw_openapi") or {}

    summary, description = _docstring(view)
    operation: dict[str, Any] = {
        "tags": [rule.endpoint.split(".", 1)[0] if "." in rule.endpoint else "app"],
        "summary": summary or rule.endpoint.rsplit(".", 1)[-1].replace("_", " "),
    }
    if description:
        operation["description"] = description
    params = copy.deepcopy(path_params)
    if query_model is not None:
        params.extend(_query_parameters(schemas, query_model))
    if params:
        operation["parameters"] = params
    if body_model is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas.ref(body_model, "validation")}},
        }

    responses: dict[str, Any] = {}
    statuses = set(view_attr(view, "_tw_statuses") or ())
    if declared is not None:
        model, status = declared
        success = {
            "description": model.__doc__.strip().split("\n")[0] if model.__doc__ else "Success",
            "content": {"application/json": {"schema": schemas.ref(model, "serialization")}},
        }
        for code in {str(status)} | {s for s in statuses if s < "400"}:
            responses[code] = copy.deepcopy(success)
    else:
        responses["204" if method == "DELETE" else "2XX"] = {"description": "Success"}
    errors = {s for s in statuses if s >= "400"}
    if rule.rule.startswith("/api/") and rule.rule != "/api/health/ping":
        errors.add("503")  # the database (or the exchange) is unavailable: retry
    if shadows:
        errors.add("405")
    if body_model is not None or query_model is not None:
        errors.add("422")
    if body_model is not None:
        errors.update({"400", "413", "415"})
    if path_params:
        errors.add("404")
    if auth:
        errors.add("401")
        operation["security"] = [{"bearerAuth": []}]
    if auth == "admin":
        errors.add("403")
    for status in sorted(errors):
        responses[status] = error_response(status)
    operation["responses"] = responses

    for key, value in extra.items():
        if key == "responses":
            operation["responses"].update(copy.deepcopy(value))
        elif key == "parameters":
            operation.setdefault("parameters", []).extend(copy.deepcopy(value))
        else:
            operation[key] = copy.deepcopy(value)
    declared_success = [k for k in operation["responses"] if k.startswith("2") and k != "2XX"]
    if declared_success:
        operation["responses"].pop("2XX", None)
    operation["responses"] = dict(sorted(operation["responses"].items()))
    if auth == "admin":
        operation["x-required-role"] = "admin"
    return operation


def _fills_in(template: str, literal: str) -> bool:
    """Whether `literal` (a rule without parameters) matches `template` with its parameters
    filled in: then the literal path answers the template's method with 405."""
    if "<" not in template:
        return False
    pattern = _RULE_ARG.sub(
        lambda m: ".+" if m.group("conv") == "path" else "[^/]+", re.escape(template)
    )
    return re.fullmatch(pattern, literal) is not None


def _operation_id(endpoint: str, method: str, path: str, used: set[str]) -> str:
    base = f"{endpoint.replace('.', '_')}_{method.lower()}"
    candidate = base
    if candidate in used:
        candidate = base + "_" + re.sub(r"\W+", "_", path).strip("_")
    n = 2
    while candidate in used:
        candidate = f"{base}_{n}"
        n += 1
    used.add(candidate)
    return candidate


def build_openapi(app: Any) -> dict[str, Any]:
    """The document for every route of `app` (a Flask app; only its URL map is read)."""
    schemas = _Schemas()
    routes = list(_routes(app))
    for _rule, _method, view in routes:
        for attr, mode in (("_tw_body", "validation"), ("_tw_query", "validation")):
            model = view_attr(view, attr)
            if model is not None:
                schemas.want(model, mode)
        declared = view_attr(view, "_tw_response")
        if declared is not None:
            schemas.want(declared[0], "serialization")
    schemas.render()

    # a literal path another rule could take for a parameter: with another method it is a 405
    literal_paths: dict[str, list[str]] = {}
    for rule, _method, _view in routes:
        if "<" not in rule.rule:
            for method in {m for _r, m, _v in routes} - (rule.methods or set()):
                literal_paths.setdefault(method, []).append(rule.rule)
    paths: dict[str, dict[str, Any]] = {}
    used_ids: set[str] = set()
    for rule, method, view in routes:
        path, path_params = openapi_path(rule.rule)
        shadows = any(_fills_in(rule.rule, other) for other in literal_paths.get(method, ()))
        operation = _operation(schemas, rule, method, view, path_params, shadows)
        operation["operationId"] = _operation_id(rule.endpoint, method, path, used_ids)
        paths.setdefault(path, {})[method.lower()] = operation

    error_ref = schemas.ref(ErrorEnvelope, "serialization")
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": API_TITLE,
            "version": API_VERSION,
            "description": (
                "Self-hosted multi-user trading-bot backend. Authenticate with "
                "`Authorization: Bearer <access token>` from `POST /api/auth/login`. Every "
                '4xx/5xx answer is the error envelope `{"error": {code, message, details, '
                "request_id}}`."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "responses": {
                "Error": {
                    "description": "Error envelope (every 4xx and 5xx)",
                    "headers": {
                        "X-Request-ID": {
                            "description": "The request id, also in the body",
                            "schema": {"type": "string"},
                        }
                    },
                    "content": {"application/json": {"schema": error_ref}},
                }
            },
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "tokenQuery": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "token",
                    "description": "The access token as a query parameter (event stream only).",
                },
                "metricsToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "METRICS_TOKEN (required for /metrics in production).",
                },
            },
        },
    }
