"""Switching a bot to live passes the live-trading gates or answers 409 with their reasons;
bots cannot be started or resumed while the emergency stop is active."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update

from app.store.base import utcnow
from app.store.db import session_scope
from app.store.models import Bot, SystemState
from app.store.models.accounts import AuditLog
from config import use_settings

CREDENTIALS = {"exchange": "binance", "label": "main", "api_key": "k" * 24, "secret": "s" * 32}


def _bot(user_id: int, **fields: Any) -> int:
    with session_scope() as db:
        fields.setdefault("exchange", "binance")
        bot = Bot(
            user_id=user_id,
            name="b",
            symbol="ETH/BTC",
            timeframe="5m",
            strategy="sma_crossover",
            capital=Decimal(1),
            **fields,
        )
        db.add(bot)
        db.flush()
        return bot.id


def _codes(response: Any) -> set[str]:
    return {d["code"] for d in response.get_json()["error"]["details"]}


def test_live_switch_refused_with_every_failing_gate(client, make_user, auth_headers) -> None:  # type: ignore[no-untyped-def]
    user = make_user()
    bot_id = _bot(user.id, status="paused", paper_started_at=utcnow())
    response = client.patch(
        f"/api/bots/{bot_id}", json={"mode": "live"}, headers=auth_headers(user)
    )
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "live_not_allowed"
    assert {
        "live_trading_disabled",
        "paper_days_insufficient",
        "no_exchange_credentials",
        "too_few_closed_trades",
    } <= _codes(response)
    with session_scope() as db:
        assert db.get(Bot, bot_id).mode == "paper"  # type: ignore[union-attr]


def test_live_switch_allowed_when_the_gates_hold_and_audited(  # type: ignore[no-untyped-def]
    client, make_user, auth_headers, settings
) -> None:
    user = make_user()
    headers = auth_headers(user)
    assert (
        client.post("/api/exchange-credentials", json=CREDENTIALS, headers=headers).status_code
        == 201
    )
    bot_id = _bot(user.id, status="paused", paper_started_at=utcnow() - timedelta(days=8))
    use_settings(
        settings.model_copy(update={"live_trading_enabled": True, "live_min_closed_trades": 0})
    )
    try:
        response = client.patch(f"/api/bots/{bot_id}", json={"mode": "live"}, headers=headers)
    finally:
        use_settings(settings)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["mode"] == "live"
    with session_scope() as db:
        actions = list(db.scalars(select(AuditLog.action)))
    assert "bot.mode_changed" in actions
    back = client.patch(f"/api/bots/{bot_id}", json={"mode": "paper"}, headers=headers)
    assert back.status_code == 200 and back.get_json()["mode"] == "paper"


def test_no_start_or_resume_during_emergency_stop(client, make_user, auth_headers) -> None:  # type: ignore[no-untyped-def]
    user = make_user()
    headers = auth_headers(user)
    paused = _bot(user.id, exchange="replay", status="paused", paper_started_at=utcnow())
    with session_scope() as db:
        db.execute(update(SystemState).where(SystemState.id == 1).values(emergency_stop=True))
    response = client.post(f"/api/bots/{paused}/resume", headers=headers)
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "emergency_stop_active"
    with session_scope() as db:
        assert db.get(Bot, paused).status == "paused"  # type: ignore[union-attr]


def test_live_bot_with_open_orders_cannot_go_back_to_paper(client, make_user, auth_headers) -> None:  # type: ignore[no-untyped-def]
    from app.store.models.ledger import Order

    user = make_user()
    bot_id = _bot(user.id, mode="live", status="paused", paper_started_at=utcnow())
    with session_scope() as db:
        db.add(Order(bot_id=bot_id, client_order_id=f"{bot_id}-1-0", symbol="ETH/BTC",
                     side="buy", type="market", state="open", amount=Decimal("0.1"),
                     reserved=Decimal("0.01"), fill_from=utcnow()))  # fmt: skip
    response = client.patch(f"/api/bots/{bot_id}", json={"mode": "paper"},
                            headers=auth_headers(user))  # fmt: skip
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "open_live_orders"
