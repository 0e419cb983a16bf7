"""Login and register are rate-limited per IP and per account: 429 in the envelope with
Retry-After; counters in Redis under the run's prefix; Redis lost -> per-process memory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.api import rate_limit
from app.store.redis import get_redis
from config import Settings, use_settings
from tests.auth.conftest import PASSWORD


def login(client: FlaskClient, email: str, password: str = "wrong password", ip: str = "10.0.0.1"):  # type: ignore[no-untyped-def]
    return client.post(
        "/api/auth/login",
        json={"email": email, "password": password},
        environ_base={"REMOTE_ADDR": ip},
    )


def assert_429(response, window: int = 60) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 429
    error = response.get_json()["error"]
    assert error["code"] == "rate_limited"
    assert error["request_id"] == response.headers["X-Request-ID"]
    assert 1 <= int(response.headers["Retry-After"]) <= window + 1


def test_failed_logins_per_account(client: FlaskClient, register) -> None:  # type: ignore[no-untyped-def]
    register("victim@example.com")
    for i in range(5):  # spread over addresses: the account limit still counts them
        assert login(client, "victim@example.com", ip=f"10.0.1.{i}").status_code == 401
    assert_429(login(client, "Victim@Example.com", PASSWORD, ip="10.0.2.1"))
    assert login(client, "other@example.com", ip="10.0.2.2").status_code == 401


def test_successful_logins_do_not_use_up_the_account_limit(client: FlaskClient, register) -> None:  # type: ignore[no-untyped-def]
    register("busy@example.com")
    for i in range(7):
        assert login(client, "busy@example.com", PASSWORD, ip=f"10.0.3.{i}").status_code == 200


def test_logins_per_ip(client: FlaskClient) -> None:
    for i in range(10):
        assert login(client, f"user{i}@example.com", ip="10.0.4.1").status_code == 401
    assert_429(login(client, "fresh@example.com", ip="10.0.4.1"))
    assert login(client, "fresh@example.com", ip="10.0.4.2").status_code == 401


def test_registrations_per_ip(client: FlaskClient) -> None:
    def register(i: int):  # type: ignore[no-untyped-def]
        return client.post(
            "/api/auth/register",
            json={"email": f"new{i}@example.com", "password": PASSWORD},
            environ_base={"REMOTE_ADDR": "10.0.5.1"},
        )

    for i in range(5):
        assert register(i).status_code == 201
    assert_429(register(99), window=3600)


def test_counters_live_in_redis_under_the_run_prefix(
    client: FlaskClient, settings: Settings
) -> None:
    login(client, "someone@example.com")
    redis_client = get_redis()
    assert redis_client is not None
    keys = [k.decode() for k in redis_client.scan_iter(match="*ratelimit*", count=1000)]
    mine = [k for k in keys if k.startswith(settings.redis_prefix)]
    assert mine, keys[:5]
    assert not any("someone" in k for k in mine)  # accounts are hashed in keys


@pytest.fixture
def dead_redis_app(_app: Flask, settings: Settings) -> Iterator[Flask]:
    """The limiter re-initialised on an unreachable Redis (restored afterwards)."""
    dead = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    use_settings(dead)
    rate_limit.init_app(_app)
    yield _app
    use_settings(settings)
    rate_limit.init_app(_app)
    rate_limit.reset_rate_limits()


def test_limits_fall_back_to_memory_when_redis_is_down(dead_redis_app: Flask) -> None:
    client = dead_redis_app.test_client()
    for i in range(10):
        assert login(client, f"user{i}@example.com", ip="10.0.6.1").status_code == 401
    assert_429(login(client, "fresh@example.com", ip="10.0.6.1"))
