"""Browser sessions: the dashboard signs in here and holds its tokens in cookies, never in
JavaScript-readable storage.

`POST /api/auth/session` checks the password like `POST /api/auth/login` (same rate-limit
counters, same audit) but answers with the user only: the access and refresh tokens travel in
httpOnly, SameSite cookies, next to two readable CSRF cookies that the page echoes in
`X-CSRF-TOKEN` on every state-changing request (flask-jwt-extended's double submit).
`POST /api/auth/session/refresh` spends the refresh cookie for a new pair (reuse revokes the
family, as with bearer refresh tokens); `DELETE /api/auth/session` revokes the access token
and its refresh family, then clears the cookies. Bearer clients are untouched.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, jsonify
from flask_jwt_extended import (
    set_access_cookies,
    set_refresh_cookies,
    unset_jwt_cookies,
    verify_jwt_in_request,
)

from app.api.auth import (
    Credentials,
    TokensOut,
    UserOut,
    end_login,
    login_account_limit_,
    login_ip_limit,
    rotate_refresh,
    sign_in,
)
from app.api.jwt import auth_required
from app.api.types import ApiModel
from app.api.validation import body, response
from app.openapi import answers

bp = Blueprint("sessions", __name__)


class SessionOut(ApiModel):
    """The signed-in user and the access token's lifetime; the tokens are in cookies."""

    user: UserOut
    expires_in: int


def _with_cookies(tokens: TokensOut) -> Response:
    out = SessionOut(user=tokens.user, expires_in=tokens.expires_in)
    resp = jsonify(out.model_dump(mode="json"))
    set_access_cookies(resp, tokens.access_token)
    set_refresh_cookies(resp, tokens.refresh_token)
    return resp


_COOKIE_DOC: dict[str, Any] = {
    "description": (
        "Sets `access_token_cookie` and `refresh_token_cookie` (httpOnly, SameSite=Lax) and "
        "the readable `csrf_access_token` / `csrf_refresh_token`; send the matching CSRF "
        "value as `X-CSRF-TOKEN` on POST, PATCH and DELETE requests authenticated by cookie."
    )
}


@bp.post("/api/auth/session")
@answers(401, 429)
@login_ip_limit
@login_account_limit_
@response(SessionOut)
@body(Credentials)
def create_session(body: Credentials) -> Response:
    """Sign a browser in: the tokens are set as cookies, not returned."""
    return _with_cookies(sign_in(body))


create_session._tw_openapi = _COOKIE_DOC  # type: ignore[attr-defined]


@bp.post("/api/auth/session/refresh")
@response(SessionOut)
def refresh_session() -> Response:
    """Spend the refresh cookie (with `X-CSRF-TOKEN` = `csrf_refresh_token`) for new cookies."""
    verify_jwt_in_request(refresh=True, locations=["cookies"])
    return _with_cookies(rotate_refresh())


refresh_session._tw_auth = "user"  # type: ignore[attr-defined]
refresh_session._tw_openapi = _COOKIE_DOC  # type: ignore[attr-defined]


@bp.delete("/api/auth/session")
@auth_required
def delete_session() -> Response:
    """Sign out: revoke the access token and its refresh family, clear the cookies."""
    end_login()
    resp = Response(status=204)
    unset_jwt_cookies(resp)
    return resp


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
