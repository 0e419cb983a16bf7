"""The service under a real gunicorn with 4 workers: ping and ready answer; with the database
gone, ready answers 503 in the envelope while ping still answers 200; when the database comes
back, ready recovers without a restart."""

from __future__ import annotations

import time

import pytest
import requests

from tests.support.databases import db_backend
from tests.support.processes import gunicorn, service_env
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.skipif(
    db_backend() == "sqlite", reason="a database outage needs a database server (Postgres)"
)


def _ready(base: str) -> requests.Response:
    return requests.get(base + "/api/health/ready", timeout=10)


def _wait_for(base: str, status: int, timeout: float = 30.0) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = _ready(base)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.3)


def test_four_workers_survive_a_database_outage(app, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with TcpProxy.for_url(settings.database_url) as proxy:
        env = service_env(settings, DATABASE_URL=proxy.proxied_url(settings.database_url))
        with gunicorn(env, workers=4, log_path=tmp_path / "gunicorn.log") as (base, _proc):
            for _ in range(20):  # spread over the workers
                assert requests.get(base + "/api/health/ping", timeout=5).status_code == 200
                assert _ready(base).status_code == 200

            proxy.stop()
            down = _wait_for(base, 503)
            assert down.status_code == 503
            error = down.json()["error"]
            assert error["code"] == "not_ready"
            assert error["details"][0]["loc"] == ["database"]
            assert error["request_id"] == down.headers["X-Request-ID"]
            ping = requests.get(base + "/api/health/ping", timeout=5)
            assert ping.status_code == 200

            proxy.start()
            assert _wait_for(base, 200).status_code == 200
            for _ in range(20):  # every worker's pool recovered
                assert _ready(base).status_code == 200
        log = (tmp_path / "gunicorn.log").read_text()
        assert "Traceback" not in log
