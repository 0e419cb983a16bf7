"""Structured logs: JSON lines with the ids of the request/bot/job and the `extra=` fields of a
decision; the request id and the signed-in user bound per request and never leaking into the
next one; LOG_LEVEL and the development text format."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from app.observability.logging import (
    ContextFilter,
    JsonFormatter,
    TextFormatter,
    configure_logging,
    log_context,
    log_format,
)
from config import Settings, use_settings

PROBE = "tradewind.test_probe"


@pytest.fixture
def captured() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """JSON lines written by the probe logger through the production formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(PROBE)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)


def test_json_line_carries_context_ids_and_decision_fields(captured: Any) -> None:
    log = logging.getLogger(PROBE)
    with log_context(bot_id=7, job_id=None):
        log.info("trade skipped", extra={"reason": "negative_edge", "edge": -0.0012})
    try:
        raise ValueError("boom")
    except ValueError:
        log.critical("emergency stop", exc_info=True)

    skipped, stop = captured()
    assert skipped["message"] == "trade skipped" and skipped["level"] == "INFO"
    assert skipped["logger"] == PROBE and skipped["timestamp"].endswith("+00:00")
    assert skipped["bot_id"] == 7 and "job_id" not in skipped
    assert skipped["reason"] == "negative_edge" and skipped["edge"] == -0.0012
    assert stop["level"] == "CRITICAL" and "bot_id" not in stop  # the block has ended
    assert "ValueError: boom" in stop["exception"]


def test_text_format_for_development() -> None:
    record = logging.LogRecord(PROBE, logging.WARNING, __file__, 1, "paused", (), None)
    record.bot_id = 3
    record.reason = "max_drawdown"
    line = TextFormatter().format(record)
    assert "WARNING" in line and PROBE in line and "paused" in line
    assert "bot_id=3" in line and "reason=max_drawdown" in line


def test_format_and_level_follow_settings(settings: Settings) -> None:
    assert log_format(settings.model_copy(update={"app_env": "production"})) == "json"
    assert log_format(settings.model_copy(update={"app_env": "development"})) == "text"
    assert log_format(settings.model_copy(update={"log_format": "json"})) == "json"
    root = logging.getLogger()
    try:
        configure_logging(settings.model_copy(update={"log_level": "warning"}))
        assert root.level == logging.WARNING
        ours = [h for h in root.handlers if getattr(h, "_tradewind", False)]
        assert len(ours) == 1 and isinstance(ours[0].formatter, TextFormatter)
    finally:
        configure_logging(settings)


@pytest.fixture
def probe_app(settings: Settings, app: Flask) -> Iterator[Flask]:
    """A second app instance with a route that logs, one behind auth and one open."""
    from app.api.jwt import auth_required
    from app.factory import create_app

    probe = create_app(settings)

    def open_view() -> dict[str, str]:
        logging.getLogger(PROBE).info("open view")
        return {"ok": "yes"}

    def private_view() -> dict[str, str]:
        logging.getLogger(PROBE).warning("private view", extra={"reason": "probe"})
        return {"ok": "yes"}

    probe.add_url_rule("/_probe/open", "probe_open", open_view)
    probe.add_url_rule("/_probe/private", "probe_private", auth_required(private_view))
    yield probe
    use_settings(settings)


def test_request_and_user_ids_are_bound_per_request(
    probe_app: Flask,
    captured: Any,
    make_user: Callable[..., Any],
    auth_headers: Callable[..., Any],
) -> None:
    user = make_user()
    client = probe_app.test_client()
    private = client.get(
        "/_probe/private", headers={**auth_headers(user), "X-Request-ID": "req-private-1"}
    )
    assert private.status_code == 200
    opened = client.get("/_probe/open", headers={"X-Request-ID": "req-open-2"})
    assert opened.status_code == 200
    logging.getLogger(PROBE).info("outside any request")

    private_line, open_line, outside = captured()
    assert private_line["request_id"] == "req-private-1"
    assert private_line["user_id"] == user.id and private_line["reason"] == "probe"
    assert open_line["request_id"] == "req-open-2" and "user_id" not in open_line
    assert "request_id" not in outside and "user_id" not in outside
