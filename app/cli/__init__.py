"""The `flask` commands, one module per area; `init_app` registers them all.

Each command is an entry point like a route: it parses its options, calls services and
prints. Commands and the app factory are the only code outside `app/api` (and `app/web`)
that may know Flask or click.

Commands are registered by name and imported when first looked up (click's lazy group), so
that a web worker, which never runs one, does not import the modules behind them.
"""

from __future__ import annotations

import importlib
import os
import sys

import click
from flask import Flask
from flask.cli import AppGroup

from app.errors import AppError

# Commands that answer no request: `flask <one of these>` builds its app without the HTTP
# layer (`app.api`, `app.web`), so it imports only what the command needs.
HTTP_FREE_COMMANDS = frozenset({"backtest"})

COMMANDS = {
    "preflight": "app.cli.ops:preflight_command",
    "worker": "app.cli.ops:worker_command",
    "create-admin": "app.cli.accounts:create_admin_command",
    "rotate-encryption-key": "app.cli.credentials:rotate_encryption_key_command",
    "seed-demo": "app.cli.bots:seed_demo_command",
    "import-candles": "app.cli.markets:import_candles_command",
    "download-candles": "app.cli.markets:download_candles_command",
    "reconcile": "app.cli.markets:reconcile_command",
    "backtest": "app.cli.backtests:backtest_command",
    "search": "app.cli.searches:search_command",
}


def said_once(exc: AppError) -> str:
    """An error's message and those of its details it does not already say."""
    extra = []
    for detail in exc.details:
        msg = str(detail.get("msg", "")) if isinstance(detail, dict) else ""
        if msg and msg not in exc.message and msg not in extra:
            extra.append(msg)
    return exc.message + (f" ({'; '.join(extra)})" if extra else "")


def needs_secrets() -> bool:
    """Whether this process signs tokens or decrypts credentials: a server (gunicorn, `flask
    run`) does; a `flask` command does only if it says so itself (`flask worker`), so the
    others print no warning about development secrets."""
    if os.environ.get("FLASK_RUN_FROM_CLI") != "true":
        return True
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.info_name == "run"


def command_line_command() -> str | None:
    """The command the `flask` command line is about to run while it loads the app (read
    from its arguments as click reads them, the group's own options skipped), or None: not
    a `flask` command line, or one click cannot read."""
    if os.environ.get("FLASK_RUN_FROM_CLI") != "true":
        return None
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return None
    root = ctx.find_root()
    probe = click.Context(root.command, info_name=root.info_name, resilient_parsing=True)
    try:
        rest = click.Command.parse_args(root.command, probe, sys.argv[1:])
    except click.ClickException:
        return None
    return rest[0] if rest else None


def serves_http() -> bool:
    """Whether this process needs the HTTP layer: every server, test and command does but
    those in `HTTP_FREE_COMMANDS`."""
    return command_line_command() not in HTTP_FREE_COMMANDS


class LazyCommands(AppGroup):
    """The app's command group, importing a command's module only when it is asked for."""

    def __init__(self, name: str, commands: dict[str, str]) -> None:
        super().__init__(name)
        self.lazy = commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            return load_command(self.lazy[cmd_name])
        return super().get_command(ctx, cmd_name)


def load_command(target: str) -> click.Command:
    module, attribute = target.split(":")
    command = getattr(importlib.import_module(module), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{target} is not a click command")
    return command


def init_app(app: Flask) -> None:
    app.cli = LazyCommands(app.name, COMMANDS)
