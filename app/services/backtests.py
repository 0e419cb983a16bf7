"""Backtests as background jobs (kind "backtest"), and the pieces `flask backtest` shares.

A request is checked up front (strategy, parameters, sizing, symbol, timeframe, range), so a
bad one answers 422 instead of becoming a failed job; the job then loads the candles, runs
`app.engine.backtest.run_backtest` - the strategy, sizing and fill code of a live bot - and
stores trades, metrics and the equity curve as the job's result.

Candles: for the replay exchange, the RECORDED files behind the replay feed (real
timestamps), from CANDLES_DIR then CANDLES_IMPORT_DIR (later wins, as in the replay feed); a
timeframe that is a whole multiple of a file's is aggregated from it. A range that misses the
recorded dates is read in the replay's own calendar instead - the dates the dashboard and the
bots show - from the replay feed (calendar "replay" in the payload). For a ccxt exchange, its
history is paged through the market source. A range without a single closed candle answers
422 `no_candles` at submission.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.candles import Candles
from app.domain.numbers import decimal_text
from app.domain.report import RoundTrip, build_report
from app.domain.sizing import SizingConfig, validate_sizing_config
from app.domain.strategies import Strategy, get_strategy
from app.domain.strategies.doc_model import parse_document
from app.domain.strategies.doc_strategy import DocumentStrategy
from app.domain.times import iso_ms, to_ms
from app.engine.backtest import run_backtest
from app.engine.fill_model import FeeSchedule
from app.engine.pairs import PairData, PairsResult, run_pairs_backtest
from app.engine.strategy_source import document_limits
from app.errors import NotFound, ValidationFailed
from app.market.base import TIMEFRAME_SECONDS, MarketInfo
from app.market.csv_candles import load_candle_file, scan_candle_dirs
from app.market.errors import ExchangeUnavailable
from app.market.registry import get_market_source
from app.services.bot_settings import check_exchange, check_market, check_stake, normalised_sizing
from app.services.jobs import submit
from app.services.strategies import get_document, resolve_strategy
from app.store.base import utcnow
from app.store.job_contract import TransientJobError
from app.store.models import Job
from app.store.paging import fetch_page
from config import get_settings

log = logging.getLogger("tradewind.backtests")

KIND = "backtest"
MAX_EQUITY_POINTS = 2000
MAX_TRADES_IN_RESULT = 10_000
CCXT_PAGE = 1000
REPLAY_PAGE = 10_000  # the replay feed's largest page
MAX_REPLAY_CANDLES = 200_000  # a replay-calendar range is read candle by candle: keep it bounded


def _invalid(field: str, message: str, code: str = "validation_error") -> ValidationFailed:
    return ValidationFailed(message, code=code, details=[{"loc": ["body", field], "msg": message}])


# -- candles ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CandleData:
    candles: Candles
    market: MarketInfo
    timeframe: str
    source: str


def _clip(c: Candles, start_ms: int | None, end_ms: int | None) -> Candles:
    lo = 0 if start_ms is None else int(np.searchsorted(c.ts, start_ms, "left"))
    hi = len(c) if end_ms is None else int(np.searchsorted(c.ts, end_ms, "left"))
    return c.slice(lo, hi)


def candle_file_data(path: str | Path, timeframe: str | None = None) -> CandleData:
    """A candle CSV named `<EXCHANGE>_<BASE>-<QUOTE>_<TF>.csv` as backtest input."""
    name, series = load_candle_file(path)
    candles = series.candles
    tf = timeframe or name.timeframe
    if tf != name.timeframe:
        want, have = TIMEFRAME_SECONDS.get(tf, 0), TIMEFRAME_SECONDS[name.timeframe]
        if not want or want % have:
            raise _invalid("timeframe", f"{tf} cannot be built from {name.timeframe} candles",
                           "unknown_timeframe")  # fmt: skip
        candles = candles.aggregate(want * 1000)
    market = MarketInfo(
        symbol=name.symbol,
        base=name.base,
        quote=name.quote,
        amount_step=series.amount_step,
        price_step=series.price_step,
    )
    return CandleData(candles, market, tf, str(path))


def recorded_files(symbol: str) -> dict[str, Path]:
    """timeframe -> file of the recorded candles behind the replay feed for `symbol`."""
    settings = get_settings()
    dirs = (settings.candles_dir, settings.candles_import_dir)
    return {tf: path for tf, (_, path) in scan_candle_dirs(dirs).get(symbol, {}).items()}


def replay_data(symbol: str, timeframe: str) -> CandleData:
    files = recorded_files(symbol)
    if not files:
        raise _invalid("symbol", f"unknown symbol {symbol!r} in replay data", "unknown_symbol")
    if timeframe not in TIMEFRAME_SECONDS:
        raise _invalid(
            "timeframe",
            f"unknown timeframe {timeframe!r}; supported: {', '.join(TIMEFRAME_SECONDS)}",
            "unknown_timeframe",
        )
    if timeframe in files:
        return candle_file_data(files[timeframe])
    want = TIMEFRAME_SECONDS[timeframe]
    usable = [tf for tf in files if want % TIMEFRAME_SECONDS[tf] == 0]
    if not usable:
        raise _invalid(
            "timeframe",
            f"timeframe {timeframe} not available for {symbol}; recorded: {', '.join(files)}",
            "unknown_timeframe",
        )
    best = max(usable, key=lambda tf: TIMEFRAME_SECONDS[tf])
    return candle_file_data(files[best], timeframe)


def exchange_data(
    exchange: str,
    symbol: str,
    timeframe: str,
    start_ms: int | None,
    end_ms: int | None,
    page_size: int = CCXT_PAGE,
) -> CandleData:
    """History from a market source (a ccxt exchange, or the replay feed), paged oldest
    first."""
    source = get_market_source(exchange)
    market = source.market(symbol)
    tf_ms = TIMEFRAME_SECONDS[timeframe] * 1000
    since = start_ms
    if since is None:
        return CandleData(source.candles(symbol, timeframe, limit=page_size), market, timeframe,
                          exchange)  # fmt: skip
    pages: list[Candles] = []
    while end_ms is None or since < end_ms:
        page = source.candles(symbol, timeframe, since_ms=since, limit=page_size)
        if len(page) == 0:
            break
        pages.append(page)
        since = int(page.ts[-1]) + tf_ms
        if len(page) < page_size:
            break
    if not pages:
        return CandleData(Candles.empty(), market, timeframe, exchange)
    joined = Candles(*(np.concatenate([getattr(p, f) for p in pages])
                       for f in ("ts", "open", "high", "low", "close", "volume")))  # fmt: skip
    return CandleData(joined, market, timeframe, exchange)


def load_candles(spec: BacktestSpec) -> CandleData:
    if spec.exchange == "replay" and spec.calendar == "replay":
        data = exchange_data("replay", spec.symbol, spec.timeframe, spec.start_ms, spec.end_ms,
                             REPLAY_PAGE)  # fmt: skip
    elif spec.exchange == "replay":
        data = replay_data(spec.symbol, spec.timeframe)
    else:
        data = exchange_data(spec.exchange, spec.symbol, spec.timeframe, spec.start_ms,
                             spec.end_ms)  # fmt: skip
    clipped = _clip(data.candles, spec.start_ms, spec.end_ms)
    return CandleData(clipped, data.market, data.timeframe, data.source)


def load_pairs(spec: BacktestSpec) -> list[CandleData]:
    """The candles of every pair of a several-pair spec, in the order of `symbols`."""
    return [load_candles(replace(spec, symbol=s, symbols=())) for s in spec.symbols]


# -- the request -----------------------------------------------------------------------


@dataclass(frozen=True)
class BacktestSpec:
    """A validated backtest request (what the job's payload holds, normalised)."""

    strategy: str
    strategy_params: dict[str, Any]
    exchange: str
    symbol: str
    timeframe: str
    start_ms: int | None
    end_ms: int | None
    capital: Decimal
    sizing: dict[str, Any]
    maker_fee: Decimal
    taker_fee: Decimal
    slippage_bps: Decimal
    calendar: str = "recorded"  # replay only: "recorded" dates, or the replay feed's "replay"
    # a user's document: its id and version, and the version's text (what the job runs)
    strategy_document_id: int | None = None
    strategy_version: int | None = None
    strategy_document: dict[str, Any] | None = None
    # several pairs (one wallet): every symbol, `symbol` being the first; () for one pair
    symbols: tuple[str, ...] = ()
    max_open_trades: int | None = None

    @property
    def multi(self) -> bool:
        return len(self.symbols) > 1

    def payload(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"calendar": self.calendar} if self.calendar != "recorded" else {}
        if self.multi:
            extra |= {"symbols": list(self.symbols), "max_open_trades": self.max_open_trades}
        if self.strategy_document is not None:
            extra |= {"strategy_document_id": self.strategy_document_id,
                      "strategy_version": self.strategy_version,
                      "strategy_document": self.strategy_document}  # fmt: skip
        return {
            "strategy": self.strategy,
            "strategy_params": self.strategy_params,
            "exchange": self.exchange,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "start": iso_ms(self.start_ms),
            "end": iso_ms(self.end_ms),
            "capital": decimal_text(self.capital),
            "sizing": self.sizing,
            "maker_fee": decimal_text(self.maker_fee),
            "taker_fee": decimal_text(self.taker_fee),
            "slippage_bps": decimal_text(self.slippage_bps),
            **extra,
        }

    @classmethod
    def from_payload(cls, p: dict[str, Any]) -> BacktestSpec:
        return cls(
            strategy=p["strategy"],
            strategy_params=dict(p.get("strategy_params") or {}),
            exchange=p.get("exchange") or "replay",
            symbol=p["symbol"],
            timeframe=p["timeframe"],
            start_ms=_payload_ms(p, "start"),
            end_ms=_payload_ms(p, "end"),
            capital=Decimal(p["capital"]),
            sizing=dict(p.get("sizing") or {}),
            maker_fee=Decimal(p.get("maker_fee", "0.001")),
            taker_fee=Decimal(p.get("taker_fee", "0.001")),
            slippage_bps=Decimal(p.get("slippage_bps", "0")),
            calendar=p.get("calendar", "recorded"),
            strategy_document_id=p.get("strategy_document_id"),
            strategy_version=p.get("strategy_version"),
            strategy_document=p.get("strategy_document"),
            symbols=tuple(p.get("symbols") or ()),
            max_open_trades=p.get("max_open_trades"),
        )


def _payload_ms(p: dict[str, Any], end: str) -> int | None:
    """A range end of a payload: ISO 8601 text (or epoch ms under `<end>_ms`, as jobs queued
    before the one calendar stored it)."""
    if p.get(end) is not None:
        return to_ms(datetime.fromisoformat(str(p[end]).replace("Z", "+00:00")))
    legacy = p.get(f"{end}_ms")
    return None if legacy is None else int(legacy)


def _ms(value: datetime | None) -> int | None:
    return None if value is None else to_ms(value)


def requested_symbols(data: dict[str, Any]) -> tuple[str, ...]:
    """The pairs of a request: `symbols` (a list) or `symbol` (one pair), not both; 422 for
    neither, both, a repeated symbol, or pairs that do not share their quote currency."""
    symbols, symbol = data.get("symbols"), data.get("symbol")
    if (symbols is None) == (symbol is None):
        raise _invalid("symbols", "give exactly one of symbol (one pair) or symbols (a list)")
    if symbols is None:
        return (symbol,)
    if not symbols:
        raise _invalid("symbols", "symbols must list at least one pair")
    for k, s in enumerate(symbols):
        if s in symbols[:k]:
            where = [{"loc": ["body", "symbols", k], "msg": "repeated"}]
            raise ValidationFailed(f"symbol {s!r} is listed twice", details=where)
    quotes = {s: _quote(s) for s in symbols}
    if len(set(quotes.values())) > 1:
        listed = ", ".join(f"{s} ({q})" for s, q in quotes.items())
        raise _invalid("symbols", "all pairs of one backtest share one wallet, so they must "
                                  f"share their quote currency; got {listed}",
                       "mixed_quote_currencies")  # fmt: skip
    return tuple(symbols)


def _quote(symbol: str) -> str:
    """The quote currency of `BASE/QUOTE` (or a derivative's `BASE/QUOTE:SETTLE`)."""
    return symbol.split("/", 1)[-1].split(":", 1)[0]


def build_spec(session: Session, user_id: int, data: dict[str, Any]) -> BacktestSpec:
    """Validate a request (422 naming the field) into a spec; checks the candles exist."""
    start, end = data.get("start"), data.get("end")
    if start is not None and end is not None and end <= start:
        raise _invalid("end", "end must be after start")
    symbols = requested_symbols(data)
    max_open = data.get("max_open_trades")
    if max_open is not None and len(symbols) > 1 and max_open < 1:
        raise _invalid("max_open_trades", "max_open_trades must be at least 1")
    choice = resolve_strategy(
        session, user_id, name=data.get("strategy"),
        document_id=data.get("strategy_document_id"), version=data.get("strategy_version"),
        params=data.get("strategy_params"), timeframe=data["timeframe"],
    )  # fmt: skip
    document = None
    if choice.document_id is not None and choice.version is not None:
        document = get_document(session, user_id, choice.document_id, choice.version)[2]
    spec = BacktestSpec(
        strategy=choice.name,
        strategy_params=choice.params,
        strategy_document_id=choice.document_id,
        strategy_version=choice.version,
        strategy_document=document,
        exchange=check_exchange(data.get("exchange") or "replay"),
        symbol=symbols[0],
        symbols=symbols if len(symbols) > 1 else (),
        max_open_trades=(max_open or len(symbols)) if len(symbols) > 1 else None,
        timeframe=data["timeframe"],
        start_ms=_ms(start),
        end_ms=_ms(end),
        capital=Decimal(data["capital"]),
        sizing=normalised_sizing(data.get("sizing")),
        maker_fee=Decimal(data.get("maker_fee", Decimal("0.001"))),
        taker_fee=Decimal(data.get("taker_fee", Decimal("0.001"))),
        slippage_bps=Decimal(data.get("slippage_bps", Decimal("0"))),
    )
    check_stake(spec.sizing, spec.capital)
    if spec.multi:
        return _pairs_checked(spec)
    if spec.exchange == "replay":
        replay_data_check(spec.symbol, spec.timeframe)
        return in_replay_calendar(spec)
    check_market(spec.exchange, spec.symbol, spec.timeframe)
    _not_in_future(spec)
    return spec


def _not_in_future(spec: BacktestSpec) -> None:
    if spec.start_ms is not None and spec.start_ms >= to_ms(utcnow()):
        raise _invalid(
            "start",
            f"no candles in {_range_text(spec.start_ms, spec.end_ms)}: the range starts in the "
            "future",
            "no_candles",
        )


def _for_pair(k: int, check: Callable[[], Any]) -> Any:
    """Run one pair's check; its 422 names the pair's place in `symbols`."""
    try:
        return check()
    except ValidationFailed as exc:
        for d in exc.details:
            if d.get("loc") == ["body", "symbol"]:
                d["loc"] = ["body", "symbols", k]
        raise


def _pairs_checked(spec: BacktestSpec) -> BacktestSpec:
    """Every pair of a several-pair spec exists and has candles in the range (in one
    calendar, the first pair's), before anything is queued."""
    if spec.exchange != "replay":
        for k, symbol in enumerate(spec.symbols):
            _for_pair(k, lambda s=symbol: check_market(spec.exchange, s, spec.timeframe))
        _not_in_future(spec)
        return spec
    for k, symbol in enumerate(spec.symbols):
        _for_pair(k, lambda s=symbol: replay_data_check(s, spec.timeframe))
    resolved = in_replay_calendar(spec)
    for k, symbol in enumerate(spec.symbols):
        own = _for_pair(k, lambda s=symbol: in_replay_calendar(replace(spec, symbol=s)))
        if own.calendar != resolved.calendar:
            raise ValidationFailed(
                f"{symbol} has no recorded candles in {_range_text(spec.start_ms, spec.end_ms)} "
                f"while {spec.symbol} has: the pairs' ranges are in different calendars",
                code="no_candles", details=[{"loc": ["body", "symbols", k], "msg": "no candles"}],
            )  # fmt: skip
        if own.calendar == "recorded":
            candles = _clip(replay_data(symbol, spec.timeframe).candles, spec.start_ms, spec.end_ms)
            if len(candles) == 0:
                raise ValidationFailed(
                    f"no candles of {symbol} {spec.timeframe} in "
                    f"{_range_text(spec.start_ms, spec.end_ms)}", code="no_candles",
                    details=[{"loc": ["body", "symbols", k], "msg": "no candles"}],
                )  # fmt: skip
    return resolved


def _range_text(start_ms: int | None, end_ms: int | None) -> str:
    return f"{iso_ms(start_ms) or 'the beginning'} .. {iso_ms(end_ms) or 'now'}"


def in_replay_calendar(spec: BacktestSpec) -> BacktestSpec:
    """The spec in the calendar its range is in: the recorded dates when the range holds
    recorded candles (or is open on both sides), else the replay feed's calendar (the range's
    missing ends filled in: up to the last closed candle, as long as the recording); 422
    `no_candles` when neither has a closed candle there."""
    if spec.start_ms is None and spec.end_ms is None:
        return spec
    recorded = replay_data(spec.symbol, spec.timeframe).candles
    if len(_clip(recorded, spec.start_ms, spec.end_ms)):
        return spec
    tf_ms = TIMEFRAME_SECONDS[spec.timeframe] * 1000
    now = get_market_source("replay").clock.now_ms()  # type: ignore[attr-defined]
    closed_end = now - now % tf_ms  # candles opening before this are closed
    end = min(spec.end_ms if spec.end_ms is not None else closed_end, closed_end)
    span = int(recorded.ts[-1]) + tf_ms - int(recorded.ts[0]) if len(recorded) else 0
    start = spec.start_ms if spec.start_ms is not None else end - span
    if start >= end:
        covered = (
            _range_text(int(recorded.ts[0]), int(recorded.ts[-1]) + tf_ms) if span else "nothing"
        )
        asked = _range_text(spec.start_ms, spec.end_ms)
        raise _invalid(
            "start",
            f"no candles of {spec.symbol} {spec.timeframe} in {asked}: the recorded data covers "
            f"{covered}, and the replay calendar has closed candles up to {iso_ms(closed_end)}",
            "no_candles",
        )
    if (end - start) // tf_ms > MAX_REPLAY_CANDLES:
        raise _invalid(
            "start",
            f"the range holds more than {MAX_REPLAY_CANDLES} {spec.timeframe} candles; "
            "choose a shorter one or a longer timeframe",
            "range_too_long",
        )
    return replace(spec, start_ms=start, end_ms=end, calendar="replay")


def replay_data_check(symbol: str, timeframe: str) -> None:
    """Fail fast (422) when the recorded data cannot serve this symbol and timeframe."""
    files = recorded_files(symbol)
    if not files:
        raise _invalid("symbol", f"unknown symbol {symbol!r} in replay data", "unknown_symbol")
    if timeframe not in TIMEFRAME_SECONDS:
        raise _invalid("timeframe", f"unknown timeframe {timeframe!r}", "unknown_timeframe")
    want = TIMEFRAME_SECONDS[timeframe]
    if not any(want % TIMEFRAME_SECONDS[tf] == 0 for tf in files):
        raise _invalid(
            "timeframe",
            f"timeframe {timeframe} not available for {symbol}; recorded: {', '.join(files)}",
            "unknown_timeframe",
        )


# -- running ---------------------------------------------------------------------------


def spec_strategy(spec: BacktestSpec) -> Strategy[Any]:
    """The strategy a spec runs: its document's recorded version, or a template by name."""
    if spec.strategy_document is not None:
        limits = document_limits()
        doc = parse_document(spec.strategy_document, limits)
        return DocumentStrategy(doc, timeframe=spec.timeframe, limits=limits)
    return get_strategy(spec.strategy, spec.timeframe)


def execute(
    spec: BacktestSpec,
    data: CandleData,
    progress: Callable[[float], None] | None = None,
) -> Any:
    """Run the backtest of `spec` over `data` (the engine's `BacktestResult`)."""
    strategy = spec_strategy(spec)
    params = strategy.validate_params(spec.strategy_params)
    sizing: SizingConfig = validate_sizing_config(spec.sizing)
    fees = FeeSchedule(maker=spec.maker_fee, taker=spec.taker_fee, slippage_bps=spec.slippage_bps)
    return run_backtest(
        data.candles,
        strategy,
        params,
        capital=spec.capital,
        market=data.market,
        fees=fees,
        sizing=sizing,
        timeframe_seconds=TIMEFRAME_SECONDS[data.timeframe],
        progress=progress,
    )


def execute_pairs(
    spec: BacktestSpec,
    datas: list[CandleData],
    progress: Callable[[float], None] | None = None,
) -> PairsResult:
    """Run the several-pair backtest of `spec` over each pair's candles (one wallet)."""
    strategy = spec_strategy(spec)
    params = strategy.validate_params(spec.strategy_params)
    fees = FeeSchedule(maker=spec.maker_fee, taker=spec.taker_fee, slippage_bps=spec.slippage_bps)
    return run_pairs_backtest(
        [PairData(d.candles, d.market) for d in datas], strategy, params,
        capital=spec.capital, fees=fees, sizing=validate_sizing_config(spec.sizing),
        timeframe_seconds=TIMEFRAME_SECONDS[spec.timeframe],
        max_open_trades=spec.max_open_trades or len(datas), progress=progress,
    )  # fmt: skip


def downsample(ts: np.ndarray, values: np.ndarray, limit: int = MAX_EQUITY_POINTS) -> dict:
    """At most `limit` evenly spaced points, always with the first and the last."""
    n = int(ts.size)
    if n > limit:
        idx = np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))
        ts, values = ts[idx], values[idx]
    return {"ts": [iso_ms(int(t)) for t in ts], "equity": [round(float(v), 12) for v in values]}


