"""`GET /metrics` in-process: request counts by route template, latency histograms, the
emergency-stop gauge read from the database, and the token / production protection."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.store.models import SystemState
from config import Settings, use_settings


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of the samples matching these labels (other labels may differ; 0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture
def configure(settings: Settings) -> Iterator[Callable[..., None]]:
    """Change settings for this test (changes add up); the run's settings come back after."""
    changes: dict[str, object] = {}

    def apply(**update: object) -> None:
        changes.update(update)
        use_settings(settings.model_copy(update=changes))

    yield apply
    use_settings(settings)


@pytest.fixture
def production(configure: Callable[..., None]) -> None:
    configure(app_env="production")


def test_requests_are_counted_by_route_template(client: FlaskClient) -> None:
    before = client.get("/metrics").get_data(as_text=True)
    for _ in range(3):
        client.get("/api/health/ping")
    client.get("/api/bots/12345/no-such-thing")
    client.post("/api/health/ping")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    after = response.get_data(as_text=True)

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    ping = {"method": "GET", "route": "/api/health/ping"}
    assert delta("tradewind_http_requests_total", status="200", **ping) == 3
    assert delta("tradewind_http_request_duration_seconds_count", **ping) == 3
    assert delta("tradewind_http_request_duration_seconds_bucket", le="+Inf", **ping) == 3
    # unknown paths share one label value, so ids in URLs cannot explode the series count
    assert delta("tradewind_http_requests_total", route="<unmatched>", status="404") == 1
    assert delta("tradewind_http_requests_total", method="POST", status="405") == 1
    assert "/api/bots/12345" not in after
    for family in (
        "tradewind_bot_tick_duration_seconds",
        "tradewind_bot_tick_lag_seconds",
        "tradewind_emergency_stop",
    ):
        assert f"# TYPE {family} " in after


def test_shared_metric_objects_keep_their_contract() -> None:
    """Other features increment these by name and label (CONTRACTS.md)."""
    from prometheus_client import Counter, Gauge, Histogram

    from app.observability import metrics

    expected = {
        "BOT_TICKS": (Counter, ("outcome",)),
        "BOT_TICK_DURATION": (Histogram, ()),
        "BOT_TICK_LAG": (Histogram, ()),
        "ORDERS": (Counter, ("state",)),
        "JOBS": (Counter, ("state",)),
        "CLAIMS_LOST": (Counter, ("kind",)),
        "EMERGENCY_STOP": (Gauge, ()),
        "INCIDENTS": (Counter, ("kind",)),
    }
    for name, (kind, labels) in expected.items():
        metric = getattr(metrics, name)
        assert isinstance(metric, kind), name
        assert tuple(metric._labelnames) == labels, name


def test_emergency_stop_gauge_follows_the_database(client: FlaskClient, session: Session) -> None:
    assert sample(client.get("/metrics").get_data(as_text=True), "tradewind_emergency_stop") == 0
    session.execute(update(SystemState).where(SystemState.id == 1).values(emergency_stop=True))
    session.commit()
    assert sample(client.get("/metrics").get_data(as_text=True), "tradewind_emergency_stop") == 1


def test_token_protects_metrics_when_set(
    client: FlaskClient, configure: Callable[..., None]
) -> None:
    configure(metrics_token="scrape-secret-0123")
    denied = client.get("/metrics")
    assert denied.status_code == 401
    assert denied.get_json()["error"]["code"] == "unauthorized"
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    allowed = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret-0123"})
    assert allowed.status_code == 200
    assert "tradewind_http_requests_total" in allowed.get_data(as_text=True)


def test_production_without_token_hides_metrics(
    client: FlaskClient, production: None, configure: Callable[..., None]
) -> None:
    hidden = client.get("/metrics")
    assert hidden.status_code == 404
    assert hidden.get_json()["error"]["code"] == "not_found"
    configure(metrics_token="scrape-secret-0123")
    ok = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret-0123"})
    assert ok.status_code == 200
