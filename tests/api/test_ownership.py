"""Users never see each other's data: on EVERY route that takes a resource id, a second user
asking for the first user's resource gets 404 - the same answer as for an id that does not
exist - and changes nothing.

The routes are not listed by hand: the test walks `app.url_map` and takes every rule with an
argument named `id` or `<something>_id`. Each such rule needs an entry in RESOURCES saying how
its owner creates one (and, for methods with a body, a VALID body, so that validation cannot
answer before the ownership check). A new id route without an entry fails
`test_every_id_route_has_an_entry`: add the entry in this file when you add the route.
Admin-only views (`@admin_required`) answer 403 to a plain user instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

SKIPPED_METHODS = {"HEAD", "OPTIONS"}
MISSING_ID = 2_147_483_000


@dataclass
class Ctx:
    client: FlaskClient
    owner: Any
    owner_headers: dict[str, str]


@dataclass(frozen=True)
class Resource:
    """How the owner creates the resource a rule points at (returns the rule's arguments);
    `exists` tells whether it is still there and unchanged after the intruder's attempts."""

    create: Callable[[Ctx], dict[str, int]]
    exists: Callable[[Ctx, dict[str, int]], bool]
    bodies: dict[str, Any] = field(default_factory=dict)


def _create_credential(ctx: Ctx) -> dict[str, int]:
    response = ctx.client.post(
        "/api/exchange-credentials",
        json={
            "exchange": "binance",
            "label": "owner's key",
            "api_key": "owner-api-key-1234",
            "secret": "owner-secret-12345678",
        },
        headers=ctx.owner_headers,
    )
    assert response.status_code == 201, response.get_json()
    return {"credential_id": response.get_json()["id"]}


def _credential_exists(ctx: Ctx, args: dict[str, int]) -> bool:
    listed = ctx.client.get("/api/exchange-credentials", headers=ctx.owner_headers).get_json()
    return args["credential_id"] in [c["id"] for c in listed["items"]]


def _owner_as_user(ctx: Ctx) -> dict[str, int]:
    return {"user_id": ctx.owner.id}


def _owner_unchanged(ctx: Ctx, args: dict[str, int]) -> bool:
    me = ctx.client.get("/api/auth/me", headers=ctx.owner_headers).get_json()
    return me["id"] == args["user_id"] and me["role"] == "user" and not me["is_disabled"]


RESOURCES: dict[str, Resource] = {
    "/api/exchange-credentials/<int:credential_id>": Resource(
        create=_create_credential, exists=_credential_exists
    ),
    "/api/admin/users/<int:user_id>": Resource(
        create=_owner_as_user,
        exists=_owner_unchanged,
        bodies={"PATCH": {"role": "admin", "is_disabled": True}},
    ),
}


def is_id_argument(name: str) -> bool:
    return name == "id" or name.endswith("_id")


def id_rules(app: Flask) -> list[Rule]:
    return sorted(
        (r for r in app.url_map.iter_rules() if any(map(is_id_argument, r.arguments))),
        key=lambda r: r.rule,
    )


def admin_only(app: Flask, rule: Rule) -> bool:
    return getattr(app.view_functions[rule.endpoint], "_tw_auth", None) == "admin"


def call(client: FlaskClient, method: str, path: str, headers: dict[str, str], body: Any) -> Any:
    kwargs: dict[str, Any] = {"headers": headers}
    if body is not None:
        kwargs["json"] = body
    return client.open(path, method=method, **kwargs)


def test_every_id_route_has_an_entry(app: Flask) -> None:
    missing = [r.rule for r in id_rules(app) if r.rule not in RESOURCES]
    assert not missing, (
        f"routes taking a resource id without an entry in RESOURCES of {__file__}: {missing}. "
        "Add how the owner creates the resource, so the test can prove others get 404."
    )
    stale = sorted(set(RESOURCES) - {r.rule for r in id_rules(app)})
    assert not stale, f"RESOURCES entries for routes that no longer exist: {stale}"


def test_another_users_resource_answers_404_everywhere(
    app: Flask, client: FlaskClient, make_user, auth_headers
) -> None:  # type: ignore[no-untyped-def]
    owner = make_user(email="owner@example.com")
    intruder_headers = auth_headers(make_user(email="intruder@example.com"))
    ctx = Ctx(client, owner, auth_headers(owner))
    rules = [r for r in id_rules(app) if r.rule in RESOURCES]
    assert rules, "no id routes found: the walk itself is broken"

    problems: list[str] = []
    for rule in rules:
        resource = RESOURCES[rule.rule]
        args = resource.create(ctx)
        path = rule.build(args)[1]  # type: ignore[index]
        missing_path = rule.build({k: MISSING_ID for k in args})[1]  # type: ignore[index]
        expected = 403 if admin_only(app, rule) else 404
        for method in sorted(rule.methods - SKIPPED_METHODS):  # type: ignore[operator]
            body = resource.bodies.get(method)
            theirs = call(client, method, path, intruder_headers, body)
            nobodys = call(client, method, missing_path, intruder_headers, body)
            if theirs.status_code != expected:
                problems.append(f"{method} {rule.rule}: {theirs.status_code}, expected {expected}")
                continue
            mine, none = theirs.get_json()["error"], nobodys.get_json()["error"]
            if (mine["code"], mine["message"]) != (none["code"], none["message"]):
                problems.append(f"{method} {rule.rule}: differs from a missing id: {mine} / {none}")
        if not resource.exists(ctx, args):
            problems.append(f"{rule.rule}: the intruder changed the owner's resource")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", ["id", "bot_id", "credential_id"])
def test_id_arguments_are_recognised(name: str) -> None:
    assert is_id_argument(name)
    assert not is_id_argument("symbol") and not is_id_argument("filename")
