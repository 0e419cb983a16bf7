"""Live-trading gates on a real database: each gate trips on the bot that has not earned it and
passes for the bot that has; switching to live refuses with 409 and the reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.errors import Conflict
from app.services.live_gates import assert_live_allowed, live_eligibility
from app.store.db import session_scope
from app.store.models import Bot, SystemState
from tests.services.safety_helpers import (
    add_closed_trade,
    add_credential,
    add_equity,
    make_bot,
    set_bot,
)

NOW = datetime(2026, 3, 4, tzinfo=UTC)


@pytest.fixture
def live_settings(settings):
    return settings.model_copy(update={"live_trading_enabled": True, "live_min_closed_trades": 3})


@pytest.fixture
def earned(make_user) -> int:
    """A bot that passes every gate: 8 days on paper, 3 trades, 10% drawdown, credentials."""
    user = make_user()
    bot_id = make_bot(user.id, exchange="binance", paper_started_at=NOW - timedelta(days=8))
    for i in range(3):
        add_closed_trade(bot_id, "0.01", NOW - timedelta(days=3 - i))
    for days, equity in ((7, "1.0"), (5, "1.1"), (3, "0.99"), (1, "1.2")):
        add_equity(bot_id, NOW - timedelta(days=days), equity)
    add_credential(user.id, "binance")
    return bot_id


def codes(bot_id: int, settings) -> list[str]:
    with session_scope() as db:
        result = live_eligibility(db, db.get(Bot, bot_id), settings, NOW)
    assert result["live_allowed"] is (not result["reasons"])
    return [r["code"] for r in result["reasons"]]


def test_a_bot_that_earned_it_may_go_live(earned, live_settings) -> None:
    assert codes(earned, live_settings) == []
    with session_scope() as db:
        assert_live_allowed(db, db.get(Bot, earned), live_settings, NOW)


def test_live_trading_switched_off(earned, live_settings) -> None:
    off = live_settings.model_copy(update={"live_trading_enabled": False})
    assert codes(earned, off) == ["live_trading_disabled"]


def test_emergency_stop_active(earned, live_settings) -> None:
    with session_scope() as db:
        db.get(SystemState, 1).emergency_stop = True
    assert codes(earned, live_settings) == ["emergency_stop_active"]


def test_too_few_paper_days_is_configurable(earned, live_settings) -> None:
    set_bot(earned, paper_started_at=NOW - timedelta(days=6))
    assert codes(earned, live_settings) == ["paper_days_insufficient"]
    relaxed = live_settings.model_copy(update={"live_min_paper_days": 5})
    assert codes(earned, relaxed) == []


def test_never_paper_traded(earned, live_settings) -> None:
    set_bot(earned, paper_started_at=None)
    assert codes(earned, live_settings) == ["paper_days_insufficient"]


def test_credentials_must_be_for_the_bots_exchange(earned, live_settings, make_user) -> None:
    set_bot(earned, exchange="kraken")
    assert codes(earned, live_settings) == ["no_exchange_credentials"]
    add_credential(make_user().id, "kraken")  # someone else's key does not count
    assert codes(earned, live_settings) == ["no_exchange_credentials"]


def test_a_replay_bot_can_never_go_live_and_says_so(earned, live_settings) -> None:
    set_bot(earned, exchange="replay")
    assert codes(earned, live_settings) == ["market_never_live"]
    with session_scope() as db, pytest.raises(Conflict) as refused:
        assert_live_allowed(db, db.get(Bot, earned), live_settings, NOW)
    assert [d["code"] for d in refused.value.details] == ["market_never_live"]
    assert "never trade live" in refused.value.message


def test_drawdown_over_the_limit_is_configurable(earned, live_settings) -> None:
    add_equity(earned, NOW - timedelta(hours=1), "1.0")  # 1.2 -> 1.0: 16.7%
    assert codes(earned, live_settings) == ["drawdown_too_high"]
    relaxed = live_settings.model_copy(update={"live_max_drawdown": 0.2})
    assert codes(earned, relaxed) == []


def test_too_few_closed_trades_is_configurable(earned, live_settings) -> None:
    strict = live_settings.model_copy(update={"live_min_closed_trades": 4})
    assert codes(earned, strict) == ["too_few_closed_trades"]


def test_switching_to_live_answers_409_with_every_reason(earned, live_settings) -> None:
    set_bot(earned, paper_started_at=NOW - timedelta(days=1))
    off = live_settings.model_copy(update={"live_trading_enabled": False})
    with session_scope() as db, pytest.raises(Conflict) as caught:
        assert_live_allowed(db, db.get(Bot, earned), off, NOW)
    assert caught.value.status == 409 and caught.value.code == "live_not_allowed"
    assert [d["code"] for d in caught.value.details] == [
        "live_trading_disabled",
        "paper_days_insufficient",
    ]
