"""Revoked tokens: the `revoked_tokens` table is the truth, Redis holds a copy.

A revocation is written to the database in the transaction of the logout (so it holds for
every worker and machine the moment the logout answers, and survives a Redis outage) and
mirrored to Redis under the configured prefix with a TTL of the token's remaining life.

Checking a token costs no extra round trip: `token_subject` loads the token's user together
with "is this jti revoked" and "is this token's refresh family revoked" in one query, which
the request needs anyway to refuse disabled accounts. `is_jti_revoked` (Redis first, then the
database) is for code that has no user to load, such as a long-lived stream re-checking.

No Flask here: the clean-up job calls `prune_expired_revocations` from a scheduler thread.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, delete, exists, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, configure_mappers

from app.store.base import as_utc, utcnow
from app.store.models import User
from app.store.models.accounts import RefreshToken, RevokedToken
from app.store.prepared import PREPARED, id_parameter
from app.store.redis import get_redis, redis_key

log = logging.getLogger("tradewind.auth.revocation")


def _redis_name(jti: str) -> str:
    return redis_key("revoked", jti)


def revoke_access_token(
    session: Session,
    *,
    jti: str,
    expires_at: datetime,
    user_id: int | None = None,
    reason: str = "logout",
    now: datetime | None = None,
) -> None:
    """Record the revocation in the session's transaction (idempotent); mirror it to Redis."""
    now = now or utcnow()
    values = {
        "jti": jti,
        "user_id": user_id,
        "reason": reason,
        "revoked_at": now,
        "expires_at": expires_at,
    }
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(RevokedToken).values(**values).on_conflict_do_nothing())
    ttl = int((expires_at - now).total_seconds()) + 1
    client = get_redis()
    if client is not None and ttl > 0:
        try:
            client.set(_redis_name(jti), "1", ex=ttl)
        except Exception as exc:  # noqa: BLE001 (the database already holds it)
            log.warning("revocation not mirrored to Redis: %s", type(exc).__name__)


_REVOKED_JTI = exists().where(RevokedToken.jti == bindparam("jti"))
_REVOKED_FAMILY = exists().where(
    RefreshToken.family_id == bindparam("family"), RefreshToken.revoked_at.is_not(None)
)
_USER_COLUMNS = tuple(User.__table__.columns)
_USER_NAMES = tuple(column.key for column in _USER_COLUMNS)
_USER_MANAGER = sa_inspect(User).class_manager
SUBJECT_WIDTH = len(_USER_COLUMNS) + 1  # the user's columns and "revoked", leading each row


def subject_select(*columns: Any, in_family: bool) -> Select[Any]:
    """The user of `:user_id` as plain columns, whether the token (`:jti`, `:family`) is
    revoked, then `columns`: a read of the same user's rows can ride along with the check (its
    FROM joined to `users`), one round trip for both. Build it once, not per request."""
    revoked = _REVOKED_JTI | _REVOKED_FAMILY if in_family else _REVOKED_JTI
    return (
        select(*_USER_COLUMNS, revoked.label("revoked"), *columns)
        .where(User.id == id_parameter("user_id"))
        .execution_options(**PREPARED)
    )


def subject_params(payload: dict[str, Any]) -> tuple[dict[str, Any], bool] | None:
    """The parameters of a `subject_select` for the token's claims and whether it names a
    refresh family (which statement to use); None when it names no user."""
    try:
        user_id = int(payload["sub"])
    except (KeyError, TypeError, ValueError):
        return None
    params: dict[str, Any] = {"user_id": user_id, "jti": str(payload.get("jti") or "")}
    family = payload.get("fam")
    in_family = isinstance(family, str) and bool(family)
    if in_family:
        params["family"] = family
    return params, in_family


def subject_of(row: Sequence[Any] | None) -> tuple[User | None, bool]:
    """(user, revoked?) from the leading columns of a `subject_select` row; the user is
    transient (built from plain columns, in no session: for requests that never write)."""
    if row is None:
        return None, False
    if not _USER_MANAGER.mapper.configured:  # what the constructor would have ensured
        configure_mappers()
    user = _USER_MANAGER.new_instance()  # filled as a loaded row is: no per-attribute events
    user.__dict__.update(zip(_USER_NAMES, row, strict=False))
    return user, bool(row[SUBJECT_WIDTH - 1])


# Built once: a statement made per request costs more Python than its round trip. The user
# comes as an ORM object, or as plain columns for a read that only needs to know who it is.
_SUBJECT = {
    (plain, in_family): (
        subject_select(in_family=in_family)
        if plain
        else select(
            User,
            (_REVOKED_JTI | _REVOKED_FAMILY if in_family else _REVOKED_JTI).label("revoked"),
        )
        .where(User.id == id_parameter("user_id"))
        .execution_options(**PREPARED)
    )
    for plain in (False, True)
    for in_family in (False, True)
}


def token_subject(
    session: Session, payload: dict[str, Any], *, transient: bool = False
) -> tuple[User | None, bool]:
    """(the token's user or None, revoked?) in one query. `transient`: the user is built from
    plain columns and belongs to no session (cheaper; for requests that never write)."""
    found = subject_params(payload)
    if found is None:
        return None, False
    params, in_family = found
    statement = _SUBJECT[(transient, in_family)]
    if not transient:
        row = session.execute(statement, params).first()
        return (None, False) if row is None else (row[0], bool(row[1]))
    return subject_of(session.connection().execute(statement, params).first())


def is_jti_revoked(session: Session, jti: str) -> bool:
    """Redis first (a hit is final), the database when Redis misses or is unavailable."""
    client = get_redis()
    if client is not None:
        try:
            if client.exists(_redis_name(jti)):
                return True
        except Exception:  # noqa: BLE001
            log.warning("Redis unavailable for a revocation check; asking the database")
    return session.get(RevokedToken, jti) is not None


def prune_expired_revocations(session: Session, now: datetime) -> int:
    """Delete revocations and refresh tokens past their expiry (they are refused by their own
    `exp` by then). Returns the number of rows deleted. Redis entries expire by TTL."""
    now = as_utc(now) or utcnow()
    revoked = session.execute(delete(RevokedToken).where(RevokedToken.expires_at < now))
    refresh = session.execute(delete(RefreshToken).where(RefreshToken.expires_at < now))
    return int(revoked.rowcount) + int(refresh.rowcount)  # type: ignore[attr-defined]
