"""One process of the shared-cache test: many threads ask for the same candles; prints how
many times this process's source was actually read.

Usage: python -m tests.engine.cache_worker ANCHOR_MS NOW_S CALLS THREADS
"""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from app.market.cache import cached_candles
from app.market.replay import ReplayMarketSource
from tests.support.processes import ROOT


class CountingSource(ReplayMarketSource):
    """The replay feed, counting its reads (the cache must make them rare)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.reads = 0
        self._count_lock = threading.Lock()

    def candles(self, *args, **kwargs):
        with self._count_lock:
            self.reads += 1
        return super().candles(*args, **kwargs)


def main(anchor_ms: int, now_s: float, calls: int, threads: int) -> None:
    source = CountingSource([ROOT / "data" / "candles"], anchor=anchor_ms, now=lambda: now_s)
    with ThreadPoolExecutor(threads) as pool:
        lasts = set(pool.map(lambda _: int(cached_candles(source, "ETH/BTC", "5m", 200).ts[-1]),
                             range(calls)))  # fmt: skip
    print(f"reads={source.reads} distinct_last={len(lasts)}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
