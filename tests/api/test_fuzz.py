"""The API fuzzed from its own OpenAPI document: generated requests (valid ones and broken
ones) to every operation, as a user and as an admin. No answer may be a server error, every
answer must match the schema of its documented status, and no status may be undocumented.

Bounded: a fixed number of examples per operation and mode, derandomised, so a run takes the
same requests every time (a failure names the operation and the request to replay)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import Failure, FailureGroup

from tests.engine.helpers import uninstall_replay

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "4"))
# the event stream answers with a stream that stays open: tested in test_realtime
SKIPPED = {("GET", "/api/realtime/events")}
# the admin fuzzes what only an admin reaches; the user fuzzes everything (admin routes: 403)
ADMIN_PATHS = ("/api/admin/", "/admin")


def fuzz(
    app: Any, headers: dict[str, str], modes: list[GenerationMode], admin_only: bool
) -> list[str]:
    """Every failure of every check, two lines each (empty when the API holds)."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        if admin_only and not operation.path.startswith(ADMIN_PATHS):
            continue
        for mode in modes:
            failures += run_operation(operation, mode, headers)
    return failures


def run_operation(operation: Any, mode: GenerationMode, headers: dict[str, str]) -> list[str]:
    found: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def one(case: Any) -> None:
        response = case.call(headers=headers)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (Failure, FailureGroup) as exc:
            group = exc.exceptions if isinstance(exc, FailureGroup) else (exc,)
            for failure in group:
                found.append(
                    f"{operation.method.upper()} {operation.path} [{mode.value}] "
                    f"-> {response.status_code}: {failure.title}: {failure.message[:300]}"
                    f"\n    {case.as_curl_command()[:400]}"
                )

    try:
        one()
    except Unsatisfiable:  # nothing to break in an operation without parameters or body
        assert mode is GenerationMode.NEGATIVE
    return found


@pytest.fixture(autouse=True)
def replay(app: Any) -> Any:
    uninstall_replay()
    yield
    uninstall_replay()


@pytest.mark.parametrize("role", ["user", "admin"])
def test_fuzzed_api_answers_only_documented_statuses(
    app: Any, make_user: Any, auth_headers: Callable[[Any], dict[str, str]], role: str
) -> None:
    headers = auth_headers(make_user(role=role))
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    failures = fuzz(app, headers, modes, admin_only=role == "admin")
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures)
