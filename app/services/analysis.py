"""Market analysis as a background job: submit, run per ticker, store, read back.

A job analyses up to 500 tickers (the bulk endpoint) in ONE job with one result per ticker,
so a bulk request has one id, one progress bar and one cancel button. Per ticker it fetches
candles from the configured market source, runs `app.domain.analysis.analyze` (trend,
momentum, volatility, score, signal, reasons) and, when a pattern is named, the pattern's
steps, whose signal/score/reasons replace the default ones. An unknown ticker, too little
history or a pattern that cannot decide is an error of that ticker, not of the job; a market
source that is unavailable is a transient failure (the job is retried with backoff).
The capital is then split with `app.domain.analysis.allocate` (inverse volatility, capped
per ticker). Results rows and the job's final state are written in one transaction by the
job runner (`store_analysis_results`).
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session

from app.domain.analysis import TickerAnalysis, allocate, analyze
from app.domain.numbers import decimal_text
from app.domain.times import iso_ms
from app.errors import AppError, NotFound, ServiceUnavailable, ValidationFailed
from app.market.base import TIMEFRAME_SECONDS
from app.market.registry import get_market_source
from app.patterns import get_pattern_registry
from app.services.jobs import Submission, submit
from app.store.job_contract import JobContext, JobInfo, TransientJobError
from app.store.models.analysis import TICKER_LENGTH, AnalysisResult
from app.store.paging import fetch_page

log = logging.getLogger("tradewind.analysis")

KIND = "analysis"
MAX_TICKERS = 50
MAX_BULK_TICKERS = 500
DEFAULT_TIMEFRAME = "1h"
DEFAULT_MAX_PER_TICKER = 0.25
HISTORY_CANDLES = 500
MAX_CAPITAL = Decimal("1e15")
_TICKER = re.compile(r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}$")
TICKER_MAX_LENGTH = TICKER_LENGTH


def normalise_ticker(raw: str) -> str:
    """ "eth-btc", "ETH/BTC" -> "ETH/BTC"; anything not BASE/QUOTE is a 422."""
    ticker = raw.strip().upper().replace("-", "/")
    if not _TICKER.match(ticker) or len(ticker) > TICKER_MAX_LENGTH:
        raise ValidationFailed(
            f"ticker {raw[:50]!r} is not a market symbol like ETH/BTC (or ETH-BTC) of at most "
            f"{TICKER_MAX_LENGTH} characters",
            details=[{"loc": ["tickers"], "msg": f"invalid ticker {raw!r}"}],
        )
    return ticker


def normalise_tickers(raw: list[str], limit: int) -> list[str]:
    tickers = list(dict.fromkeys(normalise_ticker(t) for t in raw))
    if not 1 <= len(tickers) <= limit:
        raise ValidationFailed(
            f"between 1 and {limit} distinct tickers are needed, got {len(tickers)}",
            details=[{"loc": ["tickers"], "msg": f"1..{limit} tickers"}],
        )
    return tickers


def _capital_text(capital: Decimal | str | float) -> str:
    try:
        value = Decimal(str(capital))
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or value <= 0 or value > MAX_CAPITAL:
        raise ValidationFailed(
            "capital must be a number > 0 (and at most 1e15)",
            details=[{"loc": ["capital"], "msg": "must be > 0"}],
        )
    return decimal_text(value)


def build_payload(
    tickers: list[str],
    capital: Decimal | str | float,
    *,
    timeframe: str = DEFAULT_TIMEFRAME,
    pattern: str | None = None,
    pattern_params: dict[str, Any] | None = None,
    max_per_ticker: float = DEFAULT_MAX_PER_TICKER,
    limit: int = MAX_TICKERS,
) -> dict[str, Any]:
    """The canonical job payload: equal requests give equal payloads (and one job)."""
    if timeframe not in TIMEFRAME_SECONDS:
        raise ValidationFailed(
            f"unknown timeframe {timeframe!r}; supported: {', '.join(TIMEFRAME_SECONDS)}",
            details=[{"loc": ["timeframe"], "msg": "unknown timeframe"}],
        )
    if not 0 < max_per_ticker <= 1:
        raise ValidationFailed("max_per_ticker must be in (0, 1]")
    params: dict[str, Any] = {}
    if pattern is not None:
        try:
            found = get_pattern_registry().get(pattern)
        except NotFound as exc:
            raise ValidationFailed(
                exc.message,
                code="unknown_pattern",
                details=[{"loc": ["body", "pattern"], "msg": "see GET /api/patterns"}],
            ) from None
        params = found.validate_params(pattern_params)
    elif pattern_params:
        raise ValidationFailed(
            "pattern_params given without a pattern",
            details=[{"loc": ["pattern_params"], "msg": "needs a pattern"}],
        )
    return {
        "tickers": normalise_tickers(tickers, limit),
        "capital": _capital_text(capital),
        "timeframe": timeframe,
        "max_per_ticker": float(max_per_ticker),
        "pattern": pattern,
        "pattern_params": params,
    }


def submit_analysis(
    session: Session,
    user_id: int,
    payload: dict[str, Any],
    idempotency_key: str | None = None,
) -> Submission:
    return submit(session, user_id, KIND, payload, idempotency_key)


# -- running -------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN/inf to null (JSONB refuses them)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Decimal):
        return decimal_text(value) if value.is_finite() else None
    return value


@dataclass(frozen=True)
class TickerOutcome:
    ticker: str
    analysis: TickerAnalysis | None = None
    steps: dict[str, Any] | None = None
    error: dict[str, str] | None = None


def _market_source() -> Any:
    return get_market_source()


def analyze_ticker(
    source: Any, ticker: str, timeframe: str, pattern: Any = None, params: dict | None = None
) -> TickerOutcome:
    """One ticker's analysis, or its error; a market outage raises TransientJobError."""
    try:
        candles = source.candles(ticker, timeframe, limit=HISTORY_CANDLES)
        result = analyze(ticker, candles)
        steps = None
        if pattern is not None:
            outcome = pattern.evaluate(ticker, candles, params or {}, result)
            result = replace(
                result,
                signal=outcome.signal,
                score=result.score if outcome.score is None else outcome.score,
                reasons=tuple(outcome.reasons),
            )
            steps = outcome.steps
        return TickerOutcome(ticker, result, steps)
    except ServiceUnavailable as exc:
        raise TransientJobError(f"{ticker}: {exc.message}") from None
    except AppError as exc:
        return TickerOutcome(ticker, error={"code": exc.code, "message": exc.message})


