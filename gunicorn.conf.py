"""gunicorn settings. Background work starts in each worker after fork, never in the master."""

from __future__ import annotations

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "8"))
timeout = 120
graceful_timeout = 30
keepalive = 5
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-" if os.environ.get("ACCESS_LOG", "1") != "0" else None


def post_fork(server, worker):  # type: ignore[no-untyped-def]
    """Drop database connections inherited from the master."""
    from app.store.db import dispose_after_fork

    dispose_after_fork()


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    """Start this worker's background subsystems (the scheduler when enabled)."""
    from app.lifecycle import lifecycle
    from config import get_settings

    lifecycle.start(get_settings())


def worker_exit(server, worker):  # type: ignore[no-untyped-def]
    from app.lifecycle import lifecycle

    lifecycle.stop()
