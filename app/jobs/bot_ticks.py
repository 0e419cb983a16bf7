"""Dispatch due bot ticks, each exactly once across every worker and machine.

Every worker's scheduler calls `run()` once a second. A call claims batches of due bots
(`app.store.claims`: `FOR UPDATE SKIP LOCKED` on Postgres, compare-and-set on SQLite, each
claim a lease that expires) and ticks a batch in one transaction, each bot in its own
savepoint so that a failing bot never touches another. While the scheduler runs it then
sleeps until the next bot is due, so a tick starts within milliseconds of its planned time
instead of up to a second late; it returns after about TICK_RUN_SECONDS.

Why a tick cannot run twice:

* the claim hands a due bot to one worker only (its lease);
* the batch transaction starts by renewing its leases (locking the rows until it commits);
  each tick's writes (orders, fills, the `bot_ticks` row) and the bot's next planned time
  end with a release fenced on the lease owner: a worker whose lease was taken over writes
  nothing for that bot (`claims.release` matches no row, its savepoint is rolled back);
* `bot_ticks` is UNIQUE(bot_id, planned_at) and every order's `client_order_id` is derived
  from (bot, planned tick), so even a fencing bug could not record a tick or an order twice.

A batch gives way to the emergency stop: between bots it looks (every STOP_LOOK_SECONDS, and
every STOP_LOOK_HOLDING_SECONDS once it has placed an order and so holds the trading gate)
whether a stop is active or waits for the gate, and if so rolls back and hands its bots back,
so the stop never waits for a whole batch; while the stop is active nothing is claimed.

Why a tick is not lost: a worker killed mid-batch committed nothing; its leases expire after
TICK_LEASE_SECONDS and another worker claims the bot. The next planned time always comes
from the planned grid (`planned + interval`), never from "now", so ticks do not drift. A bot
that fell more than one interval behind runs once, for the latest due boundary, and the
tick row records how many planned ticks it `skipped`: every boundary is accounted for once.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from app.domain.times import from_ms, to_ms
from app.engine.tick import (
    LedgerState,
    TickResult,
    ledger_states,
    run_tick,
    tick_grid,
    warm_candles,
)
from app.jobs.scheduler import scheduler_running, worker_id
from app.observability.logging import log_context
from app.observability.metrics import BOT_TICK_DURATION, BOT_TICK_LAG, BOT_TICKS, CLAIMS_LOST
from app.observability.outages import Outage
from app.services.alerts import raise_alert
from app.services.engine_hooks import TICK_HOOKS
from app.services.events import record_events
from app.store.base import utcnow
from app.store.claims import claim, lease_free, release_batch
from app.store.db import new_session, session_scope, single_statement_scope
from app.store.emergency_flag import holds_gate, stop_waiting, trading_allowed_condition
from app.store.locking import in_id_order
from app.store.models import Bot
from app.store.models.ledger import EquitySnapshot
from app.store.models.trading import BotTick
from config import get_settings

log = logging.getLogger("tradewind.ticks")


_stopping = threading.Event()
_batches = Outage("tick batches")
_dispatch = Outage("tick dispatch")
MIN_WAIT_SECONDS = 0.01  # a bot due but just claimed by another worker: do not spin
STOP_LOOK_SECONDS = 0.1  # a batch looks this often whether an emergency stop waits for it
STOP_LOOK_HOLDING_SECONDS = 0.01  # and this often once it holds the trading gate


@dataclass(frozen=True)
class TickSettings:
    lease_seconds: float = 30.0
    batch_size: int = 25
    run_seconds: float = 1.0
    max_error_streak: int = 5

    @classmethod
    def current(cls) -> TickSettings:
        settings = get_settings()
        return cls(
            lease_seconds=settings.tick_lease_seconds,
            batch_size=settings.tick_batch_size,
            run_seconds=settings.tick_run_seconds,
            max_error_streak=settings.error_streak_pause,
        )


def due_condition(now: datetime) -> Any:
    """Bots that should tick now: running, or holding a pending exit, and due; none while
    the emergency stop is active (it is pausing them; no order could be placed anyway)."""
    return and_(
        Bot.next_tick_at <= now,
        Bot.deleted_at.is_(None),
        or_(Bot.status == "running", Bot.exit_requested_at.is_not(None)),
        trading_allowed_condition(),
    )


def request_stop() -> None:
    """The process is shutting down (called from the SIGTERM handler, so only sets a flag):
    the dispatcher claims nothing more, and a batch in flight is abandoned - rolled back and
    its leases handed back - so shutdown does not wait for it and others tick its bots now."""
    _stopping.set()


def allow_dispatch() -> None:
    """Undo `request_stop` (a process whose lifecycle starts again)."""
    _stopping.clear()


class _Abandoned(Exception):
    """The process is stopping: the batch is rolled back and handed back, not finished."""


def claim_due(owner: str, settings: TickSettings, now: datetime | None = None) -> list[int]:
    """Lease a batch of due bots to `owner` (committed before any of them runs), and read
    their candles into the cache before the batch's transaction opens."""
    now = now or utcnow()
    with single_statement_scope() as db:
        ids = claim(
            db,
            Bot,
            owner=owner,
            now=now,
            lease_seconds=settings.lease_seconds,
            limit=settings.batch_size,
            where=due_condition(now),
            order_by=Bot.next_tick_at,
        )
        needs = (
            db.execute(
                select(Bot.exchange, Bot.symbol, Bot.timeframe, Bot.strategy,
                       Bot.strategy_params, Bot.strategy_document_id,
                       Bot.strategy_version).where(Bot.id.in_(ids))
            ).tuples().all()
            if ids
            else []
        )  # fmt: skip
    warm_candles(needs)
    return ids


