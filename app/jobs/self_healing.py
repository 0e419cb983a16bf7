"""Self-healing: find the faults of a long-running bot server and heal them without an operator.

One scan (every 15 s, in one process at a time: a Postgres advisory lock, or a file lock next
to a SQLite database) looks for

* timestamps written in another shape (naive, `Z`, offsets; SQLite only) -> rewritten as UTC,
  or, when unreadable, cleared (a cleared lease is free, a cleared next tick is rescheduled);
* expired leases on bots and finished jobs -> released;
* running bots that stopped ticking (last tick older than STUCK_BOT_INTERVALS intervals, or
  not scheduled at all) -> rescheduled at the latest candle boundary;
* running bots with ERROR_STREAK_PAUSE consecutive tick errors -> paused with the last error;
* running jobs whose heartbeat is older than JOB_STALE_SECONDS -> requeued, or failed once
  their attempts are used up (`app.store.queue.requeue_stale_jobs`);
* live bots whose live-trading gates no longer hold -> paused with the reasons;
* bots whose protection cooldown has passed -> resumed.

Each finding is an `incidents` row and an alert. Rows are read raw and handled one by one,
each in its own transaction: a malformed row is reported and skipped, never the end of the
scan, and `run()` never raises into the scheduler.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

from sqlalchemy import ColumnElement, String, case, select, text, type_coerce, update
from sqlalchemy.orm import Session

from app.domain.times import from_ms, iso, to_ms
from app.engine.tick import tick_grid
from app.services.alerts import raise_alert
from app.services.incidents import incident_exists, record_incident
from app.services.risk import check_live_gates, cooled_down_bot_ids, resume_after_cooldown
from app.store import queue
from app.store.base import as_utc, utcnow
from app.store.db import get_engine, session_scope
from app.store.models import Bot, Job
from config import get_settings

log = logging.getLogger("tradewind.self_healing")

# pg_advisory_lock key: "twSH" - one scan at a time per database
ADVISORY_LOCK_KEY = 0x74775348
MALFORMED_DEDUPE_SECONDS = 3600.0
BOT_TIMESTAMPS = ("next_tick_at", "last_tick_at", "lease_until", "cooldown_until")
JOB_TIMESTAMPS = ("heartbeat_at", "lease_until", "run_after")
ACTIVE_JOB_STATES = ("queued", "running")


@dataclass(frozen=True)
class HealingConfig:
    stuck_bot_intervals: float = 3.0
    stuck_bot_min_seconds: float = 30.0
    error_streak_pause: int = 5
    job_stale_seconds: float = 60.0
    lease_grace_seconds: float = 10.0

    @classmethod
    def current(cls) -> HealingConfig:
        settings = get_settings()
        return cls(
            stuck_bot_intervals=settings.stuck_bot_intervals,
            stuck_bot_min_seconds=settings.stuck_bot_min_seconds,
            error_streak_pause=settings.error_streak_pause,
            job_stale_seconds=settings.job_stale_seconds,
            lease_grace_seconds=settings.lease_grace_seconds,
        )


@dataclass
class ScanReport:
    """What one scan found (kind, row id) and how many rows it had to skip."""

    findings: list[tuple[str, int | None]] = field(default_factory=list)
    skipped: list[tuple[str, int | None]] = field(default_factory=list)
    locked_out: bool = False

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.findings]


# -- one scan at a time --------------------------------------------------------------------

_local_lock = threading.Lock()


@contextmanager
def singleton() -> Iterator[bool]:
    """True inside when this process holds the self-healing lock, False when another does."""
    engine = get_engine()
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            held = bool(
                conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
            )
            conn.commit()
            try:
                yield held
            finally:
                if held:
                    try:
                        conn.execute(
                            text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY}
                        )
                        conn.commit()
                    except Exception:
                        conn.invalidate()  # a closed connection releases the lock too
        return
    if not _local_lock.acquire(blocking=False):
        yield False
        return
    try:
        with _file_lock(engine.url.database) as held:
            yield held
    finally:
        _local_lock.release()


@contextmanager
def _file_lock(database: str | None) -> Iterator[bool]:
    """An exclusive, non-blocking lock on a file beside the SQLite database (all processes on
    the machine that share the database share the file)."""
    if not database or database == ":memory:":
        yield True
        return
    import fcntl

    with open(f"{database}.self-healing.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run() -> None:
    """Scheduler entry point: one scan if no other process is scanning. Never raises."""
    try:
        with singleton() as held:
            if held:
                report = scan()
                if report.findings or report.skipped:
                    log.info(
                        "self-healing: %d findings, %d rows skipped",
                        len(report.findings),
                        len(report.skipped),
                    )
    except Exception:
        log.exception("self-healing scan failed")


def scan(now: datetime | None = None, config: HealingConfig | None = None) -> ScanReport:
    """Every step over every row; a failing step or row is logged and the scan goes on."""
    now = now or utcnow()
    config = config or HealingConfig.current()
    report = ScanReport()
    for step in STEPS:
        try:
            step(now, config, report)
        except Exception:
            log.exception("self-healing step %s failed", step.__name__)
            report.skipped.append((step.__name__, None))
    return report


# -- helpers -------------------------------------------------------------------------------


def _is_sqlite() -> bool:
    return get_engine().dialect.name == "sqlite"


def _raw(column: Any) -> Any:
    """The column as stored: on SQLite a timestamp may be any text, so read it uncoerced."""
    return type_coerce(column, String) if _is_sqlite() else column


def _same(column: Any, raw: Any) -> ColumnElement[bool]:
    """Compare-and-set condition: the column still holds the raw value we read."""
    if raw is None:
        return column.is_(None)
    return _raw(column) == raw


def _moved_one(session: Session, statement: Any) -> bool:
    """Run a compare-and-set UPDATE; True when it changed the one row it aimed at (False: the
    row moved on since we read it, so someone else has dealt with it)."""
    result = session.execute(statement, execution_options={"synchronize_session": False})
    return bool(result.rowcount == 1)


class _RowRef(TypedDict):
    bot_id: int | None
    job_id: int | None


def _row_ref(table: str, row_id: int) -> _RowRef:
    """The incident's bot_id / job_id for a row of `table`."""
    return {
        "bot_id": row_id if table == "bots" else None,
        "job_id": row_id if table == "jobs" else None,
    }


