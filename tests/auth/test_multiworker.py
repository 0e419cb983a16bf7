"""Revocation across a real gunicorn with several workers: once logout (or a replayed refresh
token) has answered, the token is refused by EVERY worker.

Which worker served a request is read from the kernel, not from the app: while the keep-alive
connection is still open, the worker process holding the server side of it (found through
/proc/net/tcp and /proc/<pid>/fd) is the one that answered.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import child_pids, gunicorn, service_env

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

WORKERS = 3
MAX_CONNECTIONS = 400
PASSWORD = "correct horse battery"


def _socket_inode(server_port: int, client_port: int) -> str | None:
    """The inode of the server side of the TCP connection from `client_port`."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], fields[9]
        if (
            int(local.split(":")[1], 16) == server_port
            and int(remote.split(":")[1], 16) == client_port
        ):
            return inode
    return None


def _owner(inode: str, pids: set[int]) -> int | None:
    target = f"socket:[{inode}]"
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            for fd in fd_dir.iterdir():
                try:
                    if os.readlink(fd) == target:
                        return pid
                except OSError:
                    continue
        except OSError:
            continue
    return None


class Server:
    def __init__(self, base: str, master_pid: int) -> None:
        self.port = int(base.rsplit(":", 1)[1])
        self.workers = child_pids(master_pid)
        assert len(self.workers) == WORKERS, self.workers

    def call(
        self, method: str, path: str, token: str | None = None, body: Any = None
    ) -> tuple[int, dict[str, Any], int | None]:
        """(status, json, pid of the worker that answered) over a fresh connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            headers = {"Content-Type": "application/json"}
            if token:
                headers["Authorization"] = f"Bearer {token}"
            conn.request(
                method, path, body=json.dumps(body) if body is not None else None, headers=headers
            )
            response = conn.getresponse()
            data = response.read()
            client_port = conn.sock.getsockname()[1]
            inode = _socket_inode(self.port, client_port)
            pid = _owner(inode, self.workers) if inode else None
            return response.status, (json.loads(data) if data else {}), pid
        finally:
            conn.close()

    def on_every_worker(self, path: str, token: str) -> dict[int, set[tuple[int, str]]]:
        """Ask until every worker has answered at least once: pid -> {(status, error code)}."""
        seen: dict[int, set[tuple[int, str]]] = {}
        for _ in range(MAX_CONNECTIONS):
            status, body, pid = self.call("GET", path, token)
            if pid is not None:
                seen.setdefault(pid, set()).add((status, body.get("error", {}).get("code", "")))
            if len(seen) == WORKERS:
                break
        assert set(seen) == self.workers, f"only {len(seen)} of {WORKERS} workers answered"
        return seen


def test_logout_and_refresh_reuse_hold_on_every_worker(app, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from app.api.rate_limit import reset_rate_limits

    reset_rate_limits()
    env = service_env(settings, ACCESS_LOG="0")
    with gunicorn(env, workers=WORKERS, threads=2, log_path=tmp_path / "gunicorn.log") as (
        base,
        proc,
    ):
        server = Server(base, proc.pid)
        email = "multi@example.com"
        assert (
            server.call("POST", "/api/auth/register", body={"email": email, "password": PASSWORD})[
                0
            ]
            == 201
        )

        def login() -> dict[str, Any]:
            status, body, _pid = server.call(
                "POST", "/api/auth/login", body={"email": email, "password": PASSWORD}
            )
            assert status == 200, body
            return body

        # Logout: accepted everywhere before, refused everywhere after.
        session = login()
        before = server.on_every_worker("/api/auth/me", session["access_token"])
        assert all(answers == {(200, "")} for answers in before.values()), before
        assert server.call("POST", "/api/auth/logout", session["access_token"])[0] == 204
        after = server.on_every_worker("/api/auth/me", session["access_token"])
        assert all(answers == {(401, "token_revoked")} for answers in after.values()), after

        # Refresh reuse: the new pair dies on every worker once the old token is replayed.
        session = login()
        status, fresh, _ = server.call("POST", "/api/auth/refresh", session["refresh_token"])
        assert status == 200
        before = server.on_every_worker("/api/auth/me", fresh["access_token"])
        assert all(answers == {(200, "")} for answers in before.values()), before
        status, body, _ = server.call("POST", "/api/auth/refresh", session["refresh_token"])
        assert (status, body["error"]["code"]) == (401, "refresh_token_reused")
        after = server.on_every_worker("/api/auth/me", fresh["access_token"])
        assert all(answers == {(401, "token_revoked")} for answers in after.values()), after
    assert "Traceback" not in (tmp_path / "gunicorn.log").read_text()
