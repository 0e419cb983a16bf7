"""Backtests of one strategy over several pairs sharing one wallet, as freqtrade runs them.

The pieces are those of `app.engine.backtest` (vectorised signals, the sizing rule, the paper
broker's fill rules, `ExitScanner` for stops and ROI); only the walk is new. Conventions
(docs/backtesting.md, "Several pairs", sets them beside freqtrade's):

* one wallet in the pairs' common quote currency; every pair trades from it;
* candles of all pairs are walked in time order; at one timestamp the pairs are taken in the
  order of the request's list, and for each pair its entry (if any) comes before its exit
  (a trade entered at a candle's open can be stopped out in that candle), as freqtrade's
  `backtest_loop` does per pair and per candle;
* a new entry is refused while `max_open_trades` trades are open - counted at the start of
  the timestamp, so an exit does not free its slot before the next candle (freqtrade's
  `open_trade_count_start`) - or when the wallet's free cash cannot pay the stake and its fee;
* each entry stakes what the sizing rule gives, computed on the shared wallet (equity = free
  cash + open positions at their last close; Kelly learns from the closed trades of every
  pair): freqtrade's fixed `stake_amount`, not divided by `max_open_trades`;
* a trade's exit depends on its own pair's candles only, so it is found when the trade opens
  and carried out (proceeds back in the wallet) when the walk reaches it.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from app.domain.candles import Candles
from app.domain.metrics import ClosedTrade, PerformanceMetrics, compute_metrics
from app.domain.sizing import SizingConfig, size_position
from app.domain.strategies import ENTER, EXIT, Strategy
from app.engine.backtest import BacktestTrade, Progress, SkippedEntry
from app.engine.exits import ExitScanner
from app.engine.fill_model import (
    Book,
    FeeSchedule,
    FillRejected,
    FillResult,
    PaperOrderRejected,
    entry_budget,
    execute,
    market_fill_price,
    prepare_order,
    reserve,
)
from app.market.base import MarketInfo, to_decimal

__all__ = ["PairData", "PairSummary", "PairsResult", "run_pairs_backtest"]

_FIRST_WINDOW = 256
ZERO = Decimal(0)


@dataclass(frozen=True)
class PairData:
    """One pair's closed candles (ascending) and its market."""

    candles: Candles
    market: MarketInfo


@dataclass(frozen=True)
class PairSummary:
    symbol: str
    candles: int
    signals: int


@dataclass
class PairsResult:
    candles: int  # timestamps of the walk (the union of the pairs' candles)
    signals: int
    trades: list[BacktestTrade]
    skipped: list[SkippedEntry]
    ts: np.ndarray
    equity: np.ndarray
    metrics: PerformanceMetrics
    final_equity: Decimal  # the wallet at the end (every trade is closed by then)
    start_capital: Decimal
    max_open_trades: int
    pairs: list[PairSummary]


@dataclass(frozen=True)
class _Exit:
    index: int
    price: Decimal
    reason: str
    priced: bool  # a stop or ROI price (no slippage), else a market sell at `price`


@dataclass
class _Pair:
    order: int
    data: PairData
    sig: np.ndarray
    tags: list[str | None] | None
    scanner: ExitScanner | None
    exits: np.ndarray  # candles with an exit signal that counts
    book: Book = field(default_factory=Book)
    entry: tuple[int, FillResult, Any, str | None] | None = None  # index, fill, sizing, tag
    exit: _Exit | None = None
    fills: list[tuple[int, Decimal]] = field(default_factory=list)  # (candle, position after)

    @property
    def symbol(self) -> str:
        return self.data.market.symbol


@dataclass
class _Walk:
    wallet: Decimal
    capital: Decimal
    fees: FeeSchedule
    sizing: SizingConfig
    max_open: int
    pairs: list[_Pair] = field(default_factory=list)
    pnls: list[Decimal] = field(default_factory=list)
    trades: list[BacktestTrade] = field(default_factory=list)
    skipped: list[SkippedEntry] = field(default_factory=list)
    wallet_fills: list[tuple[int, Decimal]] = field(default_factory=list)  # (ts, wallet after)
    open_count: int = 0


