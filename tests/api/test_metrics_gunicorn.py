"""`/metrics` under gunicorn adds up every worker's counts (prometheus multiprocess mode)."""

from __future__ import annotations

import re
from pathlib import Path

import requests
from prometheus_client.multiprocess import MultiProcessCollector

from config import Settings
from tests.observability.helpers import ops_gunicorn
from tests.support.processes import free_port

PING = "/api/health/ping"
MAX_REQUESTS = 300


def scrape_count(base: str) -> float:
    text = requests.get(base + "/metrics", timeout=10).text
    return ping_count(text)


def ping_count(text: str) -> float:
    pattern = (
        r'^tradewind_http_requests_total\{method="GET",route="/api/health/ping",status="200"\}'
        r" (\S+)$"
    )
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def per_worker_counts(metrics_dir: Path) -> dict[int, float]:
    """The ping counter as each process's own metric file holds it."""
    counts: dict[int, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        for metric in MultiProcessCollector.merge([str(path)], accumulate=False):
            for sample in metric.samples:
                if (
                    sample.name == "tradewind_http_requests_total"
                    and sample.labels.get("route") == PING
                    and sample.labels.get("status") == "200"
                ):
                    counts[pid] = counts.get(pid, 0.0) + sample.value
    return counts


def test_metrics_add_up_across_workers(settings: Settings, tmp_path: Path) -> None:
    internal_port = free_port()
    with ops_gunicorn(
        settings, tmp_path, workers=2, threads=2, METRICS_PORT=str(internal_port)
    ) as server:
        base, metrics_dir = server.base, server.metrics_dir
        before = scrape_count(base)
        sent = 0
        while sent < MAX_REQUESTS:
            # a new connection per request, so the kernel spreads them over both workers
            response = requests.get(base + PING, headers={"Connection": "close"}, timeout=10)
            assert response.status_code == 200
            sent += 1
            if sent >= 20 and len([c for c in per_worker_counts(metrics_dir).values() if c]) >= 2:
                break
        per_worker = per_worker_counts(metrics_dir)
        after = scrape_count(base)
        # the master's internal port serves the same sums, without going through a worker
        internal = requests.get(f"http://127.0.0.1:{internal_port}/metrics", timeout=10).text

    assert len([c for c in per_worker.values() if c > 0]) >= 2, per_worker
    assert after - before == sent
    assert after == sum(per_worker.values())
    assert max(per_worker.values()) < after  # no single worker holds the whole count
    assert ping_count(internal) == after
