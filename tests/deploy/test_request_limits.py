"""What the servers in front of the app refuse: a body over MAX_CONTENT_LENGTH is answered 413
and its connection closed (a real gunicorn); the request-line and header limits are set in
gunicorn.conf.py, and deploy/nginx.conf holds lower ones and answers them in the envelope."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from urllib.parse import urlsplit

from tests.support.processes import gunicorn, service_env

ROOT = Path(__file__).resolve().parents[2]


def _exchange(base: str, head: str, body: bytes = b"") -> tuple[str, bytes]:
    """Send one request on a fresh connection; the answer's head and whatever follows until
    the server closes the connection (or a 5 s silence)."""
    url = urlsplit(base)
    with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
        sock.sendall(head.encode() + b"\r\n\r\n" + body)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except TimeoutError:
            return "", data  # still open after 5 s
    head_text, _, rest = data.partition(b"\r\n\r\n")
    return head_text.decode("latin-1"), rest


def test_a_body_over_the_limit_is_413_and_the_connection_closes(settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = service_env(settings, MAX_CONTENT_LENGTH="1000")
    with gunicorn(env, workers=1, threads=2, log_path=tmp_path / "gunicorn.log") as (base, _p):
        head, rest = _exchange(
            base,
            "POST /api/auth/login HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n"
            "Content-Type: application/json\r\nContent-Length: 5000",
            b'{"email": "' + b"a" * 1000,  # the client is still sending when the answer comes
        )
        assert head.startswith("HTTP/1.1 413"), head
        assert re.search(r"(?im)^connection: close\r?$", head), head
        assert json.loads(rest)["error"]["code"] == "payload_too_large"

        head, _rest = _exchange(  # a small body on a kept-alive connection still works
            base, "GET /api/health/ping HTTP/1.1\r\nHost: localhost\r\nConnection: close"
        )
        assert head.startswith("HTTP/1.1 200"), head


def test_gunicorn_limits_are_set_and_nginx_refuses_first_in_the_envelope() -> None:
    conf = (ROOT / "gunicorn.conf.py").read_text()
    gunicorn_limits = {
        name: int(value)
        for name, value in re.findall(r"^(limit_request_\w+) = (\d+)", conf, re.MULTILINE)
    }
    assert set(gunicorn_limits) == {
        "limit_request_line",
        "limit_request_fields",
        "limit_request_field_size",
    }
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    count, size = re.search(r"large_client_header_buffers (\d+) (\d+)k;", nginx).groups()
    assert int(size) * 1024 <= gunicorn_limits["limit_request_line"]
    assert int(size) * 1024 <= gunicorn_limits["limit_request_field_size"]
    for statuses, status, code in (
        ("400 494", 400, "bad_request"),
        ("413", 413, "payload_too_large"),
        ("414", 414, "uri_too_long"),
    ):
        name = re.search(rf"error_page {statuses} = (@\w+);", nginx).group(1)
        block = re.search(rf"location {name} \{{(.*?)\n    \}}", nginx, re.DOTALL).group(1)
        assert "default_type application/json;" in block
        answer = re.search(rf"return {status} '(.*)';", block).group(1)
        envelope = json.loads(answer.replace("$tradewind_request_id", "id"))
        assert envelope["error"]["code"] == code and envelope["error"]["request_id"] == "id"
