"""On Postgres the bot list sends JSON the database wrote (`app.store.wire_json`): it must be
what the response model writes for the same rows, for every kind of value a bot holds."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from app.api.bots import BOT_FIELDS, BotOut
from app.services import bots as service
from app.store.db import new_read_connection, session_scope
from app.store.models import Bot
from tests.support.databases import db_backend

ODD_BOTS: list[dict[str, Any]] = [
    {"capital": Decimal("1"), "maker_fee": Decimal("0"), "taker_fee": Decimal("0.001"),
     "slippage_bps": Decimal("100"), "strategy_params": {"fast": 5, "slow": 20},
     "next_tick_at": datetime(2026, 12, 2, 11, 30, tzinfo=UTC)},
    {"capital": Decimal("12345678901234567890.000000000000000001"),
     "maker_fee": Decimal("0.000000000000000001"), "taker_fee": Decimal("1E+3"),
     "slippage_bps": Decimal("-2.50"), "status": "paused", "pause_reason": "déjà \"vu\" \\ \n",
     "strategy_params": {"ratio": 0.1, "big": 12345678901234567890, "nested": {"a": [1, 2.5]},
                         "text": "✓ ünïcode"},
     "sizing": {"kelly_fraction": 0.25}, "protections": {"cooldown": {"candles": 3}},
     "last_tick_at": datetime(1999, 1, 2, 3, 4, 5, 7, tzinfo=UTC),
     "paper_started_at": datetime(2026, 1, 1, 0, 0, 0, 999999, tzinfo=UTC),
     "last_error": "ValueError: x", "error_streak": 3},
]  # fmt: skip


@pytest.fixture
def odd_user(make_user):  # type: ignore[no-untyped-def]
    if db_backend() == "sqlite":
        pytest.skip("SQLite serves the bot reads through the response model (pydantic) alone")
    user = make_user()
    with session_scope() as session:
        for n, values in enumerate(ODD_BOTS):
            session.add(Bot(user_id=user.id, name=f"odd {n}", exchange="replay",
                            symbol="ETH/BTC", timeframe="5m", strategy="sma_crossover",
                            **{"sizing": {}, "protections": {}, **values}))  # fmt: skip
    return user


def _accept(user: Any, revoked: bool) -> None:
    assert user is not None and not revoked


def test_the_database_writes_the_bot_list_as_the_response_model_does(odd_user) -> None:  # type: ignore[no-untyped-def]
    claims = {"sub": str(odd_user.id), "jti": "j"}
    with new_read_connection() as conn:
        items, total = service.list_bots_json(conn, claims, _accept, BOT_FIELDS)
        rows, expected_total = service.list_bot_rows(conn, claims, _accept)
    expected = [json.loads(BotOut.model_validate(row).model_dump_json()) for row in rows]
    assert json.loads(items) == expected and total == expected_total == len(ODD_BOTS)
    assert [list(item) for item in json.loads(items)] == [list(BOT_FIELDS)] * len(ODD_BOTS)
    odd = expected[0]  # the newest first: the second of ODD_BOTS
    assert odd["capital"] == "12345678901234567890.000000000000000001"
    assert (odd["taker_fee"], odd["slippage_bps"]) == ("1000", "-2.5")
    assert odd["last_tick_at"] == "1999-01-02T03:04:05.000007Z"


def test_a_page_past_the_end_still_counts_the_bots(odd_user) -> None:  # type: ignore[no-untyped-def]
    claims = {"sub": str(odd_user.id), "jti": "j"}
    with new_read_connection() as conn:
        assert service.list_bots_json(conn, claims, _accept, BOT_FIELDS, offset=5) == ("[]", 2)
        newest, total = service.list_bots_json(conn, claims, _accept, BOT_FIELDS, limit=1)
        paused = service.list_bots_json(conn, claims, _accept, BOT_FIELDS, status="paused")
    assert total == 2 and paused == (newest, 1)
    assert json.loads(newest)[0]["status"] == "paused"
