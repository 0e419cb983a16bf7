"""The outbound URL guard: user-given URLs never reach loopback, private or link-local
addresses (every address a host resolves to is checked) unless the admin setting allows it,
production wants HTTPS, and a redirect is never followed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from app.services.outbound import OutboundRefused, check_url, post
from config import use_settings


@pytest.fixture
def local_server() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            seen.append(self.path)
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/bounce":
                self.send_response(302)
                self.send_header("Location", "/landed")
            else:
                self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:8000/hook", "loopback"),
        ("http://localhost/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://192.168.0.10/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[::1]/hook", "loopback"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://100.64.0.1/hook", "not public"),
    ],
)
def test_non_public_addresses_are_refused(settings: Any, url: str, why: str) -> None:
    use_settings(settings)
    with pytest.raises(OutboundRefused, match=why) as caught:
        check_url(url)
    assert caught.value.status == 422 and caught.value.code == "url_not_allowed"


def test_every_resolved_address_is_checked(settings: Any) -> None:
    use_settings(settings)
    two = lambda _host, _port: ["93.184.215.14", "10.0.0.7"]  # noqa: E731
    with pytest.raises(OutboundRefused, match=r"private address \(10\.0\.0\.7\)"):
        check_url("https://hooks.example.com/x", resolve=two)
    public = lambda _host, _port: ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]  # noqa: E731
    assert check_url("https://hooks.example.com/x", resolve=public)


def test_shape_and_https_rules(settings: Any) -> None:
    use_settings(settings)
    for bad in ("ftp://8.8.8.8/x", "https:///nohost", "https://user:pw@8.8.8.8/x"):
        with pytest.raises(OutboundRefused):
            check_url(bad)
    with pytest.raises(OutboundRefused, match="https") as caught:
        check_url("http://8.8.8.8/x", require_https=True)
    assert caught.value.code == "insecure_url"
    production = settings.model_copy(update={"app_env": "production"})
    use_settings(production)
    with pytest.raises(OutboundRefused, match="https"):
        check_url("http://8.8.8.8/x")
    assert check_url("https://8.8.8.8/x") == "https://8.8.8.8/x"


def test_sending_to_a_local_server_is_refused_unless_the_setting_allows_it(
    settings: Any, local_server: tuple[str, list[str]]
) -> None:
    use_settings(settings)
    url, seen = local_server
    with pytest.raises(OutboundRefused, match="loopback"):
        post(f"{url}/hook", b"{}", {"Content-Type": "application/json"})
    assert seen == []
    use_settings(settings.model_copy(update={"outbound_allow_private": True}))
    try:
        assert post(f"{url}/hook", b"{}", {}).status == 200
        bounced = post(f"{url}/bounce", b"{}", {})
        assert bounced.status == 302 and not bounced.ok
        assert seen == ["/hook", "/bounce"]  # the redirect was not followed
    finally:
        use_settings(settings)
