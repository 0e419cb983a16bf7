"""Prometheus metric objects shared by every feature.

Feature code only increments these; `GET /metrics` (app/api/metrics.py) renders them. Under
gunicorn, `PROMETHEUS_MULTIPROC_DIR` is set by gunicorn.conf.py before any worker imports
prometheus_client, so each process writes its values to a memory-mapped file and the scrape
adds them up across workers. Label values must come from small fixed sets (never ids).
"""

from __future__ import annotations

import logging
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

log = logging.getLogger("tradewind.metrics")

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TICK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LAG_BUCKETS = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)

HTTP_REQUESTS = Counter(
    "tradewind_http_requests",
    "HTTP requests by route template, method and status.",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "tradewind_http_request_duration_seconds",
    "Time to produce a response (headers, for streams), by route template and method.",
    ["method", "route"],
    buckets=HTTP_BUCKETS,
)

BOT_TICKS = Counter(
    "tradewind_bot_ticks", "Bot ticks run, by outcome (ok, skipped, error, ...).", ["outcome"]
)
BOT_TICK_DURATION = Histogram(
    "tradewind_bot_tick_duration_seconds", "Wall time of one bot tick.", buckets=TICK_BUCKETS
)
BOT_TICK_LAG = Histogram(
    "tradewind_bot_tick_lag_seconds",
    "How late a tick started against its planned time (next_tick_at).",
    buckets=LAG_BUCKETS,
)
ORDERS = Counter("tradewind_orders", "Order state transitions, by new state.", ["state"])
JOBS = Counter("tradewind_jobs", "Job state transitions, by new state.", ["state"])
CLAIMS_LOST = Counter(
    "tradewind_claims_lost",
    "Work another worker claimed first (or a lease lost), by kind (tick, job, ...).",
    ["kind"],
)
EMERGENCY_STOP = Gauge(
    "tradewind_emergency_stop",
    "1 while the emergency stop is active, else 0 (refreshed from the database on scrape).",
    multiprocess_mode="mostrecent",
)
INCIDENTS = Counter("tradewind_incidents", "Self-healing incidents, by kind.", ["kind"])

EVENTS_PUBLISHED = Counter(
    "tradewind_events_published",
    "Realtime events written to the event table, by outcome (recorded, failed).",
    ["outcome"],
)
SSE_STREAMS = Gauge(
    "tradewind_sse_streams", "Open server-sent-event streams.", multiprocess_mode="livesum"
)
SSE_REJECTED = Counter(
    "tradewind_sse_rejected", "SSE connections refused because a worker was at its cap."
)


def multiprocess_dir() -> str | None:
    """The directory of per-process metric files, when running under multiprocess mode."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def render_latest() -> tuple[bytes, str]:
    """The exposition text of every process (multiprocess mode) or of this one."""
    path = multiprocess_dir()
    if path:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=path)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
