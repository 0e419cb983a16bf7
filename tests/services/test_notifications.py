"""Notification channels against local stand-ins for Telegram, Discord and a webhook receiver
that checks signatures: events become outbox rows in their own transaction, each (event,
channel) is sent once, failures are retried with backoff and logged, a failing channel is
disabled with an alert to its owner, secrets never come back, bad input is a 422."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from app.services.emergency import emergency_resume, emergency_stop
from app.services.events import record_event
from app.services.notifications import deliver_due
from app.store.base import utcnow
from app.store.db import session_scope
from app.store.models import Bot
from app.store.models.ledger import Order
from app.store.models.notifications import NotificationDelivery
from app.store.models.safety import Alert
from config import get_settings, use_settings
from tests.support.notify_servers import StandIn

BOT_TOKEN = "123456:AAE-stand-in-token_abcdefghij"


@pytest.fixture
def stand_in(app: Any) -> Iterator[StandIn]:
    previous = get_settings()
    with StandIn() as server:
        use_settings(
            previous.model_copy(
                update={
                    "outbound_allow_private": True,  # the stand-ins live on 127.0.0.1
                    "telegram_api_base": server.url,
                    "notification_retry_seconds": 0.0,
                    "notification_disable_after": 4,
                    "notification_max_attempts": 6,
                }
            )
        )
        yield server
    use_settings(previous)


def _channel(client: Any, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    r = client.post("/api/notifications/channels", json=body, headers=headers)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def _channels(client: Any, headers: dict[str, str], server: StandIn, events: list[str]) -> dict:
    tg = _channel(client, headers, kind="telegram", name="phone", events=events,
                  bot_token=BOT_TOKEN, chat_id="-100200300")  # fmt: skip
    dc = _channel(client, headers, kind="discord", name="team", events=events,
                  url=f"{server.url}/api/webhooks/42/discord-secret-token")  # fmt: skip
    return {"telegram": tg, "discord": dc}


def _webhook(client: Any, headers: dict[str, str], server: StandIn, name: str, **kw: Any) -> dict:
    """A webhook channel at the receiver `name`, whose key the receiver learns from the
    one answer that shows it."""
    body = {"kind": "webhook", "name": name, "events": ["trade_closed"], **kw}
    created = _channel(client, headers, url=f"{server.url}/hook/{name}", **body)
    server.webhook(name, created["signing_key"])
    return created


def _bot_with_exit_order(user_id: int) -> tuple[int, int]:
    with session_scope() as s:
        bot = Bot(user_id=user_id, name="trend", symbol="ETH/BTC", timeframe="5m",
                  strategy="sma_crossover", capital=Decimal("1"))  # fmt: skip
        s.add(bot)
        s.flush()
        order = Order(bot_id=bot.id, symbol="ETH/BTC", side="sell", type="market",
                      amount=Decimal("0.5"), reserved=Decimal(0), client_order_id="tw-exit-1",
                      fill_from=utcnow(), reason="stop_loss")  # fmt: skip
        s.add(order)
        s.flush()
        return bot.id, order.id


def _trade_closed(user_id: int, bot_id: int, order_id: int) -> None:
    """The event a tick records for a closing fill, in a transaction like the tick's."""
    with session_scope() as s:
        record_event(s, user_id, "trade", {
            "bot_id": bot_id, "order_id": order_id, "side": "sell", "amount": "0.5",
            "price": "0.0521", "fee": "0.00002", "closed_trade_pnl": "0.00125",
        })  # fmt: skip


def _outbox() -> list[NotificationDelivery]:
    with session_scope() as s:
        rows = list(s.scalars(select(NotificationDelivery).order_by(NotificationDelivery.id)))
        s.expunge_all()
        return rows


