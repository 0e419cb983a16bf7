"""Self-healing on real stale rows: expired leases, stale jobs, stuck bots, error streaks,
live bots failing their gates, timestamps in other shapes, and malformed rows that are
reported and skipped without stopping the scan. Each finding is an incident and an alert."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from app.domain.times import to_ms
from app.engine.tick import tick_grid
from app.jobs import self_healing
from app.jobs.self_healing import HealingConfig, scan, singleton
from app.store.db import session_scope
from app.store.models import Job
from app.store.models.safety import Alert, Incident
from tests.services.safety_helpers import add_closed_trade, get_bot, make_bot, set_bot

NOW = datetime(2026, 3, 4, 10, 30, tzinfo=UTC)
CONFIG = HealingConfig(
    stuck_bot_intervals=3,
    stuck_bot_min_seconds=30,
    error_streak_pause=5,
    job_stale_seconds=60,
    lease_grace_seconds=10,
)


def is_sqlite() -> bool:
    from app.store.db import get_engine

    return get_engine().dialect.name == "sqlite"


def incidents(kind: str | None = None) -> list[Incident]:
    with session_scope() as db:
        stmt = select(Incident).order_by(Incident.id)
        if kind:
            stmt = stmt.where(Incident.kind == kind)
        return list(db.scalars(stmt))


def alerts(code: str) -> list[Alert]:
    with session_scope() as db:
        return list(db.scalars(select(Alert).where(Alert.code == code)))


def healthy_bot(user_id: int, **fields) -> int:
    """A running bot that ticked on time (5m candles on the replay feed)."""
    bot_id = make_bot(user_id, status="running")
    set_bot(
        bot_id,
        last_tick_at=NOW - timedelta(minutes=4),
        next_tick_at=NOW + timedelta(minutes=1),
        **fields,
    )
    return bot_id


def make_job(user_id: int | None, **fields) -> int:
    values = {
        "kind": "analysis",
        "state": "running",
        "payload": {},
        "payload_hash": hashlib.sha256(str(fields).encode()).hexdigest(),
        "attempts": 1,
        "max_attempts": 3,
        "lease_owner": "gone:1",
        "lease_until": NOW - timedelta(minutes=5),
        "started_at": NOW - timedelta(minutes=20),
    }
    values.update(fields)
    with session_scope() as db:
        job = Job(user_id=user_id, **values)
        db.add(job)
        db.flush()
        return job.id


def raw_update(table: str, row_id: int, **values: str) -> None:
    """Write column text as-is (another writer's idea of a timestamp)."""
    sets = ", ".join(f"{k} = :{k}" for k in values)
    with session_scope() as db:
        db.execute(text(f"UPDATE {table} SET {sets} WHERE id = :id"), {"id": row_id, **values})


@pytest.fixture
def owner(make_user):
    return make_user()


# -- leases --------------------------------------------------------------------------------


def test_an_expired_bot_lease_is_released_and_reported(owner) -> None:
    stale = healthy_bot(owner.id, lease_owner="dead:1", lease_until=NOW - timedelta(minutes=2))
    busy = healthy_bot(owner.id, lease_owner="alive:2", lease_until=NOW + timedelta(seconds=20))
    report = scan(NOW, CONFIG)
    assert report.findings == [("expired_lease", stale)]
    assert get_bot(stale).lease_owner is None and get_bot(stale).lease_until is None
    assert get_bot(busy).lease_owner == "alive:2"
    (incident,) = incidents("expired_lease")
    assert incident.bot_id == stale and "dead:1" in incident.message
    (alert,) = alerts("expired_lease")
    assert alert.user_id is None


def test_a_lease_that_just_expired_is_left_to_the_claim_grace(owner) -> None:
    healthy_bot(owner.id, lease_owner="slow:1", lease_until=NOW - timedelta(seconds=5))
    assert scan(NOW, CONFIG).findings == []


# -- stale jobs ----------------------------------------------------------------------------


def test_a_stale_job_is_requeued_and_an_exhausted_one_failed(owner) -> None:
    requeue = make_job(owner.id, heartbeat_at=NOW - timedelta(minutes=5))
    exhausted = make_job(owner.id, heartbeat_at=NOW - timedelta(minutes=5), attempts=3)
    fresh = make_job(
        owner.id, heartbeat_at=NOW - timedelta(seconds=10), lease_until=NOW + timedelta(minutes=1)
    )
    report = scan(NOW, CONFIG)
    assert sorted(report.findings) == sorted([("stale_job", requeue), ("stale_job", exhausted)])
    with session_scope() as db:
        assert db.get(Job, requeue).state == "queued"
        failed = db.get(Job, exhausted)
        assert failed.state == "failed" and "attempts exhausted" in failed.error
        assert db.get(Job, fresh).state == "running"
    assert {i.job_id for i in incidents("stale_job")} == {requeue, exhausted}
    assert len(alerts("stale_job")) == 2
    (failed_alert,) = alerts("job_failed")
    assert failed_alert.user_id == owner.id


# -- stuck bots ----------------------------------------------------------------------------


def test_a_bot_that_stopped_ticking_is_rescheduled(owner) -> None:
    stuck = healthy_bot(owner.id)
    set_bot(stuck, last_tick_at=NOW - timedelta(hours=2), next_tick_at=NOW - timedelta(hours=2))
    unscheduled = healthy_bot(owner.id)
    set_bot(unscheduled, next_tick_at=None)
    ok = healthy_bot(owner.id)
    report = scan(NOW, CONFIG)
    assert sorted(report.findings) == [("stuck_bot", stuck), ("stuck_bot", unscheduled)]
    grid = tick_grid("replay", "5m")
    for bot_id in (stuck, unscheduled):
        bot = get_bot(bot_id)
        assert bot.status == "running"
        assert to_ms(bot.next_tick_at) == grid.latest_due(to_ms(NOW))
    assert get_bot(ok).next_tick_at == NOW + timedelta(minutes=1)
    assert {a.user_id for a in alerts("stuck_bot")} == {owner.id}
    assert {i.bot_id for i in incidents("stuck_bot")} == {stuck, unscheduled}


def test_a_bot_just_resumed_after_a_long_pause_is_not_stuck(owner) -> None:
    bot_id = healthy_bot(owner.id)
    set_bot(bot_id, last_tick_at=NOW - timedelta(days=2), next_tick_at=NOW - timedelta(minutes=1))
    assert scan(NOW, CONFIG).findings == []


def test_a_bot_being_ticked_right_now_is_not_touched(owner) -> None:
    bot_id = healthy_bot(owner.id)
    set_bot(
        bot_id,
        next_tick_at=NOW - timedelta(hours=1),
        lease_owner="busy:1",
        lease_until=NOW + timedelta(seconds=20),
    )
    assert scan(NOW, CONFIG).findings == []


# -- error streaks -------------------------------------------------------------------------


def test_a_repeated_error_streak_pauses_the_bot_with_the_last_error(owner) -> None:
    failing = healthy_bot(owner.id, error_streak=5, last_error="ValueError: boom")
    wobbly = healthy_bot(owner.id, error_streak=4, last_error="ValueError: once")
    assert scan(NOW, CONFIG).findings == [("error_streak", failing)]
    bot = get_bot(failing)
    assert bot.status == "paused" and bot.pause_reason == "error_streak: ValueError: boom"
    assert bot.next_tick_at is None
    assert get_bot(wobbly).status == "running"
    (alert,) = alerts("error_streak")
    assert alert.user_id == owner.id and alert.bot_id == failing


# -- live bots -----------------------------------------------------------------------------


def test_a_live_bot_whose_gates_fail_is_paused(owner) -> None:
    live = healthy_bot(owner.id, mode="live", paper_started_at=NOW - timedelta(days=30))
    assert scan(NOW, CONFIG).findings == [("live_gates_failed", live)]
    bot = get_bot(live)
    assert bot.status == "paused" and bot.pause_reason.startswith("live_gates:")
    assert "live_trading_disabled" in bot.pause_reason
    assert incidents("live_gates_failed")[0].bot_id == live
    assert alerts("live_gates_failed")[0].user_id == owner.id


def test_a_live_bot_that_still_passes_keeps_trading(owner, settings) -> None:
    from config import use_settings
    from tests.services.safety_helpers import add_credential

    live = healthy_bot(owner.id, mode="live", exchange="binance")
    set_bot(live, paper_started_at=NOW - timedelta(days=30))
    add_credential(owner.id, "binance")
    for i in range(10):
        add_closed_trade(live, "0.01", NOW - timedelta(days=10 - i))
    use_settings(settings.model_copy(update={"live_trading_enabled": True}))
    try:
        findings = scan(NOW, CONFIG).findings
    finally:
        use_settings(settings)
    assert ("live_gates_failed", live) not in findings
    assert get_bot(live).status == "running"


# -- cooldowns -----------------------------------------------------------------------------


def test_a_protection_cooldown_that_passed_resumes_the_bot(owner) -> None:
    bot_id = make_bot(owner.id, status="paused", pause_reason="protection:losing_streak")
    set_bot(bot_id, cooldown_until=NOW - timedelta(minutes=1))
    waiting = make_bot(owner.id, status="paused", pause_reason="protection:losing_streak")
    set_bot(waiting, cooldown_until=NOW + timedelta(minutes=1))
    assert scan(NOW, CONFIG).findings == [("cooldown_resumed", bot_id)]
    assert get_bot(bot_id).status == "running"
    assert get_bot(waiting).status == "paused"


# -- timestamps from anywhere, malformed rows ----------------------------------------------


@pytest.mark.parametrize(
    "written",
    [
        "2026-03-04 10:00:00",  # naive: UTC
        "2026-03-04T10:00:00Z",
        "2026-03-04T12:00:00+02:00",
        "2026-03-04T05:00:00-05:00",
    ],
)
def test_timestamps_in_any_shape_are_read_as_utc(owner, written) -> None:
    """10:00 UTC is 30 minutes overdue at 10:30 (stuck); read as local time it would not be."""
    bot_id = healthy_bot(owner.id)
    raw_update("bots", bot_id, next_tick_at=written, last_tick_at=written)
    job_id = make_job(owner.id)
    raw_update("jobs", job_id, heartbeat_at=written)
    report = scan(NOW, CONFIG)
    assert ("stuck_bot", bot_id) in report.findings and ("stale_job", job_id) in report.findings
    assert report.skipped == []
    with session_scope() as db:
        assert db.get(Job, job_id).state == "queued"


def test_a_malformed_row_is_reported_and_the_scan_goes_on(owner) -> None:
    broken = healthy_bot(owner.id)
    set_bot(broken, timeframe="7q", next_tick_at=NOW - timedelta(hours=1))
    stuck = healthy_bot(owner.id)
    set_bot(stuck, next_tick_at=NOW - timedelta(hours=1))
    failing = healthy_bot(owner.id, error_streak=9, last_error="boom")
    report = scan(NOW, CONFIG)
    assert ("stuck_bot", stuck) in report.findings
    assert ("error_streak", failing) in report.findings
    assert ("bots", broken) in report.skipped
    (incident,) = incidents("malformed_row")
    assert incident.bot_id == broken and "7q" in incident.message
    assert alerts("malformed_row")
    scan(NOW + timedelta(seconds=15), CONFIG)  # still broken: reported once per hour
    assert len(incidents("malformed_row")) == 1


def test_an_unreadable_timestamp_is_cleared_and_the_bot_rescheduled(owner) -> None:
    if not is_sqlite():
        pytest.skip("Postgres timestamptz cannot hold unreadable text")
    broken = healthy_bot(owner.id)
    raw_update("bots", broken, next_tick_at="not a time", lease_until="soon-ish")
    other = healthy_bot(owner.id)
    set_bot(other, next_tick_at=NOW - timedelta(hours=1))
    report = scan(NOW, CONFIG)
    assert ("malformed_timestamp", broken) in report.findings
    assert ("stuck_bot", broken) in report.findings and ("stuck_bot", other) in report.findings
    bot = get_bot(broken)  # loads again: nothing unreadable is left in the row
    assert bot.next_tick_at is not None and bot.lease_until is None


# -- one scan at a time ----------------------------------------------------------------------


def test_only_one_scanner_at_a_time(app) -> None:
    with singleton() as first, singleton() as second:
        assert first is True and second is False
    with singleton() as again:
        assert again is True


def test_run_skips_while_another_process_scans(owner) -> None:
    stuck = healthy_bot(owner.id)
    set_bot(stuck, next_tick_at=datetime(2000, 1, 1, tzinfo=UTC))
    with singleton() as held:
        assert held
        self_healing.run()
        assert get_bot(stuck).next_tick_at == datetime(2000, 1, 1, tzinfo=UTC)
    self_healing.run()  # now it may, and it heals with the real clock
    assert get_bot(stuck).next_tick_at > datetime(2020, 1, 1, tzinfo=UTC)
