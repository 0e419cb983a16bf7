"""Outbound HTTP to URLs users give us (webhooks, chat APIs), kept off the server's network.

`check_url` resolves the host and refuses the URL when ANY address it resolves to is not a
public one (loopback, private, link-local, carrier-grade NAT, multicast, reserved,
unspecified; IPv4-mapped IPv6 is judged as its IPv4 address), unless the admin setting
`OUTBOUND_ALLOW_PRIVATE` is on. In production a URL must be HTTPS. `post` checks again at
send time (a name may resolve elsewhere by then) and follows no redirects, so a public URL
cannot bounce a request onto a private address.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from app.errors import ValidationFailed
from config import get_settings

__all__ = ["HttpAnswer", "OutboundRefused", "check_url", "post"]

Resolver = Callable[[str, int], list[str]]
MAX_ANSWER_BYTES = 64 * 1024


class OutboundRefused(ValidationFailed):
    """A URL we will not send to (422 when it comes from a request)."""

    code = "url_not_allowed"


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundRefused(f"host {host!r} does not resolve ({exc})") from None
    return sorted({str(info[4][0]) for info in infos})


def _why_not_public(address: str) -> str | None:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for label, hit in (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("private", ip.is_private),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
    ):
        if hit:
            return label
    return None if ip.is_global else "not public"


def check_url(
    url: str,
    *,
    require_https: bool | None = None,
    allow_private: bool | None = None,
    resolve: Resolver = _resolve,
) -> str:
    """The URL, if we may send to it; raises `OutboundRefused` naming the reason."""
    settings = get_settings()
    require_https = settings.is_production if require_https is None else require_https
    allow_private = settings.outbound_allow_private if allow_private is None else allow_private
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise OutboundRefused(f"not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutboundRefused("the URL must be http(s)://host/...")
    if require_https and parts.scheme != "https":
        raise OutboundRefused("the URL must use https", code="insecure_url")
    if parts.username or parts.password:
        raise OutboundRefused("the URL must not carry a user name or password")
    if allow_private:
        return url
    host = parts.hostname
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        addresses = resolve(host, port or (443 if parts.scheme == "https" else 80))
    if not addresses:
        raise OutboundRefused(f"host {host!r} does not resolve")
    for address in addresses:
        why = _why_not_public(address)
        if why is not None:
            raise OutboundRefused(
                f"host {host!r} resolves to a {why} address ({address}); only public "
                "addresses are allowed"
            )
    return url


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is returned as the answer, never followed


_opener = urllib.request.build_opener(_NoRedirects)


def post(
    url: str, body: bytes, headers: dict[str, str], *, timeout: float | None = None
) -> HttpAnswer:
    """POST to a checked URL. Network failures raise `OSError`; any HTTP status is returned."""
    check_url(url)
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    timeout = timeout or get_settings().outbound_timeout_seconds
    try:
        with _opener.open(request, timeout=timeout) as answer:
            return HttpAnswer(answer.status, answer.read(MAX_ANSWER_BYTES))
    except urllib.error.HTTPError as exc:
        with exc:
            return HttpAnswer(exc.code, exc.read(MAX_ANSWER_BYTES))
