"""Local stand-ins (threads on 127.0.0.1) for the services notifications go to.

`StandIn` answers Telegram's `POST /bot<token>/sendMessage`, Discord's
`POST /api/webhooks/<id>/<token>` and a webhook receiver at `POST /hook/<name>` that checks
the HMAC signature with the key registered for `<name>` (401 when it does not match, or the
timestamp is more than five minutes off) and keeps each delivery id once. Every request is
recorded; `fail(prefix, n, status)` makes the next `n` requests under a path prefix answer
`status`; `hold()` / `release()` make requests wait at the door (they are recorded first).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int


@dataclass
class _State:
    keys: dict[str, str] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    accepted: dict[str, dict[Any, dict[str, Any]]] = field(default_factory=dict)
    faults: dict[str, deque[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    gate: threading.Event = field(default_factory=threading.Event)
    waiting: int = 0  # requests held at the gate right now
    delay_s: float = 0.0


def verify(key: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does (the README's snippet, in test form)."""
    expected = (
        "sha256="
        + hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    )
    fresh = abs(time.time() - int(timestamp)) < 300
    return fresh and hmac.compare_digest(expected, signature)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: _State

    def log_message(self, *_args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        st = self.state
        if st.delay_s:
            time.sleep(st.delay_s)
        body = json.loads(raw or b"{}")
        status, answer = 200, {"ok": True}
        with st.lock:
            fault = next((p for p in st.faults if self.path.startswith(p) and st.faults[p]), None)
            if fault is not None:
                status, answer = st.faults[fault].popleft(), {"ok": False}
            elif self.path.startswith("/hook/"):
                name = self.path.split("/")[2]
                ok = verify(
                    st.keys.get(name, ""),
                    self.headers.get("X-Tradewind-Timestamp", "0"),
                    raw,
                    self.headers.get("X-Tradewind-Signature", ""),
                )
                if ok:
                    st.accepted.setdefault(name, {}).setdefault(body["id"], body)
                else:
                    status, answer = 401, {"error": "bad signature"}
            elif self.path.startswith("/api/webhooks/"):
                status, answer = 204, None
            st.requests.append(Received(self.path, dict(self.headers.items()), body, status))
        if not st.gate.is_set():
            with st.lock:
                st.waiting += 1
            st.gate.wait()  # recorded (and accepted) first: the sender may die waiting
            with st.lock:
                st.waiting -= 1
        data = b"" if answer is None else json.dumps(answer).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class StandIn:
    """Run with `with StandIn() as server:`; `server.url` is its base URL."""

    def __init__(self) -> None:
        self.state = _State()
        self.state.gate.set()
        handler = type("Handler", (_Handler,), {"state": self.state})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> StandIn:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.state.gate.set()
        self._server.shutdown()
        self._server.server_close()

    def webhook(self, name: str, key: str) -> str:
        """Register a receiver's signing key; its URL."""
        self.state.keys[name] = key
        return f"{self.url}/hook/{name}"

    def fail(self, prefix: str, times: int, status: int = 500) -> None:
        with self.state.lock:
            self.state.faults.setdefault(prefix, deque()).extend([status] * times)

    def hold(self) -> None:
        self.state.gate.clear()

    def release(self) -> None:
        self.state.gate.set()

    def requests(self, prefix: str = "/") -> list[Received]:
        with self.state.lock:
            return [r for r in self.state.requests if r.path.startswith(prefix)]

    def accepted(self, name: str) -> dict[Any, dict[str, Any]]:
        with self.state.lock:
            return dict(self.state.accepted.get(name, {}))
