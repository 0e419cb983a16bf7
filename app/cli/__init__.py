"""The `flask` commands, one module per area; `init_app` registers them all.

Each command is an entry point like a route: it parses its options, calls services and
prints. Commands and the app factory are the only code outside `app/api` (and `app/web`)
that may know Flask or click.
"""

from __future__ import annotations

from flask import Flask

from app.cli import accounts, backtests, bots, credentials, markets, ops

COMMANDS = (
    ops.preflight_command,
    ops.worker_command,
    accounts.create_admin_command,
    credentials.rotate_encryption_key_command,
    bots.seed_demo_command,
    markets.import_candles_command,
    markets.download_candles_command,
    markets.reconcile_command,
    backtests.backtest_command,
)


def init_app(app: Flask) -> None:
    for command in COMMANDS:
        app.cli.add_command(command)
