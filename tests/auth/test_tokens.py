"""Tokens: tampering is refused with 401 in the envelope; refresh tokens rotate and a replayed
one revokes its family; logout revokes at once (database first, Redis mirrored, working with
Redis down); expired revocations are pruned."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import jwt as pyjwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from app.services.revocation import prune_expired_revocations
from app.store.base import utcnow
from app.store.db import session_scope
from app.store.models import Bot, User
from app.store.models.accounts import AuditLog, RefreshToken, RevokedToken
from app.store.redis import get_redis, redis_key, reset_redis
from config import Settings, use_settings
from tests.auth.conftest import bearer


@pytest.fixture
def alice(register, login) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    user = register("alice@example.com")
    return {"user": user, **login("alice@example.com")}


def status_code(response: Any) -> tuple[int, str]:
    body = response.get_json() or {}
    return response.status_code, body.get("error", {}).get("code", "")


def me(client: FlaskClient, token: str) -> tuple[int, str]:
    return status_code(client.get("/api/auth/me", headers=bearer(token)))


def refresh(client: FlaskClient, token: str) -> Any:
    return client.post("/api/auth/refresh", headers=bearer(token))


def claims(token: str) -> dict[str, Any]:
    return pyjwt.decode(token, options={"verify_signature": False})


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_wrong_signature(client: FlaskClient, alice: dict[str, Any]) -> None:
    forged = pyjwt.encode(claims(alice["access_token"]), "x" * 48, algorithm="HS256")
    assert me(client, forged) == (401, "invalid_token")
    header, payload, signature = alice["access_token"].split(".")
    promoted = {**claims(alice["access_token"]), "sub": "999"}
    assert me(client, f"{header}.{b64(promoted)}.{signature}") == (401, "invalid_token")


def test_alg_none_is_refused(client: FlaskClient, alice: dict[str, Any]) -> None:
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims(alice['access_token']))}."
    assert me(client, unsigned) == (401, "invalid_token")
    assert me(client, unsigned.rstrip(".")) == (401, "invalid_token")


def test_garbage_and_wrong_scheme(client: FlaskClient, alice: dict[str, Any]) -> None:
    assert me(client, "not.a.jwt") == (401, "invalid_token")
    basic = client.get("/api/auth/me", headers={"Authorization": f"Basic {alice['access_token']}"})
    assert status_code(basic)[0] == 401


def test_expired_token(client: FlaskClient, app: Flask, alice: dict[str, Any]) -> None:
    from flask_jwt_extended import create_access_token

    with app.app_context():
        old = create_access_token(
            identity=str(alice["user"]["id"]), expires_delta=timedelta(seconds=-5)
        )
    assert me(client, old) == (401, "token_expired")


def test_a_remembered_token_still_expires_on_time(
    client: FlaskClient, app: Flask, alice: dict[str, Any]
) -> None:
    """A token verified once is not decoded again, but its expiry still holds."""
    from flask_jwt_extended import create_access_token

    with app.app_context():
        short = create_access_token(
            identity=str(alice["user"]["id"]), expires_delta=timedelta(seconds=2)
        )
    assert me(client, short)[0] == 200
    assert me(client, short)[0] == 200  # the remembered one
    time.sleep(2.1)
    assert me(client, short) == (401, "token_expired")


def test_read_only_routes_refuse_a_remembered_token_at_once(
    client: FlaskClient, alice: dict[str, Any]
) -> None:
    """The bot list runs without a transaction and skips decoding a known token; a disabled
    account and a logout still refuse the token on the very next request."""
    headers = bearer(alice["access_token"])
    assert client.get("/api/bots", headers=headers).status_code == 200
    with session_scope() as db:
        db.execute(update(User).where(User.id == alice["user"]["id"]).values(is_disabled=True))
    assert status_code(client.get("/api/bots", headers=headers)) == (401, "account_unavailable")
    with session_scope() as db:
        db.execute(update(User).where(User.id == alice["user"]["id"]).values(is_disabled=False))
    assert client.get("/api/bots", headers=headers).status_code == 200
    assert client.post("/api/auth/logout", headers=headers).status_code == 204
    assert status_code(client.get("/api/bots", headers=headers)) == (401, "token_revoked")
    assert status_code(client.get("/api/bots/1", headers=headers)) == (401, "token_revoked")


def _own_bot(user_id: int) -> int:
    with session_scope() as db:
        bot = Bot(user_id=user_id, name="mine", symbol="ETH/BTC", timeframe="5m",
                  strategy="sma_crossover", capital=Decimal("1"))  # fmt: skip
        db.add(bot)
        db.flush()
        return bot.id


def test_reads_that_check_the_token_in_their_own_query_refuse_it_first(
    client: FlaskClient, alice: dict[str, Any], register: Any, login: Any
) -> None:
    """The bot list and a bot's page read the token's user and revocation in the same query as
    the bots: a refused token answers 401 whatever the view would have answered (a bad
    filter, a missing bot, another user's bot, a page past the end), on a remembered token."""
    headers = bearer(alice["access_token"])
    mine = _own_bot(alice["user"]["id"])
    theirs = _own_bot(register("bob@example.com")["id"])
    listed = client.get("/api/bots", headers=headers).get_json()
    assert [b["id"] for b in listed["items"]] == [mine] and listed["total"] == 1
    assert client.get(f"/api/bots/{mine}", headers=headers).status_code == 200
    assert status_code(client.get(f"/api/bots/{theirs}", headers=headers)) == (
        404, "bot_not_found")  # fmt: skip
    assert client.get("/api/bots?status=nonsense", headers=headers).status_code == 422
    past_end = client.get("/api/bots?offset=5", headers=headers).get_json()
    assert past_end["items"] == [] and past_end["total"] == 1

    missing = mine + theirs
    refused = ["/api/bots", "/api/bots?status=nonsense", "/api/bots?offset=5",
               f"/api/bots/{mine}", f"/api/bots/{theirs}", f"/api/bots/{missing}"]  # fmt: skip
    with session_scope() as db:
        db.execute(update(User).where(User.id == alice["user"]["id"]).values(is_disabled=True))
    for path in refused:
        assert status_code(client.get(path, headers=headers)) == (401, "account_unavailable")
    with session_scope() as db:
        db.execute(update(User).where(User.id == alice["user"]["id"]).values(is_disabled=False))
    assert client.get(f"/api/bots/{mine}", headers=headers).status_code == 200

    # a replayed refresh token revokes its family, and with it this access token
    assert refresh(client, alice["refresh_token"]).status_code == 200
    assert status_code(refresh(client, alice["refresh_token"])) == (401, "refresh_token_reused")
    for path in refused:
        assert status_code(client.get(path, headers=headers)) == (401, "token_revoked")


def test_token_types_are_not_interchangeable(client: FlaskClient, alice: dict[str, Any]) -> None:
    assert me(client, alice["refresh_token"]) == (401, "invalid_token")
    assert status_code(refresh(client, alice["access_token"])) == (401, "invalid_token")


def test_refresh_rotates(client: FlaskClient, alice: dict[str, Any]) -> None:
    first = refresh(client, alice["refresh_token"])
    assert first.status_code == 200
    pair = first.get_json()
    assert pair["refresh_token"] != alice["refresh_token"]
    assert claims(pair["refresh_token"])["fam"] == claims(alice["refresh_token"])["fam"]
    assert me(client, pair["access_token"])[0] == 200
    second = refresh(client, pair["refresh_token"])
    assert second.status_code == 200
    with session_scope() as db:
        rows = db.scalars(select(RefreshToken).order_by(RefreshToken.issued_at)).all()
        assert [r.used_at is not None for r in rows] == [True, True, False]
        assert rows[0].replaced_by == rows[1].jti


def test_reused_refresh_token_revokes_the_whole_family(
    client: FlaskClient, alice: dict[str, Any], login
) -> None:  # type: ignore[no-untyped-def]
    other_session = login("alice@example.com")  # a second device: its own family
    stolen = alice["refresh_token"]
    legit = refresh(client, stolen).get_json()

    assert status_code(refresh(client, stolen)) == (401, "refresh_token_reused")
    # The family is dead: the newest refresh token and every access token minted in it.
    assert status_code(refresh(client, legit["refresh_token"])) == (401, "token_revoked")
    assert me(client, legit["access_token"]) == (401, "token_revoked")
    assert me(client, alice["access_token"]) == (401, "token_revoked")
    # Other sessions of the same user live on.
    assert me(client, other_session["access_token"])[0] == 200
    assert refresh(client, other_session["refresh_token"]).status_code == 200

    with session_scope() as db:
        reuse = db.scalars(
            select(AuditLog).where(AuditLog.action == "auth.refresh_reuse_detected")
        ).all()
        assert len(reuse) == 1
        assert reuse[0].target_user_id == alice["user"]["id"]
        assert reuse[0].details["family_id"] == claims(stolen)["fam"]


def test_logout_revokes_access_token_and_family(
    client: FlaskClient, alice: dict[str, Any], settings: Settings
) -> None:
    access = alice["access_token"]
    assert client.post("/api/auth/logout", headers=bearer(access)).status_code == 204
    assert me(client, access) == (401, "token_revoked")
    assert status_code(refresh(client, alice["refresh_token"])) == (401, "token_revoked")
    jti = claims(access)["jti"]
    with session_scope() as db:
        row = db.get(RevokedToken, jti)
        assert row is not None and row.reason == "logout"
        assert row.expires_at.timestamp() == claims(access)["exp"]
        assert db.scalar(select(AuditLog.action).where(AuditLog.action == "auth.logout"))
    client_redis = get_redis()
    assert client_redis is not None
    ttl = client_redis.ttl(redis_key("revoked", jti))
    assert 0 < ttl <= 15 * 60 + 1
    assert redis_key("revoked", jti).startswith(settings.redis_prefix)


def test_logout_twice_is_refused_the_second_time(
    client: FlaskClient, alice: dict[str, Any]
) -> None:
    assert client.post("/api/auth/logout", headers=bearer(alice["access_token"])).status_code == 204
    again = client.post("/api/auth/logout", headers=bearer(alice["access_token"]))
    assert status_code(again) == (401, "token_revoked")


@pytest.fixture
def redis_down(settings: Settings) -> Iterator[None]:
    use_settings(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    reset_redis()
    yield
    use_settings(settings)
    reset_redis()


def test_revocation_holds_with_redis_down(
    client: FlaskClient, alice: dict[str, Any], redis_down
) -> None:  # type: ignore[no-untyped-def]
    access = alice["access_token"]
    assert client.post("/api/auth/logout", headers=bearer(access)).status_code == 204
    assert me(client, access) == (401, "token_revoked")


def test_revoked_in_redis_only_is_not_needed_for_refusal(
    client: FlaskClient, alice: dict[str, Any], settings: Settings
) -> None:
    """The database is the truth: a revocation whose Redis copy is gone still holds."""
    access = alice["access_token"]
    client.post("/api/auth/logout", headers=bearer(access))
    redis_client = get_redis()
    assert redis_client is not None
    redis_client.delete(redis_key("revoked", claims(access)["jti"]))
    assert me(client, access) == (401, "token_revoked")


def test_is_jti_revoked_uses_redis_then_database(
    alice: dict[str, Any], client: FlaskClient
) -> None:
    from app.services.revocation import is_jti_revoked

    jti = claims(alice["access_token"])["jti"]
    with session_scope() as db:
        assert not is_jti_revoked(db, jti)
    client.post("/api/auth/logout", headers=bearer(alice["access_token"]))
    redis_client = get_redis()
    assert redis_client is not None
    with session_scope() as db:
        assert is_jti_revoked(db, jti)
        redis_client.delete(redis_key("revoked", jti))
        assert is_jti_revoked(db, jti)


def test_prune_expired_revocations(alice: dict[str, Any], make_user: Callable[..., Any]) -> None:
    now = utcnow()
    user = make_user()
    with session_scope() as db:
        db.add_all(
            [
                RevokedToken(
                    jti="old",
                    user_id=user.id,
                    reason="logout",
                    expires_at=now - timedelta(seconds=1),
                ),
                RevokedToken(
                    jti="live",
                    user_id=user.id,
                    reason="logout",
                    expires_at=now + timedelta(minutes=5),
                ),
                RefreshToken(
                    jti="old-r", family_id="f", user_id=user.id, expires_at=now - timedelta(days=1)
                ),
            ]
        )
    with session_scope() as db:
        assert prune_expired_revocations(db, now) == 2
    with session_scope() as db:
        assert db.get(RevokedToken, "old") is None and db.get(RevokedToken, "live") is not None
        assert db.get(RefreshToken, "old-r") is None
        assert db.scalars(
            select(RefreshToken).where(RefreshToken.user_id == alice["user"]["id"])
        ).all()
