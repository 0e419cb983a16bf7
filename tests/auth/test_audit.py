"""record_audit: rows in the caller's transaction, never a secret in the details."""

from __future__ import annotations

from sqlalchemy import select

from app.services.audit import record_audit
from app.store.db import session_scope
from app.store.models.accounts import AuditLog


def test_secret_looking_details_are_dropped(app, make_user) -> None:  # type: ignore[no-untyped-def]
    user = make_user()
    with session_scope() as db:
        record_audit(
            db,
            "test.action",
            actor_user_id=user.id,
            details={
                "password": "hunter2hunter2",
                "api_key": "k",
                "refresh_token": "t",
                "Secret": "s",
                "label": "kept",
                "note": "n" * 600,
            },
            ip="203.0.113.9",
        )
    with session_scope() as db:
        row = db.scalars(select(AuditLog)).one()
        assert row.details == {"label": "kept", "note": "n" * 500}
        assert (row.action, row.actor_user_id, row.ip) == ("test.action", user.id, "203.0.113.9")
        assert row.created_at.tzinfo is not None


def test_audit_rows_roll_back_with_their_transaction(app) -> None:  # type: ignore[no-untyped-def]
    from app.store.db import new_session

    db = new_session()
    record_audit(db, "test.rolled_back")
    db.rollback()
    db.close()
    with session_scope() as check:
        assert check.scalars(select(AuditLog)).all() == []
