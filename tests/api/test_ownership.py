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

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from app.store.db import session_scope

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


def _insert(row: Any) -> int:
    with session_scope() as db:
        db.add(row)
        db.flush()
        return int(row.id)


def _create_bot(ctx: Ctx) -> dict[str, int]:
    from app.store.models import Bot

    bot = Bot(
        user_id=ctx.owner.id,
        name="owner bot",
        symbol="BTC/USDT",
        timeframe="1h",
        strategy="sma_crossover",
        capital=Decimal("1000"),
    )
    return {"bot_id": _insert(bot)}


def _bot_unchanged(ctx: Ctx, args: dict[str, int]) -> bool:
    response = ctx.client.get(f"/api/bots/{args['bot_id']}", headers=ctx.owner_headers)
    bot = response.get_json()
    return response.status_code == 200 and (bot["name"], bot["status"]) == ("owner bot", "created")


def _create_job(kind: str, arg: str) -> Callable[[Ctx], dict[str, int]]:
    def create(ctx: Ctx) -> dict[str, int]:
        from app.store.models import Job

        job = Job(user_id=ctx.owner.id, kind=kind, payload={}, payload_hash=uuid.uuid4().hex * 2)
        return {arg: _insert(job)}

    return create


def _job_unchanged(ctx: Ctx, args: dict[str, int]) -> bool:
    response = ctx.client.get(f"/api/jobs/{args['job_id']}", headers=ctx.owner_headers)
    return response.status_code == 200 and response.get_json()["state"] == "queued"


def _owner_gets(template: str) -> Callable[[Ctx, dict[str, int]], bool]:
    def exists(ctx: Ctx, args: dict[str, int]) -> bool:
        return ctx.client.get(template.format(**args), headers=ctx.owner_headers).status_code == 200

    return exists


def _search_queued(ctx: Ctx, args: dict[str, int]) -> bool:
    response = ctx.client.get(f"/api/searches/{args['search_id']}", headers=ctx.owner_headers)
    return response.status_code == 200 and response.get_json()["state"] == "queued"


def _create_snapshot(ctx: Ctx) -> dict[str, int]:
    from app.store.models.ledger import PricingSnapshot

    snapshot = PricingSnapshot(
        user_id=ctx.owner.id,
        base_currency="USD",
        total=Decimal("0"),
        complete=True,
        inputs={},
        valuation={},
    )
    return {"snapshot_id": _insert(snapshot)}


def _snapshot_kept(ctx: Ctx, args: dict[str, int]) -> bool:
    from app.store.models.ledger import PricingSnapshot

    with session_scope() as db:
        snapshot = db.get(PricingSnapshot, args["snapshot_id"])
        return snapshot is not None and snapshot.user_id == ctx.owner.id


def _create_alert(ctx: Ctx) -> dict[str, int]:
    from app.services.alerts import raise_alert

    with session_scope() as db:
        alert = raise_alert(
            db, user_id=ctx.owner.id, severity="info", code="owner_alert", message="for the owner"
        )
        return {"alert_id": alert.id}


def _alert_unacknowledged(ctx: Ctx, args: dict[str, int]) -> bool:
    items = ctx.client.get("/api/alerts", headers=ctx.owner_headers).get_json()["items"]
    return [a["acknowledged_at"] for a in items if a["id"] == args["alert_id"]] == [None]


OWNER_DOCUMENT = {
    "name": "owner's strategy",
    "entry": {"op": "gt", "args": [{"series": "close"}, 1]},
}


def _create_strategy(ctx: Ctx) -> dict[str, int]:
    response = ctx.client.post(
        "/api/strategies", json={"document": OWNER_DOCUMENT}, headers=ctx.owner_headers
    )
    assert response.status_code == 201, response.get_json()
    return {"strategy_id": response.get_json()["id"], "version": 1}


def _strategy_unchanged(ctx: Ctx, args: dict[str, int]) -> bool:
    response = ctx.client.get(f"/api/strategies/{args['strategy_id']}", headers=ctx.owner_headers)
    doc = response.get_json()
    return response.status_code == 200 and (doc["version"], doc["name"]) == (
        1, "owner's strategy")  # fmt: skip


STRATEGY = Resource(
    create=_create_strategy,
    exists=_strategy_unchanged,
    bodies={"PUT": {"document": {**OWNER_DOCUMENT, "name": "hijacked"}}},
)
BOT = Resource(create=_create_bot, exists=_bot_unchanged)

def _create_channel(ctx: Ctx) -> dict[str, int]:
    response = ctx.client.post(
        "/api/notifications/channels",
        json={"kind": "webhook", "name": "mine", "events": ["trade_closed"],
              "url": "https://93.184.215.14/hook"},
        headers=ctx.owner_headers,
    )  # fmt: skip
    assert response.status_code == 201, response.get_json()
    return {"channel_id": response.get_json()["id"]}


def _channel_kept(ctx: Ctx, args: dict[str, int]) -> bool:
    got = ctx.client.get(
        f"/api/notifications/channels/{args['channel_id']}", headers=ctx.owner_headers
    )
    body = got.get_json()
    return got.status_code == 200 and body["name"] == "mine" and body["enabled"] is True


CHANNEL = Resource(
    create=_create_channel,
    exists=_channel_kept,
    bodies={"PATCH": {"name": "theirs", "enabled": False}},
)


