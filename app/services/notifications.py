"""Notification channels (signed webhook, Telegram, Discord) and the delivery of the outbox.

Channels: a user adds one with the events it should get; its secrets (the webhook URL and
the signing key we generate, the Telegram bot token, the Discord webhook URL) are encrypted
like exchange keys and never shown again (the signing key once, on creation). Another user's
channel is 404. URLs pass the outbound guard (`services.outbound`): public addresses only,
HTTPS in production.

Delivery (`deliver_due`, run by every worker's scheduler): outbox rows are leased with the
shared claim primitives (`store.claims`, `SKIP LOCKED`), each lease counting one attempt; the
lease is renewed just before the request and the result is written fenced on (owner,
attempt), so a worker that lost its lease writes nothing. A worker that dies after sending
but before recording leaves the row to be sent again once its lease expires: delivery is at
least once, and every payload carries its delivery id (the outbox row id, the same on every
retry) so a receiver keeps exactly one. Failures are retried with exponential backoff up to
NOTIFICATION_MAX_ATTEMPTS; every try is in the channel's delivery log; after
NOTIFICATION_DISABLE_AFTER consecutive failures the channel is disabled and its owner alerted.

Webhook signature: ``X-Tradewind-Signature: sha256=<hex HMAC-SHA256(key, f"{ts}." + body)>``
with ``X-Tradewind-Timestamp: <ts>`` (unix seconds), ``X-Tradewind-Delivery: <id>``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import and_, delete, func, select, text, update
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound, ValidationFailed
from app.services.alerts import raise_alert
from app.services.notification_outbox import EVENT_KINDS
from app.services.outbound import HttpAnswer, OutboundRefused, check_url, post
from app.store import claims
from app.store.base import utcnow
from app.store.crypto import DecryptionFailed, decrypt_json, encrypt_json, rotate
from app.store.db import session_scope
from app.store.models.notifications import (
    NotificationAttempt,
    NotificationChannel,
    NotificationDelivery,
)
from app.store.paging import fetch_page
from config import get_settings

log = logging.getLogger("tradewind.notifications")

CHANNEL_KINDS = ("webhook", "telegram", "discord")
MAX_CHANNELS_PER_USER = 20
MAX_BACKOFF_SECONDS = 3600.0
SIGNATURE_HEADER = "X-Tradewind-Signature"
TIMESTAMP_HEADER = "X-Tradewind-Timestamp"
DELIVERY_HEADER = "X-Tradewind-Delivery"
_BOT_TOKEN = re.compile(r"^[0-9]{1,20}:[A-Za-z0-9_-]{10,100}$")
_CHAT_ID = re.compile(r"^(-?[0-9]{1,20}|@[A-Za-z0-9_]{5,64})$")


def _invalid(field: str, message: str, code: str = "validation_error") -> ValidationFailed:
    return ValidationFailed(message, code=code, details=[{"loc": ["body", field], "msg": message}])


# -- channels ------------------------------------------------------------------------------


def check_events(events: list[str]) -> list[str]:
    unknown = [e for e in events if e not in EVENT_KINDS]
    if unknown:
        raise _invalid(
            "events",
            f"unknown event kind(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(EVENT_KINDS)}",
            "unknown_event",
        )
    if not events:
        raise _invalid("events", "pick at least one event kind")
    return sorted(set(events), key=list(EVENT_KINDS).index)


def _checked_url(url: str | None, field: str = "url") -> str:
    if not url:
        raise _invalid(field, "a URL is required for this channel")
    try:
        return check_url(url)
    except OutboundRefused as exc:
        raise ValidationFailed(
            exc.message, code=exc.code, details=[{"loc": ["body", field], "msg": exc.message}]
        ) from None


def _shown(url: str) -> str:
    """Scheme and host only: paths of webhook URLs carry tokens."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…"


