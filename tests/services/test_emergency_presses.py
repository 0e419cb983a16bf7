"""The emergency stop pressed again and again just after candle boundaries, as soon as the
boundary's ticks have begun, while three real processes tick 120 bots that trade every few
candles: the moment when tick batches hold the most bot rows and write the most orders. Every
press must answer 200, and no order may be recorded while a stop is in force: the orders
present when the stop answered are exactly the orders present just before the next resume
(and, after the last press, after 5 s of quiet).

An order's `created_at` is the start of the tick that placed it, not its commit. A tick that
started before a stop may still place its order after the following resume (a busy machine can
hold a tick back for the whole stop-and-resume): that order is not late, so "late" is read
from what was present at each moment, not from `created_at`.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

import pytest
import requests
from sqlalchemy import func, or_, select

from app.store.db import session_scope
from app.store.models import Bot
from tests.support.databases import db_backend
from tests.support.processes import service_env
from tests.support.trading import (
    create_fleet,
    grid,
    order_ids,
    resume_fleet,
    sleep_until_after_boundary,
    three_processes,
    trouble_in_logs,
    wait_for,
)

PRESSES = 30
SPEED = 300.0  # 5m replay candles close every second
HOLD_SECONDS = 0.3  # how long each stop stays in force before the next resume

pytestmark = pytest.mark.skipif(
    db_backend() == "sqlite", reason="three processes trading at once need Postgres"
)


def wait_for_ticking(bot_ids: list[int], boundary: datetime, timeout: float = 3.0) -> None:
    """Until a batch holds some of the bots or has ticked them for `boundary`: a loaded
    machine can start the boundary's ticks late, and a press before them meets no trading."""
    deadline = time.monotonic() + timeout
    ticking = select(func.count()).where(
        Bot.id.in_(bot_ids), or_(Bot.lease_owner.is_not(None), Bot.last_tick_at >= boundary)
    )
    while time.monotonic() < deadline:
        with session_scope() as db:
            if db.scalar(ticking):
                return
        time.sleep(0.005)


def test_every_press_answers_and_no_order_follows_any_answer(
    settings, make_user, auth_headers, tmp_path
) -> None:
    admin = make_user(role="admin")
    bots = create_fleet(settings, [make_user(), make_user(), make_user()], 40, SPEED)
    g = grid(settings, SPEED)
    headers = auth_headers(admin)
    env = service_env(settings, SCHEDULER_ENABLED="true", REPLAY_SPEED=str(SPEED),
                      SELF_HEALING_ENABLED="false")  # fmt: skip
    rng = random.Random(12)
    presses: list[tuple[datetime, set[int]]] = []
    held: list[set[int]] = []  # the orders just before each resume: still those of the answer
    answers: list[tuple[int, float, dict]] = []
    with three_processes(env, tmp_path) as base:
        wait_for(lambda: len(order_ids()) >= 40, 90, "the bots to trade")
        for press in range(PRESSES):
            if press:
                time.sleep(HOLD_SECONDS)  # an order in flight at the answer would land now
                held.append(set(order_ids()))
                resumed = requests.post(base + "/api/admin/emergency-resume", json={},
                                        headers=headers, timeout=30)  # fmt: skip
                assert resumed.status_code == 200, resumed.text
                resume_fleet(bots, g)
            boundary = sleep_until_after_boundary(g, 0.0)
            wait_for_ticking(bots, datetime.fromtimestamp(boundary, UTC))
            time.sleep(rng.uniform(0.0, 0.05))
            started = time.monotonic()
            answer = requests.post(base + "/api/admin/emergency-stop",
                                   json={"reason": f"drill {press}"}, headers=headers,
                                   timeout=60)  # fmt: skip
            answered_at = datetime.now(UTC)
            present = set(order_ids())
            answers.append((answer.status_code, time.monotonic() - started, answer.json()))
            presses.append((answered_at, present))
            assert answer.status_code == 200, answer.text
        time.sleep(5)  # any order still in flight somewhere would be committed by now
        final = order_ids()
        held.append(set(final))

    late = {n: sorted(during - present) for n, ((_, present), during)
            in enumerate(zip(presses, held, strict=True)) if during != present}  # fmt: skip
    assert late == {}, (
        f"orders committed while a stop was in force: {late}; created at "
        f"{ {oid: final[oid].isoformat() for ids in late.values() for oid in ids} }; answers at "
        f"{ {n: presses[n][0].isoformat() for n in late} }; the workers logged:\n"
        f"{trouble_in_logs(tmp_path)}"
    )
    assert all(body["complete"] for _, _, body in answers)
    # the presses met trading in full flow: tick batches in flight gave way to them, or their
    # orders were in before the press (placed since the previous one, or still open and
    # cancelled by it); which of these depends on how busy the machine is
    gave_way = sum(
        log.read_text(errors="replace").count("(an emergency stop is waiting)")
        for log in tmp_path.glob("*.log")
    )
    placed = sum(1 for (_, before), (_, after) in zip(presses, presses[1:], strict=False)
                 if after - before)  # fmt: skip
    cancelling = sum(1 for _, _, body in answers if body["cancelled_orders"])
    assert gave_way + placed + cancelling >= PRESSES // 3, (gave_way, placed, cancelling)
    print(
        f"{PRESSES} presses, answer times: max {max(t for _, t, _ in answers):.2f}s, "
        f"orders {len(final)}, cancelled {sum(b['cancelled_orders'] for _, _, b in answers)}, "
        f"batches that gave way {gave_way}"
    )
