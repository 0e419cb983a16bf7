"""JWT wiring (flask-jwt-extended): every token failure answers 401 in the error envelope,
and every authenticated request resolves its user from the database, so a disabled account
stops working at once.

`auth_required` / `admin_required` guard views; `current_user()` is the signed-in `User`.

An access token sent in the Authorization header is verified (signature, type, claims) once
and then remembered until it expires, so a request with a known token skips the decoding.
The user and the revocation check are still one query on every request: a logout, a revoked
family or a disabled account refuses the token at once, on every worker. A hot read
(`auth_checked_in_query`) folds that check into its own query instead of sending a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, Response, g, request
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    create_refresh_token,
    get_current_user,
    verify_jwt_in_request,
)
from flask_jwt_extended.exceptions import RevokedTokenError, UserLookupError

from app.api.errors import error_response
from app.api.request_context import db_session
from app.errors import Forbidden
from app.services.revocation import token_subject
from app.store.models import User
from config import get_settings

F = TypeVar("F", bound=Callable[..., Any])

jwt = JWTManager()

# The refresh cookie goes only to the browser-session routes (app.api.sessions).
REFRESH_COOKIE_PATH = "/api/auth/session"


def _unauthorized(message: str, code: str = "unauthorized") -> Response:
    return error_response(401, code, message)


def _lookup_user(_header: dict[str, Any], payload: dict[str, Any]) -> User | None:
    """The token's user, enabled; loaded by `_is_revoked` in the same query when it ran."""
    stashed = g.pop("_tw_token_subject", None)
    if stashed is not None and stashed[0] == payload.get("jti"):
        user = stashed[1]
    else:
        user, _revoked = token_subject(db_session(), payload)
    if user is None or user.is_disabled:
        return None
    return user


def _is_revoked(_header: dict[str, Any], payload: dict[str, Any]) -> bool:
    """Revoked by logout (jti) or with its refresh family (reuse, logout, disabled account).
    A read-only request gets its user as plain columns (it never writes through it)."""
    session = db_session()
    user, revoked = token_subject(session, payload, transient=bool(g.get("db_read_only")))
    g._tw_token_subject = (payload.get("jti"), user)
    g._tw_token_revoked = revoked
    return revoked


# Authorization header -> (expiry, JWT header, claims) of an access token verified before.
_verified: dict[str, tuple[float, dict[str, Any], dict[str, Any]]] = {}
MAX_VERIFIED = 10_000


def _remember(authorization: str) -> None:
    if len(_verified) >= MAX_VERIFIED:
        now = time.time()
        for key in [k for k, v in _verified.items() if v[0] <= now]:
            _verified.pop(key, None)
        if len(_verified) >= MAX_VERIFIED:
            _verified.clear()
    claims = g._jwt_extended_jwt
    _verified[authorization] = (float(claims["exp"]), g._jwt_extended_jwt_header, claims)


def verify_access_token() -> None:
    """`verify_jwt_in_request()` for an access token, without decoding a header token that
    was verified before and has not expired; the user and revocation are checked each time."""
    authorization = request.headers.get("Authorization")
    known = _verified.get(authorization) if authorization else None
    if known is None or known[0] <= time.time() or request.method == "OPTIONS":
        verify_jwt_in_request()
        if authorization and g.get("_jwt_extended_jwt_location") == "headers":
            _remember(authorization)
        return
    _expiry, header, claims = known
    _check_subject(header, claims)


def _check_subject(header: dict[str, Any], claims: dict[str, Any]) -> None:
    """The token's user and its revocation in one query, then `_accept`."""
    _is_revoked(header, claims)
    _stashed, user = g.pop("_tw_token_subject")
    _accept(header, claims, user, g.pop("_tw_token_revoked"))


def _accept(
    header: dict[str, Any], claims: dict[str, Any], user: User | None, revoked: bool
) -> None:
    """Refuse a revoked token or a missing or disabled user as flask-jwt-extended would;
    otherwise make the verified token and its user this request's."""
    if revoked:
        raise RevokedTokenError(header, claims)
    if user is None or user.is_disabled:
        raise UserLookupError(f"user_lookup returned None for {claims.get('sub')}", header, claims)
    g._jwt_extended_jwt_user = {"loaded_user": user}
    g._jwt_extended_jwt_header = header
    g._jwt_extended_jwt = claims
    g._jwt_extended_jwt_location = "headers"


def token_claims() -> dict[str, Any]:
    """The claims of the request's access token in a `@auth_checked_in_query` view (whose
    subject may not be checked yet: read only the user's own rows with them)."""
    pending = g.get("_tw_pending_token")
    return pending[1] if pending is not None else g._jwt_extended_jwt


def accept_subject(user: User | None, revoked: bool) -> None:
    """The check of a `@auth_checked_in_query` view, on the token's user and revocation as
    its own query read them: raises (401) for a revoked token or a missing or disabled user."""
    pending = g.pop("_tw_pending_token", None)
    if pending is not None:
        _accept(pending[0], pending[1], user, revoked)


