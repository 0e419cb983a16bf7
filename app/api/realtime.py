"""`GET /api/realtime/events`: the signed-in user's events as Server-Sent Events.

Browsers' `EventSource` cannot send headers, so the access token is also accepted from the
dashboard's session cookie or as the `token` query parameter (redacted from access logs).
Each stream holds one gunicorn thread, so a worker serves at most `SSE_MAX_CONNECTIONS`
streams (default: its threads minus two) and answers 503 beyond that: ordinary requests
always keep threads. One user holds at most `SSE_MAX_STREAMS_PER_USER` streams across every
worker (429 beyond). A stream ends when its token expires, is revoked (logout), its user is
disabled (re-checked every `SSE_RECHECK_SECONDS`) or the worker shuts down; the client
reconnects with `Last-Event-ID`, to any worker, and gets what it missed from the event table
or a `resync` event saying why it cannot.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Flask, Response, request
from flask_jwt_extended import get_jwt, verify_jwt_in_request
from pydantic import Field

from app.api.jwt import current_user
from app.api.validation import RequestModel, query
from app.errors import AppError, ServiceUnavailable, ValidationFailed
from app.observability.metrics import SSE_REJECTED, SSE_STREAMS
from app.services import events
from config import get_settings

bp = Blueprint("realtime", __name__)

RETRY_MS = 3000
TOKEN_PARAM = "token"


class EventsQuery(RequestModel):
    """Query of the event stream (for clients that cannot set headers)."""

    token: str | None = Field(
        default=None,
        description="Access token, for EventSource clients that cannot send Authorization.",
    )
    last_event_id: int | None = Field(
        default=None, ge=0, description="Resume after this event id (as the Last-Event-ID header)."
    )


class StreamSlots:
    """A per-worker cap on open streams, so streams never take every thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.open = 0

    def acquire(self, limit: int) -> bool:
        with self._lock:
            if self.open >= limit:
                return False
            self.open += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.open = max(0, self.open - 1)


slots = StreamSlots()


def heartbeat_seconds() -> float:
    return max(0.05, get_settings().sse_heartbeat_seconds)


def max_connections() -> int:
    """SSE_MAX_CONNECTIONS, by default the worker's threads minus two."""
    settings = get_settings()
    if settings.sse_max_connections is None:
        return max(1, settings.web_threads - 2)
    return max(1, settings.sse_max_connections)


def _last_event_id(from_query: int | None) -> int | None:
    header = request.headers.get("Last-Event-ID")
    if header is None or not header.strip():
        return from_query
    try:
        value = int(header.strip())
    except ValueError:
        raise ValidationFailed(
            "Last-Event-ID must be an integer event id",
            details=[{"loc": ["header", "Last-Event-ID"], "msg": "not an integer"}],
        ) from None
    if value < 0:
        raise ValidationFailed("Last-Event-ID must not be negative")
    return value


