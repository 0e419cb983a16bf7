"""Shared by the multi-process observability tests: a real gunicorn with its metrics
directory, JSON logs and quick heartbeats, and a reader for its event streams."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from config import DEV_ENCRYPTION_KEY, DEV_JWT_SECRET
from tests.support.processes import gunicorn, service_env

EVENTS_URL = "/api/realtime/events"


@dataclass
class Server:
    base: str
    metrics_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes]


@contextmanager
def ops_gunicorn(
    settings: Any, tmp_path: Path, workers: int = 2, threads: int = 4, **extra: str
) -> Iterator[Server]:
    """gunicorn with JSON logs to a file and a fresh metrics directory."""
    metrics_dir = tmp_path / "prometheus"
    log_path = tmp_path / "gunicorn.log"
    env = service_env(
        settings,
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        LOG_FORMAT="json",
        SSE_HEARTBEAT_SECONDS="0.5",
        # the development defaults, set explicitly so no start-up warning is printed as text
        JWT_SECRET_KEY=DEV_JWT_SECRET,
        ENCRYPTION_KEY=DEV_ENCRYPTION_KEY,
        **extra,
    )
    with gunicorn(env, workers=workers, threads=threads, log_path=log_path) as (base, proc):
        yield Server(base, metrics_dir, log_path, proc)


class SseClient:
    """One event stream over a real socket; remembers the worker pid that serves it."""

    def __init__(self, base: str, headers: dict[str, str] | None = None, query: str = "") -> None:
        self.response = requests.get(
            base + EVENTS_URL + query, headers=headers or {}, stream=True, timeout=(5, 10)
        )
        self.status = self.response.status_code
        self.pid: int | None = None
        if self.status == 200:
            self._lines = self.response.iter_lines(decode_unicode=True)
            for line in self._lines:
                if line.startswith(": connected worker="):
                    self.pid = int(line.split("=", 1)[1])
                    break

    def next_event(self, max_lines: int = 200) -> dict[str, Any]:
        """The next event's data (heartbeat comments skipped); bounded by `max_lines`."""
        fields: dict[str, str] = {}
        for _ in range(max_lines):
            line = next(self._lines)
            if line.startswith(":"):
                continue
            if not line:
                if "data" in fields:
                    return {"sse_id": fields.get("id"), **json.loads(fields["data"])}
                continue
            name, _, value = line.partition(":")
            fields[name] = value.strip()
        raise AssertionError("no event on the stream")

    def close(self) -> None:
        self.response.close()


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a log file parsed as JSON (fails on a line that is not)."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return [json.loads(line) for line in lines]
