"""Candle cache benchmark: 1000 bots on one symbol/timeframe each asking for their candles,
straight from the replay source vs through `cached_candles`, measured side by side in one run.

    .venv/bin/python bench/bench_cache.py [--bots 1000] [--limit 300] [--rounds 5] [--redis URL]

"cold round" = the first bot after a new candle pays one source read, the other 999 hit memory.
With --redis, also the cost of a process that finds the window in Redis (another process read
it) instead of reading the source itself.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.market.cache import cache_stats, cached_candles, clear_candle_cache  # noqa: E402
from app.market.replay import ReplayMarketSource  # noqa: E402
from app.store.redis import reset_redis  # noqa: E402
from config import Settings, use_settings  # noqa: E402

TF_S = 300


class Clock:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self) -> float:
        return self.seconds


def per_call_us(fn, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bots", type=int, default=1000)
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--redis", default=None, help="e.g. redis://127.0.0.1:6379/0")
    args = parser.parse_args()

    use_settings(Settings(redis_url=args.redis, redis_prefix=f"twbench:{uuid.uuid4().hex[:8]}:"))
    reset_redis()
    clock = Clock(1_767_225_600 + 5 * 86_400 + 7)
    source = ReplayMarketSource([ROOT / "data" / "candles"], now=clock)
    source.candles("ETH/BTC", "5m", limit=args.limit)  # load the file once for both sides

    direct = []
    cached = []
    for _ in range(args.rounds):
        clock.seconds += TF_S  # a new candle for every round
        direct.append(
            per_call_us(lambda: source.candles("ETH/BTC", "5m", limit=args.limit), args.bots)
        )
        clock.seconds += TF_S
        cached.append(
            per_call_us(lambda: cached_candles(source, "ETH/BTC", "5m", args.limit), args.bots)
        )
    d, c = min(direct), min(cached)
    stats = cache_stats()
    print(f"bots per candle:             {args.bots}")
    print(f"direct source read per bot:  {d:9.1f} us")
    print(f"cached (cold round) per bot: {c:9.1f} us")
    print(f"speed-up:                    {d / c:9.1f}x")
    print(f"source reads through cache:  {stats['fetches']} for {args.rounds * args.bots} calls")

    if args.redis:
        clear_candle_cache()
        cached_candles(source, "ETH/BTC", "5m", args.limit)  # "another process" reads + publishes

        def peer() -> None:
            clear_candle_cache()  # as if a fresh process: only Redis has the window
            cached_candles(source, "ETH/BTC", "5m", args.limit)

        p = per_call_us(peer, 200)
        print(
            f"window from Redis (peer):    {p:9.1f} us  (ratio to a direct replay read: "
            f"{p / d:.1f}; an exchange read over the network costs ~100 ms)"
        )


if __name__ == "__main__":
    main()