def summary_dict(spec: BacktestSpec, data: CandleData, result: Any) -> dict[str, Any]:
    """What was run and how it ended (the `summary` of the result)."""
    return _summary(spec, result, data.candles.ts, symbol=data.market.symbol,
                    timeframe=data.timeframe)  # fmt: skip


def _summary(spec: BacktestSpec, result: Any, ts: Any, **ran: Any) -> dict[str, Any]:
    """The summary fields one pair and several share; `ran` says over what."""
    trades = result.trades
    return {
        "strategy": spec.strategy,
        "strategy_params": spec.strategy_params,
        **ran,
        "candles": result.candles,
        "start": iso_ms(int(ts[0])) if len(ts) else None,
        "end": iso_ms(int(ts[-1])) if len(ts) else None,
        "capital": decimal_text(spec.capital),
        "final_equity": decimal_text(result.final_equity),
        "trades": len(trades),
        "bootstrap_trades": sum(1 for t in trades if t.bootstrap),
        "skipped_entries": len(result.skipped),
        "signals": result.signals,
    }


def round_trips(result: Any, symbol: str | None = None) -> list[RoundTrip]:
    """The engine's trades as the report's round trips."""
    return [
        RoundTrip(
            entry_ts=t.entry_ts,
            exit_ts=t.exit_ts,
            entry_price=t.entry_price,
            exit_price=t.exit_price,
            amount=t.amount,
            cost_basis=t.entry_cost + t.entry_fee,
            pnl=t.pnl,
            exit_reason=t.exit_reason,
            entry_tag=t.entry_tag,
            symbol=symbol if symbol is not None else t.symbol,
        )  # fmt: skip
        for t in result.trades
    ]


