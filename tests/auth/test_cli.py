"""`flask create-admin` and `flask rotate-encryption-key`, run as real processes."""

from __future__ import annotations

import subprocess
from typing import Any

from cryptography.fernet import Fernet
from flask.testing import FlaskClient
from sqlalchemy import select

from app.store.db import session_scope
from app.store.models import User
from app.store.models.accounts import AuditLog, ExchangeCredential
from config import DEV_ENCRYPTION_KEY, Settings
from tests.support.processes import ROOT, flask_command, service_env

ADMIN_PASSWORD = "an admin password 123"
SECRET = "exchange-secret-abcdef-123456"


def run(settings: Settings, *args: str, stdin: str | None = None, **env: str) -> Any:
    return subprocess.run(
        flask_command(*args),
        cwd=ROOT,
        env=service_env(settings, **env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def login(client: FlaskClient, email: str, password: str) -> Any:
    return client.post("/api/auth/login", json={"email": email, "password": password})


def test_create_admin_from_environment(client: FlaskClient, settings: Settings) -> None:
    proc = run(
        settings, "create-admin", "Boss@Example.com", TRADEWIND_ADMIN_PASSWORD=ADMIN_PASSWORD
    )
    assert proc.returncode == 0, proc.stderr
    assert "admin boss@example.com" in proc.stdout and "created" in proc.stdout
    assert ADMIN_PASSWORD not in proc.stdout + proc.stderr
    tokens = login(client, "boss@example.com", ADMIN_PASSWORD).get_json()
    assert tokens["user"]["role"] == "admin"
    users = client.get(
        "/api/admin/users", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert users.status_code == 200
    with session_scope() as db:
        assert db.scalar(select(AuditLog.action).where(AuditLog.action == "admin.created_by_cli"))


def test_create_admin_from_a_prompt_promotes_an_existing_user(
    client: FlaskClient, settings: Settings, make_user
) -> None:  # type: ignore[no-untyped-def]
    make_user(email="carol@example.com", is_disabled=True)
    proc = run(settings, "create-admin", "carol@example.com", stdin=ADMIN_PASSWORD + "\n")
    assert proc.returncode == 0, proc.stderr
    assert "promoted to admin" in proc.stdout
    with session_scope() as db:
        user = db.scalars(select(User)).one()
        assert user.role == "admin" and not user.is_disabled
    assert login(client, "carol@example.com", ADMIN_PASSWORD).status_code == 200


def test_create_admin_refuses_a_weak_password_and_bad_email(settings: Settings) -> None:
    weak = run(settings, "create-admin", "dan@example.com", TRADEWIND_ADMIN_PASSWORD="short")
    assert weak.returncode != 0 and "at least 10 characters" in weak.stderr
    bad = run(settings, "create-admin", "not-an-email", TRADEWIND_ADMIN_PASSWORD=ADMIN_PASSWORD)
    assert bad.returncode != 0 and "not a valid email" in bad.stderr
    empty = run(settings, "create-admin", "dan@example.com", stdin="")
    assert empty.returncode != 0
    with session_scope() as db:
        assert db.scalars(select(User)).all() == []


def test_create_admin_takes_no_password_argument(settings: Settings) -> None:
    proc = run(settings, "create-admin", "eve@example.com", ADMIN_PASSWORD)
    assert proc.returncode != 0  # a second positional argument is refused


def _add_credentials(client: FlaskClient, headers: dict[str, str], n: int) -> None:
    for i in range(n):
        response = client.post(
            "/api/exchange-credentials",
            json={
                "exchange": "binance",
                "label": f"k{i}",
                "api_key": f"key-{i}-abcdefgh",
                "secret": SECRET,
            },
            headers=headers,
        )
        assert response.status_code == 201


def test_rotate_encryption_key_reencrypts_every_row(
    client: FlaskClient, settings: Settings, make_user, auth_headers
) -> None:  # type: ignore[no-untyped-def]
    assert settings.effective_encryption_keys == [DEV_ENCRYPTION_KEY]
    _add_credentials(client, auth_headers(make_user()), 5)
    new_key = Fernet.generate_key().decode()

    proc = run(
        settings,
        "rotate-encryption-key",
        "--batch-size",
        "2",
        ENCRYPTION_KEY=f"{new_key},{DEV_ENCRYPTION_KEY}",
    )
    assert proc.returncode == 0, proc.stderr
    assert "re-encrypted 5 credential(s) under the newest of 2 key(s)" in proc.stdout
    with session_scope() as db:
        rows = db.scalars(select(ExchangeCredential)).all()
        only_new = Fernet(new_key)
        assert all(SECRET.encode() in only_new.decrypt(r.ciphertext.encode()) for r in rows)
        audit = db.scalars(
            select(AuditLog).where(AuditLog.action == "admin.encryption_key_rotated")
        ).one()
        assert audit.details["reencrypted"] == 5

    # With the old key gone, no configured key opens the rows: the command says which.
    stranger = Fernet.generate_key().decode()
    failed = run(settings, "rotate-encryption-key", ENCRYPTION_KEY=stranger)
    assert failed.returncode == 1
    assert "5 credential(s) could not be decrypted" in failed.stderr
    assert new_key not in failed.stdout + failed.stderr and stranger not in failed.stderr


def test_rotate_refuses_a_malformed_key(settings: Settings) -> None:
    proc = run(settings, "rotate-encryption-key", ENCRYPTION_KEY="not-a-fernet-key")
    assert proc.returncode != 0
    assert "ENCRYPTION_KEY entry #1 is not a valid Fernet key" in proc.stderr
    assert "not-a-fernet-key" not in proc.stderr
