"""events (the realtime history every worker reads) and event_streams (open streams)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import app.store.base

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("audience", sa.String(length=8), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", app.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_seq", ["seq"], unique=True)
        batch_op.create_index("ix_events_user_id", ["user_id", "seq"], unique=False)
        batch_op.create_index("ix_events_audience", ["audience", "seq"], unique=False)
        batch_op.create_index(
            "ix_events_unsequenced",
            ["id"],
            unique=False,
            postgresql_where=sa.text("seq IS NULL"),
            sqlite_where=sa.text("seq IS NULL"),
        )

    op.create_table(
        "event_streams",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=100), nullable=False),
        sa.Column("opened_at", app.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", app.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_streams")),
    )
    with op.batch_alter_table("event_streams", schema=None) as batch_op:
        batch_op.create_index("ix_event_streams_user_id", ["user_id", "expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("event_streams", schema=None) as batch_op:
        batch_op.drop_index("ix_event_streams_user_id")
    op.drop_table("event_streams")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_unsequenced")
        batch_op.drop_index("ix_events_audience")
        batch_op.drop_index("ix_events_user_id")
        batch_op.drop_index("ix_events_seq")
    op.drop_table("events")
