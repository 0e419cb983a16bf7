"""Accounts: registration, password login, refresh-token families, and what admins change.

Refresh tokens rotate: each one can be exchanged once. A login starts a family; presenting a
token of the family that was already exchanged means two parties hold it (one of them a thief),
so the whole family is revoked and every access token minted in it stops working too.
Token minting itself (JWT) happens in `app.api.jwt`; this module keeps the rows.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from app.services.audit import record_audit
from app.services.bots import ACCOUNT_DISABLED, pause_user_bots
from app.services.events import end_streams
from app.services.passwords import (
    burn_verification_time,
    hash_password,
    needs_rehash,
    password_problem,
    verify_password,
)
from app.store.models import User
from app.store.models.accounts import RefreshToken
from app.store.paging import fetch_page

ROLES = ("user", "admin")
EMAIL_MAX_LENGTH = 254
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f.]+(\.[^@\s\x00-\x1f\x7f.]+)+$")


def normalise_email(value: str) -> str:
    """Trimmed and lower-cased, so uniqueness is case-insensitive. ValueError when malformed."""
    email = value.strip().lower()
    if len(email) > EMAIL_MAX_LENGTH or not _EMAIL.match(email):
        raise ValueError("not a valid email address")
    return email


def new_token_id() -> str:
    return uuid.uuid4().hex


class LoginFailed(Unauthorized):
    """Wrong email or password. `reason` goes to the audit log, never to the client."""

    code = "invalid_credentials"

    def __init__(self, reason: str, user_id: int | None = None, message: str | None = None):
        super().__init__(message or "invalid email or password")
        self.reason = reason
        self.user_id = user_id


class AccountDisabled(LoginFailed):
    code = "account_disabled"


class RefreshRejected(Unauthorized):
    """A refresh token that cannot be exchanged; `reason` is unknown, revoked or reused."""

    def __init__(self, reason: str, *, family_id: str | None = None, user_id: int | None = None):
        messages = {
            "unknown": ("invalid_token", "refresh token is not recognised"),
            "revoked": ("token_revoked", "token has been revoked"),
            "reused": ("refresh_token_reused", "refresh token was already used; sign in again"),
        }
        code, message = messages[reason]
        super().__init__(message, code=code)
        self.reason = reason
        self.family_id = family_id
        self.user_id = user_id


@dataclass(frozen=True)
class RefreshGrant:
    jti: str
    family_id: str
    user_id: int
    expires_at: datetime


def _password_or_fail(password: str, email: str) -> None:
    problem = password_problem(password, email)
    if problem:
        raise ValidationFailed(
            problem, details=[{"loc": ["password"], "msg": problem, "type": "password_policy"}]
        )


def register_user(session: Session, email: str, password: str, *, role: str = "user") -> User:
    try:
        email = normalise_email(email)
    except ValueError as exc:
        raise ValidationFailed(
            str(exc), details=[{"loc": ["email"], "msg": str(exc), "type": "value_error"}]
        ) from None
    _password_or_fail(password, email)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict("an account with this email already exists", code="email_taken")
    user = User(email=email, password_hash=hash_password(password), role=role)
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict("an account with this email already exists", code="email_taken") from None
    record_audit(session, "auth.registered", actor_user_id=user.id, target_user_id=user.id)
    return user


def authenticate(session: Session, email: str, password: str) -> User:
    """The user for these credentials (password hash upgraded when parameters changed)."""
    try:
        email = normalise_email(email)
    except ValueError:
        burn_verification_time(password)
        raise LoginFailed("malformed_email") from None
    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        burn_verification_time(password)
        raise LoginFailed("unknown_email")
    if not verify_password(user.password_hash, password):
        raise LoginFailed("wrong_password", user.id)
    if user.is_disabled:
        raise AccountDisabled("account_disabled", user.id, "this account is disabled")
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def start_refresh_family(
    session: Session, user_id: int, *, now: datetime, expires_at: datetime
) -> RefreshGrant:
    grant = RefreshGrant(new_token_id(), new_token_id(), user_id, expires_at)
    session.add(
        RefreshToken(
            jti=grant.jti,
            family_id=grant.family_id,
            user_id=user_id,
            issued_at=now,
            expires_at=expires_at,
        )
    )
    session.flush()
    return grant


def rotate_refresh_token(
    session: Session, *, jti: str, user_id: int, now: datetime, expires_at: datetime
) -> RefreshGrant:
    """Exchange a refresh token once for the next one of its family (compare-and-set, so two
    concurrent exchanges of one token cannot both succeed)."""
    row = session.get(RefreshToken, jti)
    if row is None or row.user_id != user_id:
        raise RefreshRejected("unknown")
    if row.revoked_at is None and row.used_at is None:
        next_jti = new_token_id()
        swapped = session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.jti == jti,
                RefreshToken.used_at.is_(None),
                RefreshToken.revoked_at.is_(None),
            )
            .values(used_at=now, replaced_by=next_jti)
            .execution_options(synchronize_session=False)
        )
        if swapped.rowcount == 1:  # type: ignore[attr-defined]
            session.add(
                RefreshToken(
                    jti=next_jti,
                    family_id=row.family_id,
                    user_id=user_id,
                    issued_at=now,
                    expires_at=expires_at,
                )
            )
            session.flush()
            return RefreshGrant(next_jti, row.family_id, user_id, expires_at)
        session.refresh(row)
    reason = "revoked" if row.revoked_at is not None else "reused"
    raise RefreshRejected(reason, family_id=row.family_id, user_id=row.user_id)


def _revoke_refresh_tokens(session: Session, which: ColumnElement[bool], now: datetime) -> int:
    """Revoke the still-valid refresh tokens matching `which`; returns how many."""
    result = session.execute(
        update(RefreshToken)
        .where(which, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def revoke_family(session: Session, family_id: str, now: datetime) -> int:
    return _revoke_refresh_tokens(session, RefreshToken.family_id == family_id, now)


def revoke_user_refresh_tokens(session: Session, user_id: int, now: datetime) -> int:
    return _revoke_refresh_tokens(session, RefreshToken.user_id == user_id, now)


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("user not found")
    return user


def list_users(session: Session, *, page: int, per_page: int) -> tuple[list[User], int]:
    return fetch_page(session, User, [], [User.id], limit=per_page, offset=(page - 1) * per_page)


def update_user(
    session: Session,
    *,
    actor_id: int,
    user_id: int,
    now: datetime,
    role: str | None = None,
    is_disabled: bool | None = None,
    ip: str | None = None,
) -> User:
    """An admin changes a user's role or disabled flag; each change is audited in the same
    transaction. Disabling also revokes every refresh token of the user and pauses their bots
    (`account_disabled`); enabling leaves the bots paused."""
    user = get_user(session, user_id)
    if user.id == actor_id and (role == "user" or is_disabled):
        raise Conflict("admins cannot demote or disable themselves", code="self_lockout")
    if role is not None and role != user.role:
        record_audit(
            session,
            "admin.user_role_changed",
            actor_user_id=actor_id,
            target_user_id=user.id,
            details={"from": user.role, "to": role},
            ip=ip,
        )
        user.role = role
        end_streams(session, user.id, reason="role_changed")  # what they see changes
    if is_disabled is not None and is_disabled != user.is_disabled:
        user.is_disabled = is_disabled
        if is_disabled:
            revoke_user_refresh_tokens(session, user.id, now)
            pause_user_bots(session, user.id, ACCOUNT_DISABLED)
            end_streams(session, user.id, reason="account_disabled")
        record_audit(
            session,
            "admin.user_disabled" if is_disabled else "admin.user_enabled",
            actor_user_id=actor_id,
            target_user_id=user.id,
            ip=ip,
        )
    session.flush()
    return user


def create_or_promote_admin(session: Session, email: str, password: str) -> tuple[User, bool]:
    """For `flask create-admin`: a new admin, or an existing account made an enabled admin
    with this password. Returns (user, created)."""
    try:
        email = normalise_email(email)
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from None
    _password_or_fail(password, email)
    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        user = register_user(session, email, password, role="admin")
        record_audit(session, "admin.created_by_cli", target_user_id=user.id)
        return user, True
    previous = user.role
    user.role, user.is_disabled = "admin", False
    user.password_hash = hash_password(password)
    session.flush()
    record_audit(
        session,
        "admin.user_role_changed",
        target_user_id=user.id,
        details={"from": previous, "to": "admin", "via": "cli"},
    )
    return user, False
