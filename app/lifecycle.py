"""Ordered start and crash-proof stop of the background subsystems of a process.

Start runs in a fixed order, each subsystem only when its feature flag is on:

    config (validated) -> database -> market sources -> scheduler -> trading -> self-healing

`trading` and `self_healing` are groups of scheduler jobs (`app.jobs.periodic`, by their
`flag`): the scheduler starts with the jobs every process runs, and each group adds its own,
so a group can be switched off, and is stopped, on its own. Stop runs in reverse (a group
first stops taking new runs, then waits for the one in flight; a tick batch in flight is
abandoned and handed back), then this worker's bot leases are handed back, then the
scheduler stops and job leases are handed back, market sessions closed and the pool
disposed. Each stop is bounded by a timeout, all stops together by a budget below gunicorn's
graceful timeout counted from SIGTERM (`request_stop`), and each is isolated: one that fails
or hangs is reported and the others still run. Start and stop are idempotent; subsystems may
be sync or async callables.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.jobs import bot_ticks
from app.jobs.periodic import PERIODIC_JOBS
from app.jobs.scheduler import running_scheduler, skip_when_busy, start_scheduler, stop_scheduler
from app.jobs.shutdown import release_bot_leases, release_job_leases
from app.market.registry import close_market_sources, get_market_source
from app.store.db import init_database, shutdown_database

if TYPE_CHECKING:
    from config import Settings

log = logging.getLogger("tradewind.lifecycle")

STOP_TIMEOUT_SECONDS = 10.0
STOP_BUDGET_SECONDS = 25.0  # gunicorn graceful_timeout is 30 s
MIN_STOP_SLICE_SECONDS = 0.5


@dataclass(frozen=True)
class Subsystem:
    name: str
    start: Callable[..., Any]
    stop: Callable[[], Any]
    enabled: Callable[[Settings], bool] = lambda _s: True


# -- sync and async callables --------------------------------------------------------------


def _call(func: Callable[..., Any], *args: Any) -> Any:
    """Run a sync or async callable to completion, from any thread, loop or not."""
    result = func(*args)
    if inspect.isawaitable(result):
        return _run_awaitable(result)
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _run_awaitable(awaitable: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_await(awaitable))
    # This thread already runs a loop: run the coroutine on a loop of its own elsewhere.
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = asyncio.run(_await(awaitable))
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, name="lifecycle-async")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


# -- subsystems ----------------------------------------------------------------------------


def _check_config(settings: Settings) -> None:
    """Validate again: a production start without strong secrets stops here, before any
    connection is made (`ConfigError` names the variable)."""
    type(settings).model_validate(settings.model_dump())


def _start_database(settings: Settings) -> None:
    init_database(settings)


def _stop_database() -> None:
    shutdown_database()


def _start_market(settings: Settings) -> None:
    get_market_source()


def _stop_market() -> None:
    close_market_sources()


def _release_bot_leases() -> None:
    release_bot_leases()


def _group_flags() -> set[str]:
    return {job.flag for job in PERIODIC_JOBS if job.flag}


def _start_scheduler(settings: Settings) -> None:
    """The scheduler with the jobs every process runs; flagged groups are added later."""
    start_scheduler(
        settings.model_copy(update={flag: False for flag in _group_flags()}), PERIODIC_JOBS
    )


def _stop_scheduler() -> None:
    """Stop the scheduler (waiting for the job in flight), then hand back job leases."""
    stop_scheduler(wait=True)
    release_job_leases()


class JobGroup:
    """The periodic jobs of one feature flag, added to and removed from the running
    scheduler as one subsystem. Stopping waits for a run in flight, so nothing of the group
    is still running when the next subsystem stops."""

    def __init__(self, flag: str) -> None:
        self.flag = flag
        self._in_flight = 0
        self._idle = threading.Condition()
        self._job_ids: list[str] = []

    def _jobs(self) -> list[Any]:
        return [job for job in PERIODIC_JOBS if job.flag == self.flag]

    def _wrap(self, name: str, job: Callable[[], object]) -> Callable[[], None]:
        once = skip_when_busy(name, job)

        def run() -> None:
            with self._idle:
                self._in_flight += 1
            try:
                once()
            finally:
                with self._idle:
                    self._in_flight -= 1
                    self._idle.notify_all()

        return run

    def start(self, settings: Settings) -> None:
        scheduler = _running_scheduler()
        if scheduler is None:
            raise RuntimeError(f"cannot add the {self.flag} jobs: the scheduler is not running")
        for job in self._jobs():
            scheduler.add_job(
                self._wrap(job.name, job.run),
                "interval",
                seconds=job.seconds,
                id=job.name,
                replace_existing=True,
            )
            self._job_ids.append(job.name)
        log.info("scheduler jobs added: %s", self._job_ids)

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        scheduler = _running_scheduler()
        ids, self._job_ids = self._job_ids, []
        for job_id in ids:
            if scheduler is not None:
                with contextlib.suppress(Exception):  # already gone with the scheduler
                    scheduler.remove_job(job_id)
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._in_flight and time.monotonic() < deadline:
                self._idle.wait(max(deadline - time.monotonic(), 0.01))
            if self._in_flight:
                raise TimeoutError(f"{self._in_flight} {self.flag} job(s) still running")

    @property
    def in_flight(self) -> int:
        return self._in_flight


def _running_scheduler() -> Any:
    """This process's running APScheduler, or None."""
    return running_scheduler()


