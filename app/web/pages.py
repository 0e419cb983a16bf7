"""The dashboard's pages. Each renders a shell with the signed-in user; the page's script
fills it from the JSON API, so there is one source of data and one set of error messages.

A page needs the browser session's access cookie. Without it the browser is sent to sign in;
with only a refresh cookie left (the access token expired or was revoked) the page renders a
stub whose script renews the session once and reloads, or goes to sign in.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, g, jsonify, redirect, render_template, request, url_for
from flask_jwt_extended import get_current_user, verify_jwt_in_request
from flask_jwt_extended.exceptions import JWTExtendedException
from jwt.exceptions import PyJWTError

from app.errors import AppError
from app.services import backtests as backtest_service
from app.services import bots as bot_service
from app.services import searches as search_service
from app.store.db import session_scope
from app.store.models import User

bp = Blueprint(
    "web",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",
)

HTML_PAGE = {
    "responses": {
        "200": {
            "description": "HTML page",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
        "302": {"description": "Not signed in: to the sign-in page"},
    }
}
ADMIN_PAGE = {
    "responses": {
        **HTML_PAGE["responses"],
        "403": {
            "description": "Signed in, but not an admin",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
    }
}
# The refresh cookie itself only goes to REFRESH_COOKIE_PATH; its readable CSRF twin (path
# "/") tells a page that a session may still be renewed.
REFRESH_HINT_COOKIE = "csrf_refresh_token"


def session_user() -> User | None:
    """The user of a valid access token, or None (missing, expired, revoked, disabled). A
    browser sends its cookie; a script may send `Authorization: Bearer` like to the API."""
    try:
        verify_jwt_in_request(locations=["headers", "cookies"])
    except (JWTExtendedException, PyJWTError):
        return None
    user = get_current_user()  # loaded (enabled, not revoked) by the API's JWT wiring
    return user if isinstance(user, User) else None


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no host, no `//`) is followed after sign-in."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return url_for("web.bots")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target:
        return url_for("web.bots")
    return target


def page(admin: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A page of the signed-in dashboard (admin pages answer 403 to other users)."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = session_user()
            if user is None:
                if request.cookies.get(REFRESH_HINT_COOKIE):
                    return render_template("web/resume.html", user=None)
                return redirect(url_for("web.login", next=request.full_path.rstrip("?")))
            if admin and user.role != "admin":
                raise AppError("admin role required", code="forbidden", status=403)
            return view(user, *args, **kwargs)

        wrapper._tw_openapi = ADMIN_PAGE if admin else HTML_PAGE  # type: ignore[attr-defined]
        return wrapper

    return decorator


def _public(view: Callable[..., Any]) -> Callable[..., Any]:
    view._tw_openapi = HTML_PAGE  # type: ignore[attr-defined]
    return view


@bp.get("/")
@_public
def index() -> Any:
    """The dashboard's front door: the bots when signed in, the sign-in page otherwise."""
    return redirect(url_for("web.bots" if session_user() else "web.login"))


@bp.get("/login")
@_public
def login() -> Any:
    """Sign in."""
    target = _safe_next(request.args.get("next"))
    if session_user() is not None:
        return redirect(target)
    return render_template("web/login.html", user=None, next_url=target)


@bp.get("/signup")
@_public
def signup() -> Any:
    """Create an account."""
    return render_template("web/signup.html", user=None)


@bp.get("/bots")
@page()
def bots(user: User) -> Any:
    """The user's bots with their profit, drawdown and equity, updated live."""
    return render_template("web/bots.html", user=user)


@bp.get("/bots/new")
@page()
def new_bot(user: User) -> Any:
    """Create a bot."""
    return render_template("web/bot_form.html", user=user, bot_id=None)


@bp.get("/bots/<int:bot_id>")
@page()
def bot(user: User, bot_id: int) -> Any:
    """One bot: chart, position, orders, round trips, protections, performance, controls."""
    with session_scope() as session:  # a read: its own short unit of work
        found = bot_service.get_bot(session, user.id, bot_id)  # another user's: 404
        return render_template("web/bot.html", user=user, bot=found)


@bp.get("/bots/<int:bot_id>/edit")
@page()
def edit_bot(user: User, bot_id: int) -> Any:
    """Edit a bot."""
    with session_scope() as session:
        found = bot_service.get_bot(session, user.id, bot_id)  # another user's: 404
        return render_template("web/bot_form.html", user=user, bot_id=found.id)


@bp.get("/backtests")
@page()
def backtests(user: User) -> Any:
    """Run a backtest; the user's backtests."""
    return render_template("web/backtests.html", user=user)


@bp.get("/backtests/<int:backtest_id>")
@page()
def backtest(user: User, backtest_id: int) -> Any:
    """One backtest: progress, then its report."""
    with session_scope() as session:
        found = backtest_service.get_backtest(session, user.id, backtest_id)  # others': 404
        return render_template("web/backtest.html", user=user, backtest_id=found.id)


@bp.get("/searches")
@page()
def searches(user: User) -> Any:
    """Start a parameter search (optionally walk-forward); the user's searches."""
    return render_template("web/searches.html", user=user)


@bp.get("/searches/<int:search_id>")
@page()
def search(user: User, search_id: int) -> Any:
    """One search: progress, the best parameters, the trials and the walk-forward folds."""
    with session_scope() as session:
        found = search_service.get_search(session, user.id, search_id)  # others': 404
        return render_template("web/search.html", user=user, search_id=found.id)


@bp.get("/analysis")
@page()
def analysis(user: User) -> Any:
    """Analysis jobs, their results and the watchlist."""
    return render_template("web/analysis.html", user=user)


@bp.get("/portfolio")
@page()
def portfolio(user: User) -> Any:
    """The user's holdings valued in their base currency."""
    return render_template("web/portfolio.html", user=user)


@bp.get("/strategies")
@page()
def strategies(user: User) -> Any:
    """The strategies a bot or backtest can run, with their parameters."""
    return render_template("web/strategies.html", user=user)


@bp.get("/admin")
@page(admin=True)
def admin(user: User) -> Any:
    """Users, audit log, alerts, incidents, emergency stop."""
    return render_template("web/admin.html", user=user)


@bp.errorhandler(AppError)
def page_error(exc: AppError) -> Any:
    """A failed page answers HTML with the error envelope's words and status (the envelope
    itself to a client that does not ask for HTML)."""
    request_id = g.get("request_id", "")
    if not request.accept_mimetypes.accept_html:
        envelope = {"code": exc.code, "message": exc.message, "details": exc.details,
                    "request_id": request_id}  # fmt: skip
        return jsonify({"error": envelope}), exc.status, exc.headers
    page_user = session_user() if exc.status != 401 else None
    body = render_template("web/error.html", user=page_user, error=exc, request_id=request_id)
    return body, exc.status


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
