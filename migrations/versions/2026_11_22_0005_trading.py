"""trading: bot_ticks (one row per executed tick) and the bots' tick bookkeeping columns

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import app.store.base

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bots", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_candle_ts", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("exit_requested_at", app.store.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index("ix_bots_next_tick_at", ["next_tick_at"], unique=False)

    op.create_table(
        "bot_ticks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("bot_id", sa.Integer(), nullable=False),
        sa.Column("planned_at", app.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("worker", sa.String(length=100), nullable=False),
        sa.Column("started_at", app.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", app.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("skipped", sa.Integer(), server_default="0", nullable=False),
        sa.Column("candle_ts", sa.BigInteger(), nullable=True),
        sa.Column("signal", sa.SmallInteger(), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["bot_id"], ["bots.id"], name=op.f("fk_bot_ticks_bot_id_bots"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bot_ticks")),
        sa.UniqueConstraint("bot_id", "planned_at", name=op.f("uq_bot_ticks_bot_id_planned_at")),
    )


def downgrade() -> None:
    op.drop_table("bot_ticks")
    with op.batch_alter_table("bots", schema=None) as batch_op:
        batch_op.drop_index("ix_bots_next_tick_at")
        batch_op.drop_column("exit_requested_at")
        batch_op.drop_column("last_candle_ts")
