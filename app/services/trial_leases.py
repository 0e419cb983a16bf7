"""Leases of the trials this process is evaluating, kept alive while it works on them.

A trial's lease (`JOB_LEASE_SECONDS`) is what tells other workers its worker is alive: one
that runs out marks the trial lost. One daemon thread per process renews the lease of each
trial it holds once the trial has been held for `JOB_HEARTBEAT_SECONDS` since its lease was
last set, so quick trials cost no renewal at all and slow ones are never taken for dead.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from app.store import search_trials as store
from app.store.base import utcnow
from app.store.db import session_scope
from config import get_settings

log = logging.getLogger("tradewind.searches")


@dataclass(frozen=True)
class Leases:
    """How long a trial's lease lasts, and how often a held one is renewed."""

    seconds: float
    renew_every: float

    @classmethod
    def from_settings(cls) -> Leases:
        settings = get_settings()
        return cls(settings.job_lease_seconds, settings.job_heartbeat_seconds)


class _LeaseKeeper:
    """The renewing thread and the trials it keeps (a thread per trial would cost more than a
    short trial's bookkeeping)."""

    TICK = 0.2

    def __init__(self) -> None:
        self._held: dict[int, tuple[str, Leases, float]] = {}  # id -> owner, leases, set at
        self._lock = threading.Lock()
        self._pid = 0

    def _ensure_thread(self) -> None:
        if self._pid != os.getpid():  # none yet, or inherited across fork (threads are not)
            self._pid = os.getpid()
            threading.Thread(target=self._loop, name="trial-leases", daemon=True).start()

    @contextmanager
    def holding(self, trial_id: int, owner: str, leases: Leases) -> Iterator[None]:
        with self._lock:
            self._ensure_thread()
            self._held[trial_id] = (owner, leases, time.monotonic())
        try:
            yield
        finally:
            with self._lock:
                self._held.pop(trial_id, None)

    def _loop(self) -> None:
        while True:
            with self._lock:
                tick = min([self.TICK, *(lz.renew_every for _, lz, _ in self._held.values())])
            time.sleep(tick)
            now = time.monotonic()
            with self._lock:
                due = [(tid, owner, lz) for tid, (owner, lz, since) in self._held.items()
                       if now - since >= lz.renew_every]  # fmt: skip
            for trial_id, owner, leases in due:
                try:
                    with session_scope() as session:
                        store.renew(session, trial_id, owner=owner, now=utcnow(),
                                    lease_seconds=leases.seconds)  # fmt: skip
                except Exception:  # a missed renewal is not fatal; the lease decides
                    log.warning("renewing the lease of trial %s failed", trial_id, exc_info=True)
                    continue
                with self._lock:
                    if trial_id in self._held:
                        self._held[trial_id] = (owner, leases, now)


lease_keeper = _LeaseKeeper()
