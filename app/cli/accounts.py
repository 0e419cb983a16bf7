"""`flask create-admin`: create an admin account, or make an existing one an enabled admin."""

from __future__ import annotations

import os
import sys

import click

from app.errors import AppError
from app.services import accounts
from app.store.db import session_scope

PASSWORD_ENV = "TRADEWIND_ADMIN_PASSWORD"


@click.command("create-admin")
@click.argument("email")
def create_admin_command(email: str) -> None:
    """Create an admin account (or make an existing account an enabled admin).

    The password is read from TRADEWIND_ADMIN_PASSWORD when set, otherwise prompted for
    (twice, hidden); it is never a command-line argument, so it stays out of shell history
    and process listings.
    """
    password = os.environ.get(PASSWORD_ENV)
    if not password:
        if not sys.stdin.isatty():
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise click.ClickException(f"no password: set {PASSWORD_ENV} or type it at the prompt")
    try:
        with session_scope() as session:
            user, created = accounts.create_or_promote_admin(session, email, password)
            user_id, user_email = user.id, user.email
    except AppError as exc:
        raise click.ClickException(exc.message) from None
    verb = "created" if created else "promoted to admin"
    click.echo(f"admin {user_email} (id {user_id}) {verb}")
