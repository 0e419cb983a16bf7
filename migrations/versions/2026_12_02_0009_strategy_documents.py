"""strategy documents and their immutable versions; bots name the version they run

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import app.store.base

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "strategy_documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("deleted_at", app.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            app.store.base.UTCDateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            app.store.base.UTCDateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_strategy_documents_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_strategy_documents")),
    )
    with op.batch_alter_table("strategy_documents", schema=None) as batch_op:
        batch_op.create_index("ix_strategy_documents_user_id", ["user_id", "id"], unique=False)

    op.create_table(
        "strategy_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "body",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", app.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["strategy_documents.id"],
            name=op.f("fk_strategy_versions_document_id_strategy_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_strategy_versions")),
        sa.UniqueConstraint(
            "document_id", "version", name=op.f("uq_strategy_versions_document_id_version")
        ),
    )

    with op.batch_alter_table("bots", schema=None) as batch_op:
        batch_op.add_column(sa.Column("strategy_document_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("strategy_version", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_bots_strategy_document_id_strategy_documents"),
            "strategy_documents",
            ["strategy_document_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("bots", schema=None) as batch_op:
        batch_op.drop_constraint(
            op.f("fk_bots_strategy_document_id_strategy_documents"), type_="foreignkey"
        )
        batch_op.drop_column("strategy_version")
        batch_op.drop_column("strategy_document_id")
    op.drop_table("strategy_versions")
    with op.batch_alter_table("strategy_documents", schema=None) as batch_op:
        batch_op.drop_index("ix_strategy_documents_user_id")
    op.drop_table("strategy_documents")
