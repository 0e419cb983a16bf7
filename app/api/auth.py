"""Accounts over HTTP: register, login, refresh, logout, me. The flows themselves live in
`app.services.logins`; this module parses, mints the tokens and serialises."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Flask, request
from flask_jwt_extended import get_jwt, verify_jwt_in_request
from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from app.api import rate_limit
from app.api.jwt import auth_required, current_user, mint_tokens, refresh_lifetime
from app.api.rate_limit import json_field_key, limiter
from app.api.request_context import db_session
from app.api.types import ApiModel
from app.api.validation import RequestModel, body, response
from app.openapi import answers
from app.services import accounts, logins
from app.services.passwords import PASSWORD_MAX_LENGTH, password_problem
from app.store.base import utcnow
from app.store.models import User
from config import get_settings

bp = Blueprint("auth", __name__)


# Limits are read from settings at each request, so tests and operators can change them.
def login_limit() -> str:
    return get_settings().ratelimit_login


def login_account_limit() -> str:
    return get_settings().ratelimit_login_account


def register_limit() -> str:
    return get_settings().ratelimit_register


def register_account_limit() -> str:
    return get_settings().ratelimit_register_account


def _valid_email(value: str) -> str:
    return accounts.normalise_email(value)


class Credentials(RequestModel):
    """Passwords are taken exactly as sent (no whitespace trimming)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    email: str = Field(min_length=3, max_length=accounts.EMAIL_MAX_LENGTH)
    password: str = Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)

    _email = field_validator("email")(_valid_email)


class RegisterBody(Credentials):
    @field_validator("password")
    @classmethod
    def _policy(cls, value: str, info: ValidationInfo) -> str:
        problem = password_problem(value, info.data.get("email"))
        if problem:
            raise ValueError(problem)
        return value


class UserOut(ApiModel):
    id: int
    email: str
    role: str
    is_disabled: bool
    base_currency: str
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            email=user.email,
            role=user.role,
            is_disabled=user.is_disabled,
            base_currency=user.base_currency,
            created_at=user.created_at,
        )


class RegisterOut(ApiModel):
    user: UserOut


class TokensOut(ApiModel):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    expires_in: int
    refresh_expires_at: datetime
    user: UserOut


def client_ip() -> str | None:
    return request.remote_addr


def _tokens_for(user: User, grant: accounts.RefreshGrant, now: datetime) -> TokensOut:
    pair = mint_tokens(
        user.id,
        refresh_jti=grant.jti,
        family_id=grant.family_id,
        now=now,
        refresh_expires_at=grant.expires_at,
    )
    return TokensOut(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
        refresh_expires_at=pair.refresh_expires_at,
        user=UserOut.of(user),
    )


@bp.post("/api/auth/register")
@answers(409, 429)
@limiter.limit(register_limit, error_message="too many registrations from this address")
@limiter.limit(
    register_account_limit,
    key_func=json_field_key("email", "register-account"),
    error_message="too many registrations for this email",
)
@response(RegisterOut, 201)
@body(RegisterBody)
def register(body: RegisterBody) -> RegisterOut:
    user = accounts.register_user(db_session(), body.email, body.password)
    return RegisterOut(user=UserOut.of(user))


# Shared scopes: the JSON login and the browser sign-in (app.api.sessions) draw on the same
# counters, so a second door does not double an attacker's attempts.
login_ip_limit = limiter.shared_limit(
    login_limit, scope="login-ip", error_message="too many login attempts from this address"
)
login_account_limit_ = limiter.shared_limit(
    login_account_limit,
    scope="login-account",
    key_func=json_field_key("email", "login-account"),
    deduct_when=lambda r: r.status_code == 401,
    error_message="too many failed logins for this account",
)


def sign_in(body: Credentials) -> TokensOut:
    """The tokens of a new login."""
    now = utcnow()
    login = logins.log_in(
        db_session(), body.email, body.password, ip=client_ip(), now=now,
        refresh_expires_at=now + refresh_lifetime(),
    )  # fmt: skip
    return _tokens_for(login.user, login.grant, now)


@bp.post("/api/auth/login")
@answers(401, 429)
@login_ip_limit
@login_account_limit_
@response(TokensOut)
@body(Credentials)
def login(body: Credentials) -> TokensOut:
    return sign_in(body)


def rotate_refresh() -> TokensOut:
    """Spend the verified refresh token of this request for a new pair."""
    user = current_user()
    now = utcnow()
    grant = logins.rotate(
        db_session(), jti=str(get_jwt()["jti"]), user_id=user.id, ip=client_ip(), now=now,
        refresh_expires_at=now + refresh_lifetime(),
    )  # fmt: skip
    return _tokens_for(user, grant, now)


@bp.post("/api/auth/refresh")
@answers(401)
@response(TokensOut)
def refresh() -> TokensOut:
    """Exchange a refresh token (in `Authorization: Bearer`) for a new pair; the presented
    token is spent. Presenting a spent token again revokes its whole family."""
    verify_jwt_in_request(refresh=True, locations=["headers"])
    return rotate_refresh()


refresh._tw_openapi = {"security": [{"bearerAuth": []}]}  # type: ignore[attr-defined]


def end_login() -> None:
    """Revoke this request's access token and its refresh family, wherever the token came
    from (header or cookie)."""
    claims = get_jwt()
    now = utcnow()
    family = claims.get("fam")
    logins.log_out(
        db_session(), user_id=current_user().id, jti=str(claims["jti"]),
        expires_at=datetime.fromtimestamp(int(claims["exp"]), now.tzinfo),
        family_id=family if isinstance(family, str) and family else None,
        ip=client_ip(), now=now,
    )  # fmt: skip


@bp.post("/api/auth/logout")
@auth_required
def logout() -> tuple[str, int]:
    """Revoke this access token at once and the refresh family it was minted in."""
    end_login()
    return "", 204


@bp.get("/api/auth/me")
@auth_required
@response(UserOut)
def me() -> UserOut:
    return UserOut.of(current_user())


def init_app(app: Flask) -> None:
    rate_limit.init_app(app)
    app.register_blueprint(bp)