def _as_of(analysis: TickerAnalysis, timeframe: str) -> str:
    return iso_ms(analysis.ts + TIMEFRAME_SECONDS[timeframe] * 1000)  # type: ignore[return-value]


def run_analysis_job(ctx: JobContext) -> dict[str, Any]:
    """The job handler: every ticker in order, checking for cancellation between tickers."""
    p = ctx.payload
    pattern = None
    if p.get("pattern"):
        pattern = get_pattern_registry().get(p["pattern"])
    source = _market_source()
    tickers: list[str] = p["tickers"]
    outcomes: list[TickerOutcome] = []
    for i, ticker in enumerate(tickers):
        ctx.raise_if_cancelled()
        outcomes.append(
            analyze_ticker(source, ticker, p["timeframe"], pattern, p.get("pattern_params"))
        )
        ctx.report_progress((i + 1) / len(tickers))
    capital = Decimal(p["capital"])
    done = [o.analysis for o in outcomes if o.analysis is not None]
    amounts = allocate(capital, done, p["max_per_ticker"])
    allocated = sum(amounts.values(), Decimal(0))
    summary, details = [], {}
    for o in outcomes:
        if o.analysis is None:
            summary.append({"ticker": o.ticker, "error": o.error})
            details[o.ticker] = {"error": o.error}
            continue
        a = o.analysis
        row = {
            "ticker": o.ticker,
            "signal": a.signal,
            "score": round(a.score, 6),
            "allocation": decimal_text(amounts[o.ticker]),
            "as_of": _as_of(a, p["timeframe"]),
        }
        summary.append(row)
        details[o.ticker] = {
            **row,
            "indicators": _jsonable({**a.to_dict(), "ts": iso_ms(a.ts)}),
            "reasons": list(a.reasons),
            "steps": _jsonable(o.steps) if o.steps is not None else None,
        }
    return {
        "capital": p["capital"],
        "timeframe": p["timeframe"],
        "pattern": p.get("pattern"),
        "pattern_version": pattern.digest[:12] if pattern is not None else None,
        "max_per_ticker": p["max_per_ticker"],
        "allocated": decimal_text(allocated),
        "cash": decimal_text(capital - allocated),
        "analysed": len(done),
        "errors": len(outcomes) - len(done),
        "tickers": summary,
        "details": details,
    }


