"""Candle cache shared by every bot: one fetch per new candle per symbol and timeframe.

A window of closed candles is fresh until the next candle should have closed (the newest
candle's open + 2 timeframes, on the source's own clock: the replay clock for the replay feed).
While fresh, every caller in the process gets it from memory; no network, no Redis.

When it goes stale, one thread per process refreshes it (a lock per key); with Redis the
processes share the work: the first to take a short Redis lock fetches and publishes the window
under the configured prefix, the others wait briefly and read it. An exchange that publishes a
closed candle a little late does not cause a storm of fetches: a window that is still stale
after a fetch is re-checked at most every `RECHECK_MS`. Redis is only a speed-up: any Redis
error falls back to the in-process cache and a direct fetch.

Returned arrays are read-only views shared between callers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import struct
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.domain.candles import Candles
from app.market.base import MarketSource, timeframe_seconds
from app.store.redis import get_redis, redis_key

__all__ = ["DEFAULT_WINDOW", "cache_stats", "cached_candles", "clear_candle_cache"]

log = logging.getLogger("tradewind.market.cache")

DEFAULT_WINDOW = 500
RECHECK_MS = 2_000
LOCK_MS = 5_000  # a fetch holder that dies blocks the others at most this long
WAIT_FOR_PEER_S = 2.0  # then a waiter fetches for itself
_MAGIC = b"TWC1"


@dataclass(frozen=True)
class _Window:
    candles: Candles
    requested: int  # the limit it was fetched with (fewer candles means that is all there is)
    fresh_until_ms: int
    checked_at_ms: int

    def serves(self, limit: int, now_ms: int) -> bool:
        if self.requested < limit and len(self.candles) >= self.requested:
            return False
        return now_ms < self.fresh_until_ms or now_ms < self.checked_at_ms + RECHECK_MS


_lock = threading.Lock()
_key_locks: dict[str, threading.Lock] = {}
_windows: dict[str, _Window] = {}
_stats = {"hits": 0, "fetches": 0, "peer_reads": 0, "redis_errors": 0}


def cache_stats() -> dict[str, int]:
    """Counters since start (or the last clear): what the cache saved, for benches and tests."""
    with _lock:
        return dict(_stats)


def clear_candle_cache() -> None:
    """Forget this process's windows (Redis copies expire on their own)."""
    with _lock:
        _windows.clear()
        for k in _stats:
            _stats[k] = 0


def _count(name: str) -> None:
    with _lock:
        _stats[name] += 1


_source_ids: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def _source_id(source: MarketSource) -> str:
    try:
        return _source_ids[source]
    except (KeyError, TypeError):
        pass
    sid = _compute_source_id(source)
    with contextlib.suppress(TypeError):
        _source_ids[source] = sid
    return sid


def _compute_source_id(source: MarketSource) -> str:
    """Two sources share cache entries only if they serve the same data on the same clock."""
    explicit = getattr(source, "cache_key", None)
    if isinstance(explicit, str):
        return explicit
    clock = getattr(source, "clock", None)
    parts = [
        source.name,
        repr(getattr(source, "dirs", "")),
        repr(getattr(clock, "anchor_ms", "")),
        repr(getattr(clock, "speed", "")),
    ]
    return source.name + "-" + hashlib.sha1("|".join(parts).encode()).hexdigest()[:10]


def _now_ms(source: MarketSource) -> int:
    clock = getattr(source, "clock", None)
    if clock is not None and hasattr(clock, "now_ms"):
        return int(clock.now_ms())
    return int(time.time() * 1000)


def _readonly(c: Candles) -> Candles:
    for arr in (c.ts, c.open, c.high, c.low, c.close, c.volume):
        arr.setflags(write=False)
    return c


def _tail(c: Candles, limit: int) -> Candles:
    return c.slice(max(0, len(c) - limit))


def _fetch(source: MarketSource, symbol: str, timeframe: str, window: int, tf_ms: int) -> _Window:
    _count("fetches")
    got = source.candles(symbol, timeframe, limit=window)
    c = Candles(*(np.array(a, copy=True) for a in (got.ts, got.open, got.high, got.low,
                                                    got.close, got.volume)))  # fmt: skip
    now = _now_ms(source)
    fresh = int(c.ts[-1]) + 2 * tf_ms if len(c) else now + RECHECK_MS
    return _Window(_readonly(c), window, fresh, now)


# -- Redis -------------------------------------------------------------------------------


