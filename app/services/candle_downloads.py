"""Downloading exchange candles into the candle store: from the terminal or as a queued job.

`build_spec` checks a request (a ccxt exchange id, BASE/QUOTE symbols, a timeframe, a range
whose end is after its start) before anything runs, so bad input is a 422, never a failed job.
`run_download` fetches each symbol in turn through `app.market.download` into the import
directory the replay feed reads. A job whose exchange stops answering is retried (transient);
each retry resumes where the previous attempt stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from app.domain.times import to_ms
from app.errors import ValidationFailed
from app.market.base import TIMEFRAME_SECONDS
from app.market.csv_candles import CandleFileName
from app.market.download import DownloadResult, download_candles
from app.market.errors import ExchangeUnavailable
from app.market.registry import get_market_source
from app.services.jobs import Submission, submit
from app.store.job_contract import JobContext, TransientJobError
from config import get_settings

KIND = "download_candles"
MAX_SYMBOLS = 50

SymbolProgress = Callable[[str, int, int], None]  # (symbol, done, total)


@dataclass(frozen=True)
class DownloadSpec:
    exchange: str
    symbols: tuple[str, ...]
    timeframe: str
    start_ms: int
    end_ms: int

    def payload(self) -> dict[str, Any]:
        return {
            "exchange": self.exchange,
            "symbols": list(self.symbols),
            "timeframe": self.timeframe,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
        }

    @classmethod
    def from_payload(cls, p: dict[str, Any]) -> DownloadSpec:
        return cls(p["exchange"], tuple(p["symbols"]), p["timeframe"], p["start_ms"], p["end_ms"])

    def file_name(self, symbol: str) -> CandleFileName:
        return CandleFileName.from_symbol(self.exchange, symbol, self.timeframe)


def _invalid(field: str, message: str, code: str = "validation_error") -> ValidationFailed:
    return ValidationFailed(message, code=code, details=[{"loc": ["body", field], "msg": message}])


def _ms(value: datetime | int) -> int:
    if isinstance(value, datetime):
        return to_ms(value if value.tzinfo else value.replace(tzinfo=UTC))
    return int(value)


def build_spec(
    exchange: str,
    symbols: list[str] | tuple[str, ...],
    timeframe: str,
    start: datetime | int,
    end: datetime | int | None = None,
    *,
    now: Callable[[], float] = time.time,
) -> DownloadSpec:
    """A checked request; raises `ValidationFailed` (422) naming the field at fault."""
    exchange = (exchange or "").strip().lower()
    if not exchange or exchange == "replay":
        raise _invalid("exchange", "give a ccxt exchange id (e.g. binance)", "unknown_exchange")
    try:
        get_market_source(exchange)  # builds the source: an unknown ccxt id is refused here
    except ValidationFailed as exc:
        raise _invalid("exchange", exc.message, "unknown_exchange") from None
    clean: list[str] = []
    for raw in symbols:
        symbol = str(raw).strip().upper().replace("-", "/")
        base, sep, quote = symbol.partition("/")
        if not (sep and base.isalnum() and quote.isalnum()):
            raise _invalid("symbols", f"symbol must look like BASE/QUOTE, got {raw!r}")
        if symbol not in clean:
            clean.append(symbol)
    if not clean or len(clean) > MAX_SYMBOLS:
        raise _invalid("symbols", f"give 1..{MAX_SYMBOLS} symbols")
    if timeframe not in TIMEFRAME_SECONDS:
        raise _invalid(
            "timeframe", f"unknown timeframe {timeframe!r}; one of {', '.join(TIMEFRAME_SECONDS)}"
        )
    start_ms = _ms(start)
    end_ms = min(_ms(end) if end is not None else int(now() * 1000), int(now() * 1000))
    if start_ms < 0:
        raise _invalid("start", "start must be after 1970-01-01")
    if end_ms <= start_ms:
        raise _invalid("end", "the range must end after it starts (and start before now)")
    return DownloadSpec(exchange, tuple(clean), timeframe, start_ms, end_ms)


def run_download(
    spec: DownloadSpec,
    *,
    on_progress: SymbolProgress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[DownloadResult]:
    """Download every symbol of the spec into the import directory, one after the other."""
    source = get_market_source(spec.exchange)
    target = get_settings().candles_import_dir
    results = []
    for symbol in spec.symbols:
        source.market(symbol)  # an unknown symbol is refused before any candle is asked for

        def progress(done: int, total: int, symbol: str = symbol) -> None:
            if on_progress:
                on_progress(symbol, done, total)

        results.append(
            download_candles(
                source,
                target,
                spec.file_name(symbol),
                spec.start_ms,
                spec.end_ms,
                on_progress=progress,
                should_stop=should_stop,
            )
        )
    return results


def run_download_job(ctx: JobContext) -> dict[str, Any]:
    """Job handler: progress is each symbol's share; an exchange outage retries the job."""
    spec = DownloadSpec.from_payload(ctx.payload)
    index = {s: i for i, s in enumerate(spec.symbols)}

    def progress(symbol: str, done: int, total: int) -> None:
        part = done / total if total else 1.0
        ctx.report_progress((index[symbol] + part) / len(spec.symbols))

    try:
        results = run_download(spec, on_progress=progress, should_stop=ctx.cancelled)
    except ExchangeUnavailable as exc:
        raise TransientJobError(exc.message) from None
    ctx.raise_if_cancelled()
    return {"downloads": [r.as_dict() for r in results]}


def submit_download(
    session: Session, user_id: int, spec: DownloadSpec, idempotency_key: str | None = None
) -> Submission:
    return submit(session, user_id, KIND, spec.payload(), idempotency_key)
