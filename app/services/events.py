"""Realtime events for dashboards: publish once, every worker's SSE subscribers see it.

`publish_event(user_id, type, data)` numbers the event, appends it to a capped per-user history
(for `Last-Event-ID` resumes) and publishes it on a Redis channel, all in one Lua call so ids,
history order and delivery order agree. Each worker runs one listener thread (started on the
first subscription) that fans the channel out to its connections' queues. Without Redis the
same happens in-process. Events with `user_id=None` are system events, delivered to admins.

Publishing never raises: a lost event is logged and counted, never a failed trade.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import queue
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.observability.metrics import EVENTS_PUBLISHED
from app.store.redis import get_redis, redis_key
from config import get_settings

log = logging.getLogger("tradewind.events")

EVENT_TYPES = frozenset({"trade", "order", "bot_status", "alert", "job_progress"})
SYSTEM = "system"
HISTORY_TTL_SECONDS = 86_400
QUEUE_SIZE = 1_000
LISTENER_READY_TIMEOUT = 5.0

# KEYS: sequence, history list, channel. ARGV: event JSON without id, history size, ttl.
_PUBLISH_LUA = """
local id = redis.call('INCR', KEYS[1])
local msg = '{"id":' .. id .. ',' .. string.sub(ARGV[1], 2)
redis.call('LPUSH', KEYS[2], msg)
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
redis.call('PUBLISH', KEYS[3], msg)
return id
"""


def history_size() -> int:
    return max(1, get_settings().sse_history_size)


def _audience(user_id: int | None) -> str:
    return SYSTEM if user_id is None else str(int(user_id))


def _keys() -> tuple[str, str]:
    return redis_key("events", "seq"), redis_key("events", "channel")


def _history_key(audience: str) -> str:
    return redis_key("events", "history", audience)


def publish_event(user_id: int | None, event_type: str, data: dict[str, Any]) -> None:
    """Send an event to the user's live streams (and history). Never raises."""
    try:
        body = {
            "type": str(event_type),
            "user_id": None if user_id is None else int(user_id),
            "ts": datetime.now(UTC).isoformat(),
            "data": data or {},
        }
        payload = json.dumps(body, default=str, separators=(",", ":"))
    except Exception:
        log.warning("event %r for user %s not serialisable; dropped", event_type, user_id)
        return
    try:
        outcome = "redis" if _publish_redis(body, payload) else "local"
        if outcome == "local":
            _local.publish(json.loads(payload))
        EVENTS_PUBLISHED.labels(outcome).inc()
    except Exception as exc:  # Redis down or anything else: degrade, never fail the caller
        log.warning("event %r for user %s dropped: %s", event_type, user_id, type(exc).__name__)
        with contextlib.suppress(Exception):
            EVENTS_PUBLISHED.labels("failed").inc()


def _publish_redis(body: dict[str, Any], payload: str) -> bool:
    client = get_redis()
    if client is None:
        return False
    seq, channel = _keys()
    history = _history_key(_audience(body["user_id"]))
    client.eval(
        _PUBLISH_LUA, 3, seq, history, channel, payload, history_size(), HISTORY_TTL_SECONDS
    )
    return True


def recent_events(
    user_id: int, *, is_admin: bool, after_id: int
) -> tuple[list[dict[str, Any]], bool]:
    """Events newer than `after_id` still in the bounded history, oldest first, and whether
    that is all of them (False when a full history no longer reaches back to `after_id`)."""
    audiences = [_audience(user_id)] + ([SYSTEM] if is_admin else [])
    client = get_redis()
    size = history_size()
    events: list[dict[str, Any]] = []
    complete = True
    for audience in audiences:
        if client is None:
            kept = _local.history(audience)
        else:
            kept = []
            for raw in client.lrange(_history_key(audience), 0, -1):
                try:
                    kept.append(json.loads(raw))
                except ValueError:
                    continue
        ids = [int(e.get("id", 0)) for e in kept]
        if ids and len(ids) >= size and min(ids) > after_id + 1:
            complete = False
        events.extend(e for e, i in zip(kept, ids, strict=True) if i > after_id)
    return sorted(events, key=lambda e: int(e["id"])), complete


