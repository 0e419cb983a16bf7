"""gunicorn settings. Background work starts in each worker after fork, never in the master."""

from __future__ import annotations

import os

from app.observability.multiprocess import prepare_dir

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "app.serving.BalancedThreadWorker"  # gthread, connections spread (app/serving.py)
threads = int(os.environ.get("WEB_THREADS", "8"))
# The master builds the app once and every worker is forked from it: a worker starts in
# milliseconds instead of importing everything again, and shares the frozen start-up objects
# (wsgi.py) with its siblings. create_app opens no connection and starts no thread; post_fork
# drops anything inherited. New code needs a restart, not a HUP, since HUP forks the old app
# (PRELOAD_APP=0 makes every worker import the app itself, so that a HUP reloads the code).
preload_app = os.environ.get("PRELOAD_APP", "1") != "0"
# No runtime control socket (gunicorn 25+ opens one in the home folder by default): nothing
# here uses it, and every server on the machine would share its path.
control_socket_disable = True
timeout = 120
graceful_timeout = 30
keepalive = 5
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-" if os.environ.get("ACCESS_LOG", "1") != "0" else None
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
logger_class = "app.observability.gunicorn_logging.GunicornLogger"
# What gunicorn itself refuses before the app sees a request (it answers 400 in plain text;
# deploy/nginx.conf holds the same limits, a little lower, and answers them in the envelope).
limit_request_line = 8190  # method, path and query string (the stream's ?token= fits)
limit_request_fields = 100
limit_request_field_size = 8190

# Before any worker imports prometheus_client: every process writes its metrics here.
_own_metrics_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
prepare_dir()


def on_starting(server):  # type: ignore[no-untyped-def]
    """Forget metric files left by processes of a previous run."""
    from app.observability.multiprocess import remove_stale_files

    remove_stale_files(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def on_exit(server):  # type: ignore[no-untyped-def]
    """Remove the metrics directory when it was a temporary one made for this server."""
    if _own_metrics_dir:
        import shutil

        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def when_ready(server):  # type: ignore[no-untyped-def]
    """Optionally serve the aggregated metrics on an internal port (METRICS_PORT)."""
    port = os.environ.get("METRICS_PORT")
    if port:
        from app.observability.multiprocess import start_metrics_server

        start_metrics_server(int(port), os.environ.get("METRICS_ADDR", "127.0.0.1"))


def pre_request(worker, req):  # type: ignore[no-untyped-def]
    """A body over MAX_CONTENT_LENGTH is answered 413 without being read: close that
    connection after the answer (`Connection: close`), or its unread bytes would be taken for
    the next request on it."""
    from config import get_settings

    length = next((v for name, v in req.headers if name == "CONTENT-LENGTH"), "")
    if length.strip().isdigit() and int(length) > get_settings().max_content_length:
        req.must_close = True


def post_fork(server, worker):  # type: ignore[no-untyped-def]
    """Drop database connections inherited from the master."""
    from app.store.db import dispose_after_fork

    dispose_after_fork()


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    """Start this worker's background subsystems (the scheduler when enabled)."""
    from app.lifecycle import lifecycle
    from config import get_settings

    lifecycle.start(get_settings())
    _end_event_streams_on_term()


def _end_event_streams_on_term():  # type: ignore[no-untyped-def]
    """On SIGTERM, end open SSE streams at once (clients resume elsewhere) instead of letting
    them hold the graceful shutdown for `graceful_timeout`."""
    import signal

    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum, frame):  # type: ignore[no-untyped-def]
        from app.lifecycle import lifecycle
        from app.services.events import broker

        lifecycle.request_stop()  # the stop budget counts from here; ticks wind down now
        broker.shutdown()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, handler)


def worker_exit(server, worker):  # type: ignore[no-untyped-def]
    from app.lifecycle import lifecycle

    lifecycle.stop()


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    """A worker is gone: clean its live-gauge metric files."""
    from app.observability.multiprocess import mark_process_dead

    mark_process_dead(worker.pid)
