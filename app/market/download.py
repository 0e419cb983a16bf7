"""Download exchange candles into the candle store, page by page, resuming where it stopped.

`download_candles` asks the source for ``page_size`` candles at a time from the start of each
range still missing (before the first stored candle, after the last one) and moves ``since``
past the newest candle each page returned. The source does the rate limiting and the retries
of one page (ccxt's limiter and our backoff); when a page still fails, what was fetched so far
is stored before the error goes up, so the next run starts after it. Pages are also stored
every ``checkpoint_pages`` pages. Writing goes through `store_candles`, the validated atomic
writer `import-candles` uses, so the replay feed reads downloads like imports.

Gaps (candles the exchange does not have) are reported, not refetched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.domain.candles import Candles
from app.market.base import MarketSource, timeframe_seconds
from app.market.csv_candles import (
    CandleFileName,
    GapReport,
    gap_report,
    store_candles,
    stored_candles,
)

__all__ = ["DownloadResult", "download_candles", "missing_ranges"]

DEFAULT_PAGE_SIZE = 1000
DEFAULT_CHECKPOINT_PAGES = 20

_PRICE_FIELDS = ("open", "high", "low", "close", "volume")

Progress = Callable[[int, int], None]  # (candle slots covered, candle slots to cover)


@dataclass(frozen=True)
class DownloadResult:
    name: CandleFileName
    path: Path | None
    fetched: int  # new candles stored by this run
    pages: int  # fetch_ohlcv calls that answered
    stored: int  # candles in the file afterwards
    first_ts: int | None
    last_ts: int | None
    gaps: GapReport  # inside the requested range, after this run

    def as_dict(self) -> dict:
        return {
            "symbol": self.name.symbol,
            "timeframe": self.name.timeframe,
            "exchange": self.name.exchange,
            "fetched": self.fetched,
            "pages": self.pages,
            "stored": self.stored,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "gaps": self.gaps.as_dict(),
        }


def _ceil(ms: int, step: int) -> int:
    return -(-ms // step) * step


def missing_ranges(
    stored: Candles | None, start_ms: int, end_ms: int, tf_ms: int
) -> list[tuple[int, int]]:
    """Half-open [from, to) ranges of ``[start_ms, end_ms)`` outside what is stored."""
    start = _ceil(start_ms, tf_ms)
    if stored is None or len(stored) == 0:
        return [(start, end_ms)] if start < end_ms else []
    first, after_last = int(stored.ts[0]), int(stored.ts[-1]) + tf_ms
    ranges = []
    if start < min(first, end_ms):
        ranges.append((start, min(first, end_ms)))
    if max(start, after_last) < end_ms:
        ranges.append((max(start, after_last), end_ms))
    return ranges


def _merge(parts: list[Candles]) -> Candles:
    parts = [p for p in parts if len(p)]
    if not parts:
        return Candles.empty()
    ts = np.concatenate([p.ts for p in parts]).astype(np.int64)
    cols = [np.concatenate([getattr(p, f) for p in parts]) for f in _PRICE_FIELDS]
    order = np.argsort(ts, kind="stable")
    ts = ts[order]
    keep = np.r_[True, ts[1:] != ts[:-1]]  # the first seen wins: stored rows come first
    return Candles(ts[keep], *(np.ascontiguousarray(c[order][keep]) for c in cols))


def download_candles(
    source: MarketSource,
    target_dir: str | Path,
    name: CandleFileName,
    start_ms: int,
    end_ms: int,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
    checkpoint_pages: int = DEFAULT_CHECKPOINT_PAGES,
    on_progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> DownloadResult:
    """Fetch the candles of ``[start_ms, end_ms)`` not yet stored; see the module docstring."""
    tf_ms = timeframe_seconds(name.timeframe) * 1000
    stored = stored_candles(target_dir, name)
    ranges = missing_ranges(stored, start_ms, end_ms, tf_ms)
    total = sum(-(-(b - a) // tf_ms) for a, b in ranges)
    covered = 0
    pages = fetched = 0
    pending: list[Candles] = []

    def save() -> None:
        nonlocal stored, pending
        if not pending:
            return
        merged = _merge([stored or Candles.empty(), *pending])
        store_candles(merged, target_dir, name)
        stored, pending = merged, []

    if on_progress:
        on_progress(0, total)
    try:
        for range_start, range_end in ranges:
            since = range_start
            while since < range_end:
                if should_stop and should_stop():
                    save()
                    return _result(name, target_dir, fetched, pages, start_ms, end_ms)
                page = source.candles(name.symbol, name.timeframe, since, page_size)
                pages += 1
                inside = page.ts[(page.ts >= since) & (page.ts < range_end)]
                if len(inside) == 0:
                    covered += -(-(range_end - since) // tf_ms)
                    break
                lo = int(np.searchsorted(page.ts, inside[0]))
                page = page.slice(lo, lo + len(inside))
                pending.append(page)
                fetched += len(page)
                next_since = int(page.ts[-1]) + tf_ms
                covered += (next_since - since) // tf_ms
                since = next_since
                if on_progress:
                    on_progress(min(covered, total), total)
                if len(pending) >= checkpoint_pages:
                    save()
    except BaseException:
        save()  # a failed page keeps the pages before it: the next run resumes after them
        raise
    if on_progress:
        on_progress(total, total)
    save()
    return _result(name, target_dir, fetched, pages, start_ms, end_ms)


def _result(
    name: CandleFileName,
    target_dir: str | Path,
    fetched: int,
    pages: int,
    start_ms: int,
    end_ms: int,
) -> DownloadResult:
    current = stored_candles(target_dir, name)
    path = Path(target_dir) / name.filename if current is not None else None
    current = current if current is not None else Candles.empty()
    ts = current.ts[(current.ts >= start_ms) & (current.ts < end_ms)]
    return DownloadResult(
        name=name,
        path=path,
        fetched=fetched,
        pages=pages,
        stored=len(current),
        first_ts=int(current.ts[0]) if len(current) else None,
        last_ts=int(current.ts[-1]) if len(current) else None,
        gaps=gap_report(ts, name.timeframe),
    )
