"""Per-request plumbing: the request id and the one database session of the request (or, for
a read made of plain statements, its one read connection).

The session is opened lazily, committed after a successful response and rolled back
otherwise, so a failed request never leaves a half-written change behind. A view marked
`@read_only` gets a session without a transaction (`new_read_session`): no BEGIN and no COMMIT
round trip, and a write through it fails instead of landing half-done.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, request
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from app.store.db import new_read_connection, new_read_session, new_session

F = TypeVar("F", bound=Callable[..., Any])

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def db_session() -> Session:
    """The request's session (created on first use)."""
    session = g.get("db_session")
    if session is None:
        view = current_app.view_functions.get(request.endpoint or "")
        g.db_read_only = getattr(view, "_tw_read_only", False)
        session = new_read_session() if g.db_read_only else new_session()
        g.db_session = session
    return session


def db_connection() -> Connection:
    """The request's read connection (created on first use), for a `@read_only` view whose
    reads are plain statements: cheaper than a session."""
    connection = g.get("db_connection")
    if connection is None:
        view = current_app.view_functions.get(request.endpoint or "")
        if not getattr(view, "_tw_read_only", False):
            raise RuntimeError("db_connection() is for @read_only views; use db_session()")
        connection = g.db_connection = new_read_connection()
    return connection


def read_only(view: F) -> F:
    """Mark a view that only reads: its requests run without a transaction."""
    view._tw_read_only = True  # type: ignore[attr-defined]
    return view


def _assign_request_id() -> None:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex


def _finish_unit_of_work(response: Response) -> Response:
    session: Session | None = g.get("db_session")
    if session is not None and not g.get("db_read_only"):  # a read has nothing to end
        if response.status_code < 400:
            session.commit()
        else:
            session.rollback()
    response.headers[REQUEST_ID_HEADER] = g.get("request_id", "")
    return response


def _close_session(_exc: BaseException | None) -> None:
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        if not g.get("db_read_only"):
            session.rollback()
        session.close()
    connection: Connection | None = g.pop("db_connection", None)
    if connection is not None:
        connection.close()


def init_app(app: Flask) -> None:
    app.before_request(_assign_request_id)
    app.after_request(_finish_unit_of_work)
    app.teardown_request(_close_session)