TRADING = JobGroup("trading_enabled")
SELF_HEALING = JobGroup("self_healing_enabled")


def _scheduled(flag: str | None = None) -> Callable[[Settings], bool]:
    def enabled(settings: Settings) -> bool:
        return bool(settings.scheduler_enabled and (flag is None or getattr(settings, flag)))

    return enabled


SUBSYSTEMS: tuple[Subsystem, ...] = (
    Subsystem("config", _check_config, lambda: None),
    Subsystem("database", _start_database, _stop_database),
    Subsystem("market", _start_market, _stop_market),
    Subsystem("scheduler", _start_scheduler, _stop_scheduler, _scheduled()),
    Subsystem("leases", lambda _s: None, _release_bot_leases, _scheduled()),
    Subsystem("trading", TRADING.start, TRADING.stop, _scheduled("trading_enabled")),
    Subsystem(
        "self_healing", SELF_HEALING.start, SELF_HEALING.stop, _scheduled("self_healing_enabled")
    ),
)


class Lifecycle:
    """Starts the enabled subsystems in order and stops the started ones in reverse."""

    def __init__(
        self,
        subsystems: tuple[Subsystem, ...] = SUBSYSTEMS,
        *,
        stop_timeout: float = STOP_TIMEOUT_SECONDS,
        stop_budget: float = STOP_BUDGET_SECONDS,
    ) -> None:
        self._subsystems = subsystems
        self._started: list[Subsystem] = []
        self._lock = threading.Lock()
        self._stop_requested_at: float | None = None
        self.stop_timeout = stop_timeout
        self.stop_budget = stop_budget

    def request_stop(self) -> None:
        """SIGTERM arrived (called from the signal handler: only sets flags). The stop budget
        counts from now, not from when the process gets round to `stop()` (gunicorn first
        drains requests), and tick dispatch winds down at once."""
        if self._stop_requested_at is None:
            self._stop_requested_at = time.monotonic()
        bot_ticks.request_stop()

    @property
    def started(self) -> list[str]:
        return [s.name for s in self._started]

    def start(self, settings: Settings) -> list[str]:
        """Start every enabled subsystem in order; a second call is a no-op. On a failure the
        ones already started are stopped and the error is raised (the process must not run
        half-started)."""
        with self._lock:
            if self._started:
                return self.started
            self._stop_requested_at = None
            bot_ticks.allow_dispatch()
            for subsystem in self._subsystems:
                if not subsystem.enabled(settings):
                    continue
                try:
                    _call(subsystem.start, settings)
                except Exception:
                    log.error("start of %s failed; stopping what started", subsystem.name)
                    self._stop_locked()
                    raise
                self._started.append(subsystem)
                log.info("started %s", subsystem.name)
            return self.started

    def stop(self, timeout: float | None = None) -> list[str]:
        """Stop everything started, in reverse; returns the names whose stop failed or timed
        out. Never raises; a second call is a no-op."""
        with self._lock:
            return self._stop_locked(timeout)

    def _stop_locked(self, timeout: float | None = None) -> list[str]:
        step = self.stop_timeout if timeout is None else timeout
        since = self._stop_requested_at or time.monotonic()
        deadline = since + max(self.stop_budget, step)
        failed = []
        while self._started:
            subsystem = self._started.pop()
            remaining = deadline - time.monotonic()
            if not _bounded(subsystem, max(min(step, remaining), MIN_STOP_SLICE_SECONDS)):
                failed.append(subsystem.name)
        return failed


def _bounded(subsystem: Subsystem, timeout: float) -> bool:
    """Run one stop in a helper thread so a hung stop cannot hold the others."""
    outcome: dict[str, BaseException | None] = {}

    def run() -> None:
        try:
            _call(subsystem.stop)
            outcome["error"] = None
        except BaseException as exc:  # isolated: reported, never propagated
            outcome["error"] = exc

    thread = threading.Thread(target=run, name=f"stop-{subsystem.name}", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    if thread.is_alive():
        log.error("stop of %s timed out after %.1fs; going on", subsystem.name, timeout)
        return False
    if outcome.get("error") is not None:
        log.error("stop of %s raised %r; going on", subsystem.name, outcome["error"])
        return False
    log.info("stopped %s", subsystem.name)
    return True


lifecycle = Lifecycle()
