"""Logs that help at 3 a.m.: one line per failing subsystem per outage, then a count.

An outage of the database or Redis makes every caller fail, many times a second. `Outage`
turns that into one ERROR line with the traceback when the subsystem starts failing, nothing
while it keeps failing (the failures are only counted), and one WARNING line with the count
and the duration once it works again:

    redis unavailable: ConnectionError: Error 111 connecting to ... (traceback once)
    redis recovered after 412 failures in 20.3s
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("tradewind.outage")


class Outage:
    """The failure state of one subsystem in this process."""

    def __init__(self, subsystem: str) -> None:
        self.subsystem = subsystem
        self._lock = threading.Lock()
        self._since: float | None = None
        self._failures = 0

    @property
    def failing(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException, what: str = "unavailable") -> None:
        """A failure: logged with its traceback if it starts an outage, else counted."""
        with self._lock:
            self._failures += 1
            first = self._since is None
            if first:
                self._since = time.monotonic()
        if first:
            log.error("%s %s: %s: %s", self.subsystem, what, type(exc).__name__,
                      str(exc).splitlines()[0] if str(exc) else "", exc_info=exc)  # fmt: skip

    def recovered(self) -> None:
        """A success: ends the outage (one line) if there was one."""
        if self._since is None:
            return
        with self._lock:
            since, failures = self._since, self._failures
            self._since, self._failures = None, 0
        if since is not None:
            log.warning("%s recovered after %d failures in %.1fs", self.subsystem, failures,
                        time.monotonic() - since)  # fmt: skip
