"""Protections at trade time on a real database: a trip pauses the bot with its reason, keeps
the trip and alerts the owner; passing history lets the trade go; a cooldown resumes the bot;
history before a trip never trips it again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.services.risk import check_before_trade, resume_cooled_down_bots
from app.store.db import session_scope
from app.store.models import Bot, SystemState
from app.store.models.safety import Alert, ProtectionTrip
from tests.services.safety_helpers import (
    add_closed_trade,
    add_equity,
    get_bot,
    make_bot,
    set_bot,
)

NOW = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)
OFF = {
    "max_drawdown": None,
    "max_losing_streak": None,
    "daily_loss_limit": None,
    "stoploss_guard_trades": None,
    "trade_cooldown_minutes": 0,
}


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


@pytest.fixture
def owner(make_user):
    return make_user()


def running_bot(owner, **protections) -> int:
    bot_id = make_bot(owner.id, status="running", protections={**OFF, **protections})
    set_bot(bot_id, next_tick_at=NOW)
    return bot_id


def check(bot_id: int, now: datetime = NOW) -> str | None:
    with session_scope() as db:
        bot = db.get(Bot, bot_id)
        return check_before_trade(db, bot, now)


def alerts_for(bot_id: int) -> list[Alert]:
    with session_scope() as db:
        return list(db.scalars(select(Alert).where(Alert.bot_id == bot_id)))


def test_losing_streak_pauses_with_reason_alert_and_cooldown(owner) -> None:
    bot_id = running_bot(owner, max_losing_streak=3, losing_streak_cooldown_minutes=30)
    for minutes in (50, 40, 30):
        add_closed_trade(bot_id, "-0.01", ago(minutes))
    assert check(bot_id) == "protection:losing_streak"
    bot = get_bot(bot_id)
    assert bot.status == "paused" and bot.pause_reason == "protection:losing_streak"
    assert bot.cooldown_until == NOW + timedelta(minutes=30)
    (alert,) = alerts_for(bot_id)
    assert alert.user_id == owner.id and alert.code == "protection_losing_streak"
    with session_scope() as db:
        (trip,) = db.scalars(select(ProtectionTrip).where(ProtectionTrip.bot_id == bot_id))
        assert trip.protection == "losing_streak" and trip.tripped_at == NOW


def test_passing_history_lets_the_trade_go(owner) -> None:
    bot_id = running_bot(owner, max_losing_streak=3, max_drawdown=0.25, daily_loss_limit=0.05)
    add_closed_trade(bot_id, "-0.01", ago(50))
    add_closed_trade(bot_id, "0.02", ago(40))
    add_closed_trade(bot_id, "-0.01", ago(30))
    add_equity(bot_id, ago(60), "1.00")
    add_equity(bot_id, ago(10), "0.99")
    assert check(bot_id) is None
    assert get_bot(bot_id).status == "running"
    assert alerts_for(bot_id) == []


def test_max_drawdown_pauses_until_a_person_resumes(owner) -> None:
    bot_id = running_bot(owner, max_drawdown=0.2)
    for minutes, equity in ((60, "1.0"), (40, "1.5"), (20, "1.1")):  # 26.7% below the peak
        add_equity(bot_id, ago(minutes), equity)
    assert check(bot_id) == "protection:max_drawdown"
    bot = get_bot(bot_id)
    assert bot.status == "paused" and bot.cooldown_until is None
    with session_scope() as db:
        assert resume_cooled_down_bots(db, NOW + timedelta(days=30)) == []


def test_daily_loss_pauses_until_midnight(owner) -> None:
    bot_id = running_bot(owner, daily_loss_limit=0.05)
    add_equity(bot_id, datetime(2026, 3, 3, 23, 0, tzinfo=UTC), "1.00")
    add_equity(bot_id, ago(5), "0.90")
    assert check(bot_id) == "protection:daily_loss"
    assert get_bot(bot_id).cooldown_until == datetime(2026, 3, 5, tzinfo=UTC)


def test_stoploss_guard_pauses_after_stop_outs(owner) -> None:
    bot_id = running_bot(owner, stoploss_guard_trades=2, stoploss_guard_window_minutes=60)
    add_closed_trade(bot_id, "-0.01", ago(40), reason="stop_loss")
    assert check(bot_id) is None
    add_closed_trade(bot_id, "-0.01", ago(20), reason="stop_loss")
    assert check(bot_id) == "protection:stoploss_guard"
    assert get_bot(bot_id).status == "paused"


def test_trade_cooldown_holds_entries_but_pauses_nothing(owner) -> None:
    bot_id = running_bot(owner, trade_cooldown_minutes=15)
    add_closed_trade(bot_id, "0.01", ago(10))
    assert check(bot_id) == "protection:trade_cooldown"
    assert get_bot(bot_id).status == "running"
    assert check(bot_id, NOW + timedelta(minutes=6)) is None


def test_cooldown_resumes_the_bot_and_old_losses_no_longer_count(owner) -> None:
    bot_id = running_bot(owner, max_losing_streak=2, losing_streak_cooldown_minutes=30)
    add_closed_trade(bot_id, "-0.01", ago(20))
    add_closed_trade(bot_id, "-0.01", ago(10))
    assert check(bot_id) == "protection:losing_streak"
    with session_scope() as db:
        assert resume_cooled_down_bots(db, NOW + timedelta(minutes=29)) == []
    with session_scope() as db:
        resumed = resume_cooled_down_bots(db, NOW + timedelta(minutes=31))
        assert [b.id for b in resumed] == [bot_id]
    bot = get_bot(bot_id)
    assert bot.status == "running" and bot.pause_reason is None and bot.next_tick_at is not None
    assert check(bot_id, NOW + timedelta(minutes=32)) is None  # the two losses were before it
    add_closed_trade(bot_id, "-0.01", NOW + timedelta(minutes=40))
    add_closed_trade(bot_id, "-0.01", NOW + timedelta(minutes=45))
    assert check(bot_id, NOW + timedelta(minutes=50)) == "protection:losing_streak"


def test_no_cooldown_resume_during_an_emergency_stop(owner) -> None:
    bot_id = running_bot(owner, max_losing_streak=1, losing_streak_cooldown_minutes=1)
    add_closed_trade(bot_id, "-0.01", ago(5))
    assert check(bot_id) == "protection:losing_streak"
    with session_scope() as db:
        db.get(SystemState, 1).emergency_stop = True
    with session_scope() as db:
        assert resume_cooled_down_bots(db, NOW + timedelta(hours=1)) == []
    assert get_bot(bot_id).status == "paused"


def test_an_active_emergency_stop_holds_every_entry(owner) -> None:
    bot_id = running_bot(owner)
    with session_scope() as db:
        db.get(SystemState, 1).emergency_stop = True
    assert check(bot_id) == "emergency_stop"


def test_malformed_protections_fall_back_to_the_defaults_which_are_on(owner) -> None:
    bot_id = make_bot(owner.id, status="running", protections={"max_losing_streak": "many"})
    for minutes in range(10, 0, -1):
        add_closed_trade(bot_id, "-0.01", ago(minutes))
    assert check(bot_id) == "protection:losing_streak"


def test_a_live_bot_whose_gates_fail_is_paused_with_the_codes(owner) -> None:
    bot_id = running_bot(owner)
    set_bot(bot_id, mode="live", paper_started_at=NOW - timedelta(days=30))
    reason = check(bot_id)
    assert reason is not None and reason.startswith("live_gates:")
    # a replay bot can never trade live: that, not missing credentials, is its gate
    assert "live_trading_disabled" in reason and "market_never_live" in reason
    bot = get_bot(bot_id)
    assert bot.status == "paused" and bot.pause_reason == reason
    assert [a.code for a in alerts_for(bot_id)] == ["live_gates_failed"]
