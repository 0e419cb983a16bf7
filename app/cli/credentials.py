"""`flask rotate-encryption-key`: re-encrypt every stored exchange credential and
notification channel secret under the newest key."""

from __future__ import annotations

import sys

import click

from app.errors import AppError
from app.services import credentials, notifications
from app.services.audit import record_audit
from app.store.crypto import cipher
from app.store.db import session_scope
from config import get_settings


@click.command("rotate-encryption-key")
@click.option("--batch-size", default=200, show_default=True, type=click.IntRange(1, 10_000))
def rotate_encryption_key_command(batch_size: int) -> None:
    """Re-encrypt every exchange credential and notification channel under the newest key.

    Put the new key first (ENCRYPTION_KEY=new,old), restart, run this, then drop the old key.
    Each batch is its own transaction, so the command can be re-run after an interruption.
    Exits 1 when some row cannot be decrypted with any configured key (its id is printed).
    """
    try:
        cipher()  # a malformed key stops here, before any row is touched
    except AppError as exc:
        raise click.ClickException(exc.message) from None
    keys = len(get_settings().effective_encryption_keys)
    done, unreadable, after_id = 0, [], 0
    unreadable_channels: list[int] = []
    while True:
        with session_scope() as session:
            rows = credentials.next_credential_batch(session, after_id=after_id, limit=batch_size)
            if not rows:
                break
            count, bad = credentials.reencrypt_batch(session, rows)
            after_id = rows[-1].id
        done += count
        unreadable.extend(bad)
    channels, after = 0, 0
    while True:
        with session_scope() as session:
            count, bad, last = notifications.reencrypt_channels(
                session, after_id=after, limit=batch_size
            )
        if last is None:
            break
        channels, after = channels + count, last
        unreadable_channels.extend(bad)
    with session_scope() as session:
        record_audit(
            session,
            "admin.encryption_key_rotated",
            details={"reencrypted": done, "unreadable": len(unreadable), "keys_configured": keys,
                     "channels_reencrypted": channels},
        )  # fmt: skip
    click.echo(f"re-encrypted {done} credential(s) under the newest of {keys} key(s)")
    click.echo(f"re-encrypted {channels} notification channel(s)")
    if unreadable:
        click.echo(
            f"{len(unreadable)} credential(s) could not be decrypted with any configured key: "
            f"ids {', '.join(map(str, unreadable))}",
            err=True,
        )
    if unreadable_channels:
        click.echo(
            f"{len(unreadable_channels)} notification channel(s) could not be decrypted with "
            f"any configured key: ids {', '.join(map(str, unreadable_channels))}",
            err=True,
        )
    if unreadable or unreadable_channels:
        sys.exit(1)
