"""Exchange credentials, encrypted at rest: add, list (masked), delete; and
`flask rotate-encryption-key`, which re-encrypts every row under the newest key."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Flask, request
from pydantic import Field

from app.api.jwt import auth_required, current_user
from app.api.request_context import db_session
from app.api.types import ApiModel
from app.api.validation import RequestModel, body, response
from app.openapi import answers
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


class CredentialOut(ApiModel):
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


class CredentialList(ApiModel):
    items: list[CredentialOut]


@bp.post("/api/exchange-credentials")
@answers(409)
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


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
