"""Failed-login limits while Redis is blackholed, across the workers of one real gunicorn: the
fallback counters are shared by the processes of the machine, so the account limit (5 per
minute) answers 429 at the 6th attempt whichever worker serves it, not at 5 x workers."""

from __future__ import annotations

import pytest

from tests.auth.test_multiworker import Server
from tests.support.databases import db_backend
from tests.support.processes import gunicorn, service_env
from tests.support.tcp_proxy import TcpProxy

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
            answers = [
                server.call("POST", "/api/auth/login",
                            body={"email": email, "password": "not the password"})
                for _ in range(8)
            ]  # fmt: skip
            proxy.heal()
    statuses = [status for status, _, _ in answers]
    assert statuses == [401] * 5 + [429] * 3, statuses
    assert len({pid for _, _, pid in answers}) >= 2, "every attempt met the same worker"
