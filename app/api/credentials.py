"""Exchange credentials, encrypted at rest: add, list (masked), delete; and
`flask rotate-encryption-key`, which re-encrypts every row under the newest key."""

from __future__ import annotations

import sys
from datetime import datetime

import click
from flask import Blueprint, Flask, request
from pydantic import BaseModel, Field

from app.api.jwt import auth_required, current_user
from app.api.request_context import db_session
from app.api.validation import RequestModel, body, response
from app.services import credentials
from app.store.models.accounts import ExchangeCredential

bp = Blueprint("credentials", __name__)


class CredentialBody(RequestModel):
    exchange: str = Field(min_length=1, max_length=50)
    label: str = Field(min_length=1, max_length=100)
    api_key: str = Field(min_length=8, max_length=512)
    secret: str = Field(min_length=8, max_length=512)
    passphrase: str | None = Field(default=None, min_length=1, max_length=512)
    uid: str | None = Field(default=None, min_length=1, max_length=128)


class CredentialOut(BaseModel):
    id: int
    exchange: str
    label: str
    api_key: str = Field(description="masked: only the last four characters are shown")
    created_at: datetime

    @classmethod
    def of(cls, row: ExchangeCredential) -> CredentialOut:
        return cls(
            id=row.id,
            exchange=row.exchange,
            label=row.label,
            api_key=f"****{row.key_hint}",
            created_at=row.created_at,
        )


class CredentialList(BaseModel):
    items: list[CredentialOut]


@bp.post("/api/exchange-credentials")
@auth_required
@response(CredentialOut, 201)
@body(CredentialBody)
def add(body: CredentialBody) -> CredentialOut:
    row = credentials.add_credential(
        db_session(),
        current_user().id,
        credentials.NewCredential(
            exchange=body.exchange.lower(),
            label=body.label,
            api_key=body.api_key,
            secret=body.secret,
            passphrase=body.passphrase,
            uid=body.uid,
        ),
        ip=request.remote_addr,
    )
    return CredentialOut.of(row)


@bp.get("/api/exchange-credentials")
@auth_required
@response(CredentialList)
def listing() -> CredentialList:
    rows = credentials.list_credentials(db_session(), current_user().id)
    return CredentialList(items=[CredentialOut.of(r) for r in rows])


@bp.delete("/api/exchange-credentials/<int:credential_id>")
@auth_required
def delete(credential_id: int) -> tuple[str, int]:
    credentials.delete_credential(
        db_session(), current_user().id, credential_id, ip=request.remote_addr
    )
    return "", 204


@click.command("rotate-encryption-key")
@click.option("--batch-size", default=200, show_default=True, type=click.IntRange(1, 10_000))
def rotate_encryption_key_command(batch_size: int) -> None:
    """Re-encrypt every stored exchange credential under the newest key of ENCRYPTION_KEY.

    Put the new key first (ENCRYPTION_KEY=new,old), restart, run this, then drop the old key.
    Each batch is its own transaction, so the command can be re-run after an interruption.
    Exits 1 when some row cannot be decrypted with any configured key (its id is printed).
    """
    from app.errors import AppError
    from app.services.audit import record_audit
    from app.services.crypto import cipher
    from app.store.db import session_scope
    from config import get_settings

    try:
        cipher()  # a malformed key stops here, before any row is touched
    except AppError as exc:
        raise click.ClickException(exc.message) from None
    keys = len(get_settings().effective_encryption_keys)
    done, unreadable, after_id = 0, [], 0
    while True:
        with session_scope() as session:
            rows = credentials.next_credential_batch(session, after_id=after_id, limit=batch_size)
            if not rows:
                break
            count, bad = credentials.reencrypt_batch(session, rows)
            after_id = rows[-1].id
        done += count
        unreadable.extend(bad)
    with session_scope() as session:
        record_audit(
            session,
            "admin.encryption_key_rotated",
            details={"reencrypted": done, "unreadable": len(unreadable), "keys_configured": keys},
        )
    click.echo(f"re-encrypted {done} credential(s) under the newest of {keys} key(s)")
    if unreadable:
        click.echo(
            f"{len(unreadable)} credential(s) could not be decrypted with any configured key: "
            f"ids {', '.join(map(str, unreadable))}",
            err=True,
        )
        sys.exit(1)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.cli.add_command(rotate_encryption_key_command)