def report_dict(
    spec: BacktestSpec, data: CandleData, result: Any, max_round_trips: int | None = None
) -> dict[str, Any]:
    """The report (app/domain/report.py) of a finished backtest."""
    return build_report(
        round_trips(result), result.ts, result.equity, capital=spec.capital,
        closes=data.candles.close, metrics=result.metrics, max_round_trips=max_round_trips,
    )  # fmt: skip


def pairs_summary_dict(spec: BacktestSpec, result: PairsResult) -> dict[str, Any]:
    """What a several-pair backtest ran and how it ended; `candles` counts the timestamps
    walked, each pair's own count is in `pairs`."""
    return {
        **_summary(spec, result, result.ts, symbol=spec.symbol, symbols=list(spec.symbols),
                   max_open_trades=result.max_open_trades, timeframe=spec.timeframe),
        "pairs": [{"symbol": p.symbol, "candles": p.candles, "signals": p.signals}
                  for p in result.pairs],
    }  # fmt: skip


def pairs_report_dict(spec: BacktestSpec, datas: list[CandleData], result: PairsResult,
                      max_round_trips: int | None = None) -> dict[str, Any]:  # fmt: skip
    """The report of a several-pair backtest: with its table by pair (every pair listed)."""
    return build_report(
        round_trips(result), result.ts, result.equity, capital=spec.capital,
        closes=datas[0].candles.close, metrics=result.metrics, max_round_trips=max_round_trips,
        symbols=list(spec.symbols), market_closes=[d.candles.close for d in datas],
    )  # fmt: skip


