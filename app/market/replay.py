"""Replay market source (``MARKET_DATA=replay``, the default): recorded candles as a live feed.

Serves every conventionally named candle file (``<EXCHANGE>_<BASE>-<QUOTE>_<TF>.csv``) found in
the configured directories, typically the shipped sample ``data/candles`` followed by the
import directory. Later directories win when two files give the same symbol and timeframe, so
an imported file overrides the sample; within one directory the last file name in sorted order
wins. A directory is rescanned when its modification time changes, so a running process picks
up ``flask import-candles`` output without a restart. A file that fails validation is logged
and skipped (it cannot break the other markets).

Time: "now" is the `ReplayClock` (see `app.market.replay_clock` for the exact mapping): each
series loops forever on the virtual timeline, its recorded timestamps shifted by whole candles
so presented times are aligned, strictly increasing across loop boundaries, and at speed 1 equal
to real time. History reaches back through earlier loops without limit, so strategies with long
warm-ups (SMA 200 on 1h needs 8+ days) always have data.

* ``candles()`` returns only candles closed at the replay's now (``open + tf <= now``). A
  timeframe that is a whole multiple of a file's timeframe is served by aggregating that file
  (5m file -> 15m, 1h, 4h, 1d ...; buckets aligned to the epoch like exchanges do). Without
  ``since_ms`` it returns the newest ``limit`` (default 500) candles; with ``since_ms`` the
  candles opening at or after it, at most ``limit`` or `MAX_LIMIT`.
* ``last_price()`` is the close of the latest closed candle of the symbol's finest timeframe:
  the same number a strategy just saw, so paper fills and valuations agree with the candles.
* ``markets()``: one market per symbol; ``price_step`` and ``amount_step`` inferred from the
  decimals written in the data (finest across the symbol's files); no minimum amount or notional.

Loading is lazy and once per process (a module-level cache keyed by path, size and mtime); the
arrays are numpy (a 30-day 5m file is about 0.4 MB in memory).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import numpy as np

from app.domain.candles import Candles
from app.market.base import TIMEFRAME_SECONDS, MarketInfo, timeframe_seconds, to_decimal
from app.market.csv_candles import CandleFileName, CandleSeries, load_candle_file, scan_candle_dirs
from app.market.errors import UnknownSymbol, UnknownTimeframe
from app.market.replay_clock import ReplayClock, Timeline

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "ReplayMarketSource"]

log = logging.getLogger("tradewind.market.replay")

DEFAULT_LIMIT = 500
MAX_LIMIT = 10_000

_cache_lock = threading.Lock()
_series_cache: dict[tuple[str, int, int], CandleSeries | Exception] = {}


def _load_series(path: Path) -> CandleSeries:
    """Validated series for ``path``, parsed at most once per process per file version."""
    name = os.path.abspath(path)
    st = os.stat(name)
    key = (name, st.st_size, st.st_mtime_ns)
    with _cache_lock:
        hit = _series_cache.get(key)
        if hit is None:
            try:
                hit = load_candle_file(path)[1]
            except Exception as exc:  # cached too: a bad file is reported once, not per call
                hit = exc
            _series_cache[key] = hit
    if isinstance(hit, Exception):
        raise hit
    return hit


@dataclass(frozen=True)
class _Entry:
    name: CandleFileName
    path: Path

    @property
    def tf_ms(self) -> int:
        return TIMEFRAME_SECONDS[self.name.timeframe] * 1000


@dataclass
class _Catalog:
    signature: tuple
    files: dict[str, dict[str, _Entry]]  # symbol -> timeframe -> entry


class ReplayMarketSource:
    """`MarketSource` over recorded candle files; see the module docstring."""

    name = "replay"

    def __init__(
        self,
        candles_dirs: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
        *,
        anchor: str | datetime | int | None = None,
        speed: float = 1.0,
        now: Callable[[], float] = time.time,
        clock: ReplayClock | None = None,
    ) -> None:
        if isinstance(candles_dirs, (str, os.PathLike)):
            candles_dirs = [candles_dirs]
        self.dirs = tuple(Path(d) for d in candles_dirs)
        self.clock = clock or ReplayClock(anchor, speed, now)
        self._lock = threading.Lock()
        self._catalog: _Catalog | None = None

    # -- catalog -------------------------------------------------------------------------

    def _signature(self) -> tuple:
        sig = []
        for d in self.dirs:
            try:
                sig.append((str(d), d.stat().st_mtime_ns))
            except OSError:
                sig.append((str(d), None))
        return tuple(sig)

    def _scan(self, signature: tuple) -> _Catalog:
        files = {
            symbol: {tf: _Entry(name, path) for tf, (name, path) in by_tf.items()}
            for symbol, by_tf in scan_candle_dirs(self.dirs).items()
        }
        return _Catalog(signature, files)

    def _files(self) -> dict[str, dict[str, _Entry]]:
        sig = self._signature()
        with self._lock:
            if self._catalog is None or self._catalog.signature != sig:
                self._catalog = self._scan(sig)
            return self._catalog.files

    def refresh(self) -> None:
        """Forget the directory scan (files are re-read only if they changed)."""
        with self._lock:
            self._catalog = None

    def _series(self, symbol: str) -> dict[str, tuple[_Entry, CandleSeries]]:
        """Valid series of ``symbol`` by timeframe; invalid files are logged and skipped."""
        entries = self._files().get(symbol)
        if not entries:
            raise UnknownSymbol(f"unknown symbol {symbol!r} in replay data")
        out: dict[str, tuple[_Entry, CandleSeries]] = {}
        for tf, entry in entries.items():
            try:
                out[tf] = (entry, _load_series(entry.path))
            except FileNotFoundError:
                continue
            except Exception as exc:
                log.error("skipping invalid candle file %s: %s", entry.path, exc)
        if not out:
            raise UnknownSymbol(f"no valid replay data for {symbol!r}")
        return out

    # -- MarketSource ----------------------------------------------------------------------

    def symbols(self) -> list[str]:
        return sorted(self._files())

    def markets(self) -> list[MarketInfo]:
        result = []
        for symbol in self.symbols():
            try:
                result.append(self.market(symbol))
            except UnknownSymbol:
                continue
        return result

    def market(self, symbol: str) -> MarketInfo:
        series = self._series(symbol)
        name = next(iter(series.values()))[0].name
        return MarketInfo(
            symbol=symbol,
            base=name.base,
            quote=name.quote,
            amount_step=min(s.amount_step for _, s in series.values()),
            price_step=min(s.price_step for _, s in series.values()),
        )

    def timeframes(self, symbol: str) -> list[str]:
        """Timeframes servable for ``symbol``: each file's own and its whole multiples."""
        base_secs = {TIMEFRAME_SECONDS[tf] for tf in self._series(symbol)}
        return [
            tf for tf, secs in TIMEFRAME_SECONDS.items() if any(secs % b == 0 for b in base_secs)
        ]

    def _pick(self, symbol: str, timeframe: str) -> tuple[_Entry, CandleSeries]:
        series = self._series(symbol)
        if timeframe in series:
            return series[timeframe]
        try:
            want = timeframe_seconds(timeframe)
        except UnknownTimeframe:
            want = 0
        usable = [s for tf, s in series.items() if want and want % TIMEFRAME_SECONDS[tf] == 0]
        if not usable:
            raise UnknownTimeframe(
                f"timeframe {timeframe!r} not available for {symbol} in replay data; "
                f"available: {', '.join(self.timeframes(symbol))}"
            )
        return max(usable, key=lambda s: s[0].tf_ms)

    def candles(
        self,
        symbol: str,
        timeframe: str,
        since_ms: int | None = None,
        limit: int | None = None,
    ) -> Candles:
        entry, series = self._pick(symbol, timeframe)
        tf_ms = TIMEFRAME_SECONDS[timeframe] * 1000
        if limit is not None and limit <= 0:
            return Candles.empty()
        now = self.clock.now_ms()
        end = now - now % tf_ms  # open time of the still-open candle: everything before is closed
        cap = min(limit or (MAX_LIMIT if since_ms is not None else DEFAULT_LIMIT), MAX_LIMIT)
        feed = _Feed(series, self.clock.timeline(*_span(series), entry.tf_ms))
        if since_ms is None:
            return feed.newest(end, tf_ms, cap)
        start = math.ceil(since_ms / tf_ms) * tf_ms
        return feed.oldest(start, end, tf_ms, cap)

    def last_price(self, symbol: str) -> Decimal:
        series = self._series(symbol)
        entry, s = min(series.values(), key=lambda es: es[0].tf_ms)
        now = self.clock.now_ms()
        last = _Feed(s, self.clock.timeline(*_span(s), entry.tf_ms)).newest(
            now - now % entry.tf_ms, entry.tf_ms, 1
        )
        return to_decimal(float(last.close[-1]))

    def close(self) -> None:
        """Nothing to release: files are read whole and closed."""