RESOURCES: dict[str, Resource] = {
    "/api/exchange-credentials/<int:credential_id>": Resource(
        create=_create_credential, exists=_credential_exists
    ),
    "/api/admin/users/<int:user_id>": Resource(
        create=_owner_as_user,
        exists=_owner_unchanged,
        bodies={"PATCH": {"role": "admin", "is_disabled": True}},
    ),
    "/api/bots/<int:bot_id>": Resource(
        create=_create_bot, exists=_bot_unchanged, bodies={"PATCH": {"name": "hijacked"}}
    ),
    **{
        f"/api/bots/<int:bot_id>/{action}": BOT
        for action in (
            "equity",
            "exit",
            "live-eligibility",
            "orders",
            "pause",
            "performance",
            "positions",
            "report",
            "resume",
            "signal-token",
            "signals",
            "start",
            "stop",
            "trades",
        )
    },
    "/api/jobs/<int:job_id>": Resource(
        create=_create_job("analysis", "job_id"), exists=_job_unchanged
    ),
    "/api/backtests/<int:backtest_id>": Resource(
        create=_create_job("backtest", "backtest_id"),
        exists=_owner_gets("/api/backtests/{backtest_id}"),
    ),
    "/api/searches/<int:search_id>": Resource(
        create=_create_job("search", "search_id"), exists=_search_queued
    ),
    "/api/searches/<int:search_id>/bot": Resource(
        create=_create_job("search", "search_id"), exists=_search_queued
    ),
    "/api/portfolio/snapshots/<int:snapshot_id>": Resource(
        create=_create_snapshot, exists=_snapshot_kept
    ),
    "/api/alerts/<int:alert_id>/ack": Resource(create=_create_alert, exists=_alert_unacknowledged),
    "/api/strategies/<int:strategy_id>": STRATEGY,
    "/api/strategies/<int:strategy_id>/versions/<int:version>": STRATEGY,
    "/api/notifications/channels/<int:channel_id>": CHANNEL,
    "/api/notifications/channels/<int:channel_id>/test": CHANNEL,
    "/api/notifications/channels/<int:channel_id>/deliveries": CHANNEL,
    # dashboard pages (HTML to browsers, the same envelope to clients that do not ask for it)
    "/bots/<int:bot_id>": BOT,
    "/bots/<int:bot_id>/edit": BOT,
    "/backtests/<int:backtest_id>": Resource(
        create=_create_job("backtest", "backtest_id"),
        exists=_owner_gets("/api/backtests/{backtest_id}"),
    ),
    "/searches/<int:search_id>": Resource(
        create=_create_job("search", "search_id"), exists=_search_queued
    ),
}


def is_id_argument(name: str) -> bool:
    return name == "id" or name.endswith("_id")


def id_routes(app: Flask) -> dict[str, list[tuple[str, Rule]]]:
    """Rule text -> [(method, rule)] for every rule with an id argument (one rule text may
    have several Rule objects, one per view)."""
    routes: dict[str, list[tuple[str, Rule]]] = {}
    for rule in app.url_map.iter_rules():
        if any(map(is_id_argument, rule.arguments)):
            for method in sorted(rule.methods - SKIPPED_METHODS):  # type: ignore[operator]
                routes.setdefault(rule.rule, []).append((method, rule))
    return dict(sorted(routes.items()))


def admin_only(app: Flask, rule: Rule) -> bool:
    return getattr(app.view_functions[rule.endpoint], "_tw_auth", None) == "admin"


def call(client: FlaskClient, method: str, path: str, headers: dict[str, str], body: Any) -> Any:
    kwargs: dict[str, Any] = {"headers": headers}
    if body is not None:
        kwargs["json"] = body
    return client.open(path, method=method, **kwargs)


def test_every_id_route_has_an_entry(app: Flask) -> None:
    routes = id_routes(app)
    missing = [rule for rule in routes if rule not in RESOURCES]
    assert not missing, (
        f"routes taking a resource id without an entry in RESOURCES of {__file__}: {missing}. "
        "Add how the owner creates the resource, so the test can prove others get 404."
    )
    stale = sorted(set(RESOURCES) - set(routes))
    assert not stale, f"RESOURCES entries for routes that no longer exist: {stale}"


def _masked(message: str, ids: dict[str, int]) -> str:
    for value in ids.values():
        message = message.replace(str(value), "{id}")
    return message


def test_another_users_resource_answers_404_everywhere(
    app: Flask, client: FlaskClient, make_user, auth_headers
) -> None:  # type: ignore[no-untyped-def]
    owner = make_user(email="owner@example.com")
    intruder_headers = auth_headers(make_user(email="intruder@example.com"))
    ctx = Ctx(client, owner, auth_headers(owner))
    routes = {text: calls for text, calls in id_routes(app).items() if text in RESOURCES}
    assert routes, "no id routes found: the walk itself is broken"

    problems: list[str] = []
    for text, calls in routes.items():
        resource = RESOURCES[text]
        args = resource.create(ctx)
        missing = {k: MISSING_ID for k in args}
        for method, rule in calls:
            body = resource.bodies.get(method)
            path, missing_path = rule.build(args)[1], rule.build(missing)[1]  # type: ignore[index]
            expected = 403 if admin_only(app, rule) else 404
            theirs = call(client, method, path, intruder_headers, body)
            nobodys = call(client, method, missing_path, intruder_headers, body)
            if theirs.status_code != expected:
                problems.append(f"{method} {text}: {theirs.status_code}, expected {expected}")
                continue
            mine, none = theirs.get_json()["error"], nobodys.get_json()["error"]
            if (mine["code"], _masked(mine["message"], args)) != (
                none["code"],
                _masked(none["message"], missing),
            ):
                problems.append(f"{method} {text}: differs from a missing id: {mine} / {none}")
        if not resource.exists(ctx, args):
            problems.append(f"{text}: the intruder changed the owner's resource")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", ["id", "bot_id", "credential_id"])
def test_id_arguments_are_recognised(name: str) -> None:
    assert is_id_argument(name)
    assert not is_id_argument("symbol") and not is_id_argument("filename")