def pairs_result_dict(spec: BacktestSpec, datas: list[CandleData], result: PairsResult
                      ) -> dict[str, Any]:  # fmt: skip
    """The stored result of a several-pair backtest (the keys of `result_dict`; each skipped
    entry names its pair)."""
    return _result(pairs_summary_dict(spec, result),
                   pairs_report_dict(spec, datas, result, MAX_TRADES_IN_RESULT), result,
                   lambda s: {"symbol": s.symbol})  # fmt: skip


def result_dict(spec: BacktestSpec, data: CandleData, result: Any) -> dict[str, Any]:
    """The job's stored result: summary, metrics, report, trades, the equity curve."""
    return _result(summary_dict(spec, data, result),
                   report_dict(spec, data, result, MAX_TRADES_IN_RESULT), result,
                   lambda s: {})  # fmt: skip


def _result(summary: dict[str, Any], report: dict[str, Any], result: Any,
            skipped_where: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    return {
        "summary": summary,
        "metrics": result.metrics.to_dict(),
        "report": report,
        "trades": [t.to_dict() for t in result.trades[:MAX_TRADES_IN_RESULT]],
        "skipped_entries": [
            {"time": iso_ms(s.ts), **skipped_where(s), "reason": s.reason}
            for s in result.skipped[:100]
        ],
        "equity_curve": downsample(result.ts, result.equity),
    }


def run_backtest_job(ctx: Any) -> dict[str, Any]:
    """Handler of job kind "backtest"."""
    spec = BacktestSpec.from_payload(ctx.payload)
    if spec.multi:
        return _run_pairs_job(ctx, spec)
    try:
        data = load_candles(spec)
    except ExchangeUnavailable as exc:
        raise TransientJobError(str(exc)) from exc
    ctx.report_progress(0.1)
    if len(data.candles) == 0:
        raise ValidationFailed("no candles in the requested range", code="no_candles")
    result = execute(spec, data, lambda f: ctx.report_progress(0.1 + 0.85 * f))
    return result_dict(spec, data, result)


def _run_pairs_job(ctx: Any, spec: BacktestSpec) -> dict[str, Any]:
    try:
        datas = load_pairs(spec)
    except ExchangeUnavailable as exc:
        raise TransientJobError(str(exc)) from exc
    ctx.report_progress(0.1)
    for symbol, data in zip(spec.symbols, datas, strict=True):
        if len(data.candles) == 0:
            raise ValidationFailed(f"no candles of {symbol} in the requested range",
                                   code="no_candles")  # fmt: skip
    result = execute_pairs(spec, datas, lambda f: ctx.report_progress(0.1 + 0.85 * f))
    return pairs_result_dict(spec, datas, result)


def submit_backtest(
    session: Session, user_id: int, data: dict[str, Any], idempotency_key: str | None = None
) -> Any:
    """Validate and queue; returns the jobs service's `Submission` (job, created)."""
    spec = build_spec(session, user_id, data)
    return submit(session, user_id, KIND, spec.payload(), idempotency_key)


def get_backtest(session: Session, user_id: int, job_id: int) -> Job:
    job = session.scalar(
        select(Job).where(Job.id == job_id, Job.user_id == user_id, Job.kind == KIND)
    )
    if job is None:
        raise NotFound(f"backtest {job_id} not found", code="backtest_not_found")
    return job


def list_backtests(
    session: Session, user_id: int, *, limit: int, offset: int
) -> tuple[list[Job], int]:
    where = (Job.user_id == user_id, Job.kind == KIND)
    return fetch_page(session, Job, where, [Job.id.desc()], limit=limit, offset=offset)