@dataclass(eq=False)
class Subscription:
    """One SSE connection's inbox. `None` in the queue means: close, the client reconnects."""

    user_id: int
    is_admin: bool
    inbox: queue.Queue[dict[str, Any] | None] = field(
        default_factory=lambda: queue.Queue(QUEUE_SIZE)
    )

    def wants(self, event: dict[str, Any]) -> bool:
        owner = event.get("user_id")
        return owner == self.user_id or (owner is None and self.is_admin)

    def offer(self, event: dict[str, Any] | None) -> None:
        try:
            self.inbox.put_nowait(event)
        except queue.Full:  # a stuck client: drop it; it resumes from history
            self.close()

    def close(self) -> None:
        while True:
            try:
                self.inbox.put_nowait(None)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self.inbox.get_nowait()


class LocalBus:
    """In-process numbering, history and fan-out: the no-Redis mode (and tests' baseline)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._history: dict[str, deque[dict[str, Any]]] = {}

    def publish(self, body: dict[str, Any]) -> None:
        with self._lock:
            event = {"id": next(self._ids), **body}
            audience = _audience(event["user_id"])
            size = history_size()
            kept = self._history.get(audience)
            if kept is None or kept.maxlen != size:
                kept = self._history[audience] = deque(kept or (), maxlen=size)
            kept.appendleft(event)
            broker.deliver(event)  # under the lock: delivery order is id order

    def history(self, audience: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._history.get(audience, ()))


class Broker:
    """This process's subscriptions, fed by one Redis listener thread (or by `LocalBus`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: set[Subscription] = set()
        self._listener: threading.Thread | None = None
        self._listener_pid: int | None = None
        self._ready = threading.Event()
        self._stopping = threading.Event()

    def subscribe(self, user_id: int, *, is_admin: bool) -> Subscription:
        """Register a connection; with Redis, returns once the listener is subscribed."""
        sub = Subscription(user_id=user_id, is_admin=is_admin)
        with self._lock:
            self._subs.add(sub)
        if _redis_configured():
            self._ensure_listener()
            self._ready.wait(LISTENER_READY_TIMEOUT)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._subs)

    def deliver(self, event: dict[str, Any]) -> None:
        with self._lock:
            targets = [s for s in self._subs if s.wants(event)]
        for sub in targets:
            sub.offer(event)

    def close_all(self) -> None:
        """Ask every stream to end (shutdown, or a gap in delivery: clients resume)."""
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.close()

    def shutdown(self) -> None:
        self._stopping.set()
        self.close_all()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _ensure_listener(self) -> None:
        with self._lock:
            alive = self._listener is not None and self._listener.is_alive()
            if alive and self._listener_pid == os.getpid():
                return
            self._ready.clear()
            self._listener_pid = os.getpid()
            self._listener = threading.Thread(
                target=self._listen, name="tradewind-events", daemon=True
            )
            self._listener.start()

    def _listen(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            try:
                self._listen_once()
                backoff = 0.5
            except Exception as exc:
                self._ready.clear()
                log.warning("event listener lost Redis (%s); retrying", type(exc).__name__)
                self.close_all()  # streams end; clients resume from history
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 2.0)

    def _listen_once(self) -> None:
        client = get_redis()
        if client is None:
            self._stopping.wait(1.0)
            return
        _, channel = _keys()
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(channel)
            while not self._stopping.is_set():
                message = pubsub.get_message(timeout=1.0)
                if not message:
                    continue
                if message.get("type") == "subscribe":  # the server confirmed: nothing missed
                    self._ready.set()
                elif message.get("type") == "message":
                    self._dispatch(message["data"])
        finally:
            pubsub.close()

    def _dispatch(self, raw: bytes | str) -> None:
        try:
            event = json.loads(raw)
        except ValueError:
            return
        self.deliver(event)


def _redis_configured() -> bool:
    return bool(get_settings().redis_url)


def sse_format(event: dict[str, Any]) -> str:
    """One event in text/event-stream framing."""
    data = json.dumps(event, default=str, separators=(",", ":"))
    return f"id: {event['id']}\nevent: {event['type']}\ndata: {data}\n\n"


_local = LocalBus()
broker = Broker()
