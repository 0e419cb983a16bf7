"""What a background job of each kind does: a registry of handlers, and the context they get.

A feature registers its kind at import time:

    register_handler("analysis", run_analysis, store=store_analysis)

`fn(ctx) -> dict` does the work (no database writes of its own results: it returns them);
`store(session, job, result) -> dict | None`, when given, writes the result rows inside the
same transaction that marks the job succeeded, so a job's results exist exactly when its
final state says so. The dict `store` returns (or the handler's result) becomes `jobs.result`.

Handlers check `ctx.cancelled()` between units of work (or call `ctx.raise_if_cancelled()`),
report `ctx.report_progress(fraction)`, and raise `TransientJobError` for failures worth a
retry (network, a lost database); any other exception fails the job for good.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.orm import Session

log = logging.getLogger("tradewind.jobs.handlers")

# Modules that register handlers when imported; the runner imports them before claiming, so a
# worker process only claims kinds it can run. A module that does not exist yet is skipped.
HANDLER_MODULES: tuple[str, ...] = ("app.services.analysis", "app.services.backtests")


class TransientJobError(Exception):
    """A failure that may go away: the job is retried with backoff, up to its max_attempts."""


class JobCancelled(Exception):
    """Raised by `JobContext.raise_if_cancelled()`: the job stops and ends `cancelled`."""


@dataclass(frozen=True)
class JobInfo:
    """What a handler may know about its job (a snapshot taken when it was claimed)."""

    id: int
    user_id: int | None
    kind: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int


class JobContext(Protocol):
    job: JobInfo

    @property
    def job_id(self) -> int: ...

    @property
    def user_id(self) -> int | None: ...

    @property
    def payload(self) -> dict[str, Any]: ...

    def report_progress(self, fraction: float) -> None:
        """Progress in [0, 1]; saved with the next heartbeat."""

    def heartbeat(self) -> None:
        """Prove liveness now (a background thread also does it every JOB_HEARTBEAT_SECONDS)."""

    def cancelled(self) -> bool:
        """True when the job should stop: cancel requested, or the job is no longer ours."""

    def raise_if_cancelled(self) -> None:
        """Raise `JobCancelled` when `cancelled()`."""


Handler = Callable[[JobContext], dict[str, Any]]
Store = Callable[[Session, JobInfo, dict[str, Any]], "dict[str, Any] | None"]


@dataclass(frozen=True)
class Registration:
    kind: str
    fn: Handler
    store: Store | None = None


_lock = threading.Lock()
_handlers: dict[str, Registration] = {}
_loaded = False


def register_handler(kind: str, fn: Handler, *, store: Store | None = None) -> None:
    """Register (or replace, e.g. on reload) the handler of a job kind."""
    if not kind or len(kind) > 32:
        raise ValueError("job kind must be 1..32 characters")
    with _lock:
        _handlers[kind] = Registration(kind, fn, store)


def get_handler(kind: str) -> Registration | None:
    load_handlers()
    return _handlers.get(kind)


def registered_kinds() -> list[str]:
    load_handlers()
    return sorted(_handlers)


def load_handlers() -> None:
    """Import every module of HANDLER_MODULES once (they register themselves)."""
    global _loaded
    if _loaded:
        return
    for name in HANDLER_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            log.debug("job handler module %s not present", name)
    _loaded = True
