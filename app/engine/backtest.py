"""Backtests that run a bot's own code over recorded candles.

The same pieces a live tick uses, in the same order: the strategy's vectorised signals (one
per closed candle), the sizing rule (`app.domain.sizing`), and the paper broker's pure fill
rules (`app.engine.fill_model`) on an in-memory `Book`. Only the loop differs: signals are
computed once for the whole series, and Python runs per *event* (a candle with a signal),
never per candle; the equity curve is rebuilt with numpy from the fills.

Conventions (docs/backtesting.md compares them with freqtrade's backtesting):

* the signal of candle i is known when candle i closes; its market order fills at the open of
  candle i+1 (moved by the slippage), at the taker fee; a signal on the last candle has no
  next candle and is not acted on;
* one position at a time: an entry signal while long (or an exit while flat) is ignored;
* the stake is the entry's notional; the entry fee comes on top (`entry_budget`), so with
  a fixed stake the amount bought is `stake / price` like freqtrade's;
* a position still open at the end is sold at the open of the last candle (`exit_reason`
  "end_of_data"; freqtrade's "force_exit" does the same);
* the equity curve has one point per candle: cash + position * close;
* a strategy with exits beyond its signal (stop-loss, trailing stop, minimal ROI, maximum
  holding time) has each trade followed candle by candle from its entry candle by
  `app.engine.exits.ExitScanner`, the code the tick uses too; the first exit wins, in the
  order written there, and its fill price is the stop's or the ROI's (or the open).
"""

from __future__ import annotations

import logging
import math
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

import numpy as np

from app.domain.candles import Candles
from app.domain.metrics import PerformanceMetrics, compute_metrics
from app.domain.numbers import decimal_text as _plain
from app.domain.sizing import SizingConfig, SizingDecision, size_position
from app.domain.strategies import ENTER, EXIT, Strategy
from app.domain.times import iso_ms
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

log = logging.getLogger("tradewind.backtest")
_RATIO = Decimal("1E-8")  # profit_ratio is shown to 8 decimals (as freqtrade)
ZERO = Decimal(0)
_ZERO_UNITS = units_decimal(0)

Progress = Callable[[float], None]


@dataclass(frozen=True, init=False)
class BacktestTrade:
    entry_index: int
    entry_ts: int
    entry_price: Decimal
    amount: Decimal
    entry_cost: Decimal
    entry_fee: Decimal
    exit_index: int
    exit_ts: int
    exit_price: Decimal
    exit_proceeds: Decimal
    exit_fee: Decimal
    pnl: Decimal
    exit_reason: str
    bootstrap: bool
    sizing_reason: str
    entry_tag: str | None
    symbol: str | None

    def __init__(
        self,
        entry_index: int,
        entry_ts: int,
        entry_price: Decimal,
        amount: Decimal,
        entry_cost: Decimal,
        entry_fee: Decimal,
        exit_index: int,
        exit_ts: int,
        exit_price: Decimal,
        exit_proceeds: Decimal,
        exit_fee: Decimal,
        pnl: Decimal,
        exit_reason: str,
        bootstrap: bool,
        sizing_reason: str,
        entry_tag: str | None = None,
        symbol: str | None = None,
    ) -> None:
        # one write of the whole __dict__, not fifteen frozen setattrs (one trade per round trip)
        object.__setattr__(self, "__dict__", {
            "entry_index": entry_index, "entry_ts": entry_ts, "entry_price": entry_price,
            "amount": amount, "entry_cost": entry_cost, "entry_fee": entry_fee,
            "exit_index": exit_index, "exit_ts": exit_ts, "exit_price": exit_price,
            "exit_proceeds": exit_proceeds, "exit_fee": exit_fee, "pnl": pnl,
            "exit_reason": exit_reason, "bootstrap": bootstrap, "sizing_reason": sizing_reason,
            "entry_tag": entry_tag, "symbol": symbol,
        })  # fmt: skip

    @property
    def profit_ratio(self) -> Decimal:
        """Net PnL over what the entry cost, fee included (freqtrade's profit_ratio)."""
        return self.pnl / (self.entry_cost + self.entry_fee)

    def to_dict(self) -> dict[str, Any]:
        out = {} if self.symbol is None else {"symbol": self.symbol}
        return out | {
            "entry_time": iso_ms(self.entry_ts),
            "entry_price": _plain(self.entry_price),
            "amount": _plain(self.amount),
            "entry_cost": _plain(self.entry_cost),
            "entry_fee": _plain(self.entry_fee),
            "exit_time": iso_ms(self.exit_ts),
            "exit_price": _plain(self.exit_price),
            "exit_proceeds": _plain(self.exit_proceeds),
            "exit_fee": _plain(self.exit_fee),
            "pnl": _plain(self.pnl),
            "profit_ratio": _plain(self.profit_ratio.quantize(_RATIO)),
            "entry_tag": self.entry_tag,
            "exit_reason": self.exit_reason,
            "bootstrap": self.bootstrap,
        }


