"""The lifecycle: fixed start order by feature flag, reverse stop, each stop bounded and
isolated, idempotent start/stop, sync and async callables; and the real subsystems: the
scheduler with its job groups (trading, self-healing) switched by their flags."""

from __future__ import annotations

import asyncio
import threading
import warnings

import pytest

from app.lifecycle import SUBSYSTEMS, JobGroup, Lifecycle, Subsystem
from config import ConfigError

_gate = threading.Event()
_entered = threading.Event()


def _blocking_job() -> None:
    _entered.set()
    _gate.wait(10)


def recording(calls: list[str], name: str, **kw) -> Subsystem:
    return Subsystem(
        name,
        lambda _s: calls.append(f"start {name}"),
        lambda: calls.append(f"stop {name}"),
        **kw,
    )


def test_starts_in_order_by_flag_and_stops_in_reverse(settings) -> None:
    calls: list[str] = []
    life = Lifecycle(
        (
            recording(calls, "a"),
            recording(calls, "b", enabled=lambda s: s.trading_enabled),
            recording(calls, "c", enabled=lambda s: s.scheduler_enabled),  # off in tests
            recording(calls, "d"),
        )
    )
    assert life.start(settings) == ["a", "b", "d"]
    assert life.stop() == []
    assert calls == ["start a", "start b", "start d", "stop d", "stop b", "stop a"]


def test_start_and_stop_twice_are_harmless(settings) -> None:
    calls: list[str] = []
    life = Lifecycle((recording(calls, "a"), recording(calls, "b")))
    life.start(settings)
    life.start(settings)
    assert life.stop() == [] and life.stop() == []
    assert calls == ["start a", "start b", "stop b", "stop a"]
    life.start(settings)  # a stopped lifecycle starts again
    assert life.started == ["a", "b"]
    life.stop()


def test_a_failing_or_hanging_stop_does_not_stop_the_others(settings) -> None:
    calls: list[str] = []
    release = threading.Event()

    def boom() -> None:
        raise RuntimeError("stop failed on purpose")

    life = Lifecycle(
        (
            recording(calls, "first"),
            Subsystem("hangs", lambda _s: None, lambda: release.wait(30)),
            Subsystem("fails", lambda _s: None, boom),
            recording(calls, "last"),
        ),
        stop_timeout=0.3,
        stop_budget=5,
    )
    life.start(settings)
    try:
        assert life.stop() == ["fails", "hangs"]
    finally:
        release.set()
    assert calls == ["start first", "start last", "stop last", "stop first"]
    assert life.started == []


def test_a_failed_start_stops_what_started_and_raises(settings) -> None:
    calls: list[str] = []

    def broken(_s) -> None:
        raise RuntimeError("cannot start")

    life = Lifecycle((recording(calls, "a"), Subsystem("b", broken, lambda: None)))
    with pytest.raises(RuntimeError, match="cannot start"):
        life.start(settings)
    assert calls == ["start a", "stop a"] and life.started == []


def test_async_callables_run_to_completion_with_or_without_a_running_loop(settings) -> None:
    calls: list[str] = []

    async def start(_s) -> None:
        await asyncio.sleep(0)
        calls.append("async start")

    async def stop() -> None:
        await asyncio.sleep(0)
        calls.append("async stop")

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine ... was never awaited" would fail here
        life = Lifecycle((Subsystem("aio", start, stop),))
        life.start(settings)
        life.stop()

        async def inside_a_loop() -> None:
            life.start(settings)
            life.stop()

        asyncio.run(inside_a_loop())
    assert calls == ["async start", "async stop"] * 2


def test_a_job_group_stop_waits_for_the_run_in_flight() -> None:
    group = JobGroup("trading_enabled")
    _gate.clear()
    _entered.clear()
    run = group._wrap("blocking", _blocking_job)
    worker = threading.Thread(target=run)
    worker.start()
    assert _entered.wait(10) and group.in_flight == 1
    with pytest.raises(TimeoutError):
        group.stop(timeout=0.2)
    _gate.set()
    group.stop(timeout=10)
    worker.join(10)
    assert group.in_flight == 0


def test_production_without_secrets_refuses_at_the_config_step(settings) -> None:
    calls: list[str] = []
    life = Lifecycle((SUBSYSTEMS[0], recording(calls, "database")))
    bad = settings.model_copy(update={"app_env": "production", "jwt_secret_key": None})
    with pytest.raises(ConfigError, match="JWT_SECRET_KEY"):
        life.start(bad)
    assert calls == [] and life.started == []


@pytest.fixture
def real_lifecycle(app, settings):
    """The real subsystems; afterwards the test process's database engine is back."""
    from app.store.db import init_database

    life = Lifecycle(SUBSYSTEMS)
    yield life
    life.stop()
    init_database(settings)


def _job_ids() -> set[str]:
    from app.lifecycle import _running_scheduler

    scheduler = _running_scheduler()
    return {job.id for job in scheduler.get_jobs()} if scheduler else set()


def test_real_subsystems_start_in_order_with_job_groups(real_lifecycle, settings) -> None:
    from app.jobs.scheduler import scheduler_running

    on = settings.model_copy(update={"scheduler_enabled": True})
    assert real_lifecycle.start(on) == [
        "config",
        "database",
        "market",
        "scheduler",
        "leases",
        "trading",
        "self_healing",
    ]
    assert scheduler_running()
    assert _job_ids() == {
        "background_jobs",
        "search_trials",
        "cleanup",
        "bot_ticks",
        "notifications",
        "self_healing",
    }
    assert real_lifecycle.stop() == []
    assert not scheduler_running() and _job_ids() == set()


def test_flags_switch_the_job_groups_off(real_lifecycle, settings) -> None:
    quiet = settings.model_copy(
        update={"scheduler_enabled": True, "trading_enabled": False, "self_healing_enabled": False}
    )
    assert "trading" not in real_lifecycle.start(quiet)
    assert _job_ids() == {"background_jobs", "search_trials", "cleanup", "notifications"}
    real_lifecycle.stop()
    web_only = settings.model_copy(update={"scheduler_enabled": False})
    assert real_lifecycle.start(web_only) == ["config", "database", "market"]
    assert _job_ids() == set()
