"""Event benchmark: what the event table costs a writer, and how fast events reach a stream.

In one run, on a fresh database (Postgres by default, `--sqlite` for the embedded default):

* write cost - transactions that insert one audit row, with and without `record_event` in the
  same transaction: transactions per second of each and the ratio;
* delivery - one stream subscribed to this process's poller; events published one at a time
  (each its own transaction): time from "publish" to "in the stream's inbox", p50/p99, with
  the in-process wake-up and poll-only (every `EVENTS_POLL_SECONDS`, what another worker
  without Redis sees), printed beside the publish (write + commit) alone;
* flood - four threads write events as fast as they can: events per second written and
  delivered to the stream, and the ratio.

    .venv/bin/python bench/bench_events.py [--seconds 4] [--sqlite]

Needs Postgres on 127.0.0.1 (TEST_POSTGRES_URL) like the tests.
"""

from __future__ import annotations

import argparse
import queue
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.services import events  # noqa: E402
from app.services.audit import record_audit  # noqa: E402
from app.store.db import init_database, session_scope, shutdown_database  # noqa: E402
from config import Settings, use_settings  # noqa: E402
from tests.support.databases import create_test_database, drop_test_database  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


def write_rate(seconds: float, with_event: bool) -> float:
    done, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        with session_scope() as s:
            record_audit(s, "bench.write", details={"n": done})
            if with_event:
                events.record_event(s, 1, "trade", {"n": done})
        done += 1
    return done / seconds


def delivery(count: int, wake: bool) -> tuple[list[float], list[float]]:
    """(publish-to-inbox latencies, publish-alone latencies), in seconds."""
    sub, _ = events.broker.subscribe(1, is_admin=False)
    poke = events.broker.poke
    if not wake:
        events.broker.poke = lambda: None  # type: ignore[method-assign]
    latencies, writes = [], []
    try:
        for n in range(count):
            started = time.perf_counter()
            events.publish_event(1, "trade", {"n": n})
            writes.append(time.perf_counter() - started)
            got = sub.inbox.get(timeout=10)
            latencies.append(time.perf_counter() - started)
            assert got is not None and got["data"]["n"] == n
            time.sleep(0.01)
    finally:
        events.broker.poke = poke  # type: ignore[method-assign]
        events.broker.unsubscribe(sub)
    return latencies, writes


def flood(seconds: float, threads: int = 4) -> tuple[float, float]:
    sub, _ = events.broker.subscribe(1, is_admin=False)
    sub.inbox = queue.Queue()  # unbounded for the bench
    written = [0] * threads
    end = time.monotonic() + seconds

    def writer(k: int) -> None:
        while time.monotonic() < end:
            with session_scope() as s:
                events.record_event(s, 1, "trade", {"k": k})
            written[k] += 1

    began = time.monotonic()
    pool = [threading.Thread(target=writer, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    total, received = sum(written), 0
    while received < total:
        assert sub.inbox.get(timeout=30) is not None
        received += 1
    elapsed = time.monotonic() - began
    events.broker.unsubscribe(sub)
    return total / seconds, received / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--sqlite", action="store_true")
    args = parser.parse_args()

    if args.sqlite:
        import os

        os.environ["TEST_DB"] = "sqlite"
    url = create_test_database(Path(tempfile.mkdtemp(prefix="twbench-")))
    settings = Settings(database_url=url, redis_url=None, events_poll_seconds=0.5)
    use_settings(settings)
    init_database(settings)
    try:
        plain = write_rate(args.seconds, with_event=False)
        with_event = write_rate(args.seconds, with_event=True)
        woken, writes = delivery(args.count, wake=True)
        polled, _ = delivery(max(10, args.count // 5), wake=False)
        written, delivered = flood(args.seconds)
    finally:
        events.broker.shutdown()
        shutdown_database()
        drop_test_database(url)
    print(f"database: {'SQLite' if args.sqlite else 'Postgres'}")
    print(f"write tx/s, audit row only:        {plain:9.0f}")
    print(f"write tx/s, audit row + event:     {with_event:9.0f}   ({with_event / plain:.2f}x)")
    print(f"publish alone p50/p99 (ms):        {pct(writes, 0.5):9.1f} / {pct(writes, 0.99):.1f}")
    print(
        f"to the stream, woken p50/p99 (ms): {pct(woken, 0.5):9.1f} / {pct(woken, 0.99):.1f}"
        f"   ({pct(woken, 0.5) / max(pct(writes, 0.5), 1e-9):.1f}x publish alone)"
    )
    print(
        f"to the stream, polled p50/p99 (ms):{pct(polled, 0.5):9.1f} / {pct(polled, 0.99):.1f}"
        "   (poll every 500 ms)"
    )
    print(f"flood events/s written, delivered: {written:9.0f} / {delivered:.0f}"
          f"   ({delivered / written:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