def run_pairs_backtest(
    pairs: Sequence[PairData],
    strategy: Strategy[Any],
    params: Any,
    *,
    capital: Decimal,
    fees: FeeSchedule,
    sizing: SizingConfig | None = None,
    timeframe_seconds: int,
    max_open_trades: int,
    progress: Progress | None = None,
) -> PairsResult:
    """Trade `strategy` over every pair in `pairs` (list order = order at one timestamp)
    from one wallet of `capital`, with at most `max_open_trades` trades open."""
    quotes = {p.market.quote for p in pairs}
    if len(quotes) > 1:
        raise ValueError(f"the pairs must share their quote currency, got {sorted(quotes)}")
    if max_open_trades < 1:
        raise ValueError("max_open_trades must be at least 1")
    rules = strategy.exit_rules(params)
    walkers: list[_Pair] = []
    candidates: list[tuple[int, int, int]] = []  # (fill ts, pair order, signal candle)
    for k, pair in enumerate(pairs):
        c = pair.candles
        n = len(c)
        sig = strategy.signals(c, params)
        tags = strategy.entry_tags(c, params)
        scanner = None
        if rules.active or not rules.use_exit_signal:
            scanner = ExitScanner(rules, c, fees=fees, price_step=pair.market.price_step,
                                  timeframe_seconds=timeframe_seconds)  # fmt: skip
        exits = np.flatnonzero(sig[: max(n - 1, 0)] == EXIT)
        if not rules.use_exit_signal:
            exits = exits[:0]
        walkers.append(_Pair(k, pair, sig, tags, scanner, exits))
        enters = np.flatnonzero(sig[: max(n - 1, 0)] == ENTER)
        fill_ts = np.asarray(c.ts, dtype=np.int64)[enters + 1]
        candidates.extend(zip(fill_ts.tolist(), [k] * enters.size, enters.tolist(), strict=True))
    candidates.sort()
    walk = _Walk(capital, capital, fees, sizing or SizingConfig(), max_open_trades, walkers)
    _walk(walk, walkers, candidates, progress)
    return _result(walk, walkers, capital, max_open_trades, progress)


