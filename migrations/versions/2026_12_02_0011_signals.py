"""signal bots: a secret token per bot and every signal it was sent

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.store.base

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bot_signal_tokens",
        sa.Column("bot_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", app.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["bot_id"],
            ["bots.id"],
            name=op.f("fk_bot_signal_tokens_bot_id_bots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("bot_id", name=op.f("pk_bot_signal_tokens")),
    )
    op.create_table(
        "bot_signals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bot_id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.String(length=100), nullable=True),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("symbol", sa.String(length=40), nullable=False),
        sa.Column("amount", app.store.base.Money(precision=38, scale=18), nullable=True),
        sa.Column("percentage", app.store.base.Money(precision=38, scale=18), nullable=True),
        sa.Column("price", app.store.base.Money(precision=38, scale=18), nullable=True),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("created_at", app.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("processed_at", app.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["bot_id"], ["bots.id"], name=op.f("fk_bot_signals_bot_id_bots"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bot_signals")),
        sa.UniqueConstraint("bot_id", "alert_id", name="uq_bot_signals_alert"),
    )
    with op.batch_alter_table("bot_signals", schema=None) as batch_op:
        batch_op.create_index("ix_bot_signals_queue", ["bot_id", "state", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("bot_signals", schema=None) as batch_op:
        batch_op.drop_index("ix_bot_signals_queue")

    op.drop_table("bot_signals")
    op.drop_table("bot_signal_tokens")