def next_due_at(now: datetime | None = None) -> datetime | None:
    """When the earliest bot that could be claimed is next due (a cheap hint for sleeping).
    Bots leased to a worker are left out: while another worker ticks its batch, this one
    sleeps instead of polling for rows it cannot have."""
    now = now or utcnow()
    with single_statement_scope() as db:
        return db.scalar(
            select(func.min(Bot.next_tick_at)).where(
                Bot.deleted_at.is_(None),
                or_(Bot.status == "running", Bot.exit_requested_at.is_not(None)),
                lease_free(Bot, now),
            )
        )


def run(max_seconds: float | None = None) -> int:
    """One scheduler call: tick due bots until none is due (and, while the scheduler runs,
    keep waiting for the next due bot up to `max_seconds`). Never raises; returns ticks run."""
    settings = TickSettings.current()
    budget = settings.run_seconds if max_seconds is None else max_seconds
    started = time.monotonic()
    deadline = started + budget
    hard_deadline = started + max(10 * budget, 10.0)  # a backlog is drained, but not forever
    scheduled = scheduler_running()
    owner = worker_id()
    done = 0
    try:
        hand_back([], owner)
        while not _stopping.is_set():
            ids = claim_due(owner, settings)
            if ids:
                done += tick_batch(ids, owner, settings)
                stopping = scheduled and not scheduler_running()
                if stopping or time.monotonic() > hard_deadline:
                    break
                continue
            if not _wait_for_next_due(deadline):
                break
        _dispatch.recovered()
    except Exception as exc:
        _dispatch.failed(exc, "bot tick dispatch failed")
    return done


def _wait_for_next_due(deadline: float) -> bool:
    """Sleep until the next bot is due if that is before `deadline` and the scheduler runs;
    False when there is nothing to wait for in this call."""
    if not scheduler_running():
        return False
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return False
    due = next_due_at()
    wait = remaining if due is None else (due - utcnow()).total_seconds()
    wait = min(max(wait, MIN_WAIT_SECONDS), remaining)
    if due is None or wait >= remaining:
        return False  # nothing due in this call; the next scheduler call looks again
    # sleep in short steps so a stopping scheduler is never held up
    end = time.monotonic() + wait
    while time.monotonic() < end:
        if not scheduler_running():
            return False
        time.sleep(min(0.05, max(end - time.monotonic(), 0.0)))
    return True


