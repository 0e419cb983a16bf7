"""search trials: a search's run (deadline, the row locked to propose) and its trials,
leased to any worker and recorded once

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import app.store.base

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "search_runs",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("deadline", app.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", app.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("touched_at", app.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_search_runs_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_search_runs")),
    )
    op.create_table(
        "search_trials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("fold", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column(
            "params",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column(
            "metrics",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("seq", sa.Integer(), nullable=True),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_until", app.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("evaluated_by", sa.String(length=100), nullable=True),
        sa.Column("created_at", app.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", app.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('running', 'complete', 'failed', 'invalid', 'lost')",
            name=op.f("ck_search_trials_state"),
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["search_runs.job_id"],
            name=op.f("fk_search_trials_job_id_search_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_trials")),
        sa.UniqueConstraint("job_id", "fold", "number", name="uq_search_trials_number"),
    )
    op.create_index("ix_search_trials_seq", "search_trials", ["job_id", "seq"], unique=False)
    op.create_index("ix_search_trials_state", "search_trials", ["job_id", "state"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_search_trials_state", table_name="search_trials")
    op.drop_index("ix_search_trials_seq", table_name="search_trials")
    op.drop_table("search_trials")
    op.drop_table("search_runs")
