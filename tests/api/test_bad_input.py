"""Inputs that once reached the database or the calendar and answered 500: each now answers
a 4xx in the error envelope naming what is wrong and where, and writes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from app.store.db import session_scope
from app.store.models import Bot, Job, User
from app.store.models.accounts import AuditLog, ExchangeCredential
from tests.engine.helpers import uninstall_replay

BOT = {
    "name": "eth trend",
    "symbol": "ETH/BTC",
    "timeframe": "5m",
    "strategy": "sma_crossover",
    "strategy_params": {"fast": 5, "slow": 20},
    "capital": "1.5",
}
BIG = "9" * 5000


@pytest.fixture(autouse=True)
def replay(app: Any) -> Iterator[None]:
    uninstall_replay()  # the shipped sample data
    yield
    uninstall_replay()


@pytest.fixture
def user(make_user: Any) -> Any:
    return make_user()


@pytest.fixture
def headers(user: Any, auth_headers: Any) -> dict[str, str]:
    return auth_headers(user)


@pytest.fixture
def admin_headers(make_user: Any, auth_headers: Any) -> dict[str, str]:
    return auth_headers(make_user(role="admin"))


@pytest.fixture
def bot(client: Any, headers: dict[str, str]) -> dict[str, Any]:
    r = client.post("/api/bots", json=BOT, headers=headers)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def counts() -> dict[str, int]:
    with session_scope() as db:
        return {
            m.__tablename__: db.scalar(select(func.count()).select_from(m)) or 0
            for m in (User, Bot, ExchangeCredential, Job, AuditLog)
        }


def error(response: Any, status: int) -> dict[str, Any]:
    body = response.get_json()
    assert response.status_code == status, body
    assert set(body["error"]) == {"code", "message", "details", "request_id"}
    return body["error"]


def raw_post(client: Any, path: str, text: str, headers: dict[str, str] | None = None) -> Any:
    return client.post(
        path, data=text, headers={**(headers or {}), "Content-Type": "application/json"}
    )


@pytest.mark.parametrize(
    "field", ["name", "mode", "capital", "maker_fee", "taker_fee", "slippage_bps", "exchange"]
)
def test_patch_with_null_names_the_field(client, headers, bot, field) -> None:  # type: ignore[no-untyped-def]
    before = client.get(f"/api/bots/{bot['id']}", headers=headers).get_json()
    err = error(client.patch(f"/api/bots/{bot['id']}", json={field: None}, headers=headers), 422)
    assert err["details"][0]["loc"] == ["body", field]
    assert field in err["message"] and "null" in err["message"]
    assert client.get(f"/api/bots/{bot['id']}", headers=headers).get_json() == before


def test_patch_null_sizing_means_the_default(client, headers, bot) -> None:  # type: ignore[no-untyped-def]
    r = client.patch(f"/api/bots/{bot['id']}", json={"sizing": None}, headers=headers)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["sizing"]["mode"] == "kelly"


def test_deeply_nested_json_is_400(client, headers) -> None:  # type: ignore[no-untyped-def]
    before = counts()
    for depth in (5000, 100_000, 33):
        doc = '{"name": "x", "strategy_params": ' + "[" * depth + "]" * depth + "}"
        err = error(raw_post(client, "/api/bots", doc, headers), 400)
        assert err["code"] == "malformed_json"
        assert "nest" in err["details"][0]["msg"] and err["details"][0]["loc"] == ["body"]
    assert counts() == before


@pytest.mark.parametrize("path", ["/api/auth/login", "/api/auth/register", "/api/bots"])
def test_huge_integers_are_400_even_unauthenticated(client, headers, path) -> None:  # type: ignore[no-untyped-def]
    before = counts()
    for number in (BIG, "-" + BIG, "1e999", "NaN", "Infinity"):
        doc = '{"email": "a@example.com", "password": "x", "capital": ' + number + "}"
        err = error(raw_post(client, path, doc, headers if path == "/api/bots" else None), 400)
        assert err["code"] == "malformed_json", err
        assert (
            number[:4].lstrip("-") in err["details"][0]["msg"]
            or "digits" in err["details"][0]["msg"]
        )
    assert counts() == before


@pytest.mark.parametrize(
    "path",
    ["/api/bots", "/api/bots/overview", "/api/jobs", "/api/backtests", "/api/analysis-results"],
)
def test_offset_beyond_any_database_is_422(client, headers, path) -> None:  # type: ignore[no-untyped-def]
    for offset in ("9223372036854775808", "1000000001", BIG):
        err = error(client.get(f"{path}?offset={offset}", headers=headers), 422)
        assert err["details"][0]["loc"] == ["query", "offset"], err


@pytest.mark.parametrize(
    ("query", "field"),
    [("before_id=9223372036854775808", "before_id"), ("bot_id=99999999999999999999", "bot_id")],
)
def test_integer_filters_beyond_64_bits_are_422(client, admin_headers, query, field) -> None:  # type: ignore[no-untyped-def]
    err = error(client.get(f"/api/admin/incidents?{query}", headers=admin_headers), 422)
    assert err["details"][0]["loc"] == ["query", field]


@pytest.mark.parametrize(
    "path",
    [
        "/api/bots/99999999999999999999",
        "/api/bots/9223372036854775808/trades",
        "/api/jobs/99999999999999999999",
        "/api/backtests/99999999999999999999",
        "/api/portfolio/snapshots/99999999999999999999",
    ],
)
def test_ids_beyond_64_bits_are_404(client, headers, path) -> None:  # type: ignore[no-untyped-def]
    assert error(client.get(path, headers=headers), 404)["code"] == "not_found"


@pytest.mark.parametrize("method", ["patch", "delete", "post"])
def test_ids_beyond_64_bits_are_404_whatever_the_method(client, headers, method) -> None:  # type: ignore[no-untyped-def]
    path = "/api/bots/9223372036854775808" + ("/start" if method == "post" else "")
    err = error(getattr(client, method)(path, json={"name": "x"}, headers=headers), 404)
    assert "9223372036854775807" in err["message"]


def test_largest_id_is_just_not_found(client, headers) -> None:  # type: ignore[no-untyped-def]
    err = error(client.get("/api/bots/9223372036854775807", headers=headers), 404)
    assert err["code"] == "bot_not_found"


def test_nul_bytes_in_bodies_and_filters_are_422(client, headers, bot) -> None:  # type: ignore[no-untyped-def]
    before = counts()
    err = error(client.post("/api/bots", json={**BOT, "name": "a\x00b"}, headers=headers), 422)
    assert err["details"][0]["loc"] == ["body", "name"] and "NUL" in err["message"]
    params = {**BOT["strategy_params"], "x\x00": 1}
    err = error(
        client.post("/api/bots", json={**BOT, "strategy_params": params}, headers=headers), 422
    )
    assert err["details"][0]["loc"] == ["body", "strategy_params", "x\x00"]
    credential = {
        "exchange": "kraken",
        "label": "main\x00",
        "api_key": "k" * 10,
        "secret": "s" * 10,
    }
    err = error(client.post("/api/exchange-credentials", json=credential, headers=headers), 422)
    assert err["details"][0]["loc"] == ["body", "label"]
    err = error(client.patch(f"/api/bots/{bot['id']}", json={"name": "\x00"}, headers=headers), 422)
    assert err["details"][0]["loc"] == ["body", "name"]
    assert counts() == before


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/bots?symbol=ETH%00", "symbol"),
        ("/api/jobs?kind=a%00", "kind"),
        ("/api/admin/audit-log?action=login%00", "action"),
    ],
)
def test_nul_bytes_in_query_filters_are_422(client, admin_headers, path, field) -> None:  # type: ignore[no-untyped-def]
    err = error(client.get(path, headers=admin_headers), 422)
    assert err["details"][0]["loc"] == ["query", field]


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
def test_result_day_outside_the_calendar_is_422(client, headers, day) -> None:  # type: ignore[no-untyped-def]
    err = error(client.get(f"/api/analysis-results?date={day}", headers=headers), 422)
    assert err["details"][0]["loc"] == ["query", "date"] and "between" in err["message"]


@pytest.mark.parametrize(
    "moment", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00"]
)
def test_timestamps_past_the_calendar_are_422(client, headers, admin_headers, bot, moment) -> None:  # type: ignore[no-untyped-def]
    q = {"since": moment}
    err = error(client.get(f"/api/bots/{bot['id']}/equity", query_string=q, headers=headers), 422)
    assert err["details"][0]["loc"] == ["query", "since"]
    for field in ("since", "until"):
        r = client.get("/api/admin/audit-log", query_string={field: moment}, headers=admin_headers)
        assert error(r, 422)["details"][0]["loc"] == ["query", field]


BACKTEST = {"strategy": "sma_crossover", "symbol": "ETH/BTC", "timeframe": "5m", "capital": "1"}


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        ("0001-01-01T00:00:00", None, "start"),
        ("2018-01-01T00:00:00", "0001-01-01T00:00:00+14:00", "end"),
        ("2018-01-02T00:00:00", "2018-01-01T00:00:00+00:00", "end"),
    ],
)
def test_backtest_range_errors_are_422(client, headers, start, end, field) -> None:  # type: ignore[no-untyped-def]
    before = counts()
    payload = {**BACKTEST, "start": start, **({"end": end} if end else {})}
    err = error(client.post("/api/backtests", json=payload, headers=headers), 422)
    assert err["details"][0]["loc"] == ["body", field], err
    assert counts() == before


def test_naive_start_and_aware_end_are_both_utc(client, headers) -> None:  # type: ignore[no-untyped-def]
    payload = {**BACKTEST, "start": "2018-01-01T00:00:00", "end": "2018-01-03T00:00:00+00:00"}
    r = client.post("/api/backtests", json=payload, headers=headers)
    assert r.status_code in (202, 422), r.get_json()
    if r.status_code == 422:  # a range without candles is refused, but never with a TypeError
        assert r.get_json()["error"]["code"] != "internal_error"
