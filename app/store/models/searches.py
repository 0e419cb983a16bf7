"""Parameter searches shared between workers: one run per search job, one row per trial.

`search_runs` holds what every worker must agree on (the deadline of the time budget) and is
the row a worker locks while it proposes the next trial, so proposals are made one at a time
from the trials recorded so far. `search_trials` is the work: a trial is inserted `running`
with a lease, evaluated outside any transaction, and its result written once, fenced on that
lease; a trial whose lease ran out is `lost` and never counted. `(job_id, fold, number)` is
unique; `seq` numbers recorded trials in the order they were recorded, so a worker reads
only what it has not seen yet.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.store.base import Base, JSONType, UTCDateTime, utcnow


class SearchRun(Base):
    __tablename__ = "search_runs"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    deadline: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    touched_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SearchTrial(Base):
    __tablename__ = "search_trials"
    __table_args__ = (
        UniqueConstraint("job_id", "fold", "number", name="uq_search_trials_number"),
        Index("ix_search_trials_seq", "job_id", "seq"),
        Index("ix_search_trials_state", "job_id", "state"),
        CheckConstraint(
            "state IN ('running', 'complete', 'failed', 'invalid', 'lost')", name="state"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("search_runs.job_id", ondelete="CASCADE"))
    fold: Mapped[int] = mapped_column(Integer, default=0)
    number: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(JSONType)
    state: Mapped[str] = mapped_column(String(10))
    value: Mapped[float | None] = mapped_column(Float)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    seq: Mapped[int | None] = mapped_column(Integer)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    evaluated_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