def test_each_channel_gets_the_event_once_in_its_own_shape(
    client: Any, make_user: Any, auth_headers: Any, stand_in: StandIn
) -> None:
    user = make_user()
    headers = auth_headers(user)
    _webhook(client, headers, stand_in, "alice")
    _channels(client, headers, stand_in, ["trade_closed"])
    bot_id, order_id = _bot_with_exit_order(user.id)

    _trade_closed(user.id, bot_id, order_id)
    rows = _outbox()
    assert len(rows) == 3 and {r.state for r in rows} == {"pending"}
    assert deliver_due("worker-a") == 3
    assert deliver_due("worker-a") == 0  # nothing left: each (event, channel) went once

    [signed] = stand_in.accepted("alice").values()
    assert signed["id"] == rows[0].id and signed["event"] == "trade_closed"
    data = signed["data"]
    assert (data["profit"], data["exit_reason"], data["bot_name"]) == (
        "0.00125",
        "stop_loss",
        "trend",
    )
    expected_text = "trend (ETH/BTC): sold 0.5 at 0.0521 (stop_loss); profit 0.00125"
    [tg] = stand_in.requests(f"/bot{BOT_TOKEN}/sendMessage")
    assert tg.body == {"chat_id": "-100200300", "text": expected_text}
    [dc] = stand_in.requests("/api/webhooks/42/discord-secret-token")
    assert dc.body == {"content": expected_text} and dc.status == 204
    assert {r.state for r in _outbox()} == {"sent"}


def test_a_delivery_that_fails_twice_then_succeeds_is_sent_once(
    client: Any, make_user: Any, auth_headers: Any, stand_in: StandIn
) -> None:
    user = make_user()
    headers = auth_headers(user)
    hook = _webhook(client, headers, stand_in, "bob")
    bot_id, order_id = _bot_with_exit_order(user.id)
    stand_in.fail("/hook/bob", 2, status=503)
    _trade_closed(user.id, bot_id, order_id)

    assert deliver_due("w") == 0
    [row] = _outbox()
    assert (row.state, row.attempts, row.last_error) == ("pending", 1, 'HTTP 503: {"ok": false}')
    assert deliver_due("w") == 0
    assert deliver_due("w") == 1
    assert deliver_due("w") == 0
    assert len(stand_in.requests("/hook/bob")) == 3
    assert list(stand_in.accepted("bob")) == [row.id]
    [done] = _outbox()
    assert (done.state, done.attempts) == ("sent", 3)

    log = client.get(f"/api/notifications/channels/{hook['id']}/deliveries", headers=headers)
    assert log.status_code == 200
    items = log.get_json()["items"]
    assert [(i["attempt"], i["ok"], i["status"], i["delivery_id"]) for i in items] == [
        (3, True, 200, row.id), (2, False, 503, row.id), (1, False, 503, row.id)
    ]  # fmt: skip
    channel = client.get(f"/api/notifications/channels/{hook['id']}", headers=headers).get_json()
    assert channel["consecutive_failures"] == 0 and channel["enabled"] is True


def test_retries_wait_for_their_backoff(
    client: Any, make_user: Any, auth_headers: Any, stand_in: StandIn
) -> None:
    use_settings(get_settings().model_copy(update={"notification_retry_seconds": 30.0}))
    user = make_user()
    _webhook(client, auth_headers(user), stand_in, "carol")
    bot_id, order_id = _bot_with_exit_order(user.id)
    stand_in.fail("/hook/carol", 1)
    _trade_closed(user.id, bot_id, order_id)
    assert deliver_due("w") == 0
    assert deliver_due("w") == 0 and len(stand_in.requests("/hook/carol")) == 1
    [row] = _outbox()
    wait = row.next_attempt_at - utcnow()
    assert timedelta(seconds=25) < wait <= timedelta(seconds=30)


