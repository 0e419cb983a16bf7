"""prometheus-client multiprocess mode for gunicorn (called from gunicorn.conf.py).

Each worker writes its metric values to memory-mapped files in `PROMETHEUS_MULTIPROC_DIR`; a
scrape of any worker (or of the master's internal metrics port) adds them up. The directory
must be chosen before any worker imports prometheus_client, which is why the gunicorn config
calls `prepare_dir()` at load time, in the master, before forking.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path

log = logging.getLogger("tradewind.metrics")

_PID_IN_NAME = re.compile(r"_(\d+)\.db$")


def prepare_dir() -> str:
    """Use `PROMETHEUS_MULTIPROC_DIR` (created if missing) or a fresh temporary directory."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="tradewind-prom-")
    Path(path).mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_files(path: str) -> int:
    """Delete metric files of processes that no longer run (a previous server's), keeping
    those of live processes such as a `flask worker` sharing the directory."""
    removed = 0
    for file in Path(path).glob("*.db"):
        match = _PID_IN_NAME.search(file.name)
        if match and _alive(int(match.group(1))):
            continue
        file.unlink(missing_ok=True)
        removed += 1
    return removed


def mark_process_dead(pid: int) -> None:
    """A worker exited: drop its live-gauge files (counters stay, they are cumulative)."""
    from prometheus_client import multiprocess

    try:
        multiprocess.mark_process_dead(pid)
    except Exception as exc:
        log.warning("metrics files of pid %s not cleaned: %s", pid, exc)


def start_metrics_server(port: int, addr: str = "127.0.0.1") -> None:
    """Serve the aggregated metrics on an internal port from the gunicorn master."""
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    start_http_server(port, addr=addr, registry=registry)
    log.info("metrics served on %s:%s", addr, port)