@dataclass(frozen=True)
class SkippedEntry:
    """An entry signal that did not trade (zero stake, or an order the broker refused)."""

    index: int
    ts: int
    reason: str
    symbol: str | None = None


@dataclass
class BacktestResult:
    candles: int
    signals: int
    trades: list[BacktestTrade]
    skipped: list[SkippedEntry]
    ts: np.ndarray
    equity: np.ndarray
    metrics: PerformanceMetrics
    final_book: Book
    start_capital: Decimal
    details: dict[str, Any] = field(default_factory=dict)
    ledger: str = "decimal"  # "scaled": the fills ran on a `ScaledLedger` (same numbers)

    @property
    def final_equity(self) -> Decimal:
        """Cash at the end (every position is closed by then)."""
        return self.final_book.cash


class _Fills(NamedTuple):
    """Where each fill happened and the cash and position after it, for the equity curve
    (three lists of numbers rather than a record per fill: nothing for the collector)."""

    at: list[int]  # candle index of each fill
    cash: list[float]  # before the first fill (the capital, set later), then after each
    held: list[float]

    def add(self, index: int, book: Book) -> None:
        self.at.append(index)
        self.cash.append(float(book.cash))
        self.held.append(float(book.position))


@dataclass
class _State:
    book: Book
    pnls: list[Decimal] = field(default_factory=list)
    # (candle index, cash, position) after each fill, for the equity curve
    fills: _Fills = field(default_factory=lambda: _Fills([], [0.0], [0.0]))
    trades: list[BacktestTrade] = field(default_factory=list)
    skipped: list[SkippedEntry] = field(default_factory=list)
    entry: tuple[int, FillResult, SizingDecision] | None = None
    decimals: dict[float, Decimal] = field(default_factory=dict)
    tags: list[str | None] | None = None  # each candle's entry tag (tagged documents)

    def decimal(self, price: float) -> Decimal:
        """`to_decimal` of a candle price, once per distinct price (they repeat on the tick
        grid, and the float's repr is the costly part)."""
        value = self.decimals.get(price)
        if value is None:
            value = to_decimal(price)
            if price:  # 0.0 and -0.0 are one key but two decimals
                self.decimals[price] = value
        return value


def run_backtest(
    candles: Candles,
    strategy: Strategy[Any],
    params: Any,
    *,
    capital: Decimal,
    market: MarketInfo,
    fees: FeeSchedule,
    sizing: SizingConfig | None = None,
    timeframe_seconds: int,
    progress: Progress | None = None,
) -> BacktestResult:
    """Trade `strategy` over `candles` (closed, ascending) and measure the result."""
    return _run(candles, strategy, params, capital, market, fees, sizing, timeframe_seconds,
                progress, scaled=True)  # fmt: skip


