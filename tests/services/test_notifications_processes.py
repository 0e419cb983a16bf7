"""Two real `flask worker` processes deliver 1000 notifications (500 events x 2 webhook
channels): each (event, channel) reaches the receiver, and the receiver, keeping one copy per
delivery id, holds exactly one of each. One worker is SIGKILLed while its request is at the
receiver (recorded there, not yet answered): its leased notifications are taken over once
the lease runs out, nothing is lost, and the one it had sent arrives again under the same
id, which the receiver drops."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from app.services.events import record_events
from app.services.notifications import create_channel
from app.store.db import session_scope
from app.store.models.notifications import NotificationDelivery
from config import Settings, use_settings
from tests.support.notify_servers import StandIn
from tests.support.processes import ROOT, flask_command, service_env, stop_process

EVENTS = 500


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        flask_command("worker"), cwd=ROOT, env=env, stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip


def _states() -> dict[str, int]:
    with session_scope() as s:
        rows = s.execute(
            select(NotificationDelivery.state, func.count()).group_by(NotificationDelivery.state)
        )
        return {state: int(n) for state, n in rows}


def test_two_workers_one_killed_deliver_every_notification_exactly_once(
    settings: Settings, tmp_path: Path, make_user: Callable[..., Any]
) -> None:
    use_settings(settings.model_copy(update={"outbound_allow_private": True}))
    user = make_user()
    with StandIn() as receiver:
        receiver.state.delay_s = 0.002
        channels = {}
        with session_scope() as s:
            for name in ("one", "two"):
                channel, key = create_channel(
                    s, user.id, kind="webhook", name=name, events=["trade_opened"],
                    url=f"{receiver.url}/hook/{name}",
                )  # fmt: skip
                receiver.webhook(name, key or "")
                channels[name] = channel.id
            record_events(s, [
                (user.id, "trade", {"bot_id": None, "side": "buy", "amount": str(i), "price": "1"})
                for i in range(EVENTS)
            ])  # fmt: skip
        assert _states() == {"pending": 2 * EVENTS}
        use_settings(settings)

        env = service_env(
            settings,
            SCHEDULER_ENABLED="true",
            TRADING_ENABLED="false",
            SELF_HEALING_ENABLED="false",
            OUTBOUND_ALLOW_PRIVATE="true",
            NOTIFICATION_LEASE_SECONDS="5",
            OUTBOUND_TIMEOUT_SECONDS="1",
            NOTIFICATION_RETRY_SECONDS="0",
            NOTIFICATION_BATCH_SIZE="20",
        )
        first = _worker(env, tmp_path / "worker-a.log")
        second = _worker(env, tmp_path / "worker-b.log")
        try:
            _wait(lambda: len(receiver.requests()) >= 300, 90, "both workers to be sending")
            receiver.hold()
            _wait(lambda: receiver.state.waiting == 2, 30, "a request of each worker in flight")
            first.kill()  # SIGKILL mid-delivery: its request is at the receiver, unanswered
            first.wait(10)
            receiver.release()
            _wait(lambda: _states() == {"sent": 2 * EVENTS}, 120, "every notification sent")
        finally:
            for proc in (first, second):
                stop_process(proc)

        with session_scope() as s:
            ids = {
                name: set(s.scalars(select(NotificationDelivery.id).where(
                    NotificationDelivery.channel_id == cid)))
                for name, cid in channels.items()
            }  # fmt: skip
        for name in ("one", "two"):
            kept = receiver.accepted(name)
            assert set(kept) == ids[name] and len(kept) == EVENTS
            assert sorted(int(b["data"]["amount"]) for b in kept.values()) == list(range(EVENTS))
        arrived = receiver.requests("/hook/")
        assert all(r.status == 200 for r in arrived)
        assert len(arrived) > 2 * EVENTS  # the killed worker's last send came again ...
        assert len({r.body["id"] for r in arrived}) == 2 * EVENTS  # ... under the same id