RELEASED = (
    "status",
    "pause_reason",
    "next_tick_at",
    "last_tick_at",
    "last_candle_ts",
    "error_streak",
    "last_error",
    "exit_requested_at",
)
_RELEASE_MANY = (
    update(Bot.__table__)
    .where(
        Bot.__table__.c.id == bindparam("b_id"),
        Bot.__table__.c.lease_owner == bindparam("b_owner"),
    )
    .values(
        lease_owner=None,
        lease_until=None,
        updated_at=bindparam("b_updated_at"),
        **{c: bindparam(f"b_{c}") for c in RELEASED},
    )
)


@dataclass
class TickOutcome:
    """One bot's share of a batch: what to write back on the bot, the tick row, the news."""

    bot: Bot
    values: dict[str, Any]
    row: dict[str, Any] | None = None
    result: TickResult | None = None
    snapshots: list[dict[str, Any]] = field(default_factory=list)


def tick_batch(ids: list[int], owner: str, settings: TickSettings) -> int:
    """Tick a claimed batch in one transaction.

    The transaction starts by renewing the batch's leases (`lock_batch`: the rows stay locked,
    so no other worker, API call or self-healing scan can change them until the commit).
    Each tick that writes does so inside its own savepoint: a failing bot is rolled back to
    it and records its error, never touching the others. The bots' next planned times and
    the tick rows are written for the whole batch at the end, and it commits once."""
    session = new_session()
    outcomes: list[TickOutcome] = []
    try:
        bots = lock_batch(session, ids, owner, settings)
        states = ledger_states(session, [b.id for b in bots])
        looked = time.monotonic()
        for bot in bots:
            if _stopping.is_set():
                raise _Abandoned()
            every = STOP_LOOK_HOLDING_SECONDS if holds_gate(session) else STOP_LOOK_SECONDS
            if time.monotonic() - looked > every:
                looked = time.monotonic()
                if stop_waiting(session):
                    raise _Abandoned("an emergency stop is waiting")
            with log_context(bot_id=bot.id, user_id=bot.user_id):
                outcomes.append(tick_one(session, bot, owner, settings, states.get(bot.id)))
        _write_back(session, owner, outcomes)
        record_events(session, _news(outcomes))
        session.commit()
    except _Abandoned as exc:
        session.rollback()
        session.close()
        hand_back(ids, owner)
        log.info("tick batch of %d bots abandoned and handed back (%s)", len(ids),
                 str(exc) or "shutdown")  # fmt: skip
        return 0
    except Exception as exc:
        session.rollback()
        session.close()
        _batches.failed(exc, "tick batch failed")
        hand_back(ids, owner)
        return 0
    finally:
        session.close()
    _batches.recovered()
    done = [o for o in outcomes if o.row is not None]
    for outcome in done:
        _after_commit(outcome)
    return len(done)


_unreturned: set[int] = set()
_unreturned_lock = threading.Lock()


def hand_back(ids: list[int], owner: str) -> None:
    """Release a failed batch's leases at once (still fenced on `owner`), so the next worker
    picks its bots up now instead of after TICK_LEASE_SECONDS. If the database is down the
    ids are kept and handed back by this process's next dispatcher call."""
    with _unreturned_lock:
        pending = sorted(_unreturned.union(ids))
        _unreturned.clear()
    if not pending:
        return
    try:
        with single_statement_scope() as db:
            release_batch(db, Bot, pending, owner=owner)
    except Exception:
        with _unreturned_lock:
            _unreturned.update(pending)