def _walk(walk: _Walk, walkers: list[_Pair], candidates: list[tuple[int, int, int]],
          progress: Progress | None) -> None:  # fmt: skip
    """Timestamp by timestamp: per pair in list order, its entry, then its exit."""
    pending: list[tuple[int, int]] = []  # heap of (exit ts, pair order)
    step = max(1, len(candidates) // 100)
    c = 0
    while c < len(candidates) or pending:
        now = min(candidates[c][0] if c < len(candidates) else pending[0][0],
                  pending[0][0] if pending else candidates[c][0])  # fmt: skip
        slots_used = walk.open_count  # freqtrade's open_trade_count_start
        entries: dict[int, int] = {}
        while c < len(candidates) and candidates[c][0] == now:
            _, k, i = candidates[c]
            entries.setdefault(k, i)
            c += 1
            if progress is not None and c % step == 0:
                progress(c / len(candidates))
        exiting: set[int] = set()
        while pending and pending[0][0] == now:
            exiting.add(heapq.heappop(pending)[1])
        for k in sorted(entries.keys() | exiting):
            pair = walkers[k]
            if k in entries and pair.entry is None:
                if slots_used >= walk.max_open:
                    _skip(walk, pair, entries[k], f"max_open_trades ({walk.max_open}) reached")
                elif _enter(walk, pair, entries[k]):
                    slots_used += 1
                    assert pair.exit is not None
                    exit_ts = int(pair.data.candles.ts[pair.exit.index])
                    if exit_ts == now:
                        exiting.add(k)
                    else:
                        heapq.heappush(pending, (exit_ts, k))
            if k in exiting:
                _exit(walk, pair)


def _skip(walk: _Walk, pair: _Pair, i: int, reason: str) -> None:
    walk.skipped.append(SkippedEntry(i, int(pair.data.candles.ts[i]), reason, pair.symbol))


def _equity(walk: _Walk, at_ms: int) -> Decimal:
    """Free cash plus every open position at its pair's last close at or before `at_ms`."""
    total = walk.wallet
    for pair in walk.pairs:
        held = pair.book.position
        if held:
            c = pair.data.candles
            j = int(np.searchsorted(c.ts, at_ms, "right")) - 1
            total += held * to_decimal(float(c.close[max(j, 0)]))
    return total


def _enter(walk: _Walk, pair: _Pair, i: int) -> bool:
    """Size, check and fill the entry signalled at candle i (at the open of i+1)."""
    c = pair.data.candles
    market = pair.data.market
    fees = walk.fees
    ref = to_decimal(float(c.close[i]))
    mode = walk.sizing.mode
    # the shared equity (other pairs' positions too) is needed only by percent and Kelly
    equity = walk.wallet if mode == "fixed" else _equity(walk, int(c.ts[i]))
    decision = size_position(
        walk.pnls if mode == "kelly" else (), equity=equity, capital=walk.capital,
        cash=walk.wallet, config=walk.sizing,
    )  # fmt: skip
    if decision.stake <= 0 and not decision.capped_by_cash:
        _skip(walk, pair, i, f"no stake: {decision.reason}")
        return False
    if decision.capped_by_cash or decision.stake * (1 + fees.taker) > walk.wallet:
        _skip(walk, pair, i, f"wallet cannot pay the stake: {decision.reason}; "
                             f"free {walk.wallet}")  # fmt: skip
        return False
    book = Book(quote_free=walk.wallet)
    budget = entry_budget(decision.stake, fees.taker, book.quote_free)
    try:
        ticket = prepare_order(
            side="buy", order_type="market", market=market, fees=fees, book=book,
            quote_amount=budget, reference_price=ref,
        )  # fmt: skip
    except PaperOrderRejected as exc:
        _skip(walk, pair, i, f"order rejected: {exc.message}")
        return False
    price = market_fill_price("buy", to_decimal(float(c.open[i + 1])), fees, market.price_step)
    outcome = execute(ticket, price, fees=fees, market=market, book=reserve(book, ticket))
    if isinstance(outcome, FillRejected):
        _skip(walk, pair, i, f"fill rejected: {outcome.message}")
        return False
    after = outcome.book
    walk.wallet = after.cash
    walk.wallet_fills.append((int(c.ts[i + 1]), walk.wallet))
    walk.open_count += 1
    pair.book = Book(ZERO, ZERO, after.base_free, after.base_locked, after.cost_basis,
                     after.realised_pnl, after.fees_paid, after.trip_pnl,
                     after.trip_fees)  # fmt: skip
    pair.fills.append((i + 1, pair.book.position))
    tag = pair.tags[i] if pair.tags is not None else None
    pair.entry = (i + 1, outcome, decision, tag)
    pair.exit = _find_exit(pair, i + 1, outcome.price)
    return True


def _find_exit(pair: _Pair, j: int, entry_price: Decimal) -> _Exit:
    """The first of: the exits the scanner finds from candle j on, the exit signal (at the
    next open), the end of the data (at the last open) - as `run_backtest` decides them."""
    c = pair.data.candles
    n = len(c)
    b = int(np.searchsorted(pair.exits, j))
    signal_at = int(pair.exits[b]) + 1 if b < pair.exits.size else None
    if pair.scanner is not None:
        trade = pair.scanner.open(j, entry_price)
        stop = signal_at if signal_at is not None else n
        hit = None
        lo, width = j, _FIRST_WINDOW
        while hit is None and lo < stop:
            hi = min(stop, lo + width)
            hit = pair.scanner.scan(trade, lo, hi)
            lo, width = hi, width * 2
        if hit is not None:
            return _Exit(hit.index, hit.price, hit.reason, True)
    if signal_at is not None:
        return _Exit(signal_at, to_decimal(float(c.open[signal_at])), "exit_signal", False)
    return _Exit(n - 1, to_decimal(float(c.open[n - 1])), "end_of_data", False)


def _exit(walk: _Walk, pair: _Pair) -> None:
    assert pair.entry is not None and pair.exit is not None
    market = pair.data.market
    fees = walk.fees
    hit = pair.exit
    book = pair.book
    ticket = prepare_order(
        side="sell", order_type="market", market=market, fees=fees, book=book,
        amount=book.base_free,
    )  # fmt: skip
    price = hit.price if hit.priced else market_fill_price("sell", hit.price, fees,
                                                           market.price_step)  # fmt: skip
    outcome = execute(ticket, price, fees=fees, market=market, book=reserve(book, ticket))
    assert isinstance(outcome, FillResult), "a sell of what is held always fills"
    pnl = outcome.closed_trade_pnl
    assert pnl is not None
    ts = pair.data.candles.ts
    walk.wallet = walk.wallet + outcome.book.cash
    walk.wallet_fills.append((int(ts[hit.index]), walk.wallet))
    walk.open_count -= 1
    walk.pnls.append(pnl)
    pair.book = Book()
    pair.fills.append((hit.index, ZERO))
    entry_index, bought, decision, tag = pair.entry
    walk.trades.append(BacktestTrade(
        entry_index, int(ts[entry_index]), bought.price, bought.amount, bought.cost, bought.fee,
        hit.index, int(ts[hit.index]), outcome.price, outcome.cost, outcome.fee, pnl,
        hit.reason, decision.bootstrap, decision.reason, tag, pair.symbol,
    ))  # fmt: skip
    pair.entry = pair.exit = None


def _result(walk: _Walk, walkers: list[_Pair], capital: Decimal, max_open: int,
            progress: Progress | None) -> PairsResult:  # fmt: skip
    stamps = [np.asarray(p.data.candles.ts, dtype=np.int64) for p in walkers]
    ts = np.unique(np.concatenate(stamps)) if stamps else np.empty(0, dtype=np.int64)
    equity = _wallet_curve(ts, walk.wallet_fills, capital)
    for pair, own in zip(walkers, stamps, strict=True):
        equity += _position_value(ts, own, pair)
    trades = [ClosedTrade(t.pnl, t.entry_ts, t.exit_ts) for t in walk.trades]
    metrics = compute_metrics(ts, equity, trades)
    if progress is not None:
        progress(1.0)
    summaries = [
        PairSummary(p.symbol, len(p.sig), int(np.count_nonzero(p.sig[: max(len(p.sig) - 1, 0)])))
        for p in walkers
    ]
    return PairsResult(
        candles=int(ts.size), signals=sum(s.signals for s in summaries), trades=walk.trades,
        skipped=walk.skipped, ts=ts, equity=equity, metrics=metrics, final_equity=walk.wallet,
        start_capital=capital, max_open_trades=max_open, pairs=summaries,
    )  # fmt: skip


def _wallet_curve(ts: np.ndarray, fills: list[tuple[int, Decimal]], capital: Decimal) -> np.ndarray:
    """The free cash at each timestamp (after the fills at it), from the walk's fills."""
    at = np.array([t for t, _ in fills], dtype=np.int64)
    cash = np.array([float(capital)] + [float(w) for _, w in fills])
    return cash[np.searchsorted(at, ts, "right")]


def _position_value(ts: np.ndarray, own: np.ndarray, pair: _Pair) -> np.ndarray:
    """position x close of one pair at each timestamp of the walk (its last candle's)."""
    n = own.size
    if n == 0:
        return np.zeros(ts.size)
    starts = np.array([f for f, _ in pair.fills], dtype=np.int64)
    held = np.array([0.0] + [float(h) for _, h in pair.fills])
    seg = np.cumsum(np.bincount(starts, minlength=n))
    value = held[seg] * np.asarray(pair.data.candles.close, dtype=np.float64)
    idx = np.searchsorted(own, ts, "right") - 1
    return np.where(idx >= 0, value[np.maximum(idx, 0)], 0.0)
