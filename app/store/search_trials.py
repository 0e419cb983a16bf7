"""Trials of a search, claimed by any worker: the statements of the protocol.

A worker that wants a trial locks the search's run row (`lock_run`: an UPDATE, which holds
the row until commit on Postgres and takes the single writer lock on SQLite), marks trials
whose lease has run out `lost` (`expire_lost`), reads what it has not seen (`recorded_since`)
and the counts, inserts the next trial number `running` under its lease (`insert_running`)
and commits. It chooses and evaluates the parameters outside any transaction, renewing the
lease (`renew`), and writes them with the result with `record` (in the transaction that
reserves its next trial, or one of its own): a compare-and-set on (running, this owner), so
a trial is recorded once, and a worker whose lease was declared lost writes nothing. Each
recorded trial takes the next `seq` of its run (under the run row's lock, so in commit
order), and readers page through results in the order they landed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.orm import Session

from app.store.models import Job
from app.store.models.searches import SearchRun, SearchTrial

RUNNING = "running"
LOST = "lost"
FINISHED: tuple[str, ...] = ("complete", "failed", "invalid")


@dataclass(frozen=True)
class RunState:
    deadline: datetime
    job_state: str
    cancel_requested: bool
    job_owner: str | None
    seq: int  # the run's last seq (taken by this transaction when asked for)


@dataclass(frozen=True)
class Recorded:
    """A finished trial as a proposer and a result need it."""

    id: int
    fold: int
    number: int
    params: dict[str, Any]
    state: str
    value: float | None
    metrics: dict[str, Any] | None
    seq: int


def open_run(
    session: Session, job_id: int, *, now: datetime, timeout_seconds: float
) -> tuple[datetime, datetime]:
    """The search's run, made on its first start (the deadline counts from then, so a search
    resumed by another worker keeps its time budget); returns (created_at, deadline)."""
    query = select(SearchRun.created_at, SearchRun.deadline).where(SearchRun.job_id == job_id)
    row = session.execute(query).first()
    if row is None:
        deadline = now + timedelta(seconds=timeout_seconds)
        session.add(SearchRun(job_id=job_id, deadline=deadline, created_at=now, touched_at=now))
        session.flush()
        row = session.execute(query).one()
    return row.created_at, row.deadline


def lock_run(session: Session, job_id: int, *, now: datetime, take_seq: bool = False
             ) -> RunState | None:  # fmt: skip
    """Lock the run row for this transaction (proposals are made one at a time); None when
    there is no run. `take_seq`: also take the next `seq`, for a result recorded in the same
    transaction (`RunState.seq`).

    On Postgres the transaction commits without waiting for its WAL to reach the disk
    (`synchronous_commit = off`, this transaction only): a crash of the database may forget
    the last few milliseconds of trials, in order, which then run again or count as lost;
    nothing else is written here, and every trial is still recorded once."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL synchronous_commit TO OFF"))
    values: dict[str, Any] = {"touched_at": now}
    if take_seq:
        values["recorded"] = SearchRun.recorded + 1
    row = session.execute(
        update(SearchRun)
        .where(SearchRun.job_id == job_id)
        .values(**values)
        .returning(SearchRun.deadline, SearchRun.recorded),
        execution_options={"synchronize_session": False},
    ).first()
    if row is None:
        return None
    job = session.execute(
        select(Job.state, Job.cancel_requested, Job.lease_owner).where(Job.id == job_id)
    ).one()
    return RunState(row.deadline, job.state, bool(job.cancel_requested), job.lease_owner,
                    row.recorded)  # fmt: skip


def expire_lost(session: Session, job_id: int, *, now: datetime) -> int:
    """Running trials whose lease ran out (their worker died or stalled) become `lost`."""
    result = session.execute(
        update(SearchTrial)
        .where(
            SearchTrial.job_id == job_id,
            SearchTrial.state == RUNNING,
            SearchTrial.lease_until < now,
        )
        .values(state=LOST, lease_owner=None, lease_until=None, finished_at=now),
        execution_options={"synchronize_session": False},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def counts(session: Session, job_id: int) -> dict[tuple[int, str], int]:
    """(fold, state) -> number of trials."""
    rows = session.execute(
        select(SearchTrial.fold, SearchTrial.state, func.count())
        .where(SearchTrial.job_id == job_id)
        .group_by(SearchTrial.fold, SearchTrial.state)
    ).all()
    return {(fold, state): int(n) for fold, state, n in rows}


def _recorded(row: Any) -> Recorded:
    return Recorded(row.id, row.fold, row.number, dict(row.params), row.state, row.value,
                    row.metrics, row.seq)  # fmt: skip


def recorded_since(session: Session, job_id: int, seq: int) -> list[Recorded]:
    """Finished trials recorded after `seq`, in the order they were recorded."""
    rows = session.execute(
        select(SearchTrial).where(SearchTrial.job_id == job_id, SearchTrial.seq > seq)
        .order_by(SearchTrial.seq)
    ).scalars()  # fmt: skip
    return [_recorded(r) for r in rows]


def finished(session: Session, job_id: int) -> list[Recorded]:
    """Every finished trial (lost ones are not), by fold and number."""
    rows = session.execute(
        select(SearchTrial).where(SearchTrial.job_id == job_id, SearchTrial.seq.is_not(None))
        .order_by(SearchTrial.fold, SearchTrial.number)
    ).scalars()  # fmt: skip
    return [_recorded(r) for r in rows]


def _next_seq(session: Session, job_id: int) -> int:
    return int(
        session.execute(
            update(SearchRun)
            .where(SearchRun.job_id == job_id)
            .values(recorded=SearchRun.recorded + 1)
            .returning(SearchRun.recorded),
            execution_options={"synchronize_session": False},
        ).scalar_one()
    )


def insert_running(
    session: Session,
    job_id: int,
    fold: int,
    number: int,
    *,
    owner: str,
    now: datetime,
    lease_seconds: float,
) -> int:
    """A new trial number, leased to `owner` (its parameters come with its result); its id."""
    return int(
        session.execute(
            insert(SearchTrial)
            .values(job_id=job_id, fold=fold, number=number, params={}, state=RUNNING,
                    lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds),
                    created_at=now)
            .returning(SearchTrial.id)
        ).scalar_one()
    )  # fmt: skip


