"""Ordered start and crash-proof stop of the background subsystems of a process.

Start runs in a fixed order (database -> market sources -> scheduler), each subsystem only
when its feature flag is on; stop runs in reverse, each step bounded by a timeout and
isolated, so one failing step never keeps the others from stopping. Both are idempotent.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from config import Settings

log = logging.getLogger("tradewind.lifecycle")

STOP_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Subsystem:
    name: str
    start: Callable[[Settings], Any]
    stop: Callable[[], Any]
    enabled: Callable[[Settings], bool] = lambda _s: True


def _call(func: Callable[..., Any], *args: Any) -> Any:
    """Run a sync or async callable to completion."""
    result = func(*args)
    if inspect.isawaitable(result):
        return asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _start_database(settings: Settings) -> None:
    from app.store.db import init_database

    init_database(settings)


def _stop_database() -> None:
    from app.store.db import shutdown_database

    shutdown_database()


def _start_market(settings: Settings) -> None:
    from app.market.registry import get_market_source

    get_market_source()


def _stop_market() -> None:
    from app.market.registry import close_market_sources

    close_market_sources()


def _start_scheduler(settings: Settings) -> None:
    from app.jobs.scheduler import start_scheduler

    start_scheduler(settings)


def _stop_scheduler() -> None:
    from app.jobs.scheduler import stop_scheduler

    stop_scheduler(wait=True)


def _release_leases() -> None:
    from app.jobs.shutdown import release_own_leases

    release_own_leases()


SUBSYSTEMS: tuple[Subsystem, ...] = (
    Subsystem("database", _start_database, _stop_database),
    Subsystem("market", _start_market, _stop_market),
    Subsystem("leases", lambda _s: None, _release_leases, lambda s: s.scheduler_enabled),
    Subsystem("scheduler", _start_scheduler, _stop_scheduler, lambda s: s.scheduler_enabled),
)


class Lifecycle:
    """Starts the enabled subsystems in order and stops the started ones in reverse."""

    def __init__(self, subsystems: tuple[Subsystem, ...] = SUBSYSTEMS) -> None:
        self._subsystems = subsystems
        self._started: list[Subsystem] = []
        self._lock = threading.Lock()

    @property
    def started(self) -> list[str]:
        return [s.name for s in self._started]

    def start(self, settings: Settings) -> None:
        with self._lock:
            if self._started:
                return
            for subsystem in self._subsystems:
                if not subsystem.enabled(settings):
                    continue
                try:
                    _call(subsystem.start, settings)
                except Exception:
                    log.exception("start of %s failed; stopping what started", subsystem.name)
                    self._stop_locked()
                    raise
                self._started.append(subsystem)
                log.info("started %s", subsystem.name)

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> list[str]:
        """Stop everything started; returns the names whose stop failed or timed out."""
        with self._lock:
            return self._stop_locked(timeout)

    def _stop_locked(self, timeout: float = STOP_TIMEOUT_SECONDS) -> list[str]:
        failed = []
        while self._started:
            subsystem = self._started.pop()
            if not _bounded(subsystem, timeout):
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
    thread.join(timeout)
    if thread.is_alive():
        log.error("stop of %s timed out after %.1fs", subsystem.name, timeout)
        return False
    if outcome.get("error") is not None:
        log.error("stop of %s raised %r", subsystem.name, outcome["error"])
        return False
    log.info("stopped %s", subsystem.name)
    return True


lifecycle = Lifecycle()
