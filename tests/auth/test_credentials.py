"""Exchange credentials: encrypted at rest (the raw row and the logs hold neither the key nor
the secret), listed masked, deleted by their owner, validated against ccxt's exchanges."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from cryptography.fernet import Fernet, MultiFernet
from flask.testing import FlaskClient
from sqlalchemy import create_engine, func, select, text

from app.errors import NotFound
from app.services import credentials
from app.store.db import session_scope
from app.store.models.accounts import AuditLog, ExchangeCredential
from config import Settings

API_KEY = "AKIAkey-0123456789-abcdWXYZ"
SECRET = "s3cr3t-value-that-must-never-leak-9f8e7d"
PASSPHRASE = "pass-phrase-also-secret"


@pytest.fixture
def headers(make_user, auth_headers) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return auth_headers(make_user(email="trader@example.com"))


def add(client: FlaskClient, headers: dict[str, str], **fields: Any) -> Any:
    payload = {"exchange": "binance", "label": "main", "api_key": API_KEY, "secret": SECRET}
    payload.update(fields)
    return client.post("/api/exchange-credentials", json=payload, headers=headers)


def count() -> int:
    with session_scope() as db:
        return int(db.scalar(select(func.count()).select_from(ExchangeCredential)) or 0)


def test_add_list_delete(client: FlaskClient, headers: dict[str, str]) -> None:
    created = add(client, headers)
    assert created.status_code == 201
    item = created.get_json()
    assert item["api_key"] == "****WXYZ" and item["exchange"] == "binance"
    okx = add(client, headers, exchange="okx", label="okx", passphrase=PASSPHRASE)
    assert okx.status_code == 201
    listed = client.get("/api/exchange-credentials", headers=headers)
    assert [c["label"] for c in listed.get_json()["items"]] == ["main", "okx"]
    for response in (created, okx, listed):
        text_ = response.get_data(as_text=True)
        assert SECRET not in text_ and API_KEY not in text_ and PASSPHRASE not in text_
    deleted = client.delete(f"/api/exchange-credentials/{item['id']}", headers=headers)
    assert deleted.status_code == 204
    again = client.delete(f"/api/exchange-credentials/{item['id']}", headers=headers)
    assert again.status_code == 404
    assert [
        c["label"]
        for c in client.get("/api/exchange-credentials", headers=headers).get_json()["items"]
    ] == ["okx"]
    with session_scope() as db:
        actions = db.scalars(select(AuditLog.action).order_by(AuditLog.id)).all()
    assert actions == ["credentials.added", "credentials.added", "credentials.deleted"]


def test_database_and_logs_hold_no_plaintext(
    client: FlaskClient,
    headers: dict[str, str],
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    assert add(client, headers, exchange="kucoin", passphrase=PASSPHRASE).status_code == 201
    add(client, headers, exchange="kucoin", passphrase=PASSPHRASE)  # 409: duplicate label
    add(client, headers, exchange="nope", label="x")  # 422
    engine = create_engine(database_url)
    with engine.connect() as conn:
        rows = [
            tuple(map(str, r)) for r in conn.execute(text("SELECT * FROM exchange_credentials"))
        ]
        audit = [tuple(map(str, r)) for r in conn.execute(text("SELECT * FROM audit_log"))]
    engine.dispose()
    raw = repr(rows) + repr(audit)
    assert len(rows) == 1
    for secret in (API_KEY, SECRET, PASSPHRASE):
        assert secret not in raw
        assert secret not in caplog.text
    assert "WXYZ" in raw  # the hint is all that is kept in clear


def test_secrets_round_trip_for_the_exchange_code(
    client: FlaskClient, headers: dict[str, str], make_user
) -> None:  # type: ignore[no-untyped-def]
    item = add(client, headers, exchange="okx", passphrase=PASSPHRASE).get_json()
    with session_scope() as db:
        owner_id = db.scalar(select(ExchangeCredential.user_id))
        loaded = credentials.load_secrets(db, owner_id, item["id"])
        assert (loaded.api_key, loaded.secret, loaded.passphrase) == (API_KEY, SECRET, PASSPHRASE)
        assert SECRET not in repr(loaded)
        with pytest.raises(NotFound):
            credentials.load_secrets(db, make_user().id, item["id"])


def test_old_keys_still_decrypt_and_new_rows_use_the_newest(
    client: FlaskClient, headers: dict[str, str], settings: Settings
) -> None:
    from config import use_settings

    item = add(client, headers).get_json()
    new_key = Fernet.generate_key().decode()
    use_settings(
        settings.model_copy(
            update={"encryption_key": f"{new_key},{settings.effective_encryption_keys[0]}"}
        )
    )
    try:
        second = add(client, headers, label="second").get_json()
        with session_scope() as db:
            owner = db.scalar(select(ExchangeCredential.user_id))
            assert credentials.load_secrets(db, owner, item["id"]).secret == SECRET
            newest = MultiFernet([Fernet(new_key)])
            row = db.get(ExchangeCredential, second["id"])
            assert row is not None and SECRET.encode() in newest.decrypt(row.ciphertext.encode())
    finally:
        use_settings(settings)


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"exchange": "notanexchange"}, "exchange"),
        ({"exchange": "okx"}, "passphrase"),  # okx needs a passphrase
        ({"exchange": "coinmate"}, "uid"),
        ({"exchange": "hyperliquid"}, "exchange"),  # needs a wallet key this form does not take
        ({"exchange": "replay"}, "exchange"),
        ({"api_key": None}, "api_key"),
        ({"secret": 12345678}, "secret"),
        ({"secret": "short"}, "secret"),
        ({"label": ""}, "label"),
        ({"label": "l" * 101}, "label"),
        ({"api_key": "k" * 513}, "api_key"),
        ({"extra": "field"}, "extra"),
    ],
)
def test_bad_input_is_422_writes_nothing_and_echoes_no_secret(
    client: FlaskClient, headers: dict[str, str], fields: dict[str, Any], loc: str
) -> None:
    response = add(client, headers, **fields)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert any(d["loc"][-1] == loc for d in error["details"]), error
    assert SECRET not in response.get_data(as_text=True)
    assert API_KEY not in response.get_data(as_text=True)
    assert count() == 0


def test_missing_fields(client: FlaskClient, headers: dict[str, str]) -> None:
    response = client.post(
        "/api/exchange-credentials", json={"exchange": "binance"}, headers=headers
    )
    assert response.status_code == 422
    missing = {d["loc"][-1] for d in response.get_json()["error"]["details"]}
    assert missing == {"label", "api_key", "secret"}


def test_duplicate_label_is_409(client: FlaskClient, headers: dict[str, str]) -> None:
    assert add(client, headers).status_code == 201
    response = add(client, headers)
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "label_taken"
    assert count() == 1


def test_needs_a_token(client: FlaskClient) -> None:
    assert client.get("/api/exchange-credentials").status_code == 401
    assert client.post("/api/exchange-credentials", json={}).status_code == 401


def test_exchange_catalog_matches_installed_ccxt() -> None:
    import ccxt

    assert set(ccxt.exchanges) == credentials.CCXT_EXCHANGES
    for name in ccxt.exchanges:
        required = getattr(ccxt, name)().requiredCredentials
        extras = tuple(
            sorted(k for k, v in required.items() if v and k not in ("apiKey", "secret"))
        )
        assert credentials.CCXT_EXTRA_CREDENTIALS.get(name, ()) == extras, name
