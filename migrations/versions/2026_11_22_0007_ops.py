"""live orders: submit_state, exchange_order_id, submitted_at on orders

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.store.base

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("submit_state", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("exchange_order_id", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("submitted_at", app.store.base.UTCDateTime(), nullable=True)
        )
        batch_op.create_check_constraint(
            op.f("ck_orders_submit_state"),
            "submit_state IS NULL OR submit_state IN ('pending', 'unknown', 'accepted')",
        )


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_orders_submit_state"), type_="check")
        batch_op.drop_column("submitted_at")
        batch_op.drop_column("exchange_order_id")
        batch_op.drop_column("submit_state")
