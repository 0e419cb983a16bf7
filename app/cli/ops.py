"""Operator commands: `flask preflight` (is this deploy ready?) and `flask worker` (a
scheduler-only process)."""

from __future__ import annotations

import signal
import sys
import threading

import click

from app.lifecycle import lifecycle
from app.services.health import readiness
from app.store.db import get_engine
from config import get_settings, warn_insecure_defaults


@click.command("preflight")
def preflight_command() -> None:
    """Check config, database, migrations and Redis; exit non-zero when one fails.

    Run it in a deploy pipeline before switching traffic.
    """

    settings = get_settings()
    click.echo(f"[ok]   config: APP_ENV={settings.app_env}, MARKET_DATA={settings.market_data}")
    for name in settings.insecure_defaults_in_use():
        click.echo(f"[warn] config: {name} not set (development default in use)")
    failed = False
    for check in readiness(get_engine()):
        click.echo(f"[{'ok' if check.ok else 'FAIL':4}] {check.name}: {check.detail}")
        if not check.ok:
            failed = True
            click.echo(f"       fix: {check.fix}")
    if failed:
        sys.exit(1)


@click.command("worker")
def worker_command() -> None:
    """Run a scheduler-only process (bot ticks, jobs, self-healing) until SIGTERM/SIGINT."""

    warn_insecure_defaults(get_settings())  # live bots decrypt their exchange credentials
    settings = get_settings().model_copy(update={"scheduler_enabled": True})
    stop = threading.Event()

    def on_signal(*_: object) -> None:
        lifecycle.request_stop()
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    lifecycle.start(settings)
    click.echo("worker running; SIGTERM to stop")
    stop.wait()
    failed = lifecycle.stop()
    sys.exit(1 if failed else 0)
