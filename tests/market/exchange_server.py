"""A fake exchange: a stdlib HTTP server on 127.0.0.1 that answers with recorded responses.

Routes and payloads come from ``tests/market/recorded/<exchange>.json``::

    {"routes": {"GET /api/v3/klines": {"status": 200, "body": [...]}, ...},
     "errors": {"rate_limit": {"status": 429, "body": {...}}, ...}}

A route key is ``METHOD /path``; a path segment ``*`` matches any one segment. Strings in a
body may contain ``${param:NAME}``, replaced by that request parameter (query string, form or
JSON body; ``_last_segment`` is the last path segment), so a placed order answers with the
client order id it was sent; ``${header:NAME}`` likewise inserts a request header.

A route may carry a ``live`` spec (where its candles are and how their open times are
written). With ``server.live_candles = True`` such a route answers with its recorded candles
moved onto the present: the newest becomes the candle open right now, the others step back by
one timeframe each, so tests see a still-open last candle without waiting for real time.

Faults are queued per route: ``server.fail("POST /api/v3/order", "timeout")`` makes the next
matching request sleep past the client's timeout before answering; ``"rate_limit"`` and other
names answer with the exchange's recorded error of that name. ``server.answer(route, fn)``
computes a route's body from the request instead (e.g. candles paged by ``startTime``). The
server records every request and tracks open connections, so tests count requests and see
sessions close.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

RECORDED = Path(__file__).parent / "recorded"
_PARAM_RE = re.compile(r"\$\{(param|header):([A-Za-z0-9_-]+)\}")


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: str

    @property
    def route(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class _State:
    routes: dict[str, dict[str, Any]]
    errors: dict[str, dict[str, Any]]
    faults: dict[str, deque[str]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    open_connections: int = 0
    timeout_sleep_s: float = 1.0
    live_candles: bool = False
    answers: dict[str, Callable[[Request], Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _match(pattern: str, route: str) -> bool:
    p_method, p_path = pattern.split(" ", 1)
    method, path = route.split(" ", 1)
    if p_method != method:
        return False
    p_parts, parts = p_path.strip("/").split("/"), path.strip("/").split("/")
    if len(p_parts) != len(parts):
        return False
    return all(a in ("*", b) for a, b in zip(p_parts, parts, strict=True))


def _rebase_candles(body: Any, live: dict[str, Any]) -> Any:
    body = json.loads(json.dumps(body))
    rows = body if live.get("items") is None else body[live["items"]]
    key, tf_s, scale = live["ts"], live["tf_s"], 1000 if live.get("unit", "ms") == "ms" else 1
    open_now = int(time.time()) // tf_s * tf_s
    ordered = rows if live.get("newest_first") else rows[::-1]
    for back, row in enumerate(ordered):
        value = (open_now - back * tf_s) * scale
        row[key] = str(value) if isinstance(row[key], str) else value
    return body


def _substitute(value: Any, req: Request) -> Any:
    if isinstance(value, str):

        def repl(m: re.Match[str]) -> str:
            source = req.params if m.group(1) == "param" else req.headers
            return source.get(m.group(2), "")

        return _PARAM_RE.sub(repl, value)
    if isinstance(value, dict):
        return {k: _substitute(v, req) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, req) for v in value]
    return value


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: _State

    def setup(self) -> None:
        super().setup()
        with self.state.lock:
            self.state.open_connections += 1

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.state.lock:
                self.state.open_connections -= 1

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _handle(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        params["_last_segment"] = url.path.rstrip("/").rsplit("/", 1)[-1]
        if body:
            if body.lstrip().startswith("{"):
                with contextlib.suppress(ValueError):
                    params.update({k: str(v) for k, v in json.loads(body).items()})
            else:
                params.update(parse_qsl(body, keep_blank_values=True))
        req = Request(self.command, url.path, params, dict(self.headers.items()), body)
        st = self.state
        with st.lock:
            st.requests.append(req)
            pattern = next((p for p in st.routes if _match(p, req.route)), None)
            queue = st.faults.get(pattern) if pattern else None
            fault = queue.popleft() if queue else None
        if fault == "timeout":
            time.sleep(st.timeout_sleep_s)
        if pattern is None:
            return self._send(404, {"error": f"no recorded response for {req.route}"})
        spec = st.errors[fault] if fault and fault != "timeout" else st.routes[pattern]
        body = spec["body"]
        if spec is st.routes[pattern] and pattern in st.answers:
            body = st.answers[pattern](req)
        if st.live_candles and "live" in spec:
            body = _rebase_candles(body, spec["live"])
        self._send(spec.get("status", 200), _substitute(body, req))

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_DELETE = do_PUT = _handle


class RecordedExchange:
    """Runs the fake exchange in a background thread; use as a context manager."""

    def __init__(self, exchange: str) -> None:
        recorded = json.loads((RECORDED / f"{exchange}.json").read_text())
        self.exchange = exchange
        self.state = _State(routes=recorded["routes"], errors=recorded.get("errors", {}))
        handler = type("Handler", (_Handler,), {"state": self.state})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def live_candles(self) -> bool:
        return self.state.live_candles

    @live_candles.setter
    def live_candles(self, value: bool) -> None:
        self.state.live_candles = value

    def answer(self, route: str, fn: Callable[[Request], Any]) -> None:
        """Answer ``route`` with ``fn(request)`` (faults still come first)."""
        self.state.answers[route] = fn

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> RecordedExchange:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail(self, route: str, *faults: str) -> None:
        """Queue ``faults`` ("timeout" or an error name) for the next requests on ``route``."""
        pattern = next((p for p in self.state.routes if _match(p, route) or p == route), None)
        assert pattern is not None, f"no recorded route for {route}"
        with self.state.lock:
            self.state.faults.setdefault(pattern, deque()).extend(faults)

    def add_error(self, name: str, status: int, body: Any) -> None:
        """An extra error answer for `fail` (for cases no exchange recorded)."""
        self.state.errors[name] = {"status": status, "body": body}

    def requests(self, route: str | None = None) -> list[Request]:
        with self.state.lock:
            reqs = list(self.state.requests)
        if route is None:
            return reqs
        return [r for r in reqs if _match(route, r.route)]

    def open_connections(self) -> int:
        with self.state.lock:
            return self.state.open_connections

    def wait_for_no_connections(self, deadline_s: float = 5.0) -> int:
        """Open connections once they have drained (or the deadline passed)."""
        end = time.monotonic() + deadline_s
        while self.open_connections() and time.monotonic() < end:
            time.sleep(0.01)
        return self.open_connections()
