"""Realtime events for dashboards: stored once, read by every worker, resumable from any.

`record_event(session, user_id, type, data)` writes the event in the caller's transaction, so
an event exists exactly when what it reports was committed; `publish_event` does the same in
a short transaction of its own, for news that comes after a commit. Right after the commit
the sequencer (`app.store.event_log`) gives the event its public id, `seq`, in commit order,
the same on every worker.

Each worker runs one poller thread (started by the first stream) that numbers pending
events, reads the new ones and hands them to the worker's open streams. Redis, when
configured, only wakes the pollers early: a lost wake-up costs one poll interval
(`EVENTS_POLL_SECONDS`), never an event. A stream resumes after `Last-Event-ID` from the
table; when that cannot be done exactly (pruned, too far behind, an id this database never
gave) it starts with a `resync` event instead.

Events with `user_id=None` are system events for admins; the emergency stop's also reach
every user, in words without the admin's details.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.errors import ServiceUnavailable
from app.observability.metrics import EVENTS_PUBLISHED
from app.observability.outages import Outage
from app.services import notification_outbox
from app.services.revocation import token_subject
from app.store import db, event_log
from app.store.after_commit import on_commit
from app.store.base import utcnow
from app.store.db import session_scope
from app.store.models.events import Event
from app.store.redis import get_redis, redis_key
from config import get_settings

log = logging.getLogger("tradewind.events")

EVENT_TYPES = frozenset({"trade", "order", "bot_status", "alert", "job_progress"})
BROADCAST_ALERTS = {
    "emergency_stop": "an administrator stopped all trading; bots are paused for review",
    "emergency_resume": "the emergency stop was cleared; paused bots stay paused for review",
}
STREAM_END = event_log.STREAM_END
QUEUE_SIZE = 1_000
READ_BATCH = 500
READY_TIMEOUT = 10.0
IDLE_EXIT = 5.0
WORKER = f"{socket.gethostname()}:{os.getpid()}"


# -- writing -------------------------------------------------------------------------------


def _json_safe(data: dict[str, Any] | None) -> dict[str, Any]:
    """Plain JSON (datetimes and decimals as text), as every reader will see it."""
    return json.loads(json.dumps(data or {}, default=str))


def event_rows(user_id: int | None, event_type: str, data: dict[str, Any] | None) -> list[dict]:
    """The rows of one event: the owner's, or the admins' (plus every user's, in plain
    words, for an emergency stop or resume)."""
    now = utcnow()
    body = _json_safe(data)
    if user_id is not None:
        return [_row(int(user_id), "user", event_type, body, now)]
    rows = [_row(None, "admins", event_type, body, now)]
    code = body.get("code")
    if event_type == "alert" and code in BROADCAST_ALERTS:
        public = {
            "code": code,
            "severity": body.get("severity"),
            "message": BROADCAST_ALERTS[str(code)],
            "active": code == "emergency_stop",
            "system": True,
            "created_at": body.get("created_at"),
        }
        rows.append(_row(None, "users", event_type, public, now))
    return rows


def _row(
    user_id: int | None, audience: str, event_type: str, data: dict[str, Any], now: datetime
) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "audience": audience,
        "type": str(event_type)[:32],
        "data": data,
        "created_at": now,
    }


def record_event(
    session: Session, user_id: int | None, event_type: str, data: dict[str, Any] | None
) -> None:
    """Write the event in the session's transaction; it is numbered once that commits."""
    record_events(session, [(user_id, event_type, data)])


def record_events(
    session: Session, events: list[tuple[int | None, str, dict[str, Any] | None]]
) -> None:
    rows = [row for user_id, kind, data in events for row in event_rows(user_id, kind, data)]
    if not rows:
        return
    event_log.append(session, rows)
    notification_outbox.enqueue(session, events)
    on_commit(session, wake, key="tw_events_wake")
    with contextlib.suppress(Exception):
        EVENTS_PUBLISHED.labels("recorded").inc(len(rows))


