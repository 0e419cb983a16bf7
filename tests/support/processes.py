"""Real processes for multi-process tests: gunicorn servers and `flask` commands on this
machine's loopback, with the test run's database and Redis prefix in their environment."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_pids(pid: int) -> set[int]:
    """The live children of a process, read from the kernel."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def service_env(settings: object, **extra: str) -> dict[str, str]:
    """Environment for a child process that shares this test run's database and Redis."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COV_"))}
    env.update(
        APP_ENV="test",
        DATABASE_URL=settings.database_url,  # type: ignore[attr-defined]
        REDIS_URL=settings.redis_url or "",  # type: ignore[attr-defined]
        REDIS_PREFIX=settings.redis_prefix,  # type: ignore[attr-defined]
        MARKET_DATA=settings.market_data,  # type: ignore[attr-defined]
        SCHEDULER_ENABLED="false",
        LOG_LEVEL="INFO",
        ARGON2_TIME_COST="1",
        ARGON2_MEMORY_COST="8192",
        ARGON2_PARALLELISM="1",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@contextmanager
def gunicorn(
    env: dict[str, str],
    workers: int = 2,
    threads: int = 4,
    log_path: Path | None = None,
    ready_timeout: float = 30.0,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A real gunicorn with our config on a free port; yields (base_url, process)."""
    port = free_port()
    env = {**env, "PORT": str(port), "WEB_CONCURRENCY": str(workers), "WEB_THREADS": str(threads)}
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [
            str(VENV_BIN / "gunicorn"),
            "-c",
            "gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{port}",
            "wsgi:app",
        ],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/api/health/ping", timeout=ready_timeout, proc=proc)
        wait_for_children(proc, workers, timeout=ready_timeout)
        yield base, proc
    finally:
        stop_process(proc)
        if log_path:
            out.close()  # type: ignore[union-attr]


def wait_for_children(proc: subprocess.Popen[bytes], count: int, timeout: float) -> None:
    """The first preloaded worker answers within milliseconds, while the master may still be
    forking the others: a test about every worker starts once all of them exist."""
    deadline = time.monotonic() + timeout
    while len(child_pids(proc.pid)) < count:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise AssertionError(f"gunicorn did not fork {count} workers")
        time.sleep(0.05)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 40.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)


def flask_command(*args: str) -> list[str]:
    return [str(VENV_BIN / "flask"), "--app", "wsgi", *args]
