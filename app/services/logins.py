"""The multi-step account flows behind login, refresh and logout, for any door (the JSON API
and the browser sign-in call the same functions; minting the tokens stays with HTTP).

Failures that must leave a trace (a refused login, a replayed refresh token) are audited in a
unit of work of their own: the caller's transaction is rolled back with the 4xx.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.services import accounts
from app.services.audit import record_audit
from app.services.events import end_streams
from app.services.revocation import revoke_access_token
from app.store.db import session_scope
from app.store.models import User

log = logging.getLogger("tradewind.auth")


@dataclass(frozen=True)
class Login:
    user: User
    grant: accounts.RefreshGrant


def audit_apart(action: str, ip: str | None, **fields: Any) -> None:
    """An audit row that outlives the caller's rolled-back transaction."""
    try:
        with session_scope() as session:
            record_audit(session, action, ip=ip, **fields)
    except Exception:  # noqa: BLE001 (the client still gets its 4xx; the failure is logged)
        log.exception("could not record audit action %s", action)


def log_in(
    session: Session, email: str, password: str, *, ip: str | None, now: datetime,
    refresh_expires_at: datetime,
) -> Login:  # fmt: skip
    """Check the password and start a refresh family (audited either way)."""
    try:
        user = accounts.authenticate(session, email, password)
    except accounts.LoginFailed as exc:
        session.rollback()
        audit_apart(
            "auth.login_failed", ip,
            target_user_id=exc.user_id, details={"email": email, "reason": exc.reason},
        )  # fmt: skip
        raise
    grant = accounts.start_refresh_family(session, user.id, now=now, expires_at=refresh_expires_at)
    record_audit(
        session, "auth.login_succeeded", actor_user_id=user.id, target_user_id=user.id,
        details={"family_id": grant.family_id}, ip=ip,
    )  # fmt: skip
    return Login(user, grant)


def rotate(
    session: Session, *, jti: str, user_id: int, ip: str | None, now: datetime,
    refresh_expires_at: datetime,
) -> accounts.RefreshGrant:  # fmt: skip
    """Spend a refresh token for the next of its family. Presenting a spent token again
    revokes the whole family, in a unit of work that survives the 401."""
    try:
        return accounts.rotate_refresh_token(
            session, jti=jti, user_id=user_id, now=now, expires_at=refresh_expires_at
        )
    except accounts.RefreshRejected as exc:
        session.rollback()
        if exc.reason == "reused" and exc.family_id:
            _revoke_stolen_family(exc.family_id, exc.user_id, ip, now)
        raise


def _revoke_stolen_family(
    family_id: str, user_id: int | None, ip: str | None, now: datetime
) -> None:
    log.warning("refresh token reuse detected: family %s revoked (user_id=%s)", family_id, user_id)
    with session_scope() as session:
        revoked = accounts.revoke_family(session, family_id, now)
        record_audit(
            session, "auth.refresh_reuse_detected", target_user_id=user_id,
            details={"family_id": family_id, "tokens_revoked": revoked}, ip=ip,
        )  # fmt: skip


def log_out(
    session: Session, *, user_id: int, jti: str, expires_at: datetime, family_id: str | None,
    ip: str | None, now: datetime,
) -> None:  # fmt: skip
    """Revoke this access token at once and the refresh family it was minted in."""
    revoke_access_token(session, jti=jti, user_id=user_id, expires_at=expires_at, now=now)
    end_streams(session, user_id, jti=jti, reason="token_revoked")
    if family_id:
        accounts.revoke_family(session, family_id, now)
    record_audit(
        session, "auth.logout", actor_user_id=user_id, target_user_id=user_id,
        details={"family_id": family_id} if family_id else None, ip=ip,
    )  # fmt: skip