def test_a_failing_channel_is_disabled_and_its_owner_alerted(
    client: Any, make_user: Any, auth_headers: Any, stand_in: StandIn
) -> None:
    user = make_user()
    headers = auth_headers(user)
    hook = _webhook(client, headers, stand_in, "dave")
    bot_id, order_id = _bot_with_exit_order(user.id)
    stand_in.fail("/hook/dave", 100)
    for _ in range(5):
        _trade_closed(user.id, bot_id, order_id)
    for _ in range(3):
        deliver_due("w")
    channel = client.get(f"/api/notifications/channels/{hook['id']}", headers=headers).get_json()
    assert channel["enabled"] is False and channel["consecutive_failures"] == 4
    assert "4 failed deliveries in a row" in channel["disabled_reason"]
    with session_scope() as s:
        alerts = list(s.scalars(select(Alert).where(Alert.code == "notification_channel_disabled")))
        assert [a.user_id for a in alerts] == [user.id]
    sent_before = len(stand_in.requests("/hook/dave"))
    assert sent_before == 4
    deliver_due("w")
    assert len(stand_in.requests("/hook/dave")) == sent_before  # a disabled channel gets nothing
    assert {r.state for r in _outbox()} == {"dropped"}

    again = client.patch(f"/api/notifications/channels/{hook['id']}", json={"enabled": True},
                         headers=headers).get_json()  # fmt: skip
    assert again["enabled"] is True and again["consecutive_failures"] == 0


def test_emergency_stop_and_resume_reach_every_users_channels(
    client: Any, make_user: Any, auth_headers: Any, stand_in: StandIn
) -> None:
    admin = make_user(role="admin")
    ann, ben = make_user(), make_user()
    for user, name in ((ann, "ann"), (ben, "ben")):
        _webhook(client, auth_headers(user), stand_in, name,
                 events=["emergency_stop", "emergency_resume"])  # fmt: skip
    _webhook(client, auth_headers(make_user()), stand_in, "quiet", events=["trade_closed"])
    emergency_stop(actor_user_id=admin.id, reason="exchange incident")
    emergency_resume(actor_user_id=admin.id)
    assert deliver_due("w") == 4
    for name in ("ann", "ben"):
        got = sorted(b["event"] for b in stand_in.accepted(name).values())
        assert got == ["emergency_resume", "emergency_stop"]
    assert stand_in.accepted("quiet") == {}


def test_test_message_is_sent_at_once_and_logged(
    client: Any, make_user: Any, auth_headers: Any, stand_in: StandIn
) -> None:
    user = make_user()
    headers = auth_headers(user)
    hook = _webhook(client, headers, stand_in, "erin")
    r = client.post(f"/api/notifications/channels/{hook['id']}/test", headers=headers)
    assert r.status_code == 200 and r.get_json()["ok"] is True
    [msg] = stand_in.accepted("erin").values()
    assert msg["event"] == "test" and "erin" in msg["text"]
    stand_in.fail("/hook/erin", 1, status=500)
    failed = client.post(f"/api/notifications/channels/{hook['id']}/test", headers=headers)
    assert failed.get_json()["ok"] is False and failed.get_json()["status"] == 500
    log = client.get(f"/api/notifications/channels/{hook['id']}/deliveries", headers=headers)
    assert [i["event"] for i in log.get_json()["items"]] == ["test", "test"]


def test_secrets_are_never_shown_again(
    client: Any, make_user: Any, auth_headers: Any, stand_in: StandIn
) -> None:
    headers = auth_headers(make_user())
    hook = _webhook(client, headers, stand_in, "fay")
    chans = _channels(client, headers, stand_in, ["bot_paused"])
    assert len(hook["signing_key"]) >= 40
    assert hook["target"] == f"{stand_in.url}/…"
    listing = client.get("/api/notifications/channels", headers=headers).get_data(as_text=True)
    one = client.get(f"/api/notifications/channels/{hook['id']}", headers=headers).get_json()
    assert "signing_key" not in one
    for secret in (hook["signing_key"], BOT_TOKEN, "discord-secret-token", "/hook/fay"):
        assert secret not in listing and secret not in json.dumps(one)
    assert chans["telegram"]["target"] == "telegram chat -100200300"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"kind": "webhook", "events": ["trade_exploded"], "url": "https://8.8.8.8/h"},
         "unknown_event"),
        ({"kind": "pager", "events": ["trade_closed"], "url": "https://8.8.8.8/h"},
         "validation_error"),
        ({"kind": "webhook", "events": ["trade_closed"]}, "validation_error"),
        ({"kind": "telegram", "events": ["trade_closed"], "bot_token": "nope", "chat_id": "1"},
         "validation_error"),
        ({"kind": "discord", "events": ["trade_closed"], "url": "https://8.8.8.8/not-a-hook"},
         "validation_error"),
    ],
)  # fmt: skip
def test_bad_channels_are_refused_with_422(
    client: Any, make_user: Any, auth_headers: Any, body: dict[str, Any], code: str
) -> None:
    headers = auth_headers(make_user())
    r = client.post("/api/notifications/channels", json={"name": "x", **body}, headers=headers)
    assert r.status_code == 422, r.get_json()
    assert r.get_json()["error"]["code"] == code
    assert client.get("/api/notifications/channels", headers=headers).get_json()["items"] == []


