"""The clean-up removes analysis results, tick records and events older than their retention
and nothing younger."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from app.jobs import cleanup
from app.services.events import record_event
from app.services.jobs import submit_job
from app.store import event_log, search_trials
from app.store.base import utcnow
from app.store.db import session_scope
from app.store.models import Bot, Job
from app.store.models.analysis import AnalysisResult
from app.store.models.events import Event
from app.store.models.searches import SearchRun, SearchTrial
from app.store.models.trading import BotTick


def test_results_past_retention_are_deleted(make_user: Callable[..., Any]) -> None:
    user = make_user()
    now = utcnow()
    ages = {"ancient": 400, "old": 31, "recent": 29, "fresh": 0}
    with session_scope() as s:
        job_id = submit_job(s, user.id, "analysis", {"x": 1}).id
        for ticker, days in ages.items():
            s.add(
                AnalysisResult(
                    job_id=job_id,
                    user_id=user.id,
                    ticker=f"{ticker.upper()}/BTC",
                    timeframe="1h",
                    created_at=now - timedelta(days=days, minutes=1),
                    data={},
                )
            )
    removed = {"analysis_results": 2, "bot_ticks": 0, "events": 0, "notifications": 0,
               "revocations": 0, "search_trials": 0}  # fmt: skip
    assert cleanup.run_once(now) == removed
    with session_scope() as s:
        left = sorted(s.scalars(select(AnalysisResult.ticker)))
        assert left == ["FRESH/BTC", "RECENT/BTC"]
        assert s.get(Job, job_id) is not None  # jobs are not results
    removed = {"analysis_results": 0, "bot_ticks": 0, "events": 0, "notifications": 0,
               "revocations": 0, "search_trials": 0}  # fmt: skip
    assert cleanup.run_once(now) == removed


def test_retention_is_configurable(make_user: Callable[..., Any], settings: Any) -> None:
    from config import use_settings

    user = make_user()
    now = utcnow()
    with session_scope() as s:
        job_id = submit_job(s, user.id, "analysis", {"x": 1}).id
        s.add(
            AnalysisResult(
                job_id=job_id,
                user_id=user.id,
                ticker="A/B",
                timeframe="1h",
                created_at=now - timedelta(days=3),
                data={},
            )
        )
    assert cleanup.run_once(now)["analysis_results"] == 0
    use_settings(settings.model_copy(update={"analysis_retention_days": 2}))
    try:
        assert cleanup.run_once(now)["analysis_results"] == 1
    finally:
        use_settings(settings)


def test_tick_records_past_retention_are_deleted(make_user: Callable[..., Any]) -> None:
    from decimal import Decimal

    user = make_user()
    now = utcnow()
    with session_scope() as s:
        bot = Bot(user_id=user.id, name="b", symbol="ETH/BTC", timeframe="5m",
                  strategy="sma_crossover", capital=Decimal(1))  # fmt: skip
        s.add(bot)
        s.flush()
        for days in (45, 31, 29, 0):
            planned = now - timedelta(days=days, minutes=1)
            s.add(BotTick(bot_id=bot.id, planned_at=planned, worker="w", outcome="ok",
                          started_at=planned, finished_at=planned))  # fmt: skip
    assert cleanup.run_once(now)["bot_ticks"] == 2  # default 30 days
    with session_scope() as s:
        left = sorted((now - t).days for t in s.scalars(select(BotTick.planned_at)))
    assert left == [0, 29]


def test_events_past_retention_are_pruned_as_a_prefix(make_user: Callable[..., Any]) -> None:
    """Events older than EVENT_RETENTION_HOURS go, oldest first and never the newest, so the
    lowest id left tells a resume exactly whether it missed something."""
    user = make_user()
    now = utcnow()
    with session_scope() as s:
        for hours in (50, 30, 25, 1, 0):
            record_event(s, user.id, "trade", {"hours": hours})
        s.flush()
        for event in s.scalars(select(Event)):
            event.created_at = now - timedelta(hours=event.data["hours"], minutes=1)
    with session_scope() as s:
        event_log.sequence_pending(s)  # (or a stream poller of this process did)
    assert cleanup.run_once(now)["events"] == 3  # default 24 hours
    with session_scope() as s:
        assert [e.data["hours"] for e in s.scalars(select(Event).order_by(Event.seq))] == [1, 0]
        assert event_log.bounds(s) == (4, 5)
    # everything old: the newest event stays (it marks where the ids are)
    assert cleanup.run_once(now + timedelta(days=3))["events"] == 1
    with session_scope() as s:
        assert event_log.bounds(s) == (5, 5)


def test_trials_of_searches_finished_a_day_ago_are_deleted(make_user: Callable[..., Any]) -> None:
    user = make_user()
    now = utcnow()
    ids = {}
    with session_scope() as s:
        for name, (state, hours) in {"old": ("succeeded", 25), "recent": ("cancelled", 23),
                                     "running": ("running", None)}.items():  # fmt: skip
            job = submit_job(s, user.id, "search", {"name": name})
            job.state = state
            job.finished_at = None if hours is None else now - timedelta(hours=hours)
            s.flush()
            search_trials.open_run(s, job.id, now=now, timeout_seconds=60)
            for n in range(3):
                trial = search_trials.insert_running(s, job.id, 0, n, owner="w:1", now=now,
                                                     lease_seconds=60)  # fmt: skip
                search_trials.record(s, trial, job.id, owner="w:1", state="complete",
                                     value=n, metrics=None, params={"n": n}, now=now)  # fmt: skip
            ids[name] = job.id
    assert cleanup.run_once(now)["search_trials"] == 3
    with session_scope() as s:
        left = sorted(s.scalars(select(SearchTrial.job_id).distinct()))
        runs = sorted(s.scalars(select(SearchRun.job_id)))
        assert s.get(Job, ids["old"]) is not None  # the job and its result stay
    assert left == runs == sorted([ids["recent"], ids["running"]])
    assert cleanup.run_once(now)["search_trials"] == 0