def _check_pending_subject() -> None:
    """The usual query for a subject its view did not check (it failed or returned first)."""
    pending = g.pop("_tw_pending_token", None)
    if pending is not None:
        _check_subject(*pending)


def auth_checked_in_query(view: F) -> F:
    """As `auth_required`, for a read-only view whose own query also reads the token's user
    and revocation (`token_claims()`, then `accept_subject()`): one round trip, not two.

    A token not verified before gets the usual check first. A view that fails or returns
    without accepting its subject gets the usual check afterwards, so a revoked token or a
    disabled account answers 401 (not the view's error) exactly as under `auth_required`.
    """

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        authorization = request.headers.get("Authorization")
        known = _verified.get(authorization) if authorization else None
        if known is None or known[0] <= time.time() or request.method == "OPTIONS":
            verify_access_token()
            return view(*args, **kwargs)
        g._tw_pending_token = known[1:]
        try:
            result = view(*args, **kwargs)
        except Exception:
            _check_pending_subject()
            raise
        _check_pending_subject()
        return result

    wrapper._tw_auth = "user"  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def init_app(app: Flask) -> None:
    settings = get_settings()
    app.config.update(
        JWT_SECRET_KEY=settings.effective_jwt_secret,
        JWT_ALGORITHM="HS256",
        JWT_DECODE_ALGORITHMS=["HS256"],
        # API clients send `Authorization: Bearer`; browsers hold the same tokens in
        # httpOnly SameSite cookies (set by app.api.sessions), and every state-changing
        # request from a cookie must echo the readable CSRF cookie in X-CSRF-TOKEN
        # (double submit). A header, when present, wins.
        JWT_TOKEN_LOCATION=["headers", "cookies"],
        JWT_COOKIE_CSRF_PROTECT=True,
        JWT_COOKIE_SAMESITE="Lax",
        JWT_COOKIE_SECURE=settings.app_env == "production",
        JWT_ACCESS_COOKIE_PATH="/",
        JWT_REFRESH_COOKIE_PATH=REFRESH_COOKIE_PATH,
        JWT_ACCESS_CSRF_COOKIE_PATH="/",
        JWT_REFRESH_CSRF_COOKIE_PATH="/",
        JWT_ACCESS_TOKEN_EXPIRES=timedelta(minutes=settings.jwt_access_minutes),
        JWT_REFRESH_TOKEN_EXPIRES=timedelta(days=settings.jwt_refresh_days),
        JWT_ERROR_MESSAGE_KEY="message",
    )
    jwt.init_app(app)
    jwt.user_lookup_loader(_lookup_user)
    jwt.token_in_blocklist_loader(_is_revoked)
    jwt.user_lookup_error_loader(
        lambda _h, _p: _unauthorized("the account is unknown or disabled", "account_unavailable")
    )
    jwt.unauthorized_loader(lambda reason: _unauthorized(f"authentication required: {reason}"))
    jwt.invalid_token_loader(
        lambda reason: _unauthorized(f"invalid token: {reason}", "invalid_token")
    )
    jwt.expired_token_loader(lambda _h, _p: _unauthorized("token has expired", "token_expired"))
    jwt.revoked_token_loader(
        lambda _h, _p: _unauthorized("token has been revoked", "token_revoked")
    )
    jwt.token_verification_failed_loader(
        lambda _h, _p: _unauthorized("token verification failed", "invalid_token")
    )


def current_user() -> User:
    """The signed-in user of this request (only inside a guarded view)."""
    user = get_current_user()
    assert isinstance(user, User)
    return user


def auth_required(view: F) -> F:
    """A valid, unrevoked access token of an enabled user."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        verify_access_token()
        return view(*args, **kwargs)

    wrapper._tw_auth = "user"  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def admin_required(view: F) -> F:
    """As `auth_required`, and the user is an admin (403 otherwise)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        verify_access_token()
        if current_user().role != "admin":
            raise Forbidden("admin role required")
        return view(*args, **kwargs)

    wrapper._tw_auth = "admin"  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_at: datetime


def access_lifetime() -> timedelta:
    return timedelta(minutes=get_settings().jwt_access_minutes)


def refresh_lifetime() -> timedelta:
    return timedelta(days=get_settings().jwt_refresh_days)


def mint_tokens(
    user_id: int, *, refresh_jti: str, family_id: str, now: datetime, refresh_expires_at: datetime
) -> TokenPair:
    """An access token and the refresh token `refresh_jti`, both tagged with the family, so
    revoking the family also refuses the access tokens minted in it."""
    identity = str(user_id)
    access = create_access_token(
        identity=identity, additional_claims={"fam": family_id}, expires_delta=access_lifetime()
    )
    refresh = create_refresh_token(
        identity=identity,
        additional_claims={"jti": refresh_jti, "fam": family_id},
        expires_delta=refresh_expires_at - now,
    )
    return TokenPair(access, refresh, int(access_lifetime().total_seconds()), refresh_expires_at)
