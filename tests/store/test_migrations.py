"""Migrations: upgrade, downgrade to base and upgrade again; the models match them."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

import app.store.models  # noqa: F401
from app.store.base import Base
from tests.support.databases import alembic_config, create_test_database, drop_test_database


def test_upgrade_downgrade_upgrade_and_no_drift(tmp_path: Path) -> None:
    url = create_test_database(tmp_path)  # already at head
    try:
        cfg = alembic_config(url)
        command.downgrade(cfg, "base")
        engine = create_engine(url)
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        command.upgrade(cfg, "head")
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
        engine.dispose()
        assert diff == [], f"models and migrations disagree: {diff}"
    finally:
        drop_test_database(url)
