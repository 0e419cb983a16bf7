"""The tick dispatcher: due bots are claimed, ticked once on their planned grid, released;
late bots catch up to the latest boundary and say how many ticks they skipped; a failing
bot records its error and streak (and is paused after too many) without touching others;
a worker that lost its lease writes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app.domain.times import from_ms, to_ms
from app.engine.tick import tick_grid
from app.jobs import bot_ticks
from app.store.base import utcnow
from app.store.claims import claim
from app.store.db import session_scope
from app.store.models import Bot
from app.store.models.ledger import Order
from app.store.models.safety import Alert
from app.store.models.trading import BotTick
from tests.engine.helpers import make_bot, uninstall_replay

GRID_TF = "5m"


@pytest.fixture(autouse=True)
def shipped_replay(app: Any) -> Any:
    """The replay feed over the shipped sample data, on the real clock."""
    uninstall_replay()
    yield
    uninstall_replay()


@pytest.fixture
def user_id(make_user: Any) -> int:
    return int(make_user().id)


def due_bot(user_id: int, *, behind: int = 0, **fields: Any) -> int:
    grid = tick_grid("replay", GRID_TF)
    latest = grid.latest_due(to_ms(utcnow()))
    with session_scope() as s:
        values = {"symbol": "ETH/BTC", "timeframe": GRID_TF, **fields}
        next_at = from_ms(grid.at(grid.index_at_or_before(latest) - behind))
        bot = make_bot(s, user_id, next_tick_at=next_at, **values)
        return int(bot.id)


def ticks(bot_id: int) -> list[BotTick]:
    with session_scope() as s:
        return list(s.scalars(select(BotTick).where(BotTick.bot_id == bot_id)))


def bot(bot_id: int) -> Bot:
    with session_scope() as s:
        return s.get(Bot, bot_id)


def test_a_due_bot_ticks_once_on_its_grid_and_is_released(user_id: int) -> None:
    bot_id = due_bot(user_id)
    planned = bot(bot_id).next_tick_at
    assert bot_ticks.run() >= 1
    (row,) = ticks(bot_id)
    assert row.planned_at == planned and row.outcome == "ok" and row.skipped == 0
    assert row.worker == bot_ticks.worker_id() and row.started_at >= row.planned_at
    after = bot(bot_id)
    assert after.lease_owner is None and after.lease_until is None
    assert after.last_tick_at == planned
    assert after.next_tick_at == planned + timedelta(minutes=5)  # from the plan, not "now"
    assert after.last_candle_ts == row.candle_ts
    assert bot_ticks.run() == 0  # nothing is due until the next boundary
    assert len(ticks(bot_id)) == 1


def test_only_running_bots_and_pending_exits_tick(user_id: int) -> None:
    running = due_bot(user_id)
    paused = due_bot(user_id, status="paused")
    stopped = due_bot(user_id, status="stopped")
    deleted = due_bot(user_id, deleted_at=utcnow())
    exiting = due_bot(user_id, status="paused", exit_requested_at=utcnow())
    bot_ticks.run()
    assert [len(ticks(b)) for b in (running, paused, stopped, deleted, exiting)] == [1, 0, 0, 0, 1]
    # flat with nothing open: the exit is done and the paused bot stops ticking
    assert bot(exiting).exit_requested_at is None and bot(exiting).next_tick_at is None


def test_a_late_bot_ticks_once_at_the_latest_boundary_and_counts_what_it_skipped(
    user_id: int,
) -> None:
    bot_id = due_bot(user_id, behind=3)
    behind_at = bot(bot_id).next_tick_at
    bot_ticks.run()
    (row,) = ticks(bot_id)
    assert row.skipped == 3
    assert row.planned_at == behind_at + timedelta(minutes=15)
    assert bot(bot_id).next_tick_at == row.planned_at + timedelta(minutes=5)


def test_a_failing_bot_records_its_error_without_touching_others(user_id: int) -> None:
    good = due_bot(user_id)
    bad = due_bot(user_id, strategy_params={"fast": "ten"})  # invalid in the database
    bot_ticks.run()
    (row,) = ticks(bad)
    assert row.outcome == "error" and "ValidationFailed" in (row.error or "")
    b = bot(bad)
    assert b.error_streak == 1 and "invalid parameters" in (b.last_error or "")
    assert b.status == "running" and b.lease_owner is None
    assert b.next_tick_at == row.planned_at + timedelta(minutes=5)
    assert [t.outcome for t in ticks(good)] == ["ok"] and bot(good).error_streak == 0


def test_too_many_errors_in_a_row_pause_the_bot_with_an_alert(user_id: int) -> None:
    bad = due_bot(user_id, strategy="no_such_strategy", error_streak=4)
    bot_ticks.run()
    b = bot(bad)
    assert b.error_streak == 5 and b.status == "paused" and b.next_tick_at is None
    assert b.pause_reason.startswith("5 consecutive tick errors")
    with session_scope() as s:
        codes = s.scalars(select(Alert.code).where(Alert.bot_id == bad)).all()
    assert "bot_paused" in codes


def test_a_worker_that_lost_its_lease_writes_nothing(user_id: int) -> None:
    bot_id = due_bot(user_id)
    now = utcnow()
    with session_scope() as s:
        assert claim(s, Bot, owner="w1", now=now, lease_seconds=30, limit=5,
                     where=bot_ticks.due_condition(now), order_by=Bot.id) == [bot_id]  # fmt: skip
    with session_scope() as s:  # w1's lease expired and w2 took the bot over
        s.get(Bot, bot_id).lease_owner = "w2"
    assert bot_ticks.tick_batch([bot_id], "w1", bot_ticks.TickSettings()) == 0
    assert ticks(bot_id) == []
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 0
        assert s.get(Bot, bot_id).lease_owner == "w2"


def test_a_bot_that_cannot_even_be_planned_does_not_fail_its_batch(user_id: int) -> None:
    broken = due_bot(user_id, timeframe="7m")  # edited by hand: no grid for it
    fine = due_bot(user_id)
    assert bot_ticks.run() == 1
    assert [t.outcome for t in ticks(fine)] == ["ok"] and ticks(broken) == []
    b = bot(broken)
    assert b.error_streak == 1 and "UnknownTimeframe" in b.last_error
    assert b.lease_owner is None and b.next_tick_at > utcnow()


def test_the_unique_tick_record_is_the_last_line_of_defence(user_id: int) -> None:
    from sqlalchemy.exc import IntegrityError

    bot_id = due_bot(user_id)
    bot_ticks.run()
    (row,) = ticks(bot_id)
    with pytest.raises(IntegrityError), session_scope() as s:
        s.add(BotTick(bot_id=bot_id, planned_at=row.planned_at, worker="x", outcome="ok",
                      started_at=utcnow(), finished_at=utcnow()))  # fmt: skip
