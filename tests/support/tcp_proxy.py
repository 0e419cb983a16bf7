"""A small TCP proxy on 127.0.0.1 for outage tests.

Point a service at the proxy instead of the real server (e.g. `DATABASE_URL` via
`proxied_url`), then `stop()` to simulate the server going away (the listener and every live
connection are closed, so clients see resets and refused connections) and `start()` again to
bring it back on the same port. The shared Postgres keeps running for everyone else.

    with TcpProxy("127.0.0.1", 5432) as proxy:
        url = proxy.proxied_url(database_url)
        ...
        proxy.stop()    # "database down"
        proxy.start()   # "database back"

Two quieter faults: `blackhole()` keeps every connection open and accepts new ones but
forwards nothing in either direction (packets that are never answered: a partition, the worst
case for timeouts), until `heal()` drops those connections and forwards again; and
`delay = 0.4` holds every reply from the server for that long (a slow database).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

BUFFER = 65_536


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target_host`:`target_port` while started."""

    def __init__(self, target_host: str, target_port: int, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.port = port
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._accept_thread: threading.Thread | None = None
        self.blackholed = False
        self.delay = 0.0

    @classmethod
    def for_url(cls, url: str) -> TcpProxy:
        """A proxy in front of the host and port of a database or service URL."""
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 5432)

    def proxied_url(self, url: str) -> str:
        """`url` with its host and port replaced by the proxy's (start the proxy first)."""
        parts = urlsplit(url)
        auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return urlunsplit(parts._replace(netloc=f"{auth}127.0.0.1:{self.port}"))

    @property
    def running(self) -> bool:
        return self._listener is not None

    def start(self) -> TcpProxy:
        """Listen (again) on the same port; a no-op when already running."""
        with self._lock:
            if self._listener is not None:
                return self
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(128)
            self.port = listener.getsockname()[1]
            self._listener = listener
            self._accept_thread = threading.Thread(
                target=self._accept, args=(listener,), name="tcp-proxy-accept", daemon=True
            )
            self._accept_thread.start()
        return self

    def stop(self) -> None:
        """Close the listener and every live connection (both sides)."""
        with self._lock:
            listener, self._listener = self._listener, None
            live, self._sockets = self._sockets, set()
            thread, self._accept_thread = self._accept_thread, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for sock in live:
            _close(sock)
        if thread is not None:
            thread.join(timeout=5)

    def blackhole(self) -> None:
        """From now on nothing gets through, and nothing is refused or reset."""
        self.blackholed = True

    def heal(self) -> None:
        """End the blackhole: connections that lived through it are dropped (their streams
        lost data), new ones are forwarded again."""
        with self._lock:
            live, self._sockets = self._sockets, set()
            self.blackholed = False
        for sock in live:
            _close(sock)

    def restart(self) -> TcpProxy:
        self.stop()
        return self.start()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self.blackholed:  # accepted, then never answered
                with self._lock:
                    self._sockets.add(client)
                threading.Thread(target=self._swallow, args=(client,), daemon=True).start()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._listener is not listener:  # stopped meanwhile
                    _close(client)
                    _close(upstream)
                    return
                self._sockets.update((client, upstream))
            for src, dst, reply in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(
                    target=self._pump, args=(src, dst, reply), name="tcp-proxy-pump", daemon=True
                ).start()

    def _swallow(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while sock.recv(BUFFER):
                pass

    def _pump(self, src: socket.socket, dst: socket.socket, reply: bool = False) -> None:
        try:
            while True:
                data = src.recv(BUFFER)
                if not data:
                    break
                if self.blackholed:
                    continue
                if reply and self.delay:
                    time.sleep(self.delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets.discard(src)
                self._sockets.discard(dst)
            _close(src)
            _close(dst)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
