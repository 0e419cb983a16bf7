"""`scripts/smoke_check.py` passes against a healthy gunicorn and fails (exit 1) once the
database is gone. The outage is a TCP proxy in front of the test database being stopped, so
the shared Postgres server keeps running for everyone else."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from config import Settings
from tests.observability.helpers import ops_gunicorn
from tests.support.tcp_proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "smoke_check.py"


def smoke(base: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), base, "--timeout", "10"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_smoke_check_passes_against_a_healthy_server(
    settings: Settings, tmp_path: Path, app: object
) -> None:
    with ops_gunicorn(settings, tmp_path, workers=1) as server:
        healthy = smoke(server.base)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    for check in ("ping", "ready", "openapi", "auth"):
        assert f"ok    {check}" in healthy.stdout
    assert "smoke check passed" in healthy.stdout


def test_smoke_check_fails_once_the_database_is_gone(
    settings: Settings, tmp_path: Path, app: object
) -> None:
    if settings.is_sqlite:
        pytest.skip("stopping the database needs a network database (Postgres)")
    with TcpProxy.for_url(settings.database_url) as proxy:
        url = proxy.proxied_url(settings.database_url)
        with ops_gunicorn(settings, tmp_path, workers=1, DATABASE_URL=url) as server:
            healthy = smoke(server.base)
            proxy.stop()
            broken = smoke(server.base)

    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "ok    ping" in broken.stdout  # alive, but not ready
    assert "FAIL  ready" in broken.stdout
    assert "FAILED" in broken.stdout


def test_smoke_check_fails_when_nothing_listens() -> None:
    from tests.support.processes import free_port

    result = smoke(f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "FAIL  ping" in result.stdout and "cannot connect" in result.stdout


def test_smoke_check_rejects_bad_usage() -> None:
    result = smoke("not-a-url")
    assert result.returncode == 2