def _secrets_for(
    kind: str, url: str | None, bot_token: str | None, chat_id: str | None
) -> tuple[dict[str, Any], str, str | None]:
    """(secrets to encrypt, what the owner sees, the signing key to show once)."""
    if kind == "webhook":
        url = _checked_url(url)
        key = secrets.token_urlsafe(32)
        return {"url": url, "signing_key": key}, _shown(url), key
    if kind == "discord":
        url = _checked_url(url)
        if "/webhooks/" not in urlsplit(url).path:
            raise _invalid(
                "url", "a Discord webhook URL looks like https://discord.com/api/webhooks/..."
            )
        return {"url": url}, _shown(url), None
    if kind == "telegram":
        if not bot_token or not _BOT_TOKEN.match(bot_token):
            raise _invalid("bot_token", "a Telegram bot token looks like 123456:ABC-def...")
        if not chat_id or not _CHAT_ID.match(chat_id):
            raise _invalid("chat_id", "a chat id is a number (or @channelname)")
        return {"bot_token": bot_token, "chat_id": chat_id}, f"telegram chat {chat_id}", None
    raise _invalid("kind", f"unknown channel kind {kind!r}; one of {', '.join(CHANNEL_KINDS)}")


def create_channel(
    session: Session,
    user_id: int,
    *,
    kind: str,
    name: str,
    events: list[str],
    url: str | None = None,
    bot_token: str | None = None,
    chat_id: str | None = None,
) -> tuple[NotificationChannel, str | None]:
    """A new channel, and for a webhook the signing key (shown this once)."""
    events = check_events(events)
    stored, target, signing_key = _secrets_for(kind, url, bot_token, chat_id)
    count = session.scalar(select(func.count()).where(NotificationChannel.user_id == user_id))
    if (count or 0) >= MAX_CHANNELS_PER_USER:
        raise Conflict(f"at most {MAX_CHANNELS_PER_USER} channels per user", code="too_many")
    channel = NotificationChannel(
        user_id=user_id,
        kind=kind,
        name=name,
        target=target,
        events=events,
        ciphertext=encrypt_json(stored),
        enabled=True,
        consecutive_failures=0,
    )
    session.add(channel)
    session.flush()
    return channel, signing_key


def list_channels(session: Session, user_id: int) -> list[NotificationChannel]:
    return list(
        session.scalars(
            select(NotificationChannel)
            .where(NotificationChannel.user_id == user_id)
            .order_by(NotificationChannel.id)
        )
    )


def get_channel(session: Session, user_id: int, channel_id: int) -> NotificationChannel:
    """The owner's channel; another user's is 404, like a missing one."""
    channel = session.get(NotificationChannel, channel_id)
    if channel is None or channel.user_id != user_id:
        raise NotFound("notification channel not found")
    return channel


def update_channel(
    session: Session,
    user_id: int,
    channel_id: int,
    *,
    name: str | None = None,
    events: list[str] | None = None,
    enabled: bool | None = None,
) -> NotificationChannel:
    """Rename, re-pick events, or switch on/off (switching on clears the failure streak)."""
    channel = get_channel(session, user_id, channel_id)
    if name is not None:
        channel.name = name
    if events is not None:
        channel.events = check_events(events)
    if enabled is not None:
        channel.enabled = enabled
        if enabled:
            channel.consecutive_failures = 0
            channel.disabled_reason = None
    session.flush()
    return channel


def delete_channel(session: Session, user_id: int, channel_id: int) -> None:
    session.delete(get_channel(session, user_id, channel_id))
    session.flush()


def list_attempts(
    session: Session, user_id: int, channel_id: int, *, limit: int, offset: int
) -> tuple[list[NotificationAttempt], int]:
    """The channel's delivery log, newest first."""
    get_channel(session, user_id, channel_id)
    return fetch_page(
        session,
        NotificationAttempt,
        [NotificationAttempt.channel_id == channel_id],
        [NotificationAttempt.id.desc()],
        limit=limit,
        offset=offset,
    )