def _each(
    report: ScanReport,
    table: str,
    row_id: int,
    work: Callable[[Session], str | None],
) -> None:
    """Run `work` for one row in its own transaction; a failure is reported and skipped."""
    try:
        with session_scope() as session:
            kind = work(session)
        if kind is not None:
            report.findings.append((kind, row_id))
    except Exception as exc:
        log.warning("self-healing skipped %s %s: %r", table, row_id, exc, exc_info=True)
        report.skipped.append((table, row_id))
        _report_malformed(table, row_id, exc)


def _report_malformed(table: str, row_id: int, exc: Exception) -> None:
    try:
        with session_scope() as session:
            message = f"{table} row {row_id} could not be checked: {type(exc).__name__}: {exc}"
            if record_incident(
                session,
                "malformed_row",
                message[:1000],
                **_row_ref(table, row_id),
                details={"table": table},
                dedupe_seconds=MALFORMED_DEDUPE_SECONDS,
            ):
                raise_alert(
                    session,
                    user_id=None,
                    severity="warning",
                    code="malformed_row",
                    message=message[:1000],
                )
    except Exception:
        log.exception("could not record a malformed-row incident for %s %s", table, row_id)


def _finding(
    session: Session,
    kind: str,
    message: str,
    *,
    user_id: int | None,
    severity: str = "warning",
    bot_id: int | None = None,
    job_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> str:
    record_incident(session, kind, message, bot_id=bot_id, job_id=job_id, details=details)
    raise_alert(
        session, user_id=user_id, severity=severity, code=kind, message=message, bot_id=bot_id
    )
    return kind


def _canonical(moment: datetime) -> str:
    """How SQLAlchemy stores a UTC datetime in SQLite (what SQL comparisons expect)."""
    return moment.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


# -- steps ---------------------------------------------------------------------------------


def normalise_timestamps(now: datetime, config: HealingConfig, report: ScanReport) -> None:
    """SQLite stores timestamps as text: rewrite any other shape as canonical UTC, so SQL
    comparisons (claims, due ticks) see the right instant; clear what cannot be read."""
    if not _is_sqlite():
        return
    targets = (
        ("bots", Bot, BOT_TIMESTAMPS, Bot.deleted_at.is_(None)),
        ("jobs", Job, JOB_TIMESTAMPS, Job.state.in_(ACTIVE_JOB_STATES)),
    )
    for table, model, names, where in targets:
        with session_scope() as session:
            rows = session.execute(
                select(model.id, *(_raw(getattr(model, n)) for n in names)).where(where)
            ).all()
        for row in rows:
            for name, raw in zip(names, row[1:], strict=True):
                if isinstance(raw, str):
                    _normalise_one(report, table, model, row[0], name, raw)


def _normalise_one(
    report: ScanReport, table: str, model: Any, row_id: int, name: str, raw: str
) -> None:
    column = getattr(model, name)
    try:
        parsed = as_utc(raw)
    except ValueError:
        parsed = None
    if parsed is not None and _canonical(parsed) == raw:
        return

    def fix(session: Session) -> str | None:
        if not _moved_one(
            session,
            update(model).where(model.id == row_id, _same(column, raw)).values({name: parsed}),
        ):
            return None
        if parsed is not None:
            log.info("%s %s: %s %r rewritten as UTC %s", table, row_id, name, raw, parsed)
            return None
        return _finding(
            session,
            "malformed_timestamp",
            f"{table} row {row_id}: unreadable {name} {raw[:60]!r} cleared",
            user_id=None,
            **_row_ref(table, row_id),
            details={"table": table, "column": name},
        )

    _each(report, table, row_id, fix)


def release_expired_leases(now: datetime, config: HealingConfig, report: ScanReport) -> None:
    """Leases a dead worker left behind (running jobs are the stale-job step's business)."""
    cutoff = now - timedelta(seconds=config.lease_grace_seconds)
    targets = (
        ("bots", Bot, Bot.deleted_at.is_(None)),
        ("jobs", Job, Job.state != "running"),
    )
    for table, model, where in targets:
        with session_scope() as session:
            rows = session.execute(
                select(model.id, model.lease_owner, _raw(model.lease_until)).where(
                    where, model.lease_owner.is_not(None)
                )
            ).all()
        for row_id, owner, raw_until in rows:
            _each(
                report,
                table,
                row_id,
                lambda s, t=table, m=model, i=row_id, o=owner, r=raw_until: _release_one(
                    s, t, m, i, o, r, cutoff
                ),
            )


def _release_one(
    session: Session,
    table: str,
    model: Any,
    row_id: int,
    owner: str,
    raw_until: Any,
    cutoff: datetime,
) -> str | None:
    until = as_utc(raw_until)
    if until is not None and until >= cutoff:
        return None
    if not _moved_one(
        session,
        update(model)
        .where(model.id == row_id, model.lease_owner == owner, _same(model.lease_until, raw_until))
        .values(lease_owner=None, lease_until=None),
    ):
        return None
    return _finding(
        session,
        "expired_lease",
        f"expired lease of {owner} on {table} row {row_id} released"
        f" (expired {iso(until) if until else 'never set'})",
        user_id=None,
        **_row_ref(table, row_id),
        details={"table": table, "owner": owner},
    )


def _bot_rows(session: Session, *where: ColumnElement[bool]) -> list[Any]:
    return list(
        session.execute(
            select(
                Bot.id,
                Bot.user_id,
                Bot.name,
                Bot.exchange,
                Bot.timeframe,
                _raw(Bot.last_tick_at),
                _raw(Bot.next_tick_at),
                Bot.lease_owner,
                _raw(Bot.lease_until),
                Bot.error_streak,
                Bot.last_error,
            ).where(Bot.status == "running", Bot.deleted_at.is_(None), *where)
        ).all()
    )


def heal_stuck_bots(now: datetime, config: HealingConfig, report: ScanReport) -> None:
    with session_scope() as session:
        rows = _bot_rows(session)
    for row in rows:
        _each(report, "bots", row[0], lambda s, r=row: _heal_stuck_one(s, r, now, config))


def stuck_reason(
    now: datetime,
    interval: float,
    last_tick_at: datetime | None,
    next_tick_at: datetime | None,
    config: HealingConfig,
) -> str | None:
    """Why a running bot counts as stuck, or None. A bot just resumed after a long pause has
    an old last tick but a due next tick: it is about to tick, not stuck."""
    horizon = max(config.stuck_bot_intervals * interval, config.stuck_bot_min_seconds)
    if next_tick_at is None:
        return "running but no tick is scheduled"
    overdue = (now - next_tick_at).total_seconds()
    if overdue > horizon:
        return f"its tick is {overdue:.0f}s overdue (limit {horizon:.0f}s)"
    if last_tick_at is not None:
        idle = (now - last_tick_at).total_seconds()
        ahead = (next_tick_at - now).total_seconds()
        if idle > horizon and ahead > max(interval, config.stuck_bot_min_seconds):
            return f"last tick {idle:.0f}s ago and the next one {ahead:.0f}s away"
    return None


def _heal_stuck_one(session: Session, row: Any, now: datetime, config: HealingConfig) -> str | None:
    bot_id, user_id, name, exchange, timeframe, raw_last, raw_next, owner, raw_until = row[:9]
    grid = tick_grid(exchange, timeframe)
    last_tick_at, next_tick_at, lease_until = as_utc(raw_last), as_utc(raw_next), as_utc(raw_until)
    if owner is not None and lease_until is not None and lease_until > now:
        return None  # a worker holds it right now
    why = stuck_reason(now, grid.interval_seconds, last_tick_at, next_tick_at, config)
    if why is None:
        return None
    due = grid.first_due(to_ms(now), None if last_tick_at is None else to_ms(last_tick_at))
    if not _moved_one(
        session,
        update(Bot)
        .where(
            Bot.id == bot_id,
            Bot.status == "running",
            _same(Bot.next_tick_at, raw_next),
            _same(Bot.lease_owner, owner),
        )
        .values(next_tick_at=from_ms(due), lease_owner=None, lease_until=None),
    ):
        return None
    return _finding(
        session,
        "stuck_bot",
        f"bot {name!r} (#{bot_id}) had stopped ticking ({why}); rescheduled",
        user_id=user_id,
        bot_id=bot_id,
        details={"last_tick_at": iso(last_tick_at), "next_tick_at": iso(next_tick_at)},
    )


def pause_error_streaks(now: datetime, config: HealingConfig, report: ScanReport) -> None:
    with session_scope() as session:
        rows = _bot_rows(session, Bot.error_streak >= config.error_streak_pause)
    for row in rows:
        _each(report, "bots", row[0], lambda s, r=row: _pause_streak_one(s, r, config))


def _pause_streak_one(session: Session, row: Any, config: HealingConfig) -> str | None:
    bot_id, user_id, name = row[:3]
    streak, last_error = row[9], row[10]
    reason = f"error_streak: {last_error or 'unknown error'}"[:200]
    if not _moved_one(
        session,
        update(Bot)
        .where(
            Bot.id == bot_id,
            Bot.status == "running",
            Bot.error_streak >= config.error_streak_pause,
        )
        .values(
            status="paused",
            pause_reason=reason,
            next_tick_at=case((Bot.exit_requested_at.is_(None), None), else_=Bot.next_tick_at),
        ),
    ):
        return None
    return _finding(
        session,
        "error_streak",
        f"bot {name!r} (#{bot_id}) paused after {streak} consecutive errors; "
        f"last: {(last_error or 'unknown')[:500]}",
        user_id=user_id,
        bot_id=bot_id,
        details={"error_streak": streak},
    )


def requeue_stale_jobs(now: datetime, config: HealingConfig, report: ScanReport) -> None:
    with session_scope() as session:
        moved = queue.requeue_stale_jobs(session, now, config.job_stale_seconds)
        report_stale_jobs(session, moved, config.job_stale_seconds)
    report.findings.extend(("stale_job", job.id) for job in moved)


def report_stale_jobs(session: Session, moved: list[Any], stale_seconds: float) -> None:
    """One incident and admin alert per job `requeue_stale_jobs` moved, the first time it
    does (also callable by the job runner, which requeues stale jobs on its own schedule)."""
    for job in moved:
        outcome = {"queued": "requeued", "failed": "failed: attempts used up"}.get(
            job.state, job.state
        )
        message = (
            f"{job.kind} job #{job.id} had no heartbeat for {stale_seconds:g}s "
            f"(attempt {job.attempts}); {outcome}"
        )
        # one incident and one admin alert per stuck job: its later attempts add nothing new
        if not incident_exists(session, "stale_job", job_id=job.id):
            record_incident(
                session,
                "stale_job",
                message,
                job_id=job.id,
                details={"state": job.state, "attempts": job.attempts, "kind": job.kind},
            )
            raise_alert(
                session, user_id=None, severity="warning", code="stale_job", message=message
            )
        if job.state == "failed" and job.user_id is not None:
            raise_alert(
                session,
                user_id=job.user_id,
                severity="warning",
                code="job_failed",
                message=message,
            )


def pause_failing_live_bots(now: datetime, config: HealingConfig, report: ScanReport) -> None:
    with session_scope() as session:
        ids = list(
            session.scalars(
                select(Bot.id).where(
                    Bot.status == "running", Bot.mode == "live", Bot.deleted_at.is_(None)
                )
            )
        )
    for bot_id in ids:
        _each(report, "bots", bot_id, lambda s, i=bot_id: _check_live_one(s, i, now))


def _check_live_one(session: Session, bot_id: int, now: datetime) -> str | None:
    bot = session.scalars(
        select(Bot).where(Bot.id == bot_id, Bot.status == "running").with_for_update()
    ).one_or_none()
    if bot is None or bot.mode != "live":
        return None
    reason = check_live_gates(session, bot, now)  # pauses the bot and alerts its owner
    if reason is None:
        return None
    record_incident(
        session,
        "live_gates_failed",
        f"live bot {bot.name!r} (#{bot.id}) paused: {reason}",
        bot_id=bot.id,
        details={"pause_reason": reason},
    )
    return "live_gates_failed"


def resume_cooldowns(now: datetime, config: HealingConfig, report: ScanReport) -> None:
    with session_scope() as session:
        ids = cooled_down_bot_ids(session, now)
    for bot_id in ids:
        _each(
            report,
            "bots",
            bot_id,
            lambda s, i=bot_id: "cooldown_resumed" if resume_after_cooldown(s, i, now) else None,
        )


STEPS: tuple[Callable[[datetime, HealingConfig, ScanReport], None], ...] = (
    normalise_timestamps,
    release_expired_leases,
    heal_stuck_bots,
    pause_error_streaks,
    requeue_stale_jobs,
    pause_failing_live_bots,
    resume_cooldowns,
)
