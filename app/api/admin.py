"""Admin: users (list, change role, disable) and the audit log. Admins only (403 otherwise)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from flask import Blueprint, Flask, request
from pydantic import Field, StrictBool, model_validator

from app.api.auth import UserOut
from app.api.jwt import admin_required, current_user
from app.api.request_context import db_session
from app.api.types import ApiModel
from app.api.validation import RequestModel, body, query, response
from app.openapi import answers
from app.services import accounts
from app.services.audit import AuditFilter, list_audit
from app.store.base import as_utc, utcnow

bp = Blueprint("admin", __name__)


class Page(RequestModel):
    page: int = Field(default=1, ge=1, le=1_000_000)
    per_page: int = Field(default=50, ge=1, le=200)


class UserPatch(RequestModel):
    role: Literal["user", "admin"] | None = None
    is_disabled: StrictBool | None = None

    @model_validator(mode="after")
    def _something(self) -> UserPatch:
        if self.role is None and self.is_disabled is None:
            raise ValueError("give role and/or is_disabled")
        return self


class UsersPage(ApiModel):
    items: list[UserOut]
    page: int
    per_page: int
    total: int


class AuditQuery(Page):
    user_id: int | None = Field(default=None, ge=1)
    action: str | None = Field(default=None, min_length=1, max_length=64)
    since: datetime | None = None
    until: datetime | None = None


class AuditEntry(ApiModel):
    id: int
    created_at: datetime
    action: str
    actor_user_id: int | None
    target_user_id: int | None
    ip: str | None
    details: dict[str, Any]


class AuditPage(ApiModel):
    items: list[AuditEntry]
    page: int
    per_page: int
    total: int


@bp.get("/api/admin/users")
@admin_required
@response(UsersPage)
@query(Page)
def users(query: Page) -> UsersPage:
    rows, total = accounts.list_users(db_session(), page=query.page, per_page=query.per_page)
    return UsersPage(
        items=[UserOut.of(u) for u in rows], page=query.page, per_page=query.per_page, total=total
    )


@bp.patch("/api/admin/users/<int:user_id>")
@answers(409)
@admin_required
@response(UserOut)
@body(UserPatch)
def update_user(user_id: int, body: UserPatch) -> UserOut:
    user = accounts.update_user(
        db_session(),
        actor_id=current_user().id,
        user_id=user_id,
        now=utcnow(),
        role=body.role,
        is_disabled=body.is_disabled,
        ip=request.remote_addr,
    )
    return UserOut.of(user)


@bp.get("/api/admin/audit-log")
@admin_required
@response(AuditPage)
@query(AuditQuery)
def audit_log(query: AuditQuery) -> AuditPage:
    where = AuditFilter(
        user_id=query.user_id,
        action=query.action,
        since=as_utc(query.since),
        until=as_utc(query.until),
    )
    rows, total = list_audit(db_session(), where, page=query.page, per_page=query.per_page)
    return AuditPage(
        items=[
            AuditEntry(
                id=r.id,
                created_at=r.created_at,
                action=r.action,
                actor_user_id=r.actor_user_id,
                target_user_id=r.target_user_id,
                ip=r.ip,
                details=r.details or {},
            )
            for r in rows
        ],
        page=query.page,
        per_page=query.per_page,
        total=total,
    )


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
