"""The SSE endpoint in-process: authentication (header or `token` parameter), per-user
delivery from the event table, admin-only system events (the emergency stop's reach everyone),
Last-Event-ID resume and the `resync` reasons, the per-worker and per-user caps, heartbeats,
and streams that end after logout or when the account is disabled."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.services.events import prune_events, publish_event, record_event
from app.store.base import utcnow
from app.store.db import session_scope
from app.store.models.events import Event
from app.store.redis import reset_redis
from config import Settings, use_settings

URL = "/api/realtime/events"


@pytest.fixture
def tune(settings: Settings) -> Iterator[Callable[..., None]]:
    """Run the test with some settings changed (fields the lead may not have added yet)."""

    def apply(**changes: Any) -> None:
        use_settings(settings.model_copy(update=changes))

    apply(sse_heartbeat_seconds=0.1, events_poll_seconds=0.05, sse_recheck_seconds=0.2)
    yield apply
    use_settings(settings)


class Stream:
    """An open event stream read chunk by chunk."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self._chunks = iter(response.response)

    def next_chunk(self) -> str:
        chunk = next(self._chunks)
        return chunk.decode() if isinstance(chunk, bytes) else chunk

    def events(self, count: int, max_chunks: int = 100) -> list[dict[str, Any]]:
        """The next `count` events (heartbeats skipped); fails after `max_chunks` chunks."""
        found: list[dict[str, Any]] = []
        for _ in range(max_chunks):
            if len(found) == count:
                break
            found.extend(parse_events(self.next_chunk()))
        assert len(found) == count, f"expected {count} events, got {found}"
        return found

    def close(self) -> None:
        self.response.close()


def parse_events(text: str) -> list[dict[str, Any]]:
    """The events of an SSE chunk: fields id, event and the decoded data."""
    parsed = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":") or ":" not in line:
                continue
            name, _, value = line.partition(":")
            fields[name] = value.strip()
        if "data" in fields:
            data = json.loads(fields["data"])
            parsed.append({"sse_id": fields.get("id"), "event": fields.get("event"), **data})
    return parsed