def _encode(w: _Window) -> bytes:
    c = w.candles
    header = json.dumps(
        {
            "n": len(c),
            "requested": w.requested,
            "fresh": w.fresh_until_ms,
            "checked": w.checked_at_ms,
        }
    ).encode()
    body = (
        c.ts.astype("<i8").tobytes()
        + np.stack([c.open, c.high, c.low, c.close, c.volume]).astype("<f8").tobytes()
    )
    return _MAGIC + struct.pack("<I", len(header)) + header + body


def _decode(raw: bytes) -> _Window | None:
    if not raw.startswith(_MAGIC):
        return None
    (hlen,) = struct.unpack_from("<I", raw, 4)
    header = json.loads(raw[8 : 8 + hlen])
    n = int(header["n"])
    body = raw[8 + hlen :]
    ts = np.frombuffer(body[: 8 * n], dtype="<i8").astype(np.int64)
    cols = np.frombuffer(body[8 * n :], dtype="<f8").reshape(5, n).astype(np.float64)
    c = Candles(ts, cols[0].copy(), cols[1].copy(), cols[2].copy(), cols[3].copy(), cols[4].copy())
    return _Window(
        _readonly(c), int(header["requested"]), int(header["fresh"]), int(header["checked"])
    )


def _redis() -> Any:
    return get_redis()


def _peer_window(client: Any, key: str, limit: int, now_ms: int) -> _Window | None:
    raw = client.get(key)
    w = _decode(raw) if raw else None
    return w if w is not None and w.serves(limit, now_ms) else None


def _fetch_shared(
    client: Any, key: str, source: MarketSource, symbol: str, timeframe: str, limit: int, tf_ms: int
) -> _Window:
    """Fetch once across processes: the Redis lock holder fetches, the others read its copy."""
    window = max(limit, DEFAULT_WINDOW)
    now = _now_ms(source)
    peer = _peer_window(client, key, limit, now)
    if peer is not None:
        _count("peer_reads")
        return peer
    lock_key = key + ":lock"
    token = f"{id(threading.current_thread())}-{time.monotonic_ns()}"
    if not client.set(lock_key, token, nx=True, px=LOCK_MS):
        deadline = time.monotonic() + WAIT_FOR_PEER_S
        while time.monotonic() < deadline:
            time.sleep(0.02)
            peer = _peer_window(client, key, limit, _now_ms(source))
            if peer is not None:
                _count("peer_reads")
                return peer
            if not client.exists(lock_key):
                break
    try:
        w = _fetch(source, symbol, timeframe, window, tf_ms)
        ttl_ms = max(3 * tf_ms, 60_000)
        client.set(key, _encode(w), px=ttl_ms)
        return w
    finally:
        if client.get(lock_key) == token.encode():
            client.delete(lock_key)


# -- the entry point ---------------------------------------------------------------------


def cached_candles(
    source: MarketSource, symbol: str, timeframe: str, limit: int = DEFAULT_WINDOW
) -> Candles:
    """The newest `limit` closed candles, fetched at most once per new candle for everyone.

    Raises what the source raises (`UnknownSymbol`, `UnknownTimeframe`, `ExchangeUnavailable`).
    """
    tf_ms = timeframe_seconds(timeframe) * 1000
    if limit <= 0:
        return Candles.empty()

    key = redis_key("candles", _source_id(source), symbol, timeframe)
    w = _windows.get(key)
    if w is not None and w.serves(limit, _now_ms(source)):
        _count("hits")
        return _tail(w.candles, limit)
    with _lock:
        key_lock = _key_locks.setdefault(key, threading.Lock())
    with key_lock:
        w = _windows.get(key)
        if w is not None and w.serves(limit, _now_ms(source)):
            _count("hits")
            return _tail(w.candles, limit)
        w = _refresh(key, source, symbol, timeframe, limit, tf_ms)
        _windows[key] = w
        return _tail(w.candles, limit)


def _refresh(
    key: str, source: MarketSource, symbol: str, timeframe: str, limit: int, tf_ms: int
) -> _Window:
    try:
        client = _redis()
    except Exception:  # a bad REDIS_URL must not stop trading
        client = None
    if client is not None:
        try:
            return _fetch_shared(client, key, source, symbol, timeframe, limit, tf_ms)
        except (OSError, ConnectionError, TimeoutError) as exc:
            log.debug("candle cache: Redis unavailable, fetching directly: %s", exc)
            _count("redis_errors")
        except Exception as exc:
            if type(exc).__module__.startswith("redis"):
                log.debug("candle cache: Redis error, fetching directly: %s", exc)
                _count("redis_errors")
            else:
                raise
    return _fetch(source, symbol, timeframe, max(limit, DEFAULT_WINDOW), tf_ms)
