"""What a background job's handler gets and may raise, below the services that implement
handlers and the runner (`app.jobs.job_runner`) that calls them.

`fn(ctx) -> dict` does the work (no database writes of its own results: it returns them);
`store(session, job, result) -> dict | None`, when given, writes the result rows inside the
same transaction that marks the job succeeded, so a job's results exist exactly when its
final state says so. The dict `store` returns (or the handler's result) becomes `jobs.result`.

Handlers check `ctx.cancelled()` between units of work (or call `ctx.raise_if_cancelled()`),
report `ctx.report_progress(fraction)`, and raise `TransientJobError` for failures worth a
retry (network, a lost database); any other exception fails the job for good.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.orm import Session


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

    @property
    def owner(self) -> str:
        """The worker running the job (its lease owner), for leases the handler takes."""

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
    """One job kind: the handler that runs it and, optionally, the writer of its results."""

    kind: str
    fn: Handler
    store: Store | None = None
