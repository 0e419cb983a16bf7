"""`GET /api/realtime/events`: the signed-in user's events as Server-Sent Events.

Browsers' `EventSource` cannot send headers, so the access token is also accepted as the
`token` query parameter (redacted from access logs). Each stream holds one gunicorn thread,
so a worker serves at most `SSE_MAX_CONNECTIONS` streams (default: its threads minus two) and
answers 503 beyond that: ordinary requests always keep threads. A stream ends when its token
expires or the worker shuts down; the client reconnects with `Last-Event-ID` and gets what it
missed from the bounded history.
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
    verify_jwt_in_request(locations=["headers", "query_string"])
    user = current_user()
    user_id, is_admin = int(user.id), user.role == "admin"
    expires_at = float(get_jwt().get("exp") or time.time() + 900)
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
    sub: events.Subscription | None = None
    try:
        sub = events.broker.subscribe(user_id, is_admin=is_admin)
        backlog: list[dict[str, Any]] = []
        complete = True
        if after_id is not None:
            backlog, complete = events.recent_events(user_id, is_admin=is_admin, after_id=after_id)
    except Exception:
        if sub is not None:
            events.broker.unsubscribe(sub)
        slots.release()
        raise

    body = EventStream(sub, backlog, complete, after_id or 0, expires_at, heartbeat_seconds())
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
        "and ends when the token expires. Each event: `id`, `event` (trade, order, "
        "bot_status, alert, job_progress, or resync when history was truncated) and `data` "
        "(JSON: id, type, user_id, ts, data)."
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
        "503": {"$ref": "#/components/responses/Error"},
    },
}


class EventStream:
    """The response body: a generator plus a `close()` that frees the slot and the
    subscription even when the server never starts iterating (HEAD, early disconnect)."""

    def __init__(
        self,
        sub: events.Subscription,
        backlog: list[dict[str, Any]],
        complete: bool,
        last_id: int,
        expires_at: float,
        heartbeat: float,
    ) -> None:
        self._sub = sub
        self._released = False
        self._lock = threading.Lock()
        self._gen = self._run(backlog, complete, last_id, expires_at, heartbeat)
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
        slots.release()
        SSE_STREAMS.dec()

    def _run(
        self,
        backlog: list[dict[str, Any]],
        complete: bool,
        last_id: int,
        expires_at: float,
        heartbeat: float,
    ) -> Iterator[str]:
        try:
            yield f"retry: {RETRY_MS}\n: connected worker={os.getpid()}\n\n"
            if not complete:
                yield events.sse_format(
                    {"id": last_id, "type": "resync", "data": {"reason": "history_truncated"}}
                )
            for event in backlog:
                last_id = max(last_id, int(event["id"]))
                yield events.sse_format(event)
            while not events.broker.stopping:
                remaining = expires_at - time.time()
                if remaining <= 0:
                    break
                try:
                    event = self._sub.inbox.get(timeout=min(heartbeat, remaining))
                except queue.Empty:
                    yield ": heartbeat\n\n"
                    continue
                if event is None:
                    break
                if int(event["id"]) <= last_id:
                    continue
                last_id = int(event["id"])
                yield events.sse_format(event)
        finally:
            self._release()


def init_app(app: Flask) -> None:
    app.config["JWT_QUERY_STRING_NAME"] = TOKEN_PARAM
    app.register_blueprint(bp)