def lock_batch(session: Session, ids: list[int], owner: str, settings: TickSettings) -> list[Bot]:
    """Renew the batch's leases and load its bots in one statement (UPDATE ... RETURNING).

    As the batch transaction's first statement, this write fences the whole batch: only
    rows still leased to `owner` are returned, and they stay locked until the commit (on
    SQLite it opens the write transaction before any savepoint). The rows are locked in id
    order (`in_id_order`), like every multi-row lock, so that a batch and the emergency stop
    (or another batch, or a shutdown) wait for each other instead of deadlocking."""
    until = utcnow() + timedelta(seconds=settings.lease_seconds)
    bots = session.scalars(
        update(Bot)
        .where(in_id_order(session, Bot, and_(Bot.id.in_(ids), Bot.lease_owner == owner)))
        .values(lease_until=until)
        .returning(Bot),
        execution_options={"populate_existing": True},
    ).all()
    for _ in range(len(ids) - len(bots)):
        _lost()
    return sorted(bots, key=lambda b: (b.next_tick_at or until, b.id))


def plan(bot: Bot, now: datetime) -> tuple[int, int, int]:
    """(planned ms, skipped boundaries, next planned ms) for a due bot at `now`."""
    grid = tick_grid(bot.exchange, bot.timeframe)
    assert bot.next_tick_at is not None
    planned = to_ms(bot.next_tick_at)
    now_ms = to_ms(now)
    skipped = 0
    latest = grid.latest_due(now_ms)
    if latest > planned:  # more than one interval behind: catch up to the latest boundary
        skipped = max(grid.steps_between(planned, latest), 1)
        planned = latest
    if bot.last_tick_at is not None and planned <= to_ms(bot.last_tick_at):
        # the grid moved (e.g. REPLAY_SPEED changed): never tick one boundary twice
        planned = grid.next_after(to_ms(bot.last_tick_at))
    return planned, skipped, grid.next_after(planned)


class _Writes:
    """Opens the tick's savepoint at its first write (most ticks never write)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.savepoint: Any = None

    def __call__(self) -> None:
        if self.savepoint is None:
            self.savepoint = self.session.begin_nested()

    def rollback(self) -> None:
        if self.savepoint is not None and self.savepoint.is_active:
            self.savepoint.rollback()

    def commit(self) -> None:
        if self.savepoint is not None and self.savepoint.is_active:
            self.session.flush()
            self.savepoint.commit()


def tick_one(
    session: Session,
    bot: Bot,
    owner: str,
    settings: TickSettings,
    state: LedgerState | None = None,
) -> TickOutcome:
    """One locked bot's tick inside the batch transaction."""
    started = utcnow()
    try:
        planned_ms, skipped, next_ms = plan(bot, started)
    except Exception as exc:  # e.g. a timeframe edited by hand: no grid to plan on
        return _unplannable(bot, settings, exc)
    if planned_ms > to_ms(started):  # nothing to do yet (see `plan`): just reschedule
        return TickOutcome(bot, {"next_tick_at": from_ms(planned_ms)})
    planned = from_ms(planned_ms)
    _observe_lag(started, planned)
    t0 = time.perf_counter()
    writes = _Writes(session)
    snapshots: list[dict[str, Any]] = []
    try:
        result = run_tick(session, bot, planned_at=planned, now=started, state=state,
                          writes=writes, deferred=snapshots, hooks=TICK_HOOKS)  # fmt: skip
        writes.commit()
        error: str | None = None
    except Exception as exc:  # any failure of this bot stays with this bot
        writes.rollback()
        snapshots = []
        error = f"{type(exc).__name__}: {exc}"[:2000]
        log.warning("tick of bot %s failed: %s", bot.id, error, exc_info=True)
        result = TickResult(outcome="error", error=error)
    values = _bot_values(bot, result, planned, from_ms(next_ms), error, settings)
    row = {
        "bot_id": bot.id,
        "planned_at": planned,
        "worker": owner,
        "started_at": started,
        "finished_at": utcnow(),
        "outcome": result.outcome,
        "skipped": skipped,
        "candle_ts": result.candle_ts,
        "signal": result.signal,
        "action": result.action,
        "error": error,
        "details": result.details or None,
    }
    _observe(result.outcome, time.perf_counter() - t0)
    return TickOutcome(bot, values, row, result, snapshots)