def _span(series: CandleSeries) -> tuple[int, int]:
    ts = series.candles.ts
    return int(ts[0]), int(ts[-1])


class _Feed:
    """Reads one series through its timeline: chunks of presented base candles."""

    def __init__(self, series: CandleSeries, timeline: Timeline) -> None:
        self.c = series.candles
        self.tl = timeline

    def _backward(self, end: int, chunk: int) -> Iterator[tuple[int, int, int]]:
        """(shift, lo, hi) index ranges of base candles opening before ``end``, newest first;
        endless (earlier loops), the caller stops."""
        ts = self.c.ts
        loop = self.tl.loop_of(end - 1)
        hi = int(np.searchsorted(ts, end - self.tl.shift(loop), "left"))
        while True:
            shift = self.tl.shift(loop)
            while hi > 0:
                lo = max(0, hi - chunk)
                yield shift, lo, hi
                hi = lo
            loop -= 1
            hi = ts.size

    def _forward(self, start: int, end: int, chunk: int) -> Iterator[tuple[int, int, int]]:
        """(shift, lo, hi) index ranges of base candles opening in [start, end), oldest
        first."""
        ts = self.c.ts
        loop = self.tl.loop_of(start)
        while self.tl.loop_start(loop) < end:
            shift = self.tl.shift(loop)
            lo = int(np.searchsorted(ts, max(start, self.tl.loop_start(loop)) - shift, "left"))
            hi = int(np.searchsorted(ts, min(end, self.tl.loop_start(loop + 1)) - shift, "left"))
            while lo < hi:
                nxt = min(hi, lo + chunk)
                yield shift, lo, nxt
                lo = nxt
            loop += 1

    def _build(self, pieces: list[tuple[int, int, int]], tf_ms: int) -> Candles:
        c = self.c
        if not pieces:
            return Candles.empty()
        ts = np.concatenate([c.ts[lo:hi] + shift for shift, lo, hi in pieces])
        parts = [
            np.concatenate([col[lo:hi] for _, lo, hi in pieces])
            for col in (c.open, c.high, c.low, c.close, c.volume)
        ]
        if tf_ms == self._base_ms():
            return Candles(ts, *parts)
        return Candles(ts, *parts).aggregate(tf_ms)

    def _base_ms(self) -> int:
        ts = self.c.ts
        return int(self.tl.period_ms - (ts[-1] - ts[0]))

    def _buckets(self, shift: int, lo: int, hi: int, tf_ms: int) -> np.ndarray:
        ts = self.c.ts[lo:hi] + shift
        return ts - np.mod(ts, tf_ms)

    def newest(self, end: int, tf_ms: int, limit: int) -> Candles:
        """The last ``limit`` candles opening before ``end``; collects until one bucket more
        than needed is seen, so the oldest, possibly partial, bucket can be cut."""
        factor = tf_ms // self._base_ms()
        pieces: list[tuple[int, int, int]] = []
        first_bucket: int | None = None
        buckets = 0
        for shift, lo, hi in self._backward(end, (limit + 1) * factor):
            pieces.append((shift, lo, hi))
            b = self._buckets(shift, lo, hi, tf_ms)
            buckets += int(np.count_nonzero(b[1:] != b[:-1])) + int(b[-1] != first_bucket)
            first_bucket = int(b[0])
            if buckets > limit or (factor == 1 and buckets >= limit):
                break
        out = self._build(pieces[::-1], tf_ms)
        return out.slice(max(0, len(out) - limit))

    def oldest(self, start: int, end: int, tf_ms: int, limit: int) -> Candles:
        """The first ``limit`` candles opening in [start, end); ``start`` is bucket-aligned so
        only the bucket in progress when the count is reached can be partial, and it is cut."""
        factor = tf_ms // self._base_ms()
        pieces: list[tuple[int, int, int]] = []
        last_bucket: int | None = None
        buckets = 0
        for shift, lo, hi in self._forward(start, end, (limit + 1) * factor):
            pieces.append((shift, lo, hi))
            b = self._buckets(shift, lo, hi, tf_ms)
            buckets += int(np.count_nonzero(b[1:] != b[:-1])) + int(b[0] != last_bucket)
            last_bucket = int(b[-1])
            if buckets > limit or (factor == 1 and buckets >= limit):
                break
        return self._build(pieces, tf_ms).slice(0, limit)
