"""Every failure answers in the one envelope with the right status and a request id."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Blueprint, Flask
from flask.testing import FlaskClient
from pydantic import Field

from app.api.validation import RequestModel, body, query
from app.store.db import session_scope
from app.store.models import User


class Probe(RequestModel):
    name: str = Field(min_length=1, max_length=20)
    capital: float = Field(gt=0)


class ProbeQuery(RequestModel):
    limit: int = Field(default=10, ge=1, le=100)


@pytest.fixture(scope="module")
def probe_app(_app: Flask, settings) -> Flask:  # type: ignore[no-untyped-def]
    """A second app with routes that exercise validation, crashes and the unit of work."""
    from app.api.request_context import db_session
    from app.factory import create_app

    app = create_app(settings)
    bp = Blueprint("probe", __name__)

    @bp.post("/api/probe")
    @body(Probe)
    def create(body: Probe):  # type: ignore[no-untyped-def]
        return {"name": body.name, "capital": body.capital}, 201

    @bp.get("/api/probe")
    @query(ProbeQuery)
    def listing(query: ProbeQuery):  # type: ignore[no-untyped-def]
        return {"limit": query.limit}

    @bp.get("/api/boom")
    def boom():  # type: ignore[no-untyped-def]
        raise RuntimeError("secret internals must not leak")

    @bp.post("/api/half-written")
    def half_written():  # type: ignore[no-untyped-def]
        db_session().add(User(email="half@example.com", password_hash="x"))
        db_session().flush()
        raise RuntimeError("fails after writing")

    app.register_blueprint(bp)
    return app


@pytest.fixture
def probe(probe_app: Flask, app: Flask) -> Iterator[FlaskClient]:
    yield probe_app.test_client()


def assert_envelope(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == code
    assert error["request_id"] == response.headers["X-Request-ID"]
    assert isinstance(error["message"], str) and error["message"]
    return error


def test_valid_body_reaches_the_view(probe: FlaskClient) -> None:
    response = probe.post("/api/probe", json={"name": "a", "capital": 5})
    assert response.status_code == 201
    assert response.get_json() == {"name": "a", "capital": 5.0}


def test_validation_error_names_the_field(probe: FlaskClient) -> None:
    error = assert_envelope(
        probe.post("/api/probe", json={"name": "a", "capital": -1}), 422, "validation_error"
    )
    assert error["details"][0]["loc"] == ["body", "capital"]


def test_unknown_fields_are_rejected(probe: FlaskClient) -> None:
    error = assert_envelope(
        probe.post("/api/probe", json={"name": "a", "capital": 1, "extra": 1}),
        422,
        "validation_error",
    )
    assert error["details"][0]["loc"] == ["body", "extra"]


def test_malformed_json_gets_a_hint(probe: FlaskClient) -> None:
    error = assert_envelope(
        probe.post("/api/probe", data="{'name': 'a'}", content_type="application/json"),
        400,
        "malformed_json",
    )
    assert "line 1, column 2" in error["details"][0]["msg"]
    assert "double quotes" in error["details"][0]["msg"]


def test_wrong_content_type(probe: FlaskClient) -> None:
    assert_envelope(
        probe.post("/api/probe", data="name=a", content_type="application/x-www-form-urlencoded"),
        415,
        "unsupported_media_type",
    )


def test_oversized_body(probe: FlaskClient, settings) -> None:  # type: ignore[no-untyped-def]
    big = '{"name": "' + "a" * (settings.max_content_length + 10) + '"}'
    assert_envelope(
        probe.post("/api/probe", data=big, content_type="application/json"),
        413,
        "payload_too_large",
    )


def test_query_validation(probe: FlaskClient) -> None:
    assert probe.get("/api/probe?limit=5").get_json() == {"limit": 5}
    assert_envelope(probe.get("/api/probe?limit=0"), 422, "validation_error")
    assert_envelope(probe.get("/api/probe?unknown=1"), 422, "validation_error")


def test_unknown_route_and_wrong_method(probe: FlaskClient) -> None:
    assert_envelope(probe.get("/api/does-not-exist"), 404, "not_found")
    assert_envelope(probe.get("/not-even-api"), 404, "not_found")
    error = assert_envelope(probe.delete("/api/probe"), 405, "method_not_allowed")
    assert error["details"] == []


def test_crash_is_a_500_without_internals(probe: FlaskClient, caplog) -> None:  # type: ignore[no-untyped-def]
    response = probe.get("/api/boom", headers={"X-Request-ID": "trace-me-123"})
    error = assert_envelope(response, 500, "internal_error")
    assert error["request_id"] == "trace-me-123"
    assert "secret internals" not in response.get_data(as_text=True)
    logged = [r for r in caplog.records if "trace-me-123" in r.getMessage()]
    assert logged and logged[0].exc_info is not None


def test_failed_request_writes_nothing(probe: FlaskClient) -> None:
    assert_envelope(probe.post("/api/half-written"), 500, "internal_error")
    with session_scope() as db:
        assert db.query(User).filter_by(email="half@example.com").count() == 0


def test_request_id_is_generated_or_honoured(probe: FlaskClient) -> None:
    generated = probe.get("/api/health/ping").headers["X-Request-ID"]
    assert len(generated) == 32
    assert (
        probe.get("/health", headers={"X-Request-ID": "abc-1"}).headers["X-Request-ID"] == "abc-1"
    )
    # An unsafe incoming id is replaced, never echoed.
    replaced = probe.get("/health", headers={"X-Request-ID": "bad id <script>"}).headers[
        "X-Request-ID"
    ]
    assert replaced != "bad id <script>" and len(replaced) == 32


def test_malformed_json_hints_name_the_actual_problem(probe: FlaskClient) -> None:
    cases = {
        '{"name": "x", "capital": 1,}': "trailing comma",
        '{"name": ["x",], "capital": 1}': "trailing comma",
        "{'name': 'x', 'capital': 1}": "double quotes",
        '{"name": "x" "capital": 1}': "Expecting ',' delimiter",
    }
    for text, hint in cases.items():
        r = probe.post("/api/probe", data=text, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, text
        msg = r.get_json()["error"]["details"][0]["msg"]
        assert hint in msg, (text, msg)
        if hint != "double quotes":
            assert "quote" not in msg, (text, msg)
