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
import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from app.domain.candles import Candles
from app.domain.metrics import PerformanceMetrics, compute_metrics
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
from app.engine.scaled_ledger import (
    SCALE,
    UNIT,
    ScaledLedger,
    exact_multiply,
    to_units,
    units_decimal,
)
from app.market.base import MarketInfo, to_decimal

__all__ = ["PairData", "PairSummary", "PairsResult", "run_pairs_backtest",
           "run_pairs_backtest_in_decimal"]

_FIRST_WINDOW = 256
ZERO = Decimal(0)
_EXACT_WALLET = 10**40  # a wallet no budget is capped at (the budget before that cap)


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
    ledger: str = "decimal"  # "scaled": the fills ran on `ScaledLedger`s (same numbers)


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
    exits: list[int]  # candles with an exit signal that counts, ascending
    book: Book = field(default_factory=Book)
    entry: tuple[int, FillResult, Any, str | None] | None = None  # index, fill, sizing, tag
    exit: _Exit | None = None
    # the candle of each fill, and the position before the first and after each
    fill_at: list[int] = field(default_factory=list)
    fill_held: list[float] = field(default_factory=lambda: [0.0])

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
    # the time of each fill, and the wallet before the first (set later) and after each
    fill_ts: list[int] = field(default_factory=list)
    fill_cash: list[float] = field(default_factory=lambda: [0.0])
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
    return _run(pairs, strategy, params, capital, fees, sizing, timeframe_seconds,
                max_open_trades, progress, scaled=True)  # fmt: skip


