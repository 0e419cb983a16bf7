"""The round trips of the hot paths, pinned: a change that adds a query to the bot list, a
bot's page, login or a tick fails here and has to say why in this file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.api.rate_limit import reset_rate_limits
from app.engine.tick import run_tick
from app.services.engine_hooks import TICK_HOOKS
from app.store.base import utcnow
from app.store.db import session_scope
from app.store.models import Bot
from tests.auth.conftest import PASSWORD
from tests.engine.helpers import (
    FIXTURE_CLOSE,
    FIXTURE_OPEN,
    HOUR_MS,
    T0,
    Clock,
    at,
    install_replay,
    rows_from,
    uninstall_replay,
    write_candles,
)

BOT = {
    "name": "counted",
    "symbol": "AAA/BBB",
    "timeframe": "1h",
    "strategy": "sma_crossover",
    "strategy_params": {"fast": 2, "slow": 3},
    "capital": "1000",
    "sizing": {"mode": "fixed", "stake": 100},
    "protections": {"max_drawdown": None},
}


@pytest.fixture
def market(app: Any, tmp_path: Path) -> Iterator[Clock]:
    directory = tmp_path / "candles"
    write_candles(directory, "TEST_AAA-BBB_1h.csv", rows_from(FIXTURE_OPEN, FIXTURE_CLOSE))
    clock = Clock(T0)
    install_replay(directory, clock)
    yield clock
    uninstall_replay()


@pytest.fixture
def owner(make_user: Any, auth_headers: Any) -> dict[str, str]:
    return auth_headers(make_user())


def make_bots(client: Any, headers: dict[str, str], n: int) -> list[int]:
    ids = []
    for i in range(n):
        response = client.post("/api/bots", json={**BOT, "name": f"bot {i}"}, headers=headers)
        assert response.status_code == 201, response.get_json()
        ids.append(response.get_json()["id"])
    return ids


def test_bot_list(client, owner, market, count_queries) -> None:  # type: ignore[no-untyped-def]
    make_bots(client, owner, 5)
    with count_queries() as q:
        response = client.get("/api/bots", headers=owner)
    assert response.status_code == 200 and response.get_json()["total"] == 5
    # the user with its revocation check, the page and its count all in one statement; no
    # BEGIN/COMMIT either (a read-only route: tests/store/test_db.py pins that its connection
    # opens no transaction)
    assert len(q) == 1, q.statements


def test_bot_detail(client, owner, market, count_queries) -> None:  # type: ignore[no-untyped-def]
    (bot_id,) = make_bots(client, owner, 1)
    with count_queries() as q:
        response = client.get(f"/api/bots/{bot_id}", headers=owner)
    assert response.status_code == 200
    assert len(q) == 1, q.statements  # the user with its revocation check and the bot


def test_login(client, count_queries) -> None:  # type: ignore[no-untyped-def]
    reset_rate_limits()  # registrations of earlier tests count against this address
    email = "counted@example.com"
    registered = client.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    assert registered.status_code == 201, registered.get_json()
    with count_queries() as q:
        response = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200
    assert len(q) == 3, q.statements  # the user, the refresh token, the audit row


def _tick(bot_id: int, clock: Clock, k: int, count_queries: Any) -> int:
    clock.ms = T0 + (k + 1) * HOUR_MS
    with count_queries() as q, session_scope() as s:
        bot = s.get(Bot, bot_id)
        result = run_tick(s, bot, planned_at=at(clock.ms), now=utcnow(), hooks=TICK_HOOKS)
        bot.last_candle_ts = result.last_candle_ts or bot.last_candle_ts
    return len(q)


def test_one_tick(client, owner, market, count_queries) -> None:  # type: ignore[no-untyped-def]
    (bot_id,) = make_bots(client, owner, 1)
    client.post(f"/api/bots/{bot_id}/start", headers=owner)
    counts = [_tick(bot_id, market, k, count_queries) for k in range(3, 8)]
    # five candles of the fixture: a tick that decides nothing costs 4 statements (the
    # candles come from the shared cache); ticks that place or fill orders cost 19 to 28
    assert counts == [4, 28, 19, 4, 20], counts
