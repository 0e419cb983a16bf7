"""The shared candle cache: a thousand bots on one symbol/timeframe cause one read per new
candle, within a process and across processes (Redis), and it degrades without Redis."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from app.market.cache import cache_stats, cached_candles, clear_candle_cache
from app.market.errors import UnknownSymbol, UnknownTimeframe
from app.store.redis import get_redis, reset_redis
from config import get_settings, use_settings
from tests.engine.cache_worker import CountingSource
from tests.support.processes import ROOT, service_env

DAY_MS = 86_400_000
TF_MS = 300_000


class Clock:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self) -> float:
        return self.seconds


def _source(anchor_ms: int, clock: Clock) -> CountingSource:
    return CountingSource([ROOT / "data" / "candles"], anchor=anchor_ms, now=clock)


@pytest.fixture(autouse=True)
def _fresh_cache(app) -> Iterator[None]:
    clear_candle_cache()
    yield
    clear_candle_cache()


def test_a_thousand_bots_read_once_per_new_candle() -> None:
    anchor = 1_767_225_600_000 + 1 * DAY_MS
    clock = Clock((anchor + 3 * DAY_MS + 7_000) / 1000)
    source = _source(anchor, clock)
    with ThreadPoolExecutor(32) as pool:
        results = list(
            pool.map(lambda _: cached_candles(source, "ETH/BTC", "5m", 300), range(1000))
        )
    assert source.reads == 1
    newest = int(results[0].ts[-1])
    assert newest + TF_MS <= clock.seconds * 1000 < newest + 2 * TF_MS  # the last closed one
    assert all(len(r) == 300 and int(r.ts[-1]) == newest for r in results)
    assert np.array_equal(results[0].close, source.candles("ETH/BTC", "5m", limit=300).close)

    clock.seconds += 60  # same candle still forming: nothing new to read
    cached_candles(source, "ETH/BTC", "5m", 300)
    assert source.reads == 2  # the direct comparison read above; the cache read nothing new
    clock.seconds += TF_MS / 1000  # the next candle has closed
    with ThreadPoolExecutor(32) as pool:
        later = list(pool.map(lambda _: cached_candles(source, "ETH/BTC", "5m", 300), range(1000)))
    assert source.reads == 3
    assert all(int(r.ts[-1]) == newest + TF_MS for r in later)
    stats = cache_stats()
    assert stats["fetches"] == 2 and stats["hits"] >= 1999


def test_smaller_windows_come_from_memory_larger_ones_are_read(app) -> None:
    anchor = 1_767_225_600_000 + 2 * DAY_MS
    clock = Clock((anchor + 5 * DAY_MS) / 1000)
    source = _source(anchor, clock)
    assert len(cached_candles(source, "ETH/BTC", "1h", 50)) == 50
    assert len(cached_candles(source, "ETH/BTC", "1h", 500)) == 500
    assert source.reads == 1  # the first read fetched the default window of 500
    assert len(cached_candles(source, "ETH/BTC", "1h", 800)) == 800
    assert source.reads == 2
    first = cached_candles(source, "ETH/BTC", "1h", 10)
    with pytest.raises(ValueError):
        first.close[0] = 1.0  # shared between bots: read-only
    with pytest.raises(UnknownSymbol):
        cached_candles(source, "NOPE/BTC", "5m", 10)
    with pytest.raises(UnknownTimeframe):
        cached_candles(source, "ETH/BTC", "7m", 10)


def test_processes_share_one_read_through_redis(settings) -> None:
    anchor = 1_767_225_600_000 + 3 * DAY_MS
    now_s = (anchor + 4 * DAY_MS + 1_000) / 1000
    env = service_env(settings)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.engine.cache_worker",
                str(anchor),
                str(now_s),
                "300",
                "8",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    reads = [int(o.split()[0].split("=")[1]) for o in outs]
    assert sum(reads) == 1, outs
    assert all(o.endswith("distinct_last=1") for o in outs)
    keys = list(get_redis().scan_iter(match=settings.redis_prefix + "candles:*"))
    assert keys and all(k.decode().startswith(settings.redis_prefix) for k in keys)


@pytest.mark.parametrize("redis_url", [None, "redis://127.0.0.1:1/0"])
def test_without_redis_the_process_cache_still_works(redis_url) -> None:
    previous = get_settings()
    use_settings(previous.model_copy(update={"redis_url": redis_url}))
    reset_redis()
    try:
        anchor = 1_767_225_600_000 + 4 * DAY_MS
        source = _source(anchor, Clock((anchor + 2 * DAY_MS) / 1000))
        for _ in range(200):
            assert len(cached_candles(source, "LTC/BTC", "5m", 20)) == 20
        assert source.reads == 1
        assert cache_stats()["redis_errors"] == (1 if redis_url else 0)
    finally:
        use_settings(previous)
        reset_redis()