@contextmanager
def open_stream(client: FlaskClient, url: str = URL, **kwargs: Any) -> Iterator[Stream]:
    response = client.get(url, buffered=False, **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    stream = Stream(response)
    try:
        hello = stream.next_chunk()
        assert "retry:" in hello and ": connected worker=" in hello
        yield stream
    finally:
        stream.close()


def test_stream_requires_a_valid_token(client: FlaskClient, make_user: Callable[..., Any]) -> None:
    missing = client.get(URL)
    assert missing.status_code == 401
    assert missing.get_json()["error"]["code"] == "unauthorized"
    bad = client.get(URL + "?token=not-a-jwt")
    assert bad.status_code == 401
    assert bad.get_json()["error"]["code"] == "invalid_token"


def test_users_get_their_own_events_only(
    client: FlaskClient, make_user: Callable[..., Any], auth_headers: Callable[..., Any], tune: Any
) -> None:
    alice, bob = make_user(), make_user()
    alice_token = auth_headers(alice)["Authorization"].split()[1]
    with (
        open_stream(client, f"{URL}?token={alice_token}") as alice_stream,
        open_stream(client, headers=auth_headers(bob)) as bob_stream,
    ):
        publish_event(bob.id, "order", {"order_id": 1, "state": "filled"})
        publish_event(alice.id, "trade", {"side": "buy", "amount": "0.5"})
        publish_event(None, "alert", {"code": "stale_job"})

        (got,) = alice_stream.events(1)
        assert got["event"] == "trade" and got["type"] == "trade"
        assert got["user_id"] == alice.id and got["data"] == {"side": "buy", "amount": "0.5"}
        assert got["sse_id"] == str(got["id"]) and got["id"] > 0

        (bobs,) = bob_stream.events(1)
        assert bobs["type"] == "order" and bobs["user_id"] == bob.id
        # neither sees the other's event nor the system alert (admins only): next is a heartbeat
        assert parse_events(alice_stream.next_chunk()) == []
        assert parse_events(bob_stream.next_chunk()) == []


def test_system_events_reach_admins(
    client: FlaskClient, make_user: Callable[..., Any], auth_headers: Callable[..., Any], tune: Any
) -> None:
    admin = make_user(role="admin")
    with open_stream(client, headers=auth_headers(admin)) as stream:
        publish_event(None, "alert", {"code": "emergency_stop", "active": True})
        (got,) = stream.events(1)
        assert got["type"] == "alert" and got["user_id"] is None
        assert got["data"]["code"] == "emergency_stop"


def test_last_event_id_resumes_from_history(
    client: FlaskClient, make_user: Callable[..., Any], auth_headers: Callable[..., Any], tune: Any
) -> None:
    user = make_user()
    headers = auth_headers(user)
    with open_stream(client, headers=headers) as stream:
        for n in range(3):
            publish_event(user.id, "job_progress", {"progress": n / 2})
        first, second, third = stream.events(3)
    assert first["id"] < second["id"] < third["id"]

    # reconnect after the first: the two missed events come from the history, in order
    with open_stream(client, headers={**headers, "Last-Event-ID": first["sse_id"]}) as resumed:
        replayed = resumed.events(2)
        assert [e["id"] for e in replayed] == [second["id"], third["id"]]
        publish_event(user.id, "bot_status", {"status": "paused"})
        (live,) = resumed.events(1)
        assert live["type"] == "bot_status" and live["id"] > third["id"]

    # the query parameter does the same for clients that cannot set the header
    with open_stream(client, f"{URL}?last_event_id={second['id']}", headers=headers) as again:
        replayed = again.events(2)
        assert [e["type"] for e in replayed] == ["job_progress", "bot_status"]


def test_too_far_behind_starts_with_resync_then_goes_on_live(
    client: FlaskClient, make_user: Callable[..., Any], auth_headers: Callable[..., Any], tune: Any
) -> None:
    tune(sse_heartbeat_seconds=0.1, events_poll_seconds=0.05, sse_history_size=2)
    user = make_user()
    headers = auth_headers(user)
    with open_stream(client, headers=headers) as stream:
        for n in range(5):
            publish_event(user.id, "trade", {"n": n})
        seen = stream.events(5)
    with open_stream(client, headers={**headers, "Last-Event-ID": "0"}) as stream:
        (resync,) = stream.events(1)
        assert resync["type"] == "resync" and resync["event"] == "resync"
        assert resync["data"] == {"reason": "too_far_behind", "last_event_id": 0}
        assert resync["id"] >= seen[-1]["id"]  # the client carries on from here
        publish_event(user.id, "trade", {"n": 5})
        (live,) = stream.events(1)
        assert live["data"] == {"n": 5} and live["id"] > resync["id"]
    # resuming from the resync's id loses nothing and repeats nothing
    with open_stream(client, headers={**headers, "Last-Event-ID": resync["sse_id"]}) as again:
        (replayed,) = again.events(1)
        assert replayed["id"] == live["id"]


def test_pruned_or_unknown_ids_resync_never_fail(
    client: FlaskClient, make_user: Callable[..., Any], auth_headers: Callable[..., Any], tune: Any
) -> None:
    user = make_user()
    headers = auth_headers(user)
    with open_stream(client, headers=headers) as stream:
        for n in range(4):
            publish_event(user.id, "trade", {"n": n})
        first, *_rest, last = stream.events(4)
    # the clean-up job prunes everything older than the retention, but keeps the newest
    assert prune_events(utcnow() + timedelta(days=2)) == 3
    for after, reason in ((first["id"] - 1, "history_pruned"), (10**12, "unknown_event_id")):
        with open_stream(client, headers={**headers, "Last-Event-ID": str(after)}) as stream:
            (resync,) = stream.events(1)
        assert resync["type"] == "resync" and resync["data"]["reason"] == reason
        assert resync["id"] == last["id"]
    # resuming right before the one event kept is still exact
    with open_stream(client, headers={**headers, "Last-Event-ID": str(last["id"] - 1)}) as s:
        (kept,) = s.events(1)
        assert kept["id"] == last["id"] and kept["type"] == "trade"


def test_emergency_stop_alert_reaches_every_user_once(
    client: FlaskClient, make_user: Callable[..., Any], auth_headers: Callable[..., Any], tune: Any
) -> None:
    admin, user, disabled = make_user(role="admin"), make_user(), make_user()
    with (
        open_stream(client, headers=auth_headers(admin)) as admin_stream,
        open_stream(client, headers=auth_headers(user)) as user_stream,
    ):
        response = client.post(
            "/api/admin/emergency-stop", json={"reason": "drill 42"}, headers=auth_headers(admin)
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        (for_admin,) = admin_stream.events(1)
        (for_user,) = user_stream.events(1)
        assert parse_events(admin_stream.next_chunk()) == []  # exactly one each
        assert parse_events(user_stream.next_chunk()) == []
    assert for_admin["type"] == "alert" and for_admin["data"]["code"] == "emergency_stop"
    assert "drill 42" in for_admin["data"]["message"]
    assert for_user["type"] == "alert" and for_user["data"]["code"] == "emergency_stop"
    assert for_user["data"]["active"] is True and for_user["data"]["system"] is True
    assert "drill 42" not in json.dumps(for_user)  # the admin's words stay with admins
    assert disabled.id != user.id


def test_bad_last_event_id_is_a_validation_error(
    client: FlaskClient, make_user: Callable[..., Any], auth_headers: Callable[..., Any]
) -> None:
    headers = {**auth_headers(make_user()), "Last-Event-ID": "yesterday"}
    response = client.get(URL, headers=headers)
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "validation_error"
    response = client.get(URL + "?last_event_id=-3", headers=auth_headers(make_user()))
    assert response.status_code == 422
    response = client.get(URL, headers={**auth_headers(make_user()), "Last-Event-ID": "9" * 5000})
    assert response.status_code == 422


def test_an_id_beyond_any_given_resyncs(
    client: FlaskClient, make_user: Callable[..., Any], auth_headers: Callable[..., Any], tune: Any
) -> None:
    headers = auth_headers(make_user())
    for huge in (str(2**63), "9" * 30):
        with open_stream(client, headers={**headers, "Last-Event-ID": huge}) as stream:
            (resync,) = stream.events(1)
        assert resync["data"]["reason"] == "unknown_event_id"


def test_stream_cap_per_worker_answers_503_and_frees_on_close(
    client: FlaskClient, make_user: Callable[..., Any], auth_headers: Callable[..., Any], tune: Any
) -> None:
    tune(sse_heartbeat_seconds=0.1, sse_max_connections=1)
    headers = auth_headers(make_user())
    with open_stream(client, headers=headers):
        refused = client.get(URL, headers=headers)
        assert refused.status_code == 503
        assert refused.get_json()["error"]["code"] == "too_many_streams"
        assert refused.headers["Retry-After"] == "5"
        assert client.get("/api/health/ping").status_code == 200
    # closing the first stream (even before reading it) frees the slot
    unread = client.get(URL, headers=headers, buffered=False)
    assert unread.status_code == 200
    unread.close()
    with open_stream(client, headers=headers):
        pass


def test_quiet_stream_sends_heartbeat_comments(
    client: FlaskClient, make_user: Callable[..., Any], auth_headers: Callable[..., Any], tune: Any
) -> None:
    with open_stream(client, headers=auth_headers(make_user())) as stream:
        assert stream.next_chunk() == ": heartbeat\n\n"
        assert stream.response.headers["Content-Type"].startswith("text/event-stream")
        assert stream.response.headers["Cache-Control"] == "no-cache"
        assert stream.response.headers["X-Accel-Buffering"] == "no"


def test_without_redis_events_stay_in_process(
    client: FlaskClient,
    make_user: Callable[..., Any],
    auth_headers: Callable[..., Any],
    tune: Any,
) -> None:
    tune(sse_heartbeat_seconds=0.1, redis_url=None)
    user = make_user()
    with open_stream(client, headers=auth_headers(user)) as stream:
        publish_event(user.id, "order", {"state": "open"})
        (got,) = stream.events(1)
        assert got["type"] == "order" and got["data"] == {"state": "open"}
    with open_stream(client, headers={**auth_headers(user), "Last-Event-ID": "0"}) as resumed:
        (again,) = resumed.events(1)
        assert again["id"] == got["id"]


def test_publish_needs_no_redis_and_never_raises(
    settings: Settings, make_user: Callable[..., Any], session: Session
) -> None:
    use_settings(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    try:
        reset_redis()
        publish_event(1, "trade", {"x": 1})  # Redis unreachable: stored all the same
        publish_event(1, "trade", {"x": object()})  # not JSON: rendered with str()
    finally:
        use_settings(settings)
        reset_redis()
    stored = session.scalars(select(Event).order_by(Event.id)).all()
    assert [e.data["x"] for e in stored][0] == 1
    assert isinstance(stored[1].data["x"], str)


def test_an_event_exists_only_if_its_transaction_commits(
    client: FlaskClient, make_user: Callable[..., Any], auth_headers: Callable[..., Any], tune: Any
) -> None:
    user = make_user()
    with open_stream(client, headers=auth_headers(user)) as stream:
        with pytest.raises(RuntimeError), session_scope() as db:
            record_event(db, user.id, "order", {"n": "rolled back"})
            raise RuntimeError("the change fails")
        with session_scope() as db:
            record_event(db, user.id, "order", {"n": "committed"})
        (got,) = stream.events(1)
        assert got["data"] == {"n": "committed"}
        assert parse_events(stream.next_chunk()) == []


def test_cap_per_user_answers_429_across_the_worker_and_frees_on_close(
    client: FlaskClient, make_user: Callable[..., Any], auth_headers: Callable[..., Any], tune: Any
) -> None:
    tune(sse_heartbeat_seconds=0.1, sse_max_streams_per_user=2)
    greedy, other = make_user(), make_user()
    headers = auth_headers(greedy)
    with open_stream(client, headers=headers), open_stream(client, headers=headers):
        refused = client.get(URL, headers=headers)
        assert refused.status_code == 429
        assert refused.get_json()["error"]["code"] == "too_many_streams_for_user"
        assert refused.headers["Retry-After"]
        with open_stream(client, headers=auth_headers(other)):  # others are not affected
            pass
    with open_stream(client, headers=headers), open_stream(client, headers=headers):
        pass


@pytest.mark.parametrize("how", ["logout", "disable"])
def test_stream_ends_after_logout_or_disable(
    client: FlaskClient,
    make_user: Callable[..., Any],
    auth_headers: Callable[..., Any],
    tune: Any,
    how: str,
) -> None:
    """Closed by the logout's (or disable's) own news on the event table, in the event order;
    the periodic re-check (here slowed to 60 s) is only the fallback."""
    tune(sse_heartbeat_seconds=0.1, events_poll_seconds=0.05, sse_recheck_seconds=60)
    admin, user = make_user(role="admin"), make_user()
    headers, other_login = auth_headers(user), auth_headers(user)
    with (
        open_stream(client, headers=headers) as stream,
        open_stream(client, headers=other_login) as other_stream,
    ):
        publish_event(user.id, "job_progress", {"progress": 0.5})
        stream.events(1)
        other_stream.events(1)
        if how == "logout":
            assert client.post("/api/auth/logout", headers=headers).status_code == 204
            reason = "token_revoked"
        else:
            answer = client.patch(
                f"/api/admin/users/{user.id}", json={"is_disabled": True},
                headers=auth_headers(admin),
            )  # fmt: skip
            assert answer.status_code == 200, answer.get_data(as_text=True)
            reason = "account_disabled"
        publish_event(user.id, "job_progress", {"progress": 1.0})
        rest = "".join(  # ends by itself
            c.decode() if isinstance(c, bytes) else c for c in stream._chunks
        )
        if how == "logout":  # the user's other login keeps its stream
            (still,) = other_stream.events(1)
            assert still["data"] == {"progress": 1.0}
        else:
            assert ": closed account_disabled" in "".join(
                c.decode() if isinstance(c, bytes) else c for c in other_stream._chunks
            )
    assert f": closed {reason}" in rest
    assert '"progress":1.0' not in rest  # the stream ended in the event order, before it


def test_a_role_change_ends_the_stream_so_it_reopens_with_the_new_audience(
    client: FlaskClient, make_user: Callable[..., Any], auth_headers: Callable[..., Any], tune: Any
) -> None:
    tune(sse_heartbeat_seconds=0.1, events_poll_seconds=0.05, sse_recheck_seconds=60)
    admin, demoted = make_user(role="admin"), make_user(role="admin")
    with open_stream(client, headers=auth_headers(demoted)) as stream:
        answer = client.patch(
            f"/api/admin/users/{demoted.id}", json={"role": "user"}, headers=auth_headers(admin)
        )
        assert answer.status_code == 200, answer.get_data(as_text=True)
        publish_event(None, "alert", {"code": "stale_job"})  # for admins only
        rest = "".join(c.decode() if isinstance(c, bytes) else c for c in stream._chunks)
    assert ": closed role_changed" in rest and "stale_job" not in rest


def test_a_stream_asked_of_a_worker_shutting_down_is_refused_at_once(app: Any) -> None:
    """A worker that received SIGTERM ends its streams; a stream asked for then (the browser
    reconnecting) gets 503 at once instead of holding the worker's exit for READY_TIMEOUT."""
    from app.errors import ServiceUnavailable
    from app.services.events import READY_TIMEOUT, Broker

    stopping = Broker()
    stopping.shutdown()
    asked = time.monotonic()
    with pytest.raises(ServiceUnavailable):
        stopping.subscribe(1, is_admin=False)
    assert time.monotonic() - asked < READY_TIMEOUT / 10
