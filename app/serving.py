"""The gunicorn worker class: gthread, with connections spread over the workers.

gthread's workers all wait on the one listening socket, and each accepts every connection it
can, up to `worker_connections` (1,000). A burst of keep-alive connections - nginx's upstream
pool (`deploy/nginx.conf`), a load balancer, a load test - is often taken whole by the first
worker to wake: then one worker serves every request on one core while the others idle (seen
here: 32 connections, 2 workers, half the requests per second in such runs). A worker that
already holds a connection for each of its threads waits a moment before it accepts another,
so an idle sibling takes it first; the more it holds beyond its threads, the longer it waits
(2 ms, and 2 ms more for each connection beyond them, at most 20 ms), so a sibling that is
slow to be scheduled on a loaded machine still gets its share. When every worker is that busy,
they all accept, a little later.
"""

from __future__ import annotations

import time
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

ACCEPT_YIELD_SECONDS = 0.002
MAX_YIELDS = 10


class BalancedThreadWorker(ThreadWorker):
    def accept(self, listener: Any) -> None:
        beyond = self.nr_conns - self.cfg.threads
        if beyond >= 0:
            time.sleep(ACCEPT_YIELD_SECONDS * min(beyond + 1, MAX_YIELDS))
        super().accept(listener)