@bp.get("/api/realtime/events")
@query(EventsQuery)
def stream_events(query: EventsQuery) -> Response:
    """Stream the user's trades, orders, bot status changes, alerts and job progress (SSE)."""
    verify_jwt_in_request(locations=["headers", "cookies", "query_string"])
    user = current_user()
    user_id, is_admin = int(user.id), user.role == "admin"
    claims = dict(get_jwt())
    expires_at = float(claims.get("exp") or time.time() + 900)
    after_id = _last_event_id(query.last_event_id)

    if events.broker.stopping:
        raise ServiceUnavailable("this worker is shutting down; reconnect")
    if not slots.acquire(max_connections()):
        SSE_REJECTED.inc()
        raise AppError(
            "too many open event streams on this worker; retry shortly",
            code="too_many_streams",
            status=503,
            headers={"Retry-After": "5"},
        )
    slot_id: int | None = None
    sub: events.Subscription | None = None
    try:
        slot_id = events.open_stream_slot(user_id)
        if slot_id is None:
            SSE_REJECTED.inc()
            raise AppError(
                f"you already have {get_settings().sse_max_streams_per_user} open event "
                "streams; close one (or wait for it to time out) and retry",
                code="too_many_streams_for_user",
                status=429,
                headers={"Retry-After": "10"},
            )
        sub, live_from = events.broker.subscribe(
            user_id, is_admin=is_admin, jti=str(claims.get("jti") or "")
        )
        resume = events.Resume([])
        if after_id is not None:
            resume = events.resume_after(user_id, is_admin, after_id, live_from)
    except Exception:
        if sub is not None:
            events.broker.unsubscribe(sub)
        if slot_id is not None:
            events.close_stream_slot(slot_id)
        slots.release()
        raise

    start_id = live_from if resume.resync else max(after_id or 0, live_from)
    body = EventStream(sub, slot_id, claims, resume, start_id, after_id, expires_at)
    return Response(
        body,
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


stream_events._tw_auth = "user"  # type: ignore[attr-defined]
stream_events._tw_openapi = {  # type: ignore[attr-defined]
    "description": (
        "Server-Sent Events. Send the access token as `Authorization: Bearer` or, for "
        "browser EventSource clients, as the `token` query parameter. Resume with the "
        "`Last-Event-ID` header (or `last_event_id`). The stream opens with a comment naming "
        "the worker (`: connected worker=<pid>`), sends `: heartbeat` comments while quiet, "
        "and ends when the token expires or is revoked, or the account is disabled. Each event: "
        "`id` (the same event on every worker), `event` (trade, order, bot_status, alert, "
        "job_progress, or resync when a resume cannot be served exactly: `data.reason` is "
        "history_pruned, too_far_behind or unknown_event_id; reload state, then carry on) "
        "and `data` (JSON: id, type, user_id, ts, data). 429 "
        "`too_many_streams_for_user` beyond the per-user cap, 503 `too_many_streams` beyond "
        "the worker's."
    ),
    "security": [{"bearerAuth": []}, {"tokenQuery": []}],
    "parameters": [
        {
            "name": "Last-Event-ID",
            "in": "header",
            "required": False,
            "schema": {"type": "integer", "minimum": 0},
        }
    ],
    "responses": {
        "200": {
            "description": "An event stream",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        "429": {"$ref": "#/components/responses/Error"},
        "503": {"$ref": "#/components/responses/Error"},
    },
}


class EventStream:
    """The response body: a generator plus a `close()` that frees the slots and the
    subscription even when the server never starts iterating (HEAD, early disconnect)."""

    def __init__(
        self,
        sub: events.Subscription,
        slot_id: int,
        claims: dict[str, Any],
        resume: events.Resume,
        start_id: int,
        after_id: int | None,
        expires_at: float,
    ) -> None:
        self._sub = sub
        self._slot_id = slot_id
        self._claims = claims
        self._released = False
        self._lock = threading.Lock()
        self._gen = self._run(resume, start_id, after_id, expires_at)
        SSE_STREAMS.inc()

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()
        self._release()

    def _release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        events.broker.unsubscribe(self._sub)
        events.close_stream_slot(self._slot_id)
        slots.release()
        SSE_STREAMS.dec()

    def _run(
        self, resume: events.Resume, start_id: int, after_id: int | None, expires_at: float
    ) -> Iterator[str]:
        """The backlog (or a resync), then live events; ends when the token expires, is
        revoked, or its user is disabled (checked every `SSE_RECHECK_SECONDS`)."""
        recheck = max(0.05, get_settings().sse_recheck_seconds)
        heartbeat = min(heartbeat_seconds(), recheck)  # a departed client frees its slot soon
        try:
            yield f"retry: {RETRY_MS}\n: connected worker={os.getpid()}\n\n"
            if resume.resync:
                yield events.sse_format(
                    {
                        "id": start_id,
                        "type": "resync",
                        "user_id": self._sub.user_id,
                        "data": {"reason": resume.resync, "last_event_id": after_id},
                    }
                )
            for event in resume.backlog:
                yield events.sse_format(event)
            last_id = start_id
            now = time.monotonic()
            next_check, next_beat = now + recheck, now + heartbeat
            while not events.broker.stopping:
                remaining = expires_at - time.time()
                if remaining <= 0:
                    break
                now = time.monotonic()
                if now >= next_check:
                    reason = events.stream_still_allowed(self._claims, self._slot_id)
                    if reason is not None:
                        yield f": closed {reason}\n\n"
                        break
                    next_check = now + recheck
                if now >= next_beat:
                    yield ": heartbeat\n\n"
                    next_beat = now + heartbeat
                wait = min(next_check, next_beat) - now
                try:
                    event = self._sub.inbox.get(timeout=max(0.01, min(wait, remaining)))
                except queue.Empty:
                    continue
                if event is None:
                    if self._sub.reason:
                        yield f": closed {self._sub.reason}\n\n"
                    break
                if int(event["id"]) <= last_id:
                    continue
                last_id = int(event["id"])
                next_beat = time.monotonic() + heartbeat
                yield events.sse_format(event)
        finally:
            self._release()


def init_app(app: Flask) -> None:
    app.config["JWT_QUERY_STRING_NAME"] = TOKEN_PARAM
    app.register_blueprint(bp)
