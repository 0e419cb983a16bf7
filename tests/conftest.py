"""Shared fixtures: a real database per run (Postgres by default, SQLite with TEST_DB=sqlite),
a real Redis under a per-run key prefix, the app, a client, users and their tokens."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from config import Settings
from tests.support.databases import (
    REDIS_URL,
    create_test_database,
    drop_test_database,
    truncate_all,
)
from tests.support.parallel import (
    DurationRecorder,
    longest_units_first,
    make_scheduler,
    read_weights,
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--store-durations", action="store_true",
                     help="rewrite tests/durations.json from this run's times")  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--store-durations"):
        config.pluginmanager.register(DurationRecorder(), "duration-recorder")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    longest_units_first(items, read_weights())


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    return make_scheduler(config, log)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = create_test_database(Path(tmp_path_factory.mktemp("db")))
    yield url
    from app.store.db import shutdown_database

    shutdown_database()
    drop_test_database(url)


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(
        app_env="test",
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_prefix=f"twtest:{uuid.uuid4().hex[:10]}:",
        scheduler_enabled=False,
        log_level="INFO",
        # cheap argon2, so the suite can hash hundreds of passwords (each still goes through it)
        argon2_time_cost=1,
        argon2_memory_cost=8192,
        argon2_parallelism=1,
    )


@pytest.fixture(scope="session")
def _app(settings: Settings) -> Flask:
    from app.factory import create_app

    app = create_app(settings)
    # A crash in a test surfaces as its own traceback, not as a 500 envelope to decode; the
    # envelope itself is tested on an app of its own (tests/api/test_errors.py).
    app.config["RERAISE_UNEXPECTED"] = True
    return app


@pytest.fixture
def app(_app: Flask, settings: Settings, database_url: str) -> Iterator[Flask]:
    """The app over an empty database (every table emptied before the test)."""
    from app.engine.strategy_source import clear_document_cache
    from config import use_settings

    use_settings(settings)
    truncate_all(database_url)
    clear_document_cache()  # compiled strategy documents are cached by (id, version)
    yield _app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client whose address starts with no rate-limit hits: requests of earlier tests
    (whichever ran before in this process) must not count against this one."""
    from app.api.rate_limit import reset_rate_limits

    reset_rate_limits()
    return app.test_client()


@pytest.fixture
def session(app: Flask) -> Iterator[Session]:
    from app.store.db import new_session

    db = new_session()
    yield db
    db.rollback()
    db.close()


@pytest.fixture
def make_user(app: Flask) -> Callable[..., Any]:
    """Insert a user directly (role, disabled) and return it; its password is unusable."""
    from app.store.db import session_scope
    from app.store.models import User

    def make(email: str | None = None, role: str = "user", **fields: Any) -> User:
        with session_scope() as db:
            user = User(
                email=email or f"user-{uuid.uuid4().hex[:8]}@example.com",
                password_hash=fields.pop("password_hash", "!unusable"),
                role=role,
                **fields,
            )
            db.add(user)
            db.flush()
            db.expunge(user)
        return user

    return make


@pytest.fixture
def auth_headers(app: Flask) -> Callable[[Any], dict[str, str]]:
    """`Authorization` headers with a fresh access token for a user."""
    from flask_jwt_extended import create_access_token

    def headers(user: Any) -> dict[str, str]:
        with app.app_context():
            token = create_access_token(identity=str(user.id))
        return {"Authorization": f"Bearer {token}"}

    return headers


class QueryCounter:
    """SQL statements sent by this process's engine while counting (see `count_queries`)."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __len__(self) -> int:
        return len(self.statements)


@pytest.fixture
def count_queries(app: Flask) -> Callable[[], Any]:
    """`with count_queries() as q:` counts the statements the app's engine sends, so a test
    can pin the number of round trips of a hot path."""
    from contextlib import contextmanager

    from sqlalchemy import event

    from app.store.db import engines

    @contextmanager
    def counting() -> Iterator[QueryCounter]:
        counter = QueryCounter()

        def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            counter.statements.append(statement)

        watched = engines()  # the read-only pool's statements count too
        for engine in watched:
            event.listen(engine, "before_cursor_execute", record)
        try:
            yield counter
        finally:
            for engine in watched:
                event.remove(engine, "before_cursor_execute", record)

    return counting