def run_pairs_backtest_in_decimal(
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
    """`run_pairs_backtest` with every fill in `Decimal` by `fill_model`: the reference the
    integer walk is held to (tests, bench)."""
    return _run(pairs, strategy, params, capital, fees, sizing, timeframe_seconds,
                max_open_trades, progress, scaled=False)  # fmt: skip


def _run(
    pairs: Sequence[PairData],
    strategy: Strategy[Any],
    params: Any,
    capital: Decimal,
    fees: FeeSchedule,
    sizing: SizingConfig | None,
    timeframe_seconds: int,
    max_open_trades: int,
    progress: Progress | None,
    *,
    scaled: bool,
) -> PairsResult:
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
        walkers.append(_Pair(k, pair, sig, tags, scanner, exits.tolist()))
        enters = np.flatnonzero(sig[: max(n - 1, 0)] == ENTER)
        fill_ts = np.asarray(c.ts, dtype=np.int64)[enters + 1]
        candidates.extend(zip(fill_ts.tolist(), [k] * enters.size, enters.tolist(), strict=True))
    candidates.sort()
    sizing = sizing or SizingConfig()
    if scaled and all(ScaledLedger.usable(p.market, capital) for p in pairs):
        walk = _Walk(capital, capital, fees, sizing, max_open_trades, walkers)
        if _scaled_walk(walk, walkers, candidates, progress):
            result = _result(walk, walkers, capital, max_open_trades, progress)
            result.ledger = "scaled"
            return result
        walkers = [_Pair(p.order, p.data, p.sig, p.tags, p.scanner, p.exits) for p in walkers]
    walk = _Walk(capital, capital, fees, sizing, max_open_trades, walkers)
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


def _scaled_walk(walk: _Walk, walkers: list[_Pair], candidates: list[tuple[int, int, int]],
                 progress: Progress | None) -> bool:  # fmt: skip
    """`_walk` with every fill on a `ScaledLedger` per pair (the wallet an integer count of
    1e-18 lent to the pair's ledger for each fill): the same trades, skipped entries and
    wallet as `_walk`, to the unit and in the same spelling. False (and `walk` half-filled)
    when an order would be refused or a value leaves the exact range: the caller then walks
    again in `Decimal`, which says why."""
    fees, sizing, capital = walk.fees, walk.sizing, walk.capital
    mode = sizing.mode
    taker_up = 1 + fees.taker
    capital_units = to_units(capital)
    assert capital_units is not None
    wallet = capital_units
    filled = False  # the Decimal walk spells the wallet as `capital` until its first fill
    ledgers = [ScaledLedger(0, p.data.market, fees) for p in walkers]
    ts_of = [p.data.candles.ts for p in walkers]
    symbols = [p.symbol for p in walkers]
    fill_at_of = [p.fill_at for p in walkers]
    fill_held_of = [p.fill_held for p in walkers]
    # what each entry reads, gathered once by numpy (floats as float(a[i])): its reference
    # close, its fill open, and its signal exit (the next exit signal's next open, or the
    # last open) as candle, time and open
    at_entry: list[dict[int, tuple[float, float, int, int, float, bool]]] = []
    for p in walkers:
        c = p.data.candles
        n = len(c)
        enters = np.flatnonzero(p.sig[: max(n - 1, 0)] == ENTER)
        exits = np.array(p.exits + [n - 2], dtype=np.int64)  # n - 2: the end, as a sentinel
        # an entry on the last candle but one finds no exit at or after its fill: the end
        b = np.minimum(np.searchsorted(exits, enters + 1), len(exits) - 1)
        signalled = b < len(p.exits)
        at = exits[b] + 1
        at_entry.append(dict(zip(enters.tolist(), zip(
            c.close[enters].tolist(), c.open[enters + 1].tolist(), at.tolist(),
            c.ts[at].tolist(), c.open[at].tolist(), signalled.tolist(), strict=True,
        ), strict=True)))  # fmt: skip
    # per open pair: (entry candle, entry price, amount, cost, fee, decision, tag, exit)
    entries: list[tuple[Any, ...] | None] = [None] * len(walkers)
    stake_n, stake_d = (sizing.stake or ZERO).as_integer_ratio()
    plain: Any = None  # the fixed stake's decision while the wallet covers it
    stake_floor = -((-stake_n * UNIT) // stake_d)  # the least wallet the stake is not capped at
    plain_floor = 0  # the least wallet that pays the plain stake and its fee
    plain_budget = 0  # its budget before the cap at the wallet
    max_open = walk.max_open
    open_count = 0
    trades, skipped, pnls = walk.trades, walk.skipped, walk.pnls
    fill_ts, fill_cash = walk.fill_ts, walk.fill_cash
    mul, D, S = exact_multiply, Decimal, SCALE

    def wallet_decimal() -> Decimal:
        return units_decimal(wallet) if filled else capital

    def skip(k: int, i: int, reason: str) -> None:
        skipped.append(SkippedEntry(i, int(ts_of[k][i]), reason, symbols[k]))

    def enter(k: int, i: int, now: int) -> int | None:
        """1 when the entry signalled at candle i of pair k filled (at `now`, the time of
        candle i+1), 0 when refused (a skipped entry), None when only Decimal can say."""
        nonlocal wallet, filled, plain, plain_floor, plain_budget
        pair = walkers[k]
        c = pair.data.candles
        close, next_open, at, at_ts, at_open, signalled = at_entry[k][i]
        if not math.isfinite(close):
            return None
        decision = plain
        if decision is None or wallet < stake_floor:
            cash = wallet_decimal()
            equity = cash if mode == "fixed" else _scaled_equity(cash, walkers, ledgers,
                                                                  int(c.ts[i]))  # fmt: skip
            decision = size_position(pnls if mode == "kelly" else (), equity=equity,
                                     capital=capital, cash=cash, config=sizing)  # fmt: skip
            if decision.stake <= 0 and not decision.capped_by_cash:
                skip(k, i, f"no stake: {decision.reason}")
                return 0
            if decision.capped_by_cash or decision.stake * taker_up > cash:
                skip(k, i, f"wallet cannot pay the stake: {decision.reason}; free {cash}")
                return 0
            ledger = ledgers[k]
            ledger.quote = wallet
            budget = ledger.budget(decision.stake)
            if mode == "fixed":
                plain_n, plain_d = (decision.stake * taker_up).as_integer_ratio()
                plain, plain_floor = decision, -((-plain_n * UNIT) // plain_d)
                ledger.quote = _EXACT_WALLET
                plain_budget = ledger.budget(decision.stake)
        elif wallet < plain_floor:
            skip(k, i, f"wallet cannot pay the stake: {decision.reason}; "
                       f"free {wallet_decimal()}")  # fmt: skip
            return 0
        else:
            budget = min(plain_budget, wallet)
        ledger = ledgers[k]
        ledger.quote = wallet
        ledger.realised = ledger.fees_paid = 0
        price = ledger.buy_price(next_open)
        bought = None if price is None else ledger.buy(budget, price)
        if bought is None or price is None:
            return None
        wallet = ledger.quote
        filled = True
        fill_ts.append(now)
        fill_cash.append(wallet / UNIT)
        pair.fill_at.append(i + 1)
        pair.fill_held.append(ledger.held / UNIT)
        price_text = ledger.price_decimal(price)
        if pair.scanner is None:  # the exit signal's next open, or the last open
            reason, priced = "exit_signal" if signalled else "end_of_data", None
            sell_at = ledger.sell_price(at_open)
        else:
            hit = _find_exit(pair, i + 1, price_text)
            at, at_ts, reason = hit.index, int(c.ts[hit.index]), hit.reason
            priced = hit.price if hit.priced else None
            sell_at = to_units(hit.price) if hit.priced else ledger.sell_price(float(hit.price))
        if sell_at is None or sell_at <= 0:
            return None
        tag = pair.tags[i] if pair.tags is not None else None
        entries[k] = (at_ts, now, i + 1, price_text, *bought, decision, tag, at,
                      reason, priced, sell_at)  # fmt: skip
        return 1

    def leave(k: int) -> bool:
        """Carry out the exit of pair k's open trade; False when only Decimal can."""
        nonlocal wallet
        entry = entries[k]
        assert entry is not None
        (exit_ts, e_ts, e, e_price, amount, cost, fee, decision, tag, at, reason, priced,
         sell_at) = entry
        ledger = ledgers[k]
        ledger.quote = wallet
        sold = ledger.sell(sell_at)
        if sold is None:
            return False
        wallet = ledger.quote
        fill_ts.append(exit_ts)
        fill_cash.append(wallet / UNIT)
        fill_at_of[k].append(at)
        fill_held_of[k].append(0.0)
        pnl = mul(D(sold[3]), S)  # units_decimal, inlined: five a trade
        pnls.append(pnl)
        trades.append(BacktestTrade(
            e, e_ts, e_price, mul(D(amount), S), mul(D(cost), S), mul(D(fee), S), at,
            exit_ts, ledger.price_decimal(sell_at) if priced is None else priced,
            mul(D(sold[0]), S), mul(D(sold[1]), S), pnl, reason, decision.bootstrap,
            decision.reason, tag, symbols[k],
        ))  # fmt: skip
        entries[k] = None
        return True

    pending: list[tuple[int, int]] = []  # heap of (exit ts, pair order)
    push, pop = heapq.heappush, heapq.heappop
    total = len(candidates)
    step = max(1, total // 100)
    c = 0
    while c < total or pending:
        if pending and (c >= total or pending[0][0] < candidates[c][0]):
            now = pending[0][0]  # exits only: each pair's in list order
            while pending and pending[0][0] == now:
                if not leave(pop(pending)[1]):
                    return False
                open_count -= 1
            continue
        now, k, i = candidates[c]
        c += 1
        if progress is not None and c % step == 0:
            progress(c / total)
        if (c == total or candidates[c][0] != now) and not (pending and pending[0][0] == now):
            if entries[k] is not None:  # the usual timestamp: one entry signal, nothing else
                continue
            if open_count >= max_open:
                skip(k, i, f"max_open_trades ({max_open}) reached")
                continue
            done = enter(k, i, now)
            if done is None:
                return False
            if done:
                open_count += 1
                if entries[k][0] != now:  # type: ignore[index]
                    push(pending, (entries[k][0], k))  # type: ignore[index]
                elif leave(k):
                    open_count -= 1
                else:
                    return False
            continue
        slots_used = open_count  # freqtrade's open_trade_count_start
        group = {k: i}
        while c < total and candidates[c][0] == now:
            _, k, i = candidates[c]
            group.setdefault(k, i)
            c += 1
            if progress is not None and c % step == 0:
                progress(c / total)
        exiting: set[int] = set()
        while pending and pending[0][0] == now:
            exiting.add(pop(pending)[1])
        for k in sorted(group.keys() | exiting):
            if k in group and entries[k] is None:
                if slots_used >= max_open:
                    skip(k, group[k], f"max_open_trades ({max_open}) reached")
                else:
                    done = enter(k, group[k], now)
                    if done is None:
                        return False
                    if done:
                        slots_used += 1
                        open_count += 1
                        exit_ts = entries[k][0]  # type: ignore[index]
                        if exit_ts == now:
                            exiting.add(k)
                        else:
                            push(pending, (exit_ts, k))
            if k in exiting:
                if not leave(k):
                    return False
                open_count -= 1
    walk.wallet = wallet_decimal()
    return True


def _scaled_equity(cash: Decimal, walkers: list[_Pair], ledgers: list[ScaledLedger],
                   at_ms: int) -> Decimal:  # fmt: skip
    """`_equity` of the scaled walk: the same sum, from the ledgers' positions."""
    total = cash
    for pair, ledger in zip(walkers, ledgers, strict=True):
        if ledger.held:
            c = pair.data.candles
            j = int(np.searchsorted(c.ts, at_ms, "right")) - 1
            total += units_decimal(ledger.held) * to_decimal(float(c.close[max(j, 0)]))
    return total


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
    walk.fill_ts.append(int(c.ts[i + 1]))
    walk.fill_cash.append(float(walk.wallet))
    walk.open_count += 1
    pair.book = Book(ZERO, ZERO, after.base_free, after.base_locked, after.cost_basis,
                     after.realised_pnl, after.fees_paid, after.trip_pnl,
                     after.trip_fees)  # fmt: skip
    pair.fill_at.append(i + 1)
    pair.fill_held.append(float(pair.book.position))
    tag = pair.tags[i] if pair.tags is not None else None
    pair.entry = (i + 1, outcome, decision, tag)
    pair.exit = _find_exit(pair, i + 1, outcome.price)
    return True


def _find_exit(pair: _Pair, j: int, entry_price: Decimal) -> _Exit:
    """The first of: the exits the scanner finds from candle j on, the exit signal (at the
    next open), the end of the data (at the last open) - as `run_backtest` decides them."""
    c = pair.data.candles
    n = len(c)
    exits = pair.exits
    b = bisect_left(exits, j)
    signal_at = exits[b] + 1 if b < len(exits) else None
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
    walk.fill_ts.append(int(ts[hit.index]))
    walk.fill_cash.append(float(walk.wallet))
    walk.open_count -= 1
    walk.pnls.append(pnl)
    pair.book = Book()
    pair.fill_at.append(hit.index)
    pair.fill_held.append(0.0)
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
    ts = _union(stamps)
    equity = _wallet_curve(ts, walk, capital)
    for pair, own in zip(walkers, stamps, strict=True):
        equity += _position_value(ts, own, pair)
    metrics = compute_metrics(ts, equity, walk.trades)
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


def _union(stamps: list[np.ndarray]) -> np.ndarray:
    """The sorted distinct timestamps of all pairs (`np.unique` of them, without its hash
    table: a stable sort of ascending runs is a merge)."""
    if not stamps:
        return np.empty(0, dtype=np.int64)
    ts = np.concatenate(stamps)
    ts.sort(kind="stable")
    keep = np.empty(ts.size, dtype=bool)
    keep[:1] = True
    np.not_equal(ts[1:], ts[:-1], out=keep[1:])
    return ts[keep]


def _wallet_curve(ts: np.ndarray, walk: _Walk, capital: Decimal) -> np.ndarray:
    """The free cash at each timestamp (after the fills at it), from the walk's fills."""
    at = np.array(walk.fill_ts, dtype=np.int64)
    cash = np.array(walk.fill_cash)
    cash[0] = float(capital)
    return cash[np.searchsorted(at, ts, "right")]


def _position_value(ts: np.ndarray, own: np.ndarray, pair: _Pair) -> np.ndarray:
    """position x close of one pair at each timestamp of the walk (its last candle's)."""
    n = own.size
    if n == 0 or not pair.fill_at:
        return np.zeros(ts.size)
    starts = np.array(pair.fill_at, dtype=np.int64)
    held = np.array(pair.fill_held)
    seg = np.cumsum(np.bincount(starts, minlength=n))
    value = held[seg] * np.asarray(pair.data.candles.close, dtype=np.float64)
    if np.array_equal(own, ts):
        return value
    out = value[np.searchsorted(own, ts, "right") - 1]
    out[: int(np.searchsorted(ts, own[0]))] = 0.0  # before the pair's first candle
    return out
