"""Under gunicorn every line on the output is JSON (gunicorn's own, the app's and the access
log), the access log carries the request id and the user, and a token sent as a query
parameter never reaches the log."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from config import Settings
from tests.observability.helpers import SseClient, json_lines, ops_gunicorn


def test_gunicorn_output_is_json_with_ids_and_no_tokens(
    settings: Settings,
    tmp_path: Path,
    make_user: Callable[..., Any],
    auth_headers: Callable[..., Any],
) -> None:
    user = make_user()
    token = auth_headers(user)["Authorization"].split()[1]
    with ops_gunicorn(settings, tmp_path, workers=1, threads=4) as server:
        base, log_path = server.base, server.log_path
        ping = requests.get(base + "/api/health/ping", headers={"X-Request-ID": "ping-req-1"})
        assert ping.status_code == 200
        stream = SseClient(base, {"X-Request-ID": "sse-req-2"}, query=f"?token={token}")
        assert stream.status == 200 and stream.pid is not None
        stream.close()
    # stopping gunicorn ends open streams at once (SIGTERM), so every access line is written

    lines = json_lines(log_path)  # fails if any line is not JSON
    for entry in lines:
        assert {"timestamp", "level", "logger", "message"} <= set(entry)
    access = {e.get("request_id"): e for e in lines if e["logger"] == "gunicorn.access"}
    assert access["ping-req-1"]["status"] == 200
    assert access["ping-req-1"]["method"] == "GET"
    assert access["ping-req-1"]["path"] == "/api/health/ping"
    assert "user_id" not in access["ping-req-1"]
    sse = access["sse-req-2"]
    assert sse["user_id"] == user.id
    assert sse["path"] == "/api/realtime/events?token=[redacted]"
    assert any(e["logger"] == "gunicorn.error" for e in lines)
    assert any(e["logger"].startswith("tradewind.") for e in lines)
    assert token not in log_path.read_text()
