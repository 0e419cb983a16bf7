"""Signal bots: a rotatable per-bot token, alerts in TradingView's shape queued and executed
on the next tick through the bot's sizing and broker, each recorded with what became of it;
one alert id twice runs once, a replayed alert or another symbol is a 422, a signal during an
emergency stop is refused and places no order, and the endpoint is rate limited."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.services.emergency import emergency_resume, emergency_stop
from app.store.base import utcnow
from app.store.db import session_scope
from app.store.models.ledger import Order
from config import get_settings, use_settings
from tests.engine.helpers import (
    FIXTURE_CLOSE,
    FIXTURE_OPEN,
    T0,
    Clock,
    install_replay,
    make_bot,
    rows_from,
    uninstall_replay,
    write_candles,
)
from tests.engine.test_tick import tick


@pytest.fixture
def clock(app: Any, tmp_path: Path) -> Iterator[Clock]:
    directory = tmp_path / "candles"
    write_candles(directory, "TEST_AAA-BBB_1h.csv", rows_from(FIXTURE_OPEN, FIXTURE_CLOSE))
    c = Clock(T0)
    install_replay(directory, c)
    yield c
    uninstall_replay()


@pytest.fixture
def signal_bot(clock: Clock, make_user: Any, auth_headers: Any, client: Any) -> dict[str, Any]:
    user = make_user()
    with session_scope() as s:
        bot_id = make_bot(s, user.id, strategy="signal", strategy_params={}).id
    headers = auth_headers(user)
    r = client.post(f"/api/bots/{bot_id}/signal-token", headers=headers)
    assert r.status_code == 201, r.get_json()
    return {"id": bot_id, "token": r.get_json()["token"], "headers": headers, "user": user}


def _send(client: Any, token: str, **body: Any) -> Any:
    return client.post(f"/api/signals/{token}", json=body)


def _orders(bot_id: int) -> list[Order]:
    with session_scope() as s:
        return list(s.scalars(select(Order).where(Order.bot_id == bot_id).order_by(Order.id)))


def _signals(client: Any, bot: dict[str, Any]) -> list[dict[str, Any]]:
    r = client.get(f"/api/bots/{bot['id']}/signals", headers=bot["headers"])
    return r.get_json()["items"]


def test_a_signal_is_queued_then_executed_by_the_next_tick(
    client: Any, clock: Clock, signal_bot: dict[str, Any]
) -> None:
    r = _send(client, signal_bot["token"], id="tv-1", action="buy", ticker="AAABBB", price=12.5)
    assert r.status_code == 202, r.get_json()
    assert r.get_json()["signal"]["state"] == "queued"
    assert _orders(signal_bot["id"]) == []

    result = tick(signal_bot["id"], clock, 2)  # the signal strategy alone never trades
    assert result.action == "buy"
    [order] = _orders(signal_bot["id"])
    assert (order.side, order.quote_amount) == ("buy", Decimal("100.1"))  # fixed stake + fee
    [row] = _signals(client, signal_bot)
    assert row["state"] == "executed" and order.client_order_id in row["outcome"]

    again = _send(client, signal_bot["token"], id="tv-1", action="buy", symbol="AAA/BBB")
    assert again.status_code == 202 and again.get_json()["duplicate"] is True
    tick(signal_bot["id"], clock, 3)
    assert len(_orders(signal_bot["id"])) == 1  # the duplicate ran nothing


@pytest.mark.parametrize("size", [{"percentage": 25}, {"amount": "0.5"}])
def test_a_size_sent_with_the_signal_replaces_the_bots_sizing(
    client: Any, clock: Clock, signal_bot: dict[str, Any], size: dict[str, Any]
) -> None:
    r = _send(client, signal_bot["token"], action="buy", symbol="AAA/BBB", **size)
    assert r.status_code == 202, r.get_json()
    result = tick(signal_bot["id"], clock, 2)
    assert result.action == "buy" and result.details["sizing"]["mode"] == "signal"
    stake = Decimal(result.details["sizing"]["stake"])
    [order] = _orders(signal_bot["id"])
    assert order.quote_amount == stake * Decimal("1.001")  # the stake plus the entry fee
    if "percentage" in size:
        assert stake == Decimal("250")  # 25 % of the bot's free 1000
    else:  # 0.5 units at the tick's reference price, one of the fixture's prices
        prices = {Decimal(str(p)) for p in (*FIXTURE_OPEN, *FIXTURE_CLOSE)}
        assert stake / Decimal("0.5") in prices and stake != Decimal("100")


def test_refusals_are_recorded_with_the_reason(
    client: Any, clock: Clock, signal_bot: dict[str, Any]
) -> None:
    assert _send(client, signal_bot["token"], action="sell", symbol="AAA/BBB").status_code == 202
    tick(signal_bot["id"], clock, 2)
    [row] = _signals(client, signal_bot)
    assert (row["state"], row["outcome"]) == ("refused", "no position to sell")
    assert _orders(signal_bot["id"]) == []


def test_a_signal_during_an_emergency_stop_is_refused_and_places_no_order(
    client: Any, clock: Clock, signal_bot: dict[str, Any], make_user: Any
) -> None:
    admin = make_user(role="admin")
    emergency_stop(actor_user_id=admin.id, reason="drill")
    try:
        r = _send(client, signal_bot["token"], id="tv-9", action="buy", symbol="AAA/BBB")
        assert r.status_code == 202
        assert r.get_json()["signal"]["state"] == "refused"
        assert r.get_json()["signal"]["outcome"] == "emergency stop active"
        tick(signal_bot["id"], clock, 2)
        assert _orders(signal_bot["id"]) == []
    finally:
        emergency_resume(actor_user_id=admin.id)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"action": "buy", "symbol": "ETH/BTC"}, "wrong_symbol"),
        ({"action": "hodl", "symbol": "AAA/BBB"}, "validation_error"),
        ({"action": "buy", "symbol": "AAA/BBB", "timestamp": "2020-01-01T00:00:00Z"},
         "stale_signal"),
        ({"action": "buy", "symbol": "AAA/BBB", "amount": 1, "percentage": 5},
         "validation_error"),
        ({"action": "sell", "symbol": "AAA/BBB", "percentage": 50}, "partial_exit_unsupported"),
    ],
)  # fmt: skip
def test_bad_signals_answer_422_and_record_nothing(
    client: Any, signal_bot: dict[str, Any], body: dict[str, Any], code: str
) -> None:
    r = _send(client, signal_bot["token"], **body)
    assert r.status_code == 422, r.get_json()
    assert r.get_json()["error"]["code"] == code
    assert _signals(client, signal_bot) == []


def test_tokens_rotate_and_only_the_newest_works(client: Any, signal_bot: dict[str, Any]) -> None:
    old = signal_bot["token"]
    new = client.post(f"/api/bots/{signal_bot['id']}/signal-token",
                      headers=signal_bot["headers"]).get_json()["token"]  # fmt: skip
    assert new != old
    assert _send(client, old, action="buy", symbol="AAA/BBB").status_code == 401
    assert _send(client, "x" + new, action="buy", symbol="AAA/BBB").status_code == 401
    assert _send(client, new, action="buy", symbol="AAA/BBB").status_code == 202
    listing = client.get(f"/api/bots/{signal_bot['id']}", headers=signal_bot["headers"])
    assert new.split(".")[1] not in listing.get_data(as_text=True)


def test_only_a_signal_bot_gets_a_token(client: Any, clock: Clock, make_user: Any,
                                        auth_headers: Any) -> None:  # fmt: skip
    user = make_user()
    with session_scope() as s:
        bot_id = make_bot(s, user.id).id
    r = client.post(f"/api/bots/{bot_id}/signal-token", headers=auth_headers(user))
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "not_a_signal_bot"


def test_signals_are_rate_limited_per_bot(client: Any, signal_bot: dict[str, Any]) -> None:
    previous = get_settings()
    use_settings(previous.model_copy(update={"signal_rate_limit": "3 per minute"}))
    try:
        codes = [
            _send(client, signal_bot["token"], action="buy", symbol="AAA/BBB",
                  timestamp=(utcnow() - timedelta(seconds=5)).isoformat()).status_code
            for _ in range(4)
        ]  # fmt: skip
    finally:
        use_settings(previous)
    assert codes == [202, 202, 202, 429]


def test_a_signal_not_run_within_the_window_expires_instead_of_running_late(
    client: Any, clock: Clock, signal_bot: dict[str, Any]
) -> None:
    from app.store.models.signals import BotSignal

    assert _send(client, signal_bot["token"], action="buy", symbol="AAA/BBB").status_code == 202
    with session_scope() as s:  # queued while the bot was paused for an hour, say
        for row in s.scalars(select(BotSignal)):
            row.created_at = utcnow() - timedelta(hours=1)
    tick(signal_bot["id"], clock, 2)
    [row] = _signals(client, signal_bot)
    assert row["state"] == "refused" and row["outcome"].startswith("expired")
    assert _orders(signal_bot["id"]) == []