def end_streams(session: Session, user_id: int, *, jti: str | None = None, reason: str) -> None:
    """Close the user's open streams (only the token `jti`'s, when given) on every worker,
    once this transaction commits: logout, or a disabled account. In the event order, so no
    event after it reaches those streams. Clients never see it; the 2 s re-check is the
    fallback."""
    row = _row(int(user_id), "user", STREAM_END, {"jti": jti, "reason": reason}, utcnow())
    event_log.append(session, [row])
    on_commit(session, wake, key="tw_events_wake")


def publish_event(user_id: int | None, event_type: str, data: dict[str, Any] | None) -> None:
    """Record an event in a transaction of its own (news after a commit). Never raises: a
    lost event is logged and counted, never a failed trade."""
    try:
        with session_scope() as session:
            record_event(session, user_id, event_type, data)
    except Exception as exc:
        log.warning("event %r for user %s dropped: %s", event_type, user_id, type(exc).__name__)
        with contextlib.suppress(Exception):
            EVENTS_PUBLISHED.labels("failed").inc()


def _wake_channel() -> str:
    return redis_key("events", "wake")


def wake() -> None:
    """New events are committed: poll now, here and (through Redis, if any) elsewhere."""
    broker.poke()
    wake_others()


# -- reading -------------------------------------------------------------------------------


def client_event(row: Event) -> dict[str, Any]:
    """An event as a stream sends it: the public id is the row's `seq`."""
    return {
        "id": int(row.seq or 0),
        "type": row.type,
        "user_id": row.user_id,
        "ts": row.created_at.isoformat() if row.created_at else None,
        "data": row.data or {},
    }


@dataclass
class Resume:
    """What a reconnecting stream sends before its live events."""

    backlog: list[dict[str, Any]]
    resync: str | None = None


def resume_after(user_id: int, is_admin: bool, after: int, upto: int) -> Resume:
    """The user's events in (after, upto] from the table, or the reason they cannot all be
    sent: `history_pruned` (older than the retention), `too_far_behind` (more than
    `SSE_HISTORY_SIZE` of them) or `unknown_event_id` (not an id of this database)."""
    if after >= upto:
        with session_scope() as session:
            _low, high = event_log.bounds(session)
        return Resume([], "unknown_event_id" if after > high else None)
    limit = max(1, get_settings().sse_history_size)
    with session_scope() as session:
        low, high = event_log.bounds(session)
        if after > high:
            return Resume([], "unknown_event_id")
        if low and after + 1 < low:
            return Resume([], "history_pruned")
        rows = event_log.read_for_user(session, user_id, is_admin, after, upto, limit + 1)
        if len(rows) > limit:
            return Resume([], "too_far_behind")
        return Resume([client_event(r) for r in rows])


def prune_events(now: datetime | None = None) -> int:
    """Delete events older than `EVENT_RETENTION_HOURS` (the clean-up job), in batches."""
    cutoff = (now or utcnow()) - timedelta(hours=get_settings().event_retention_hours)
    removed = 0
    for _ in range(20):
        with session_scope() as session:
            n = event_log.prune_before(session, cutoff)
        removed += n
        if n < event_log.PRUNE_BATCH:
            break
    return removed


# -- stream slots and re-checks ---------------------------------------------------------------


def slot_lease_seconds() -> float:
    return max(10.0, 5 * get_settings().sse_recheck_seconds)


def open_stream_slot(user_id: int) -> int | None:
    """Count a new stream of the user against `SSE_MAX_STREAMS_PER_USER` (every worker);
    its slot id, or None when the user already holds that many."""
    cap = max(1, get_settings().sse_max_streams_per_user)
    with session_scope() as session:
        return event_log.claim_stream_slot(session, user_id, WORKER, cap, slot_lease_seconds())


def close_stream_slot(slot_id: int) -> None:
    try:
        with session_scope() as session:
            event_log.release_stream_slot(session, slot_id)
    except Exception as exc:  # the lease expires by itself
        log.warning("stream slot %s not released: %s", slot_id, type(exc).__name__)