def store_analysis_results(
    session: Session, job: JobInfo, result: dict[str, Any]
) -> dict[str, Any]:
    """One row per ticker, in the transaction that marks the job succeeded; the job keeps the
    summary (the details live in the rows)."""
    details: dict[str, Any] = result.get("details", {})
    summary = {k: v for k, v in result.items() if k != "details"}
    for ticker, d in details.items():
        error = d.get("error")
        row = AnalysisResult(
            job_id=job.id,
            user_id=job.user_id,
            ticker=ticker,
            timeframe=result["timeframe"],
            pattern=result.get("pattern"),
            signal=None if error else d["signal"],
            score=None if error else d["score"],
            allocation=None if error else Decimal(d["allocation"]),
            as_of=None if error else datetime.fromisoformat(d["as_of"]),
            data=_jsonable(
                {k: v for k, v in d.items() if k not in ("ticker", "error")} if not error else {}
            ),
            error=None if not error else f"{error['code']}: {error['message']}",
        )
        if _stored(session, row) or error:
            continue
        # the database refused this ticker's numbers: that ticker is an error, the others stay
        problem = {"code": "not_stored", "message": "the result could not be stored"}
        error_row = AnalysisResult(
            job_id=job.id,
            user_id=job.user_id,
            ticker=ticker,
            timeframe=result["timeframe"],
            pattern=result.get("pattern"),
            data={},
            error=f"{problem['code']}: {problem['message']}",
        )
        _stored(session, error_row)
        summary = _without(summary, ticker, problem)
    return summary


def _stored(session: Session, row: AnalysisResult) -> bool:
    """Insert one row in a savepoint: False (and nothing written) if the database refuses it."""
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except DataError as exc:
        log.warning("analysis result for %s refused: %s", row.ticker[:50], type(exc.orig).__name__)
        return False
    return True


def _without(summary: dict[str, Any], ticker: str, problem: dict[str, str]) -> dict[str, Any]:
    """The job summary with `ticker` turned into an error (its allocation back to cash)."""
    entries, freed = [], Decimal(0)
    for entry in summary.get("tickers", []):
        if entry.get("ticker") == ticker and "error" not in entry:
            freed = Decimal(entry.get("allocation") or 0)
            entry = {"ticker": ticker, "error": problem}
        entries.append(entry)
    return {
        **summary,
        "tickers": entries,
        "analysed": summary.get("analysed", 0) - 1,
        "errors": summary.get("errors", 0) + 1,
        "allocated": decimal_text(Decimal(summary.get("allocated", "0")) - freed),
        "cash": decimal_text(Decimal(summary.get("cash", "0")) + freed),
    }


# -- reading -------------------------------------------------------------------------------


def list_results(
    session: Session,
    user_id: int,
    *,
    ticker: str | None = None,
    on: date | None = None,
    job_id: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[AnalysisResult], int]:
    """The user's results, newest first; `on` is the UTC day the result was produced."""
    where = [AnalysisResult.user_id == user_id]
    if ticker:
        where.append(AnalysisResult.ticker == normalise_ticker(ticker))
    if job_id is not None:
        where.append(AnalysisResult.job_id == job_id)
    if on is not None:
        start = datetime(on.year, on.month, on.day, tzinfo=UTC)
        where += [
            AnalysisResult.created_at >= start,
            AnalysisResult.created_at < start + timedelta(days=1),
        ]
    order = [AnalysisResult.created_at.desc(), AnalysisResult.id.desc()]
    return fetch_page(session, AnalysisResult, where, order, limit=limit, offset=offset)
