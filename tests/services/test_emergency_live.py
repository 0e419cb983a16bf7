"""The emergency stop and live orders on the fake exchange: after the stop commits, every live
order that may be on an exchange is cancelled there; a failed cancel is an incident and an
alert (without secrets); an order recorded but not sent when the stop lands is never sent;
a send in flight finishes first and what it sent is then cancelled."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.engine import live_broker
from app.services.emergency import emergency_stop
from app.services.engine_hooks import SAFETY_REPORTS
from app.services.reconcile import reconcile_all
from app.store.base import utcnow
from app.store.db import session_scope
from app.store.models import Bot
from app.store.models.safety import Alert, Incident
from tests.engine.live_helpers import (
    CANCEL,
    LOOKUP,
    ORDER,
    live_exchange,
    live_orders,
    make_live_bot,
    set_lookup,
)
from tests.market.conftest import API_KEY, SECRET
from tests.market.exchange_server import RecordedExchange

D = Decimal


@pytest.fixture
def server(app: Any, settings: Any, tmp_path: Path) -> Iterator[RecordedExchange]:
    with live_exchange(settings, tmp_path) as (fake, _clock):
        yield fake


@pytest.fixture
def admin(make_user: Any) -> Any:
    return make_user(role="admin")


@pytest.fixture
def bot_id(make_user: Any, server: RecordedExchange) -> int:
    return make_live_bot(int(make_user().id))


def place(bot_id: int, cid: str = "live-1") -> None:
    """A live market buy recorded and committed (and sent once committed)."""
    with session_scope() as s:
        live_broker.place_order(
            s, s.get(Bot, bot_id), side="buy", order_type="market", client_order_id=cid,
            quote_amount=D("100"), now=utcnow(), reference_price=D("13"), reports=SAFETY_REPORTS,
        )  # fmt: skip


def stop(admin: Any) -> dict[str, Any]:
    return emergency_stop(actor_user_id=admin.id, reason="exchange incident")


def reconciled(bot_id: int) -> bool:
    with session_scope() as s:
        return all(r.ok for r in reconcile_all(s, [bot_id]))


def test_stop_cancels_an_accepted_order_on_the_exchange(server, admin, bot_id) -> None:  # type: ignore[no-untyped-def]
    place(bot_id)
    (order,) = live_orders(bot_id)
    assert order.submit_state == "accepted"
    assert stop(admin)["cancelled_orders"] == 1
    (cancel,) = server.requests(CANCEL)
    assert cancel.params["orderId"] == "9780331417" and cancel.params["symbol"] == "BTCUSDT"
    (order,) = live_orders(bot_id)
    assert (order.state, order.state_reason) == ("cancelled", "emergency_stop")
    with session_scope() as s:
        assert list(s.scalars(select(Incident))) == []
    assert live_broker.submit_pending(bot_id, SAFETY_REPORTS) == 0
    assert len(server.requests(ORDER)) == 1
    assert reconciled(bot_id)


def test_stop_finds_an_unknown_order_by_client_id_and_cancels_it(server, admin, bot_id) -> None:  # type: ignore[no-untyped-def]
    server.fail(ORDER, "timeout")
    place(bot_id, "live-unknown")
    assert live_orders(bot_id)[0].submit_state == "unknown"
    set_lookup(server, status="NEW", side="BUY", qty="7", quote="0")
    stop(admin)
    (lookup,) = server.requests(LOOKUP)
    assert lookup.params["origClientOrderId"] == "live-unknown"
    (cancel,) = server.requests(CANCEL)
    assert cancel.params["orderId"] == "9780331417"
    assert len(server.requests(ORDER)) == 1
    assert live_orders(bot_id)[0].state == "cancelled"


def test_an_order_recorded_but_not_sent_is_never_sent_after_the_stop(  # type: ignore[no-untyped-def]
    server, admin, bot_id, monkeypatch
) -> None:
    with monkeypatch.context() as patched:  # the process dies right after the commit
        patched.setattr(live_broker, "submit_pending", lambda bot_id, reports: 0)
        place(bot_id, "live-pending")
    assert live_orders(bot_id)[0].submit_state == "pending"
    stop(admin)
    assert live_broker.submit_pending(bot_id, SAFETY_REPORTS) == 0
    assert server.requests(ORDER) == [] and server.requests(CANCEL) == []
    (order,) = live_orders(bot_id)
    assert (order.state, order.submit_state) == ("cancelled", "pending")
    assert reconciled(bot_id)


def test_a_failed_exchange_cancel_is_an_incident_and_alert_without_secrets(  # type: ignore[no-untyped-def]
    server, admin, bot_id, caplog
) -> None:
    place(bot_id)
    server.fail(CANCEL, "rate_limit")
    with caplog.at_level(logging.DEBUG):
        stop(admin)
    assert len(server.requests(CANCEL)) == 1  # a cancel is never retried blindly
    with session_scope() as s:
        (incident,) = s.scalars(select(Incident).where(Incident.kind == "live_cancel_failed"))
        alerts = list(s.scalars(select(Alert).where(Alert.code == "live_cancel_failed")))
    assert incident.bot_id == bot_id and "live-1" in incident.message
    owner = live_orders(bot_id)[0]
    assert {a.user_id for a in alerts} == {None, _owner(owner.bot_id)}
    for text in [incident.message, *(a.message for a in alerts), caplog.text]:
        assert API_KEY not in text and SECRET not in text
    assert live_orders(bot_id)[0].state == "cancelled"  # the row is cancelled regardless


def test_an_order_filled_before_the_stop_is_flagged(server, admin, bot_id) -> None:  # type: ignore[no-untyped-def]
    server.fail(ORDER, "timeout")
    place(bot_id, "live-filled")
    set_lookup(server, status="FILLED", side="BUY", qty="7", quote="91")
    stop(admin)
    assert server.requests(CANCEL) == []
    with session_scope() as s:
        kinds = [i.kind for i in s.scalars(select(Incident))]
    assert kinds == ["live_order_filled_before_stop"]


def test_a_send_in_flight_finishes_before_the_stop_which_then_cancels_it(  # type: ignore[no-untyped-def]
    server, admin, bot_id
) -> None:
    server.fail(ORDER, "timeout")  # the exchange holds the request past the client's timeout
    set_lookup(server, status="NEW", side="BUY", qty="7", quote="0")
    sender = threading.Thread(target=place, args=(bot_id, "live-flight"))
    sender.start()
    while not server.requests(ORDER) and sender.is_alive():
        time.sleep(0.005)
    assert server.requests(ORDER), "the order was never sent"
    stop(admin)  # while the send is in flight: waits for it, then cancels what it sent
    sender.join(10)
    assert not sender.is_alive()
    (order,) = live_orders(bot_id)
    assert order.state == "cancelled"
    assert [r.params["origClientOrderId"] for r in server.requests(LOOKUP)] == ["live-flight"]
    assert len(server.requests(CANCEL)) == 1
    assert len(server.requests(ORDER)) == 1
    assert live_broker.submit_pending(bot_id, SAFETY_REPORTS) == 0


def _owner(bot_id: int) -> int:
    with session_scope() as s:
        return int(s.get(Bot, bot_id).user_id)
