"""A small closed-loop HTTP load generator (keep-alive connections in threads) shared by the
benchmarks, so ours and the baseline are driven the same way in one run."""

from __future__ import annotations

import http.client
import threading
import time
from urllib.parse import urlparse


def hammer(
    url: str, seconds: float = 5.0, connections: int = 16, headers: dict[str, str] | None = None
) -> tuple[float, list[float]]:
    """Requests per second and per-request latencies (s) over `seconds`."""
    parsed = urlparse(url)
    stop = time.monotonic() + seconds
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()

    def worker() -> None:
        nonlocal errors
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
        local: list[float] = []
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                conn.request("GET", parsed.path, headers=headers or {})
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(response.status)
            except Exception:
                conn.close()
                conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
                with lock:
                    errors += 1
                continue
            local.append(time.perf_counter() - started)
        with lock:
            latencies.extend(local)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    if errors:
        print(f"  ({errors} failed requests)")
    return len(latencies) / elapsed, latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")