def renew(session: Session, trial_id: int, *, owner: str, now: datetime,
          lease_seconds: float) -> bool:  # fmt: skip
    """Extend the lease of a trial being evaluated; False once it is no longer ours."""
    result = session.execute(
        update(SearchTrial)
        .where(SearchTrial.id == trial_id, SearchTrial.state == RUNNING,
               SearchTrial.lease_owner == owner)
        .values(lease_until=now + timedelta(seconds=lease_seconds)),
        execution_options={"synchronize_session": False},
    )  # fmt: skip
    return result.rowcount == 1  # type: ignore[attr-defined]


def record(
    session: Session,
    trial_id: int,
    job_id: int,
    *,
    owner: str,
    state: str,
    value: float | None,
    metrics: dict[str, Any] | None,
    params: dict[str, Any],
    now: datetime,
    seq: int | None = None,
    evaluated: bool = True,
) -> bool:
    """Write a trial's parameters and result once: only while it is still running under
    `owner`'s lease. False: the lease was declared lost meanwhile, and nothing is written.
    `seq`: one taken by `lock_run` in this transaction (else the next one is taken here);
    `evaluated` False: a parameter set scored before, its result copied (no `evaluated_by`)."""
    if state not in FINISHED:
        raise ValueError(f"a trial ends {FINISHED}, not {state!r}")
    if seq is None:
        seq = _next_seq(session, job_id)  # the run row first, as a proposer locks it
    fenced = (SearchTrial.id == trial_id, SearchTrial.state == RUNNING,
              SearchTrial.lease_owner == owner)  # fmt: skip
    result = session.execute(
        update(SearchTrial).where(*fenced)
        .values(state=state, value=value, metrics=metrics, params=params, lease_owner=None,
                lease_until=None, evaluated_by=owner if evaluated else None, finished_at=now,
                seq=seq),
        execution_options={"synchronize_session": False},
    )  # fmt: skip
    return result.rowcount == 1  # type: ignore[attr-defined]  # a skipped seq is harmless


def open_searches(session: Session, *, kind: str, exclude_owner: str) -> list[tuple[int, datetime]]:
    """Running searches another worker coordinates (this one may help with their trials):
    (job id, when its run started)."""
    return [
        (row[0], row[1])
        for row in session.execute(
            select(Job.id, SearchRun.created_at)
            .join(SearchRun, SearchRun.job_id == Job.id)
            .where(Job.kind == kind, Job.state == "running", Job.cancel_requested.is_(False),
                   Job.lease_owner != exclude_owner)
            .order_by(Job.id)
        )
    ]  # fmt: skip


def prune_finished(session: Session, *, finished_before: datetime, limit: int = 20) -> int:
    """Delete the runs (and with them the trials) of up to `limit` searches that finished
    before `finished_before`: their result keeps what a user reads; how many trials went."""
    jobs = (
        select(SearchRun.job_id).join(Job, Job.id == SearchRun.job_id)
        .where(Job.state.in_(("succeeded", "failed", "cancelled")),
               Job.finished_at < finished_before)
        .order_by(SearchRun.job_id).limit(limit)
    )  # fmt: skip
    ids = list(session.scalars(jobs))
    if not ids:
        return 0
    trials = session.scalar(
        select(func.count()).select_from(SearchTrial).where(SearchTrial.job_id.in_(ids))
    )
    session.execute(delete(SearchTrial).where(SearchTrial.job_id.in_(ids)),
                    execution_options={"synchronize_session": False})  # fmt: skip
    session.execute(delete(SearchRun).where(SearchRun.job_id.in_(ids)),
                    execution_options={"synchronize_session": False})  # fmt: skip
    return int(trials or 0)