def _unplannable(bot: Bot, settings: TickSettings, exc: Exception) -> TickOutcome:
    """Record why the bot cannot be ticked and try again in a minute (paused after too many
    failures) instead of failing the whole batch."""
    error = f"{type(exc).__name__}: {exc}"[:2000]
    log.error("bot %s cannot be ticked: %s", bot.id, error)
    streak = (bot.error_streak or 0) + 1
    values: dict[str, Any] = {
        "error_streak": streak,
        "last_error": error,
        "next_tick_at": utcnow() + timedelta(seconds=60),
    }
    if streak >= settings.max_error_streak and bot.status == "running":
        values.update(
            status="paused", pause_reason=f"cannot be ticked: {error}"[:200], next_tick_at=None
        )
    _observe("error", 0.0)
    return TickOutcome(bot, values)


def _bot_values(
    bot: Bot,
    result: TickResult,
    planned: datetime,
    next_at: datetime,
    error: str | None,
    settings: TickSettings,
) -> dict[str, Any]:
    """The bot's columns after this tick (those not named keep their value)."""
    values: dict[str, Any] = {"last_tick_at": planned}
    if error is not None:
        streak = (bot.error_streak or 0) + 1
        values.update(error_streak=streak, last_error=error)
        if streak >= settings.max_error_streak and bot.status == "running":
            result.pause_reason = f"{streak} consecutive tick errors; last: {error}"[:200]
    else:
        values.update(error_streak=0)
        if result.last_candle_ts is not None:
            values["last_candle_ts"] = result.last_candle_ts
    if result.exit_done:
        values["exit_requested_at"] = None
    pausing = result.pause_reason is not None and bot.status == "running"
    if pausing:
        values.update(status="paused", pause_reason=result.pause_reason)
    still_ticking = (bot.status == "running" and not pausing) or (
        bot.exit_requested_at is not None and not result.exit_done
    )
    values["next_tick_at"] = next_at if still_ticking else None
    return values


def _write_back(session: Session, owner: str, outcomes: list[TickOutcome]) -> None:
    """Release every bot of the batch with its new schedule, and insert the tick rows and
    equity snapshots (Core inserts: rows, not ORM objects, one multi-row statement each)."""
    if not outcomes:
        return
    session.flush()
    _release(session, owner, outcomes, utcnow())
    rows = [o.row for o in outcomes if o.row is not None]
    if rows:
        _insert_ticks(session, rows)
    snapshots = [snap for o in outcomes for snap in o.snapshots]
    if snapshots:
        session.execute(EquitySnapshot.__table__.insert(), snapshots)


# The whole batch's release in one statement on Postgres: every value is cast, so that a
# column that is NULL in the first row still has its type.
_RELEASE_SQL = (
    "UPDATE bots AS b SET lease_owner = NULL, lease_until = NULL, updated_at = v.updated_at, "
    + ", ".join(f"{c} = v.{c}" for c in RELEASED)
    + " FROM (VALUES %s) AS v (id, owner, updated_at, "
    + ", ".join(RELEASED)
    + ") WHERE b.id = v.id AND b.lease_owner = v.owner"
)
_RELEASE_TEMPLATE = (
    "(%s::integer, %s::text, %s::timestamptz, %s::text, %s::text, %s::timestamptz, "
    "%s::timestamptz, %s::bigint, %s::integer, %s::text, %s::timestamptz)"
)


