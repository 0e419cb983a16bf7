"""Outages against real processes, each service reached through a TCP proxy of the test's own
(`tests/support/tcp_proxy.py`) so that only this test's processes lose it:

* Redis blackholed (packets never answered) while three processes trade: ticks go on at no
  less than half their normal rate, and the emergency stop answers within 2 s and holds;
* Postgres blackholed: readiness answers 503 within 2 s, and 200 again by itself once the
  database is back;
* every Postgres reply 400 ms late: SIGTERM ends gunicorn within its graceful timeout, with
  every lease handed back.
"""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import UTC, datetime

import pytest
import requests
from sqlalchemy import func, select

from app.domain.tick_grid import TickGrid
from app.store.db import session_scope
from app.store.models import Bot
from tests.deploy.test_deploy_files import graceful_timeout
from tests.support.databases import db_backend
from tests.support.processes import ROOT, VENV_BIN, free_port, gunicorn, service_env, wait_http
from tests.support.tcp_proxy import TcpProxy
from tests.support.trading import (
    create_fleet,
    grid,
    order_ids,
    sleep_until_after_boundary,
    three_processes,
    ticks_between,
    wait_for,
)

SPEED = 300.0  # a 5m replay candle every second
RATE_CANDLES = 6
# 60 bots: a fleet the processes keep up with while the rest of the suite runs beside them,
# so that the rates compare ticking with ticking, not one backlog with another
FLEET_PER_USER = 20

pytestmark = pytest.mark.skipif(
    db_backend() == "sqlite", reason="outages of a database server: Postgres"
)


def test_redis_blackholed_trading_goes_on_and_the_stop_answers_fast(
    settings, make_user, auth_headers, tmp_path
) -> None:
    admin = make_user(role="admin")
    create_fleet(settings, [make_user(), make_user(), make_user()], FLEET_PER_USER, SPEED)
    g = grid(settings, SPEED)
    with TcpProxy.for_url(settings.redis_url) as proxy:
        env = service_env(settings, SCHEDULER_ENABLED="true", REPLAY_SPEED=str(SPEED),
                          REDIS_URL=proxy.proxied_url(settings.redis_url))  # fmt: skip
        with three_processes(env, tmp_path) as base:
            wait_for(lambda: len(order_ids()) >= 20, 120, "the bots to trade")
            normal = tick_rate(g)

            proxy.blackhole()
            time.sleep(1)  # every process meets the silence
            during = tick_rate(g)

            sleep_until_after_boundary(g, 0.1)
            pressed = time.monotonic()
            answer = requests.post(base + "/api/admin/emergency-stop",
                                   json={"reason": "redis partition"},
                                   headers=auth_headers(admin), timeout=30)  # fmt: skip
            took = time.monotonic() - pressed
            answered_at = datetime.now(UTC)
            present = set(order_ids())
            time.sleep(5)
            later = order_ids()
            proxy.heal()
    assert answer.status_code == 200, answer.text
    assert took < 2.0, f"the stop took {took:.2f}s with Redis blackholed"
    assert set(later) == present
    assert not [oid for oid, created in later.items() if created >= answered_at]
    print(f"ticks/s normal {normal:.0f}, Redis blackholed {during:.0f}; stop {took:.2f}s")
    assert during >= normal / 2, f"ticks/s {during:.0f} without Redis, under half of {normal:.0f}"


def tick_rate(g: TickGrid, candles: int = RATE_CANDLES) -> float:
    """Ticks started per second over `candles` whole candle intervals, from just before a
    boundary to just before another: a window that is not a whole number of candles would
    count one burst of ticks more or less."""
    start = sleep_until_after_boundary(g, -0.05)
    end = start + candles * g.interval_seconds
    time.sleep(max(end - time.time(), 0))
    return ticks_between(start, end) / (end - start)


def test_postgres_blackholed_ready_says_503_fast_and_recovers(settings, tmp_path) -> None:
    with TcpProxy.for_url(settings.database_url) as proxy:
        # a 1 s bound on the checks, so that "fast" (under 2 s) leaves room for a busy machine
        env = service_env(settings, DATABASE_URL=proxy.proxied_url(settings.database_url),
                          DB_READY_TIMEOUT_SECONDS="1")  # fmt: skip
        with gunicorn(env, workers=1, threads=4, log_path=tmp_path / "gunicorn.log",
                      ready_timeout=90) as (base, _):  # fmt: skip
            assert requests.get(base + "/api/health/ready", timeout=10).status_code == 200
            proxy.blackhole()
            took = []
            for _ in range(3):
                asked = time.monotonic()
                answer = requests.get(base + "/api/health/ready", timeout=10)
                took.append(time.monotonic() - asked)
                assert answer.status_code == 503, answer.text
                assert answer.json()["error"]["code"] == "not_ready"
            proxy.heal()
            deadline = time.monotonic() + 30
            while requests.get(base + "/api/health/ready", timeout=10).status_code != 200:
                assert time.monotonic() < deadline, "readiness did not recover by itself"
                time.sleep(0.3)
    assert max(took) < 2.0, took


def test_sigterm_with_a_slow_database_ends_in_time_with_leases_released(
    settings, make_user, tmp_path
) -> None:
    create_fleet(settings, [make_user()], 60, SPEED)
    with TcpProxy.for_url(settings.database_url) as proxy:
        env = service_env(settings, SCHEDULER_ENABLED="true", REPLAY_SPEED=str(SPEED),
                          DATABASE_URL=proxy.proxied_url(settings.database_url),
                          PORT=str(free_port()), WEB_CONCURRENCY="2", WEB_THREADS="4")  # fmt: skip
        log = open(tmp_path / "gunicorn.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py", "--bind",
             f"127.0.0.1:{env['PORT']}", "wsgi:app"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_http(f"http://127.0.0.1:{env['PORT']}/api/health/ping", 90, proc)
            wait_for(_leases_held, 90, "ticks holding leases")
            proxy.delay = 0.4
            time.sleep(3)  # batches in flight at the slow pace
            wait_for(_leases_held, 30, "a lease held under the slow database")
            term = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(graceful_timeout() + 15)
            took = time.monotonic() - term
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
    assert took < graceful_timeout(), f"SIGTERM took {took:.1f}s"
    assert _leases_held() == 0, (tmp_path / "gunicorn.log").read_text()[-3000:]
    print(f"SIGTERM with 400 ms database replies: {took:.1f}s")


def _leases_held() -> int:
    with session_scope() as db:
        return int(
            db.scalar(select(func.count()).select_from(Bot).where(Bot.lease_owner.is_not(None)))
            or 0
        )
