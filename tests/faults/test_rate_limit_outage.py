"""Failed-login limits while Redis is blackholed, across the workers of one real gunicorn: the
fallback counters are shared by the processes of the machine, so the account limit (5 per
minute) answers 429 at the 6th attempt whichever worker serves it, not at 5 x workers."""

from __future__ import annotations

import pytest

from tests.auth.test_multiworker import Server
from tests.support.databases import db_backend
from tests.support.processes import gunicorn, service_env
from tests.support.tcp_proxy import TcpProxy

MAX_ATTEMPTS = 60
LOGIN, WRONG = "/api/auth/login", {"password": "not the password"}

pytestmark = pytest.mark.skipif(db_backend() == "sqlite", reason="run once, on Postgres")


def test_failed_logins_are_limited_per_machine_while_redis_is_blackholed(
    settings, make_user, tmp_path
) -> None:
    email = make_user().email
    with TcpProxy.for_url(settings.redis_url) as proxy:
        env = service_env(settings, REDIS_URL=proxy.proxied_url(settings.redis_url))
        with gunicorn(env, workers=3, threads=4, log_path=tmp_path / "gunicorn.log",
                      ready_timeout=90) as (base, proc):  # fmt: skip
            server = Server(base, proc.pid)
            proxy.blackhole()
            answers: list[tuple[int, dict, int | None]] = []
            # at least 8 attempts, and on as many until two workers have answered (sequential
            # connections may all be accepted by one idle worker)
            while len(answers) < MAX_ATTEMPTS and (
                len(answers) < 8 or len({pid for _, _, pid in answers} - {None}) < 2
            ):
                answers.append(server.call("POST", LOGIN, body=WRONG | {"email": email}))
            proxy.heal()
    statuses = [status for status, _, _ in answers]
    assert statuses == [401] * 5 + [429] * (len(answers) - 5), statuses
    assert len({pid for _, _, pid in answers} - {None}) >= 2, "every attempt met the same worker"