def run_backtest_in_decimal(
    candles: Candles,
    strategy: Strategy[Any],
    params: Any,
    *,
    capital: Decimal,
    market: MarketInfo,
    fees: FeeSchedule,
    sizing: SizingConfig | None = None,
    timeframe_seconds: int,
    progress: Progress | None = None,
) -> BacktestResult:
    """`run_backtest` with every fill in `Decimal` by `fill_model`, never on a
    `ScaledLedger`: the reference the integer ledger is held to (tests, bench)."""
    return _run(candles, strategy, params, capital, market, fees, sizing, timeframe_seconds,
                progress, scaled=False)  # fmt: skip


def _run(
    candles: Candles,
    strategy: Strategy[Any],
    params: Any,
    capital: Decimal,
    market: MarketInfo,
    fees: FeeSchedule,
    sizing: SizingConfig | None,
    timeframe_seconds: int,
    progress: Progress | None,
    *,
    scaled: bool,
) -> BacktestResult:
    n = len(candles)
    sig = strategy.signals(candles, params)
    events = np.flatnonzero(sig[: max(n - 1, 0)])  # the last candle has no next open
    state = _State(book=Book.opening(capital), tags=strategy.entry_tags(candles, params))
    sizing = sizing or SizingConfig()
    opens = candles.open
    rules = strategy.exit_rules(params)
    if rules.active or not rules.use_exit_signal:
        scanner = ExitScanner(rules, candles, fees=fees, price_step=market.price_step,
                              timeframe_seconds=timeframe_seconds)  # fmt: skip
        if scaled and ScaledLedger.usable(market, capital):
            fast = _State(book=state.book, tags=state.tags)
            if _scaled_trade_with_exits(fast, sig, scanner, candles, capital, market, fees,
                                        sizing, progress):  # fmt: skip
                result = _result(candles, events, fast, capital, timeframe_seconds, progress)
                result.ledger = "scaled"
                return result
        _trade_with_exits(state, sig, scanner, candles, capital, market, fees, sizing, progress)
        return _result(candles, events, state, capital, timeframe_seconds, progress)
    step = max(1, len(events) // 100)
    # what each event reads, gathered once by numpy (plain floats, as float(array[i]) gives)
    kinds = sig[events].tolist()
    closes = candles.close[events].tolist()
    next_opens = opens[events + 1].tolist()
    if scaled and ScaledLedger.usable(market, capital):
        scaled = _State(book=state.book, tags=state.tags)
        if _scaled_signal_loop(scaled, events, kinds, closes, next_opens, candles,
                               capital, market, fees, sizing, progress):  # fmt: skip
            result = _result(candles, events, scaled, capital, timeframe_seconds, progress)
            result.ledger = "scaled"
            return result
    for k, i in enumerate(events.tolist()):
        kind = kinds[k]
        if kind == ENTER and state.entry is None:
            _enter(state, i, closes[k], next_opens[k], candles, capital, market, fees, sizing)
        elif kind == EXIT and state.entry is not None:
            _exit(state, i + 1, state.decimal(next_opens[k]), "exit_signal", candles, market, fees)
        if progress is not None and k % step == 0:
            progress(k / max(len(events), 1))
    if state.entry is not None and n:  # freqtrade's force exit: at the last candle's open
        _exit(state, n - 1, to_decimal(float(opens[n - 1])), "end_of_data", candles, market, fees)
    return _result(candles, events, state, capital, timeframe_seconds, progress)


def _scaled_signal_loop(
    state: _State,
    events: np.ndarray,
    kinds: list[int],
    closes: list[float],
    next_opens: list[float],
    candles: Candles,
    capital: Decimal,
    market: MarketInfo,
    fees: FeeSchedule,
    sizing: SizingConfig,
    progress: Progress | None,
) -> bool:
    """The signal loop on a `ScaledLedger`: the same trades as the `Decimal` loop below, to
    the unit. False (and `state` half-filled) when an order would be refused or a value
    leaves the exact range: the caller then runs the `Decimal` loop, which says why."""
    n = len(candles)
    capital_units = to_units(capital)
    assert capital_units is not None
    ledger = ScaledLedger(capital_units, market, fees)
    fill_ts = candles.ts[events + 1].tolist()  # every fill is at the open after its signal
    tags = state.tags
    mode = sizing.mode
    stake_n, stake_d = (sizing.stake or ZERO).as_integer_ratio()
    plain: SizingDecision | None = None  # the fixed stake's decision while the cash covers it
    plain_budget = 0  # its budget before the cap at the free quote
    fill_at, fill_cash, fill_held = state.fills
    trades = state.trades
    price_text = ledger.price_decimal
    pnls = state.pnls
    mul, D, S = exact_multiply, Decimal, SCALE
    entry: tuple[int, int, int, int, int, int, SizingDecision] | None = None
    step = max(1, len(events) // 100)
    total = max(len(events), 1)
    for k, i in enumerate(events.tolist()):
        kind = kinds[k]
        if kind == ENTER and entry is None:
            if not math.isfinite(closes[k]):  # the Decimal rules refuse such a reference
                return False
            decision = plain
            if decision is None or stake_n * UNIT > ledger.quote * stake_d:
                cash = units_decimal(ledger.quote)
                decision = size_position(state.pnls if mode == "kelly" else (), equity=cash,
                                         capital=capital, cash=cash, config=sizing)  # fmt: skip
                budget = ledger.budget(decision.stake)
                if mode == "fixed" and not decision.capped_by_cash:
                    plain, plain_budget = decision, budget
            else:
                budget = min(plain_budget, ledger.quote)
            if decision.stake <= 0:
                state.skipped.append(SkippedEntry(i, int(candles.ts[i]),
                                                  f"no stake: {decision.reason}"))  # fmt: skip
                continue
            price = ledger.buy_price(next_opens[k])
            bought = None if price is None else ledger.buy(budget, price)
            if bought is None or price is None:
                return False
            fill_at.append(i + 1)
            fill_cash.append(ledger.quote / UNIT)
            fill_held.append(ledger.held / UNIT)
            entry = (i + 1, fill_ts[k], price, *bought, decision)
        elif kind == EXIT and entry is not None:
            price = ledger.sell_price(next_opens[k])
            sold = None if price is None else ledger.sell(price)
            if sold is None or price is None:
                return False
            fill_at.append(i + 1)
            fill_cash.append(ledger.quote / UNIT)
            fill_held.append(0.0)
            e, e_ts, e_price, amount, cost, fee, decision = entry
            pnl = mul(D(sold[3]), S)  # units_decimal, inlined: seven a trade
            pnls.append(pnl)
            trades.append(BacktestTrade(
                e, e_ts, price_text(e_price), mul(D(amount), S), mul(D(cost), S),
                mul(D(fee), S), i + 1, fill_ts[k], price_text(price), mul(D(sold[0]), S),
                mul(D(sold[1]), S), pnl, "exit_signal", decision.bootstrap, decision.reason,
                None if tags is None else tags[e - 1],
            ))  # fmt: skip
            entry = None
        if progress is not None and k % step == 0:
            progress(k / total)
    if entry is not None and n:  # freqtrade's force exit: at the last candle's open
        price = ledger.sell_price(float(candles.open[n - 1]))
        sold = None if price is None else ledger.sell(price)
        if sold is None or price is None:
            return False
        fill_at.append(n - 1)
        fill_cash.append(ledger.quote / UNIT)
        fill_held.append(0.0)
        e, e_ts, e_price, amount, cost, fee, decision = entry
        pnl = units_decimal(sold[3])
        state.pnls.append(pnl)
        trades.append(BacktestTrade(
            e, e_ts, price_text(e_price), units_decimal(amount), units_decimal(cost),
            units_decimal(fee), n - 1, int(candles.ts[n - 1]), price_text(price),
            units_decimal(sold[0]), units_decimal(sold[1]), pnl, "end_of_data",
            decision.bootstrap, decision.reason, None if tags is None else tags[e - 1],
        ))  # fmt: skip
    if fill_at:
        state.book = Book(
            units_decimal(ledger.quote), _ZERO_UNITS, units_decimal(ledger.held), _ZERO_UNITS,
            units_decimal(ledger.cost_basis), units_decimal(ledger.realised),
            units_decimal(ledger.fees_paid), ZERO, ZERO,
        )  # fmt: skip
    return True


def _result(
    candles: Candles,
    events: np.ndarray,
    state: _State,
    capital: Decimal,
    timeframe_seconds: int,
    progress: Progress | None,
) -> BacktestResult:
    n = len(candles)
    equity = _equity_curve(candles, state, capital)
    metrics = compute_metrics(candles.ts, equity, state.trades)
    if progress is not None:
        progress(1.0)
    return BacktestResult(
        candles=n,
        signals=int(events.size),
        trades=state.trades,
        skipped=state.skipped,
        ts=candles.ts,
        equity=equity,
        metrics=metrics,
        final_book=state.book,
        start_capital=capital,
    )


_FIRST_WINDOW = 256


def _trade_with_exits(
    state: _State,
    sig: np.ndarray,
    scanner: ExitScanner,
    candles: Candles,
    capital: Decimal,
    market: MarketInfo,
    fees: FeeSchedule,
    sizing: SizingConfig,
    progress: Progress | None,
) -> None:
    """The loop when stops, ROI or holding time can end a trade: per trade, the first of its
    exit signal (filled at the next open) and the exits `scanner` finds candle by candle."""
    n = len(candles)
    enters = np.flatnonzero(sig[: max(n - 1, 0)] == ENTER)
    exits = np.flatnonzero(sig[: max(n - 1, 0)] == EXIT)
    if not scanner.rules.use_exit_signal:
        exits = exits[:0]
    opens = candles.open
    closes = candles.close
    start = 0
    while True:
        a = int(np.searchsorted(enters, start))
        if a >= enters.size:
            break
        i = int(enters[a])
        if progress is not None:
            progress(i / max(n, 1))
        _enter(state, i, float(closes[i]), float(opens[i + 1]), candles, capital, market, fees,
               sizing)  # fmt: skip
        if state.entry is None:
            start = i + 1
            continue
        j = i + 1
        trade = scanner.open(j, state.entry[1].price)
        b = int(np.searchsorted(exits, j))
        signal_at = int(exits[b]) + 1 if b < exits.size else None
        stop = signal_at if signal_at is not None else n
        hit = None
        lo, width = j, _FIRST_WINDOW
        while hit is None and lo < stop:
            hi = min(stop, lo + width)
            hit = scanner.scan(trade, lo, hi)
            lo, width = hi, width * 2
        if hit is not None:
            _exit(state, hit.index, hit.price, hit.reason, candles, market, fees, priced=True)
            start = hit.index
        elif signal_at is not None:
            _exit(state, signal_at, state.decimal(float(opens[signal_at])), "exit_signal",
                  candles, market, fees)  # fmt: skip
            start = signal_at
        else:
            _exit(state, n - 1, to_decimal(float(opens[n - 1])), "end_of_data", candles, market,
                  fees)  # fmt: skip
            break


def _scaled_trade_with_exits(
    state: _State,
    sig: np.ndarray,
    scanner: ExitScanner,
    candles: Candles,
    capital: Decimal,
    market: MarketInfo,
    fees: FeeSchedule,
    sizing: SizingConfig,
    progress: Progress | None,
) -> bool:
    """`_trade_with_exits` on a `ScaledLedger`: the same trades as the `Decimal` loop, to the
    unit and in the same spelling (a stop's or ROI's fill price is the scanner's own
    decimal). False (and `state` half-filled) when an order would be refused or a value
    leaves the exact range: the caller then runs the `Decimal` loop, which says why."""
    n = len(candles)
    enters = np.flatnonzero(sig[: max(n - 1, 0)] == ENTER)
    exits = np.flatnonzero(sig[: max(n - 1, 0)] == EXIT)
    if not scanner.rules.use_exit_signal:
        exits = exits[:0]
    enter_at, exit_at = enters.tolist(), exits.tolist()
    opens, ts = candles.open, candles.ts
    capital_units = to_units(capital)
    assert capital_units is not None
    ledger = ScaledLedger(capital_units, market, fees)
    price_text = ledger.price_decimal
    fill_at, fill_cash, fill_held = state.fills
    tags, pnls, mode = state.tags, state.pnls, sizing.mode
    start = 0
    while True:
        a = bisect_left(enter_at, start)
        if a >= len(enter_at):
            break
        i = enter_at[a]
        if progress is not None:
            progress(i / max(n, 1))
        if not math.isfinite(float(candles.close[i])):  # the Decimal rules refuse such a reference
            return False
        cash = units_decimal(ledger.quote)  # flat: the equity is the cash
        decision = size_position(pnls if mode == "kelly" else (), equity=cash, capital=capital,
                                 cash=cash, config=sizing)  # fmt: skip
        if decision.stake <= 0:
            state.skipped.append(SkippedEntry(i, int(ts[i]), f"no stake: {decision.reason}"))
            start = i + 1
            continue
        budget = ledger.budget(decision.stake)
        price = ledger.buy_price(float(opens[i + 1]))
        bought = None if price is None else ledger.buy(budget, price)
        if bought is None or price is None:
            return False
        j = i + 1
        fill_at.append(j)
        fill_cash.append(ledger.quote / UNIT)
        fill_held.append(ledger.held / UNIT)
        trade = scanner.open(j, price_text(price))
        b = bisect_left(exit_at, j)
        signal_at = exit_at[b] + 1 if b < len(exit_at) else None
        stop = signal_at if signal_at is not None else n
        hit = None
        lo, width = j, _FIRST_WINDOW
        while hit is None and lo < stop:
            hi = min(stop, lo + width)
            hit = scanner.scan(trade, lo, hi)
            lo, width = hi, width * 2
        if hit is not None:
            at, reason, sell_at, exit_price = hit.index, hit.reason, to_units(hit.price), hit.price
        else:
            at = signal_at if signal_at is not None else n - 1
            reason = "exit_signal" if signal_at is not None else "end_of_data"
            sell_at = ledger.sell_price(float(opens[at]))
            exit_price = None
        sold = None if sell_at is None or sell_at <= 0 else ledger.sell(sell_at)
        if sold is None or sell_at is None:
            return False
        fill_at.append(at)
        fill_cash.append(ledger.quote / UNIT)
        fill_held.append(0.0)
        pnl = units_decimal(sold[3])
        pnls.append(pnl)
        state.trades.append(BacktestTrade(
            j, int(ts[j]), price_text(price), units_decimal(bought[0]), units_decimal(bought[1]),
            units_decimal(bought[2]), at, int(ts[at]),
            price_text(sell_at) if exit_price is None else exit_price, units_decimal(sold[0]),
            units_decimal(sold[1]), pnl, reason, decision.bootstrap, decision.reason,
            None if tags is None else tags[i],
        ))  # fmt: skip
        if hit is None and signal_at is None:
            break
        start = at
    if fill_at:
        state.book = Book(
            units_decimal(ledger.quote), _ZERO_UNITS, units_decimal(ledger.held), _ZERO_UNITS,
            units_decimal(ledger.cost_basis), units_decimal(ledger.realised),
            units_decimal(ledger.fees_paid), ZERO, ZERO,
        )  # fmt: skip
    return True


def _enter(
    state: _State,
    i: int,
    close: float,
    next_open: float,
    candles: Candles,
    capital: Decimal,
    market: MarketInfo,
    fees: FeeSchedule,
    sizing: SizingConfig,
) -> None:
    book = state.book
    ref = state.decimal(close)
    mode = sizing.mode
    decision = size_position(
        state.pnls if mode == "kelly" else (),  # only Kelly learns from past trades
        equity=book.equity(ref) if mode != "fixed" else book.cash,
        capital=capital,
        cash=book.quote_free,
        config=sizing,
    )
    if decision.stake <= 0:
        state.skipped.append(SkippedEntry(i, int(candles.ts[i]), f"no stake: {decision.reason}"))
        return
    budget = entry_budget(decision.stake, fees.taker, book.quote_free)
    try:
        ticket = prepare_order(
            side="buy", order_type="market", market=market, fees=fees, book=book,
            quote_amount=budget, reference_price=ref,
        )  # fmt: skip
    except PaperOrderRejected as exc:
        state.skipped.append(SkippedEntry(i, int(candles.ts[i]), f"order rejected: {exc.message}"))
        return
    price = market_fill_price("buy", state.decimal(next_open), fees, market.price_step)
    outcome = execute(ticket, price, fees=fees, market=market, book=reserve(book, ticket))
    if isinstance(outcome, FillRejected):
        state.book = outcome.book
        state.skipped.append(
            SkippedEntry(i, int(candles.ts[i]), f"fill rejected: {outcome.message}")
        )
        return
    state.book = outcome.book
    state.fills.add(i + 1, outcome.book)
    state.entry = (i + 1, outcome, decision)


def _exit(
    state: _State,
    j: int,
    raw_price: Decimal,
    reason: str,
    candles: Candles,
    market: MarketInfo,
    fees: FeeSchedule,
    *,
    priced: bool = False,
) -> None:
    """Sell the position at candle j: at `raw_price` moved by the slippage (a market sell at
    the open), or at exactly `raw_price` when `priced` (a stop or ROI price, or an open
    already moved)."""
    assert state.entry is not None
    book = state.book
    ticket = prepare_order(
        side="sell", order_type="market", market=market, fees=fees, book=book,
        amount=book.base_free,
    )  # fmt: skip
    price = raw_price if priced else market_fill_price("sell", raw_price, fees, market.price_step)
    outcome = execute(ticket, price, fees=fees, market=market, book=reserve(book, ticket))
    assert isinstance(outcome, FillResult), "a sell of what is held always fills"
    entry_index, bought, decision = state.entry
    state.book = outcome.book
    state.fills.add(j, outcome.book)
    pnl = outcome.closed_trade_pnl
    assert pnl is not None
    state.pnls.append(pnl)
    ts = candles.ts
    trade = BacktestTrade(
        entry_index, int(ts[entry_index]), bought.price, bought.amount, bought.cost, bought.fee,
        j, int(ts[j]), outcome.price, outcome.cost, outcome.fee, pnl, reason, decision.bootstrap,
        decision.reason, None if state.tags is None else state.tags[entry_index - 1],
    )  # fmt: skip
    state.trades.append(trade)
    state.entry = None


def _equity_curve(candles: Candles, state: _State, capital: Decimal) -> np.ndarray:
    """cash + position * close per candle, from the piecewise-constant book after fills."""
    n = len(candles)
    if n == 0:
        return np.empty(0, dtype=np.float64)
    fills = state.fills
    starts = np.array(fills.at, dtype=np.int64)
    cash = np.array(fills.cash)
    cash[0] = float(capital)
    held = np.array(fills.held)
    seg = np.cumsum(np.bincount(starts, minlength=n))  # fills at or before each candle
    return cash[seg] + held[seg] * candles.close
