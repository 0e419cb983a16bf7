"""The emergency stop against real processes: three processes (a 2-worker gunicorn and a
`flask worker`) tick a few hundred paper bots that trade every few candles; an admin presses
the stop over HTTP. Once it has answered, no order row appears anywhere, none was created
after it, every open order is cancelled and every bot is paused for review."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from sqlalchemy import func, select, update

from app.store.base import utcnow
from app.store.db import session_scope
from app.store.locking import in_id_order
from app.store.models import Bot
from app.store.models.ledger import Order
from tests.support.processes import ROOT, flask_command, gunicorn, service_env, stop_process

BOTS = 240
SPEED = "300"  # 5m replay candles close every second: every bot ticks once a second
SYMBOLS = ("ETH/BTC", "LTC/BTC", "XMR/BTC")
PROTECTIONS_OFF = {
    "max_drawdown": None,
    "max_losing_streak": None,
    "daily_loss_limit": None,
    "stoploss_guard_trades": None,
}


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _orders() -> dict[int, tuple[str, datetime]]:
    with session_scope() as db:
        return {o.id: (o.state, o.created_at) for o in db.scalars(select(Order))}


def _open_orders() -> int:
    with session_scope() as db:
        return int(db.scalar(select(func.count()).where(Order.state == "open")) or 0)


@pytest.fixture
def trading_bots(app, settings, make_user) -> list[int]:
    """Running bots that cross their averages often (SMA 2/3) and stake 10% per entry."""
    from app.services.bots import change_status, create_bot
    from config import use_settings

    use_settings(settings.model_copy(update={"replay_speed": float(SPEED)}))
    try:
        ids = []
        with session_scope() as db:
            for owner in (make_user(), make_user(), make_user()):
                for i in range(BOTS // 3):
                    bot = create_bot(
                        db,
                        owner.id,
                        {
                            "name": f"bot {i}",
                            "symbol": SYMBOLS[i % len(SYMBOLS)],
                            "timeframe": "5m",
                            "strategy": "sma_crossover",
                            "strategy_params": {"fast": 2, "slow": 3},
                            "sizing": {"mode": "percent", "percent": 10},
                            "protections": PROTECTIONS_OFF,
                            "capital": "1",
                        },
                    )
                    change_status(db, owner.id, bot.id, "start")
                    ids.append(bot.id)
        return ids
    finally:
        use_settings(settings)


def _press_while_orders_are_open(base: str, headers: dict[str, str], bots: list[int]) -> Any:
    """Press the stop when orders are open, so that it meets trading in full flow. An order
    can fill between the look and the press (a market order fills at the next candle, every
    second here): then resume, set the bots running again, and press at the next chance."""
    for _ in range(5):
        _wait(lambda: _open_orders() > 0, 60, "an open order")
        answer = requests.post(base + "/api/admin/emergency-stop",
                               json={"reason": "multi-process drill"}, headers=headers,
                               timeout=60)  # fmt: skip
        assert answer.status_code == 200, answer.text
        if answer.json()["cancelled_orders"] > 0:
            return answer
        resumed = requests.post(base + "/api/admin/emergency-resume", json={}, headers=headers,
                                timeout=30)  # fmt: skip
        assert resumed.status_code == 200, resumed.text
        with session_scope() as db:
            running = {"status": "running", "pause_reason": None, "next_tick_at": utcnow()}
            db.execute(update(Bot).where(in_id_order(db, Bot, Bot.id.in_(bots))).values(running))
    raise AssertionError("no press of five met an open order")


def test_no_order_anywhere_once_the_stop_has_answered(
    settings, trading_bots, make_user, auth_headers, tmp_path
) -> None:
    admin = make_user(role="admin")
    env = service_env(settings, SCHEDULER_ENABLED="true", REPLAY_SPEED=SPEED)
    worker_log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen(
        flask_command("worker"), cwd=ROOT, env=env, stdout=worker_log, stderr=subprocess.STDOUT
    )
    try:
        with gunicorn(env, workers=2, threads=4, log_path=tmp_path / "gunicorn.log") as (base, _):
            # trading is under way: orders keep coming, and some are open right now
            _wait(lambda: len(_orders()) >= 100, 120, "the bots to place orders")
            headers = auth_headers(admin)
            answer = _press_while_orders_are_open(base, headers, trading_bots)
            answered_at = datetime.now(UTC)
            after_stop = _orders()

            time.sleep(3)  # several tick intervals for any process that did not get the news
            later = _orders()
            worker_alive = worker.poll() is None
    finally:
        stop_process(worker)
        worker_log.close()

    assert worker_alive, (tmp_path / "worker.log").read_text()[-3000:]
    assert set(later) == set(after_stop), "orders were recorded after the stop answered"
    assert all(created <= answered_at for _state, created in later.values())
    assert [oid for oid, (state, _) in later.items() if state == "open"] == []
    with session_scope() as db:
        cancelled = db.scalar(select(func.count()).where(Order.state_reason == "emergency_stop"))
        assert cancelled == answer.json()["cancelled_orders"]
        statuses = set(
            db.execute(select(Bot.status, Bot.pause_reason).where(Bot.id.in_(trading_bots)))
        )
    assert statuses == {("paused", "emergency_stop")}
