"""The OpenAPI document: a valid OpenAPI 3.1 description that covers every Flask route, with
the declared request/response models, auth and the shared error envelope; and `/docs`."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate
from pydantic import BaseModel

from app.openapi.generator import IGNORED_METHODS, openapi_path, view_attr


def document(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def resolve(doc: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    name = ref["$ref"].rsplit("/", 1)[1]
    return doc["components"]["schemas"][name]


def test_document_is_valid_openapi_3_1(client: FlaskClient) -> None:
    doc = document(client)
    assert doc["openapi"].startswith("3.1")
    validate(doc)  # raises on any violation of the OpenAPI 3.1 schema


def test_every_flask_route_and_method_is_documented(app: Flask, client: FlaskClient) -> None:
    doc = document(client)
    missing = []
    operation_ids = []
    for rule in app.url_map.iter_rules():
        path, _ = openapi_path(rule.rule)
        for method in (rule.methods or set()) - IGNORED_METHODS:
            operation = doc["paths"].get(path, {}).get(method.lower())
            if operation is None:
                missing.append(f"{method} {rule.rule}")
            else:
                operation_ids.append(operation["operationId"])
    assert not missing, f"routes missing from /openapi.json: {missing}"
    assert len(operation_ids) == len(set(operation_ids))


def test_declared_models_auth_and_errors_are_described(app: Flask, client: FlaskClient) -> None:
    doc = document(client)
    error_schema = doc["components"]["responses"]["Error"]["content"]["application/json"]
    envelope = resolve(doc, error_schema["schema"])
    assert envelope["required"] == ["error"]
    assert doc["components"]["securitySchemes"]["bearerAuth"]["bearerFormat"] == "JWT"

    checked = 0
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        path, params = openapi_path(rule.rule)
        for method in (rule.methods or set()) - IGNORED_METHODS:
            operation = doc["paths"][path][method.lower()]
            responses = operation["responses"]
            assert "default" not in responses, f"{method} {path}: list each status instead"
            for status, answer in responses.items():
                if status >= "400" and not path.startswith(("/admin", "/bots", "/login")):
                    assert answer["$ref"] == "#/components/responses/Error", (path, status)
            assert [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"] == [
                p["name"] for p in params
            ]
            body_model = view_attr(view, "_tw_body")
            if body_model is not None:
                schema = operation["requestBody"]["content"]["application/json"]["schema"]
                assert set(resolve(doc, schema).get("properties", {})) == set(
                    body_model.model_fields
                )
                assert {"400", "413", "415", "422"} <= set(responses)
            query_model = view_attr(view, "_tw_query")
            if query_model is not None:
                query_names = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
                assert set(query_model.model_fields) <= query_names
            declared = view_attr(view, "_tw_response")
            if declared is not None and view_attr(view, "_tw_openapi") is None:
                model, status = declared
                content = responses[str(status)]["content"]["application/json"]["schema"]
                assert issubclass(model, BaseModel)
                assert set(resolve(doc, content).get("properties", {})) == {
                    f.serialization_alias or f.alias or n for n, f in model.model_fields.items()
                }
            auth = view_attr(view, "_tw_auth")
            if auth:
                assert {"bearerAuth": []} in operation["security"]
                assert "401" in responses
            if auth == "admin":
                assert "403" in responses
            checked += 1
    assert checked >= 5


def test_special_routes_describe_their_content(client: FlaskClient) -> None:
    doc = document(client)
    events = doc["paths"]["/api/realtime/events"]["get"]
    assert "text/event-stream" in events["responses"]["200"]["content"]
    assert {"tokenQuery": []} in events["security"]
    assert {p["name"] for p in events["parameters"]} >= {"token", "last_event_id", "Last-Event-ID"}
    metrics = doc["paths"]["/metrics"]["get"]
    assert "text/plain" in metrics["responses"]["200"]["content"]
    ping = doc["paths"]["/api/health/ping"]["get"]
    assert "security" not in ping


def test_docs_page_points_at_the_document(client: FlaskClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert 'data-url="/openapi.json"' in page and "swagger-ui" in page
    assert "http" not in page  # every asset from this server: /docs works offline
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "js/docs.js"):
        path = page.split(asset)[0].rsplit('"', 1)[1] + asset
        served = client.get(path)
        assert served.status_code == 200 and len(served.data) > 100, path
        served.close()


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("post", "/api/bots/{bot_id}/start", {"200", "401", "404", "409"}),
        ("post", "/api/bots/{bot_id}/exit", {"202", "409"}),
        ("patch", "/api/bots/{bot_id}", {"200", "400", "409", "422"}),
        ("delete", "/api/bots/{bot_id}", {"204", "409"}),
        ("delete", "/api/jobs/{job_id}", {"200", "202", "409"}),
        ("post", "/api/auth/register", {"201", "400", "409", "429"}),
        ("post", "/api/auth/login", {"200", "400", "401", "429"}),
        ("post", "/api/auth/refresh", {"200", "401"}),
        ("post", "/api/watchlist", {"200", "201", "400", "422"}),
        ("post", "/api/backtests", {"202", "409", "422"}),
        ("patch", "/api/admin/users/{user_id}", {"200", "403", "409"}),
        ("patch", "/api/bots/{bot_id}", {"405"}),  # /api/bots/overview is a GET
    ],
)
def test_each_status_an_operation_answers_is_listed(
    client: FlaskClient, method: str, path: str, statuses: set[str]
) -> None:
    responses = document(client)["paths"][path][method]["responses"]
    assert statuses <= set(responses), sorted(responses)
    assert all(k.isdigit() for k in responses), "no ranges, no default"


def test_every_ledger_view_is_described(client: FlaskClient) -> None:
    doc = document(client)
    wanted = {
        "orders": "OrderOut", "trades": "TradeOut", "positions": "PositionOut",
        "equity": "EquityPointOut", "performance": "PerformanceOut",
    }  # fmt: skip
    schemas = doc["components"]["schemas"]
    for view, model in wanted.items():
        operation = doc["paths"][f"/api/bots/{{bot_id}}/{view}"]["get"]
        ref = operation["responses"]["200"]["content"]["application/json"]["schema"]
        page = resolve(doc, ref)
        if view != "performance":
            assert page["properties"]["items"]["items"]["$ref"].endswith(f"/{model}")
        assert model in schemas
    money = schemas["OrderOut"]["properties"]["cost"]["anyOf"][0]
    assert money["type"] == "string" and "pattern" in money
    assert schemas["EquityPointOut"]["properties"]["ts"]["format"] == "date-time"
    assert "unavailable" in schemas["MetricsOut"]["properties"]
