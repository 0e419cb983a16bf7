"""`flask seed-demo`: the demo user and a few running paper bots on the replay market."""

from __future__ import annotations

import click

from app.services import bots as service
from app.store.db import session_scope


@click.command("seed-demo")
def seed_demo_command() -> None:
    """Create the demo user and a few running paper bots on the replay market (idempotent)."""
    with session_scope() as session:
        user, bots, created = service.seed_demo(session)
        lines = [f"  #{b.id} {b.name}: {b.symbol} {b.timeframe} {b.strategy} ({b.status})"
                 for b in bots]  # fmt: skip
        email = user.email
    click.echo(f"demo user {email} (password: {service.DEMO_PASSWORD}); "
               f"{created} bot(s) created, {len(bots)} in all:")  # fmt: skip
    for line in lines:
        click.echo(line)
