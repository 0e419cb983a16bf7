"""The WSGI entry point pauses the cyclic collector while it builds the app and freezes what it
built; it must hand the process back with the collector as it found it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import requests

from tests.support.processes import ROOT, VENV_BIN


def _run(code: str, **env: str) -> str:
    proc = subprocess.run(
        [str(VENV_BIN / "python"), "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "APP_ENV": "development", **env},
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_collector_back_on_and_start_up_objects_frozen() -> None:
    code = (
        "import gc\n"
        "import wsgi\n"
        "young = len(gc.get_objects())  # tracked objects outside the frozen generation\n"
        "print(gc.isenabled(), gc.get_freeze_count() > 10 * young, type(wsgi.app).__name__)\n"
    )
    assert _run(code) == "True True Flask"


def test_collector_left_off_when_it_was_off() -> None:
    assert _run("import gc\ngc.disable()\nimport wsgi\nprint(gc.isenabled())") == "False"


def test_collector_back_on_when_the_start_up_fails() -> None:
    code = (
        "import gc\n"
        "try:\n"
        "    import wsgi\n"
        "except SystemExit:\n"
        "    print('refused', gc.isenabled(), gc.get_freeze_count())\n"
    )
    # production without a strong secret refuses to start (config.settings_or_exit)
    assert _run(code, APP_ENV="production", JWT_SECRET_KEY="short") == "refused True 0"


@pytest.mark.parametrize("preload", ["1", "0"])
def test_gunicorn_builds_the_app_once_in_the_master_and_forks_the_workers(  # type: ignore[no-untyped-def]
    settings, tmp_path, preload
):
    """Preloading (the default): the master imports the app (TA-Lib's library is mapped into
    it) before it forks, so a worker starts without importing anything; with PRELOAD_APP=0
    the master never imports it. Either way each worker runs its own scheduler and answers."""
    from tests.support.processes import child_pids, gunicorn, service_env

    log = tmp_path / "gunicorn.log"
    env = service_env(settings, SCHEDULER_ENABLED="true", PRELOAD_APP=preload)
    with gunicorn(env, workers=3, threads=2, log_path=log) as (base, proc):
        workers = child_pids(proc.pid)
        assert ("talib" in Path(f"/proc/{proc.pid}/maps").read_text()) == (preload == "1")
        for _ in range(6):
            assert requests.get(base + "/api/health/ping", timeout=10).status_code == 200
    text = log.read_text()
    assert "Control socket" not in text  # no management socket at a path shared by servers
    assert sorted(map(int, re.findall(r"Booting worker with pid: (\d+)", text))) == sorted(workers)
    assert sorted(map(int, re.findall(r"scheduler started in pid (\d+)", text))) == sorted(workers)