def _release(session: Session, owner: str, outcomes: list[TickOutcome], now: datetime) -> None:
    """Each bot's columns after its tick, its lease cleared, fenced on `owner`: one
    `UPDATE ... FROM (VALUES ...)` on Postgres (a single round trip and a single statement
    for the batch), an `executemany` elsewhere."""
    values = [
        [o.values[c] if c in o.values else getattr(o.bot, c) for c in RELEASED] for o in outcomes
    ]
    connection = session.connection()
    if connection.dialect.driver != "psycopg2":
        params = [
            {"b_id": o.bot.id, "b_owner": owner, "b_updated_at": now,
             **{f"b_{c}": v for c, v in zip(RELEASED, row, strict=True)}}
            for o, row in zip(outcomes, values, strict=True)
        ]  # fmt: skip
        session.execute(_RELEASE_MANY, params)
        return
    from psycopg2.extras import execute_values

    rows = [(o.bot.id, owner, now, *row) for o, row in zip(outcomes, values, strict=True)]
    with connection.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
        execute_values(cursor, _RELEASE_SQL, rows, template=_RELEASE_TEMPLATE, page_size=1000)


_TICK_COLUMNS = (
    "bot_id", "planned_at", "worker", "started_at", "finished_at", "outcome", "skipped",
    "candle_ts", "signal", "action", "error", "details",
)  # fmt: skip
_TICKS_SQL = f"INSERT INTO bot_ticks ({', '.join(_TICK_COLUMNS)}) VALUES %s"


def _insert_ticks(session: Session, rows: list[dict[str, Any]]) -> None:
    """The batch's `bot_ticks` rows in one statement: on Postgres built by psycopg2 from
    plain values (no column here needs our type conversions: aware datetimes, text,
    integers, and `details` as JSON), a Core insert elsewhere."""
    connection = session.connection()
    if connection.dialect.driver != "psycopg2":
        session.execute(BotTick.__table__.insert(), rows)
        return
    from psycopg2.extras import Json, execute_values

    values = [
        (*(row[c] for c in _TICK_COLUMNS[:-1]), Json(row["details"])) for row in rows
    ]  # `details` None is stored as JSON null, as the JSON type does
    with connection.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
        execute_values(cursor, _TICKS_SQL, values, page_size=1000)


def _news(outcomes: list[TickOutcome]) -> list[tuple[int | None, str, dict[str, Any]]]:
    """The batch's events for dashboards, written in its transaction."""
    news: list[tuple[int | None, str, dict[str, Any]]] = []
    for outcome in outcomes:
        if outcome.row is None:
            continue
        bot, values, result = outcome.bot, outcome.values, outcome.result
        news.extend((bot.user_id, kind, data) for kind, data in (result.events if result else []))
        if values.get("status") == "paused":
            data = {
                "bot_id": bot.id,
                "status": "paused",
                "previous": "running",
                "pause_reason": values.get("pause_reason"),
            }
            news.append((bot.user_id, "bot_status", data))
    return news


def _after_commit(outcome: TickOutcome) -> None:
    """After a committed tick: an alert when a bot was paused."""
    bot, values = outcome.bot, outcome.values
    try:
        if values.get("status") == "paused":
            _alert_paused(bot, str(values.get("pause_reason")))
    except Exception:
        log.exception("after-tick notifications failed for bot %s", bot.id)


def _alert_paused(bot: Bot, reason: str) -> None:
    with session_scope() as session:
        raise_alert(
            session,
            user_id=bot.user_id,
            severity="warning",
            code="bot_paused",
            message=f"bot {bot.name!r} (#{bot.id}) was paused: {reason}",
            bot_id=bot.id,
        )


def _observe_lag(started: datetime, planned: datetime) -> None:
    with contextlib.suppress(Exception):  # metrics are never worth a failed tick
        BOT_TICK_LAG.observe(max((started - planned).total_seconds(), 0.0))


def _observe(outcome: str, seconds: float) -> None:
    try:
        BOT_TICKS.labels(outcome=outcome).inc()
        BOT_TICK_DURATION.observe(seconds)
    except Exception:
        pass


def _lost() -> None:
    with contextlib.suppress(Exception):
        CLAIMS_LOST.labels(kind="tick").inc()