_checks = Outage("event stream re-check")


def stream_still_allowed(claims: dict[str, Any], slot_id: int) -> str | None:
    """Why the stream of this token must end now (`token_revoked`, `account_disabled`,
    `account_unavailable`), or None; renews the stream's slot. A failed check keeps the
    stream (the database is the only place a logout could have been recorded)."""
    try:
        with session_scope() as session:
            user, revoked = token_subject(session, claims)
            if user is None:
                return "account_unavailable"
            if user.is_disabled:
                return "account_disabled"
            if revoked:
                return "token_revoked"
            event_log.renew_stream_slots(session, [slot_id], slot_lease_seconds())
    except Exception as exc:
        _checks.failed(exc)
        return None
    _checks.recovered()
    return None


# -- fan-out in this process ---------------------------------------------------------------


@dataclass(eq=False)
class Subscription:
    """One stream's inbox. `None` in the queue means: close, the client reconnects."""

    user_id: int
    is_admin: bool
    jti: str | None = None
    reason: str | None = None
    inbox: queue.Queue[dict[str, Any] | None] = field(
        default_factory=lambda: queue.Queue(QUEUE_SIZE)
    )

    def ends_with(self, event: dict[str, Any]) -> bool:
        """A `stream_end` row for this stream's user (and token, when it names one)."""
        jti = (event.get("data") or {}).get("jti")
        return event.get("user_id") == self.user_id and (jti is None or jti == self.jti)

    def wants(self, audience: str, user_id: int | None) -> bool:
        if audience == "user":
            return user_id == self.user_id
        return audience == ("admins" if self.is_admin else "users")

    def offer(self, event: dict[str, Any] | None) -> None:
        try:
            self.inbox.put_nowait(event)
        except queue.Full:  # a stuck client: end its stream; it resumes from the table
            self.close()

    def close(self, reason: str | None = None) -> None:
        if reason is not None:
            self.reason = reason
        while True:
            try:
                self.inbox.put_nowait(None)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self.inbox.get_nowait()


