"""A burst of keep-alive connections (an nginx upstream pool, a load balancer) is spread over
the gunicorn workers, instead of being taken whole by the first worker to wake."""

from __future__ import annotations

import http.client
import os
import threading
from pathlib import Path

from tests.support.processes import child_pids, gunicorn, service_env

WORKERS, THREADS, CONNECTIONS, BURSTS = 2, 2, 16, 3


def _established_on(port: int) -> set[str]:
    """Socket inodes of the established TCP connections whose local port is `port`."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":
            inodes.add(fields[9])
    return inodes


def _held_by(pid: int, inodes: set[str]) -> int:
    held = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            held += 1
    return held


def _burst(port: int) -> list[http.client.HTTPConnection]:
    """CONNECTIONS keep-alive connections opened at once, each answered once and kept open."""
    connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                   for _ in range(CONNECTIONS)]  # fmt: skip
    start = threading.Barrier(CONNECTIONS)
    statuses: list[int] = []

    def ask(connection: http.client.HTTPConnection) -> None:
        start.wait()
        connection.request("GET", "/api/health/ping")
        response = connection.getresponse()
        response.read()
        statuses.append(response.status)

    threads = [threading.Thread(target=ask, args=(c,)) for c in connections]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert statuses == [200] * CONNECTIONS
    return connections


def test_a_burst_of_keep_alive_connections_is_spread_over_the_workers(settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = service_env(settings)
    with gunicorn(env, workers=WORKERS, threads=THREADS, log_path=tmp_path / "g.log") as (
        base,
        proc,
    ):
        port = int(base.rsplit(":", 1)[1])
        workers = child_pids(proc.pid)
        assert len(workers) == WORKERS
        for _ in range(BURSTS):
            connections = _burst(port)
            try:
                inodes = _established_on(port)
                held = [_held_by(pid, inodes) for pid in workers]
            finally:
                for connection in connections:
                    connection.close()
            assert sum(held) == CONNECTIONS, held
            assert min(held) >= CONNECTIONS // 4, f"one worker took the burst: {held}"