def test_private_and_plain_http_urls_are_refused(
    client: Any, make_user: Any, auth_headers: Any, settings: Any
) -> None:
    headers = auth_headers(make_user())
    body = {"kind": "webhook", "name": "x", "events": ["trade_closed"]}
    for url in ("http://127.0.0.1:9/hook", "http://169.254.169.254/latest", "http://10.0.0.5/h"):
        r = client.post("/api/notifications/channels", json={**body, "url": url}, headers=headers)
        assert r.status_code == 422 and r.get_json()["error"]["code"] == "url_not_allowed"
    use_settings(settings.model_copy(update={"app_env": "production", "jwt_secret_key": "x" * 40,
                                             "encryption_key": None}))  # fmt: skip
    try:
        r = client.post("/api/notifications/channels", json={**body, "url": "http://8.8.8.8/h"},
                        headers=headers)  # fmt: skip
    finally:
        use_settings(settings)
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "insecure_url"


def test_key_rotation_reencrypts_channels_and_unreadable_ones_fail_softly(
    app: Any, client: Any, make_user: Any, auth_headers: Any, stand_in: StandIn
) -> None:
    from cryptography.fernet import Fernet

    user = make_user()
    headers = auth_headers(user)
    hook = _webhook(client, headers, stand_in, "gus")
    base = get_settings()
    old = base.effective_encryption_keys[0]
    new = Fernet.generate_key().decode()
    use_settings(base.model_copy(update={"encryption_key": f"{new},{old}"}))
    rotated = app.test_cli_runner().invoke(args=["rotate-encryption-key"])
    assert rotated.exit_code == 0, rotated.output
    assert "re-encrypted 1 notification channel(s)" in rotated.output

    use_settings(base.model_copy(update={"encryption_key": new}))  # the old key is gone
    sent = client.post(f"/api/notifications/channels/{hook['id']}/test", headers=headers)
    assert sent.get_json()["ok"] is True

    use_settings(base.model_copy(update={"encryption_key": Fernet.generate_key().decode()}))
    bot_id, order_id = _bot_with_exit_order(user.id)
    _trade_closed(user.id, bot_id, order_id)
    assert deliver_due("w") == 0  # no key opens the channel: a failed try, not a crash
    [row] = _outbox()
    assert row.state == "pending" and "cannot be decrypted" in (row.last_error or "")
    use_settings(base)


def test_old_finished_notifications_and_log_entries_are_pruned_pending_ones_kept(
    client: Any, make_user: Any, auth_headers: Any, stand_in: StandIn
) -> None:
    from app.jobs import cleanup

    user = make_user()
    hook = _webhook(client, auth_headers(user), stand_in, "hal")
    bot_id, order_id = _bot_with_exit_order(user.id)
    _trade_closed(user.id, bot_id, order_id)
    assert deliver_due("w") == 1
    _trade_closed(user.id, bot_id, order_id)  # still pending when the clean-up runs
    later = utcnow() + timedelta(days=31)
    assert cleanup.run_once(later)["notifications"] == 2  # the sent row and its log entry
    assert [r.state for r in _outbox()] == ["pending"]
    log = client.get(f"/api/notifications/channels/{hook['id']}/deliveries",
                     headers=auth_headers(user))  # fmt: skip
    assert log.get_json()["total"] == 0