class Broker:
    """This process's streams, fed by one poller thread reading the event table."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._subs: set[Subscription] = set()
        self.cursor = 0
        self._cycles = 0
        self._poller: threading.Thread | None = None
        self._listener: threading.Thread | None = None
        self._pid: int | None = None
        self._ready = threading.Event()
        self._poke = threading.Event()
        self._stopping = threading.Event()
        self._outage = Outage("event poller")

    def subscribe(
        self, user_id: int, *, is_admin: bool, jti: str | None = None
    ) -> tuple[Subscription, int]:
        """Register a stream; returns it and the last event id it will not get live (its
        backlog, if any, comes from the table up to there)."""
        sub = Subscription(user_id=user_id, is_admin=is_admin, jti=jti)
        deadline = time.monotonic() + READY_TIMEOUT
        with self._lock:
            while True:
                if self._stopping.is_set():  # never hold a shutting-down worker for a stream
                    raise ServiceUnavailable("this worker is shutting down; retry shortly")
                poller = self._ensure_threads()
                # the first stream of an idle process waits for a poll that starts after it
                # asked (the cursor may be a poll old, or from before a database reset)
                target = self._cycles + (0 if self._subs else 2)
                self._poke.set()
                ok = self._lock.wait_for(
                    lambda p=poller, t=target: (
                        self._stopping.is_set()
                        or self._poller is not p
                        or (self._cycles >= t and self._ready.is_set())
                    ),
                    timeout=max(0.0, deadline - time.monotonic()),
                )
                if ok and self._poller is poller and not self._stopping.is_set():
                    self._subs.add(sub)
                    return sub, self.cursor
                if time.monotonic() >= deadline:
                    raise ServiceUnavailable("the event stream is not ready; retry shortly")

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._subs)

    def poke(self) -> None:
        self._poke.set()

    def close_all(self) -> None:
        """Ask every stream to end (shutdown): clients resume elsewhere."""
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.close()

    def shutdown(self) -> None:
        self._stopping.set()
        self._poke.set()
        with self._lock:
            self._lock.notify_all()  # a stream still waiting to open gives up now
        self.close_all()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _ensure_threads(self) -> threading.Thread:
        """This process's poller (and Redis wake-up listener), started if needed; call with
        the lock held."""
        poller = self._poller
        if poller is not None and poller.is_alive() and self._pid == os.getpid():
            return poller
        self._ready.clear()
        self._pid = os.getpid()
        poller = threading.Thread(target=self._poll, name="tw-events", daemon=True)
        self._poller = poller
        poller.start()
        if get_settings().redis_url:
            threading.Thread(
                target=self._listen, args=(poller,), name="tw-events-wake", daemon=True
            ).start()
        return poller

    def _poll(self) -> None:
        """Poll until shutdown, or until no stream has been open for `IDLE_EXIT` seconds
        (the next stream starts a new poller)."""
        backoff = 0.5
        idle_since = time.monotonic()
        while not self._stopping.is_set():
            self._poke.clear()
            with self._lock:
                if self._subs:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > IDLE_EXIT and self._ready.is_set():
                    self._ready.clear()
                    self._poller = None
                    self._lock.notify_all()
                    return
            if not db.initialised():  # the process is shutting its database down
                with self._lock:
                    self._ready.clear()
                    self._poller = None
                    self._lock.notify_all()
                return
            try:
                self.poll_once()
            except Exception as exc:  # the database is away: streams stay, we retry
                self._outage.failed(exc)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self._outage.recovered()
            with self._lock:
                self._cycles += 1
                self._ready.set()
                self._lock.notify_all()
            backoff = 0.5
            self._poke.wait(max(0.02, get_settings().events_poll_seconds))

    def poll_once(self) -> None:
        """Number what is pending, then hand every new event to the streams that want it."""
        with session_scope() as session:
            pending = event_log.has_pending(session)
        if pending:
            with session_scope() as session:
                numbered = event_log.sequence_pending(session)
            if numbered:
                wake_others()
        with session_scope() as session:
            high = event_log.head(session)
            with self._lock:
                if not self._subs or high < self.cursor:  # nobody to feed, or a new database
                    self.cursor = high
                    return
                after = self.cursor
            while after < high:
                rows = event_log.read_after(session, after, high, READ_BATCH)
                if not rows:
                    break
                batch = [(r.audience, r.user_id, client_event(r)) for r in rows]
                after = int(rows[-1].seq or after)
                with self._lock:
                    for audience, user_id, event in batch:
                        for sub in list(self._subs):
                            if event["type"] == STREAM_END:
                                if sub.ends_with(event):
                                    self._subs.discard(sub)
                                    sub.close(event["data"].get("reason") or "token_revoked")
                            elif sub.wants(audience, user_id):
                                sub.offer(event)
                    self.cursor = after

    def _listen(self, poller: threading.Thread) -> None:
        """Redis wake-ups: a message on the channel means "poll now". Optional by design."""
        while not self._stopping.is_set() and self._poller is poller:
            client = get_redis()
            if client is None:
                self._stopping.wait(1.0)
                continue
            pubsub = None
            try:
                pubsub = client.pubsub()
                pubsub.subscribe(_wake_channel())
                while not self._stopping.is_set() and self._poller is poller:
                    if pubsub.get_message(timeout=1.0):
                        self._poke.set()
            except Exception:  # noqa: BLE001 (the poller goes on polling)
                self._stopping.wait(1.0)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        pubsub.close()


def wake_others() -> None:
    """Other workers' pollers read the events just numbered here without waiting."""
    client = get_redis()
    if client is None:
        return
    with contextlib.suppress(Exception):
        client.publish(_wake_channel(), "1")


def sse_format(event: dict[str, Any]) -> str:
    """One event in text/event-stream framing."""
    data = json.dumps(event, default=str, separators=(",", ":"))
    return f"id: {event['id']}\nevent: {event['type']}\ndata: {data}\n\n"


broker = Broker()