def reencrypt_channels(
    session: Session, *, after_id: int, limit: int = 200
) -> tuple[int, list[int], int | None]:
    """Key rotation: the next channels in id order re-encrypted under the newest key.
    Returns (re-encrypted, ids no key could open, the last id seen or None at the end)."""
    rows = list(
        session.scalars(
            select(NotificationChannel)
            .where(NotificationChannel.id > after_id)
            .order_by(NotificationChannel.id)
            .limit(limit)
        )
    )
    done, unreadable = 0, []
    for row in rows:
        try:
            row.ciphertext = rotate(row.ciphertext)
            done += 1
        except DecryptionFailed:
            unreadable.append(row.id)
    session.flush()
    return done, unreadable, rows[-1].id if rows else None


# -- sending -------------------------------------------------------------------------------


def sign(key: str, timestamp: int, body: bytes) -> str:
    """The webhook signature header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(key.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


@dataclass(frozen=True)
class Outgoing:
    url: str
    body: bytes
    headers: dict[str, str]


def build_request(
    kind: str, stored: dict[str, Any], delivery_id: int | str, event: str, payload: dict[str, Any]
) -> Outgoing:
    text = str(payload.get("text") or event)
    if kind == "webhook":
        body = json.dumps(
            {"id": delivery_id, "event": event, **payload}, separators=(",", ":"), default=str
        ).encode()
        ts = int(time.time())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(ts),
            SIGNATURE_HEADER: sign(stored["signing_key"], ts, body),
            DELIVERY_HEADER: str(delivery_id),
        }
        return Outgoing(stored["url"], body, headers)
    if kind == "telegram":
        base = get_settings().telegram_api_base.rstrip("/")
        body = json.dumps({"chat_id": stored["chat_id"], "text": text[:4096]}).encode()
        return Outgoing(
            f"{base}/bot{stored['bot_token']}/sendMessage",
            body,
            {"Content-Type": "application/json"},
        )
    if kind == "discord":
        body = json.dumps({"content": text[:2000]}).encode()
        return Outgoing(stored["url"], body, {"Content-Type": "application/json"})
    raise ValueError(f"unknown channel kind {kind!r}")


@dataclass(frozen=True)
class SendResult:
    ok: bool
    status: int | None
    error: str | None
    duration_ms: int


def _send(outgoing: Outgoing) -> SendResult:
    started = time.monotonic()
    answer: HttpAnswer | None = None
    error: str | None = None
    try:
        answer = post(outgoing.url, outgoing.body, outgoing.headers)
    except OutboundRefused as exc:
        error = exc.message
    except (OSError, ValueError) as exc:  # network, timeout, TLS, a malformed answer
        error = f"{type(exc).__name__}: {exc}"[:300]
    took = int((time.monotonic() - started) * 1000)
    if answer is None:
        return SendResult(False, None, error, took)
    if answer.ok:
        return SendResult(True, answer.status, None, took)
    snippet = answer.body[:200].decode("utf-8", "replace")
    return SendResult(False, answer.status, f"HTTP {answer.status}: {snippet}", took)


def send_test(session: Session, user_id: int, channel_id: int) -> NotificationAttempt:
    """Send a test message now (even to a disabled channel) and log it; not retried."""
    channel = get_channel(session, user_id, channel_id)
    payload = {
        "text": f"Tradewind test message for channel {channel.name!r}",
        "data": {"channel_id": channel.id},
        "created_at": utcnow().isoformat(),
    }
    outgoing = build_request(
        channel.kind, decrypt_json(channel.ciphertext), f"test-{secrets.token_hex(6)}", "test",
        payload,
    )  # fmt: skip
    result = _send(outgoing)
    attempt = NotificationAttempt(
        channel_id=channel.id,
        delivery_id=None,
        event="test",
        attempt=1,
        ok=result.ok,
        status=result.status,
        error=result.error,
        duration_ms=result.duration_ms,
        created_at=utcnow(),
    )
    session.add(attempt)
    session.flush()
    return attempt


# -- the outbox ----------------------------------------------------------------------------


def backoff_seconds(attempt: int) -> float:
    base = get_settings().notification_retry_seconds
    return float(min(MAX_BACKOFF_SECONDS, base * 2 ** max(0, attempt - 1)))


@dataclass(frozen=True)
class Claimed:
    """A delivery this worker leased, with what sending it needs."""

    id: int
    attempt: int
    event: str
    payload: dict[str, Any]
    channel_id: int
    kind: str
    ciphertext: str
    enabled: bool
    lease_until: datetime


def claim_due(
    owner: str, now: datetime, limit: int, due_by: datetime | None = None
) -> list[Claimed]:
    """Lease deliveries due by ``due_by`` (default now), one more attempt each, and read them
    with their channels; committed before anything is sent."""
    settings = get_settings()
    with session_scope() as session:
        ids = claims.claim(
            session,
            NotificationDelivery,
            owner=owner,
            now=now,
            lease_seconds=settings.notification_lease_seconds,
            limit=limit,
            where=and_(
                NotificationDelivery.state == "pending",
                NotificationDelivery.next_attempt_at <= (due_by or now),
            ),
            order_by=NotificationDelivery.id,
            values={"attempts": NotificationDelivery.attempts + 1},
        )
        if not ids:
            return []
        d, c = NotificationDelivery, NotificationChannel
        rows = session.execute(
            select(
                d.id,
                d.attempts,
                d.event,
                d.payload,
                c.id,
                c.kind,
                c.ciphertext,
                c.enabled,
                d.lease_until,
            )  # fmt: skip
            .join(c, c.id == d.channel_id)
            .where(d.id.in_(ids))
            .order_by(d.id)
        )
        return [Claimed(*row) for row in rows]


def _fenced(delivery_id: int, owner: str, attempt: int) -> Any:
    return and_(
        NotificationDelivery.id == delivery_id,
        NotificationDelivery.lease_owner == owner,
        NotificationDelivery.attempts == attempt,
    )


def _still_ours(claimed: Claimed, owner: str) -> bool:
    """True when the lease outlasts one more request; renewed (fenced) when it might not."""
    settings = get_settings()
    margin = timedelta(seconds=settings.outbound_timeout_seconds + 2)
    if utcnow() + margin < claimed.lease_until:
        return True
    with session_scope() as session:
        renewed = session.execute(
            update(NotificationDelivery)
            .where(_fenced(claimed.id, owner, claimed.attempt))
            .values(lease_until=utcnow() + timedelta(seconds=settings.notification_lease_seconds)),
            execution_options={"synchronize_session": False},
        )
        return renewed.rowcount == 1  # type: ignore[attr-defined]


def _drop(claimed: Claimed, owner: str) -> None:
    """The channel was disabled: the delivery will not be sent."""
    with session_scope() as session:
        session.execute(
            update(NotificationDelivery)
            .where(_fenced(claimed.id, owner, claimed.attempt))
            .values(
                state="dropped", lease_owner=None, lease_until=None, last_error="channel disabled"
            ),  # fmt: skip
            execution_options={"synchronize_session": False},
        )


def _record(claimed: Claimed, owner: str, result: SendResult) -> bool:
    """The attempt's outcome, fenced on our lease; the channel's failure streak. True when
    this failure disabled the channel."""
    settings = get_settings()
    now = utcnow()
    attempt = claimed.attempt
    if result.ok:
        values: dict[str, Any] = {"state": "sent", "sent_at": now, "last_error": None}
    elif attempt >= settings.notification_max_attempts:
        values = {"state": "failed", "last_error": result.error}
    else:
        values = {
            "state": "pending",
            "last_error": result.error,
            "next_attempt_at": now + timedelta(seconds=backoff_seconds(attempt)),
        }
    with session_scope() as session:
        if session.get_bind().dialect.name == "postgresql":
            # losing this mark in a database crash only sends the notification again, which
            # receivers dedupe by id; not waiting for the WAL flush halves the cost of a send
            session.execute(text("SET LOCAL synchronous_commit = off"))
        moved = session.execute(
            update(NotificationDelivery)
            .where(_fenced(claimed.id, owner, attempt))
            .values(lease_owner=None, lease_until=None, **values),
            execution_options={"synchronize_session": False},
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            log.warning("notification %s: lease lost while sending; outcome dropped", claimed.id)
        session.add(
            NotificationAttempt(
                channel_id=claimed.channel_id,
                delivery_id=claimed.id,
                event=claimed.event,
                attempt=attempt,
                ok=result.ok,
                status=result.status,
                error=result.error,
                duration_ms=result.duration_ms,
                created_at=now,
            )
        )
        return _count_failure(
            session, claimed.channel_id, result, settings.notification_disable_after
        )


def _count_failure(session: Session, channel_id: int, result: SendResult, limit: int) -> bool:
    table = NotificationChannel
    if result.ok:
        session.execute(
            update(table)
            .where(table.id == channel_id, table.consecutive_failures != 0)
            .values(consecutive_failures=0),
            execution_options={"synchronize_session": False},
        )
        return False
    streak = session.scalar(
        update(table)
        .where(table.id == channel_id)
        .values(consecutive_failures=table.consecutive_failures + 1)
        .returning(table.consecutive_failures),
        execution_options={"synchronize_session": False},
    )
    if streak is None or streak < limit:
        return False
    disabled = session.execute(
        update(table)
        .where(table.id == channel_id, table.enabled.is_(True))
        .values(
            enabled=False,
            disabled_reason=f"{streak} failed deliveries in a row; last: {result.error}"[:500],
        )  # fmt: skip
        .returning(table.user_id, table.name),
        execution_options={"synchronize_session": False},
    ).first()
    if disabled is not None:
        user_id, name = disabled
        raise_alert(
            session,
            user_id=user_id,
            severity="warning",
            code="notification_channel_disabled",
            message=f"notification channel {name!r} was disabled after {streak} failed "
            f"deliveries in a row (last: {result.error}); fix it and enable it again",
        )
    return disabled is not None


def deliver_due(owner: str, *, limit: int | None = None, budget_seconds: float = 5.0) -> int:
    """Claim and send notifications due when the call began, batch after batch, until none
    is left or the time budget is spent; how many were sent successfully. (A retry due
    later, even a moment later, waits for the next call.)"""
    limit = limit or get_settings().notification_batch_size
    started, deadline = utcnow(), time.monotonic() + budget_seconds
    sent = 0
    while True:
        batch = claim_due(owner, utcnow(), limit, due_by=started)
        opened: dict[int, dict[str, Any]] = {}
        disabled: set[int] = set()
        for claimed in batch:
            if not claimed.enabled or claimed.channel_id in disabled:
                _drop(claimed, owner)
                continue
            if not _still_ours(claimed, owner):
                continue
            if claimed.channel_id not in opened:
                try:
                    opened[claimed.channel_id] = decrypt_json(claimed.ciphertext)
                except DecryptionFailed as exc:
                    opened[claimed.channel_id] = {"unreadable": exc.message}
            stored = opened[claimed.channel_id]
            if "unreadable" in stored:
                result = SendResult(False, None, stored["unreadable"], 0)
            else:
                outgoing = build_request(
                    claimed.kind, stored, claimed.id, claimed.event, claimed.payload
                )
                result = _send(outgoing)
            if _record(claimed, owner, result):
                disabled.add(claimed.channel_id)
            sent += result.ok
        if len(batch) < limit or time.monotonic() >= deadline:
            return sent


def prune_notifications(now: datetime, *, batch: int = 5000, max_batches: int = 20) -> int:
    """Delete delivery-log entries and finished outbox rows (sent, failed, dropped) older
    than NOTIFICATION_RETENTION_DAYS, in bounded batches; pending rows are never touched."""
    cutoff = now - timedelta(days=get_settings().notification_retention_days)
    removed = 0
    for model, where in (
        (NotificationAttempt, NotificationAttempt.created_at < cutoff),
        (
            NotificationDelivery,
            and_(NotificationDelivery.created_at < cutoff, NotificationDelivery.state != "pending"),
        ),
    ):
        for _ in range(max_batches):
            with session_scope() as session:
                ids = select(model.id).where(where).limit(batch).scalar_subquery()
                n = session.execute(
                    delete(model).where(model.id.in_(ids)),
                    execution_options={"synchronize_session": False},
                ).rowcount  # type: ignore[attr-defined]
            removed += int(n)
            if n < batch:
                break
    return removed
