"""One bot's tick, and the grid of instants on which bots tick.

A bot ticks once per closed candle of its timeframe: the planned instants are the candle
boundaries of its market's clock. For an exchange that is wall time (epoch-aligned
boundaries); for the replay feed it is the replay clock, whose candles close every
`timeframe / REPLAY_SPEED` wall seconds starting at `REPLAY_ANCHOR`. So a bot on the replay
feed at speed 60 with 1m candles ticks every second and still sees exactly one new closed
candle per tick - this is how tests and benchmarks get many ticks quickly without a special
interval that would make a bot act on the same candle twice.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal, localcontext
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from app.domain.candles import Candles
from app.domain.numbers import decimal_text
from app.domain.sizing import size_position, validate_sizing_config
from app.domain.strategies import ENTER, EXIT, Strategy, get_strategy
from app.domain.strategies.exits import ExitRules
from app.domain.strategies.signal import SIGNAL
from app.domain.tick_grid import TickGrid
from app.domain.times import from_ms, to_ms
from app.engine.broker import bot_decimal, bot_fees, fill_at, load_book
from app.engine.exits import ExitHit, ExitScanner
from app.engine.fill_model import PaperOrderRejected, entry_budget
from app.engine.hooks import TickHooks
from app.engine.ledger import closed_trade_pnls, record_equity_snapshot
from app.engine.live_broker import broker_for
from app.engine.signals import next_signal, settle, signal_stake
from app.engine.strategy_source import bot_strategy, compiled_document
from app.market.base import MarketInfo, MarketSource, timeframe_seconds, to_decimal
from app.market.cache import cached_candles
from app.market.registry import get_market_source
from app.market.replay_clock import parse_anchor
from app.store.emergency_flag import TradingHalted
from app.store.models import Bot
from app.store.models.ledger import Balance, EquitySnapshot, Fill, Order, Position
from app.store.models.signals import BotSignal
from config import get_settings

log = logging.getLogger("tradewind.tick")


def tick_grid(exchange: str, timeframe: str) -> TickGrid:
    """The grid of a bot on `exchange` ("replay" or an exchange id) with `timeframe`."""
    if exchange == "replay":
        settings = get_settings()
        return _grid(timeframe, settings.replay_anchor, str(settings.replay_speed))
    return _grid(timeframe, None, None)


@lru_cache(maxsize=256)
def _grid(timeframe: str, anchor: str | None, speed: str | None) -> TickGrid:
    tf_ms = timeframe_seconds(timeframe) * 1000
    if anchor is None or speed is None:
        return TickGrid(0, Fraction(tf_ms), tf_ms)
    return TickGrid(parse_anchor(anchor), Fraction(tf_ms) / Fraction(speed), tf_ms)


# -- the tick ------------------------------------------------------------------------------


@dataclass
class TickResult:
    """What one tick did; `app.jobs.bot_ticks` records it in `bot_ticks` and on the bot."""

    outcome: str = "ok"  # ok | no_data | error
    candle_ts: int | None = None
    signal: int | None = None
    action: str | None = None  # buy | sell | exit | no_stake | held | rejected | halted
    details: dict[str, Any] = field(default_factory=dict)
    last_candle_ts: int | None = None
    exit_done: bool = False
    pause_reason: str | None = None
    error: str | None = None
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


_params_cache: dict[tuple[str, Any], Any] = {}
_signal_cache: dict[tuple[Any, ...], int] = {}
_params_texts: dict[int, tuple[Any, str]] = {}
_market_cache: dict[tuple[str, str], tuple[float, MarketInfo]] = {}
MARKET_INFO_TTL_SECONDS = 300.0


def _params_key(params: dict[str, Any]) -> Any:
    try:
        key = tuple(sorted(params.items()))
        hash(key)
        return key
    except TypeError:  # nested values: fall back to their JSON text
        return json.dumps(params, sort_keys=True)


def strategy_params(session: Session, bot: Bot) -> tuple[Strategy[Any], Any]:
    """The bot's strategy and its validated params (parsed once per distinct params)."""
    strategy = bot_strategy(session, bot)
    key = (strategy.cache_key, _params_key(bot.strategy_params or {}))
    params = _params_cache.get(key)
    if params is None:
        params = strategy.validate_params(bot.strategy_params or {})
        if len(_params_cache) > 4096:
            _params_cache.clear()
        _params_cache[key] = params
    return strategy, params


def latest_signal(
    strategy: Strategy[Any], params: Any, candles: Candles, key: tuple[Any, ...]
) -> int:
    """The signal of the newest closed candle; bots sharing a market, strategy and params
    compute it once per candle."""
    full_key = (*key, strategy.cache_key, _params_text(params), int(candles.ts[-1]), len(candles))
    value = _signal_cache.get(full_key)
    if value is None:
        if len(candles) <= strategy.warmup(params):
            value = 0
        else:
            value = int(strategy.signals(candles, params)[-1])
        if len(_signal_cache) > 8192:
            _signal_cache.clear()
        _signal_cache[full_key] = value
    return value


def _params_text(params: Any) -> str:
    """`repr(params)` once per params object (`strategy_params` hands out one object per
    distinct params, and a pydantic repr costs more than the rest of an idle tick's signal
    lookup). The entry keeps its object alive, so its id cannot be reused while cached."""
    hit = _params_texts.get(id(params))
    if hit is not None and hit[0] is params:
        return hit[1]
    text = repr(params)
    if len(_params_texts) > 4096:
        _params_texts.clear()
    _params_texts[id(params)] = (params, text)
    return text


def market_info(source: MarketSource, exchange: str, symbol: str) -> MarketInfo:
    key = (exchange, symbol)
    hit = _market_cache.get(key)
    now = time.monotonic()
    if hit is not None and now - hit[0] < MARKET_INFO_TTL_SECONDS:
        return hit[1]
    info = source.market(symbol)
    _market_cache[key] = (now, info)
    return info


def position_amount(session: Session, bot: Bot) -> Decimal:
    """What the bot holds of its base asset (0 before its ledger exists)."""
    amount = session.scalar(select(Position.amount).where(Position.bot_id == bot.id))
    return amount if amount is not None else Decimal(0)


@dataclass(frozen=True)
class LedgerState:
    """What a tick must know of a bot's books before deciding anything."""

    position: Decimal
    open_orders: int
    cash: Decimal | None = None  # quote free + locked


def ledger_states(session: Session, bot_ids: list[int]) -> dict[int, LedgerState]:
    """Position, cash and open-order count of many bots in one query (bots without books
    are absent): an idle tick then needs no query of its own."""
    if not bot_ids:
        return {}
    rows = session.execute(
        select(Position.bot_id, Position.amount, Balance.free, Balance.locked, func.count(Order.id))
        .join(Balance, and_(Balance.bot_id == Position.bot_id, Balance.asset == Position.quote))
        .outerjoin(Order, and_(Order.bot_id == Position.bot_id, Order.state == "open"))
        .where(Position.bot_id.in_(bot_ids))
        .group_by(Position.bot_id, Position.amount, Balance.free, Balance.locked)
    ).all()
    return {
        bot_id: LedgerState(amount, int(n), free + locked)
        for bot_id, amount, free, locked, n in rows
    }


def warm_candles(bots: Sequence[tuple[Any, ...]]) -> None:
    """Read the candles a batch of bots will need - (exchange, symbol, timeframe, strategy,
    params[, document id, version]) each - into the shared cache before their transaction
    opens, so that no tick waits on an exchange or Redis while it holds database locks. A
    document is looked up in this process's compiled documents only (a bot's first tick
    compiles it). A failure here is left to the tick itself (it reads again and records the
    error as that bot's)."""
    wanted: dict[tuple[str, str, str], int] = {}
    seen: set[tuple[Any, ...]] = set()
    for exchange, symbol, timeframe, strategy_name, params, *document in bots:
        need = (exchange, symbol, timeframe, strategy_name, _params_key(params or {}), *document)
        if need in seen:  # bots alike need the same candles: validate their params once
            continue
        seen.add(need)
        try:
            doc_id, version = (document + [None, None])[:2]
            strategy: Strategy[Any] | None = (
                get_strategy(strategy_name, timeframe)
                if doc_id is None
                else compiled_document(doc_id, version, timeframe)
            )
            if strategy is None:
                continue
            lookback = strategy.lookback(strategy.validate_params(params or {})) + 1
        except Exception:
            continue
        key = (exchange, symbol, timeframe)
        wanted[key] = max(wanted.get(key, 0), lookback)
    for (exchange, symbol, timeframe), limit in wanted.items():
        try:
            cached_candles(get_market_source(exchange), symbol, timeframe, limit)
        except Exception as exc:
            log.info("candles for %s %s %s not prefetched: %s", exchange, symbol, timeframe,
                     type(exc).__name__)  # fmt: skip


def _no_writes() -> None:
    return None


def run_tick(
    session: Session,
    bot: Bot,
    *,
    planned_at: datetime,
    now: datetime,
    state: LedgerState | None = None,
    writes: Callable[[], None] = _no_writes,
    deferred: list[dict[str, Any]] | None = None,
    hooks: TickHooks,
) -> TickResult:
    """One tick of one (claimed, row-locked) bot, inside the caller's transaction.

    Order of work: candles (shared cache) -> fill the bot's open orders against them ->
    the signal of the newest closed candle (once per candle) -> act: an exit (signal, or a
    requested exit) sells the free position; an entry while flat asks the protections, sizes
    the stake and places a market buy. Orders carry `client_order_id = {bot}-{planned
    epoch}-{n}`, so a retried tick returns the order it already placed. The market order
    fills at the next candle's open (`fill_from`), like in a backtest. A live bot
    (`mode = "live"`) places, fills and cancels through `app.engine.live_broker` instead:
    its orders go to its exchange after the transaction commits, and its fills are what the
    exchange reports.

    `state` is the bot's books as prefetched by the dispatcher (read here when absent);
    `writes()` is called before the tick's first write, so that the dispatcher opens a
    savepoint only for ticks that write (most ticks only read and decide nothing);
    `deferred`, when given, collects the equity snapshot rows the dispatcher inserts for
    the whole batch at once (else they are added to the session here); `hooks` are what
    the tick asks of the services (the pre-trade risk check, live-order problem reports).
    """
    broker = broker_for(bot)  # the paper broker, or the live one for `mode = "live"`
    result = TickResult()
    strategy, params = strategy_params(session, bot)
    source = get_market_source(bot.exchange)
    tf_ms = timeframe_seconds(bot.timeframe) * 1000
    candles = cached_candles(source, bot.symbol, bot.timeframe, strategy.lookback(params) + 1)
    if len(candles) == 0:
        result.outcome = "no_data"
        return result
    market = market_info(source, bot.exchange, bot.symbol)
    last_ts = int(candles.ts[-1])
    result.candle_ts = last_ts
    price = to_decimal(float(candles.close[-1]))
    if state is None:
        state = ledger_states(session, [bot.id]).get(bot.id)
    if state is None:
        result.details["note"] = "no ledger yet"
        return result

    held, cash = state.position, state.cash
    if state.open_orders:
        writes()
        fills = broker.process_fills(
            session, bot, candles, now, market=market, reports=hooks.reports
        )
        for fill in fills:
            result.events.append(("trade", _fill_event(bot, fill)))
        if fills:
            held, cash = position_amount(session, bot), None

    new_candle = bot.last_candle_ts is None or last_ts > bot.last_candle_ts
    ctx = _OrderContext(bot, market, price, planned_at, now, last_ts + tf_ms, hooks)
    rules = strategy.exit_rules(params)
    if new_candle and rules.active and held > 0 and bot.exit_requested_at is None:
        hit = _exit_hit(session, bot, candles, rules, source, market, tf_ms)
        if hit is not None:
            writes()
            _exit_on_rule(session, ctx, result, hit)
            held, cash = position_amount(session, bot), None
    signal = 0
    if new_candle:
        signal = latest_signal(strategy, params, candles, (bot.exchange, bot.symbol,
                                                           bot.timeframe))  # fmt: skip
        result.last_candle_ts = last_ts
    result.signal = signal
    queued = None
    if strategy.name == SIGNAL and bot.exit_requested_at is None:
        queued = next_signal(session, bot.id, now, writes)  # it trades on what it was sent
        signal = 0 if queued is None else ENTER if queued.action == "buy" else EXIT

    if bot.exit_requested_at is not None:
        writes()
        _requested_exit(session, ctx, result)
    elif signal == EXIT and held > 0 and rules.use_exit_signal:
        writes()
        _sell(session, ctx, result, "exit_signal", action="sell")
    elif signal == ENTER and held == 0:
        writes()
        tags = None if queued is not None else strategy.entry_tags(candles, params)
        _buy(session, ctx, result, sent=queued, tag=tags[-1] if tags else None)
    if queued is not None:
        writes()
        settle(queued, result.action, result.details, held=held > 0, now=now)
    if new_candle and (held > 0 or result.events or bot.last_candle_ts is None):
        # while flat and idle equity cannot change: the curve is forward-filled in between
        _snapshot(session, bot, price, from_ms(last_ts + tf_ms), held, cash, result, writes,
                  deferred)  # fmt: skip
    return result


def _snapshot(
    session: Session,
    bot: Bot,
    price: Decimal,
    ts: datetime,
    held: Decimal,
    cash: Decimal | None,
    result: TickResult,
    writes: Callable[[], None],
    deferred: list[dict[str, Any]] | None,
) -> None:
    """The equity at this candle's close, one row per bot and candle (unique, like the
    ledger's own). When nothing moved the books in this tick, the prefetched cash and
    position give it without reading them again; otherwise the ledger service reads them."""
    if cash is None or result.events:
        writes()
        record_equity_snapshot(session, bot, price, ts=ts)
        return
    with localcontext() as ctx:
        ctx.prec = 80
        equity = (cash + held * price).quantize(Decimal("1E-18"), rounding=ROUND_FLOOR)
    row = {"bot_id": bot.id, "ts": ts, "equity": equity, "cash": cash,
           "position_amount": held, "price": price}  # fmt: skip
    if deferred is not None:
        deferred.append(row)
    else:
        writes()
        session.add(EquitySnapshot(**row))


@dataclass(frozen=True)
class _OrderContext:
    bot: Bot
    market: MarketInfo
    price: Decimal  # the close the decision was made on
    planned_at: datetime
    now: datetime
    fill_from_ms: int  # the next candle's open
    hooks: TickHooks

    def client_order_id(self, n: int) -> str:
        return f"{self.bot.id}-{to_ms(self.planned_at) // 1000}-{n}"


def _place(session: Session, ctx: _OrderContext, result: TickResult, **order: Any) -> Any:
    try:
        placed = broker_for(ctx.bot).place_order(
            session,
            ctx.bot,
            order_type="market",
            now=ctx.now,
            market=ctx.market,
            reference_price=ctx.price,
            fill_from=from_ms(ctx.fill_from_ms),
            reports=ctx.hooks.reports,
            **order,
        )
    except TradingHalted:
        result.action = "halted"
        result.details["halted"] = "emergency stop active: no order placed"
        return None
    except PaperOrderRejected as exc:
        result.action = "rejected"
        result.details["rejected"] = {"reason": exc.reason, "message": exc.message}
        log.info("bot %s: %s order refused by the broker: %s", ctx.bot.id, order["side"],
                 exc.message)  # fmt: skip
        return None
    result.details["order"] = {"client_order_id": placed.client_order_id, "side": placed.side}
    result.events.append(("order", _order_event(ctx.bot, placed)))
    return placed


def _sell(
    session: Session, ctx: _OrderContext, result: TickResult, reason: str, *, action: str
) -> None:
    book = load_book(session, ctx.bot.id)
    if book.base_free <= 0:
        return  # already selling (the position is reserved by an open sell)
    if _place(session, ctx, result, side="sell", client_order_id=ctx.client_order_id(1),
              amount=book.base_free, reason=reason) is not None:  # fmt: skip
        result.action = action


def _buy(
    session: Session, ctx: _OrderContext, result: TickResult, *, sent: BotSignal | None = None,
    tag: str | None = None,
) -> None:
    """An entry sized by the bot's sizing rules, or by the size a signal sent (`sent`);
    `tag` names the document's entry that fired (recorded on the order)."""
    bot = ctx.bot
    book = load_book(session, bot.id)
    if book.quote_locked > 0:
        return  # an entry is already on its way
    blocked = ctx.hooks.check_before_trade(session, bot, ctx.now)
    if blocked is not None:
        result.action = "held"
        result.details["held"] = blocked
        if bot.status == "paused":
            result.events.append(("bot_status", {"bot_id": bot.id, "status": "paused",
                                                 "previous": "running",
                                                 "pause_reason": bot.pause_reason}))  # fmt: skip
        log.info("bot %s: entry held back: %s", bot.id, blocked)
        return
    asked = signal_stake(sent, price=ctx.price, cash=book.quote_free) if sent else None
    if asked is not None:
        stake, bootstrap, why = asked, False, "the size sent with the signal"
        result.details["sizing"] = {"mode": "signal", "stake": decimal_text(stake), "reason": why}
    else:
        capital = bot_decimal(bot, bot.capital)
        config = validate_sizing_config(bot.sizing or {})
        decision = size_position(
            closed_trade_pnls(session, bot.id),
            equity=book.equity(ctx.price),
            capital=capital,
            cash=book.quote_free,
            config=config,
        )
        result.details["sizing"] = decision.to_dict()
        stake, bootstrap, why = decision.stake, decision.bootstrap, decision.reason
        if stake <= 0:
            log.info(
                "bot %s: no entry, stake 0 (%s): trades=%s win_rate=%s payoff=%s kelly=%s",
                bot.id, decision.reason, decision.trades, decision.win_rate,
                decision.payoff_ratio, decision.kelly_fraction,
            )  # fmt: skip
    if stake <= 0:
        result.action = "no_stake"
        return
    budget = entry_budget(stake, bot_decimal(bot, bot.taker_fee), book.quote_free)
    placed = _place(session, ctx, result, side="buy", client_order_id=ctx.client_order_id(0),
                    quote_amount=budget, bootstrap=bootstrap,
                    reason=f"entry signal{f' {tag}' if tag else ''}; {why}")  # fmt: skip
    if placed is not None:
        if tag is not None:
            placed.entry_tag = tag
            result.details["entry_tag"] = tag
        result.action = "buy"


def _requested_exit(session: Session, ctx: _OrderContext, result: TickResult) -> None:
    """Sell everything; an entry still waiting to fill is cancelled first. Done when flat."""
    book = load_book(session, ctx.bot.id)
    if book.quote_locked > 0:
        broker_for(ctx.bot).cancel_open_orders(
            session, bot_id=ctx.bot.id, reason="exit requested", now=ctx.now
        )
        book = load_book(session, ctx.bot.id)
    if book.base_free > 0:
        _sell(session, ctx, result, "manual", action="exit")
    elif book.position == 0 and book.quote_locked == 0:
        result.exit_done = True


def _exit_hit(
    session: Session,
    bot: Bot,
    candles: Candles,
    rules: ExitRules,
    source: MarketSource,
    market: MarketInfo,
    tf_ms: int,
) -> ExitHit | None:
    """The first stop/ROI/holding-time exit of the open trade among the candles since its
    entry (`app.engine.exits`, the backtest's code), or None."""
    entry = session.execute(
        select(Fill.price, Fill.candle_ts)
        .where(Fill.bot_id == bot.id, Fill.side == "buy")
        .order_by(Fill.id.desc())
        .limit(1)
    ).first()
    if entry is None:
        return None
    entry_ms = to_ms(entry.candle_ts)
    if entry_ms < int(candles.ts[0]):  # an older trade: load the candles since its entry
        wanted = (int(candles.ts[-1]) - entry_ms) // tf_ms + 1
        limit = min(wanted, 2 * get_settings().strategy_max_lookback)
        candles = cached_candles(source, bot.symbol, bot.timeframe, max(limit, len(candles)))
    start = int(np.searchsorted(candles.ts, entry_ms, side="left"))
    if start >= len(candles):
        return None
    scanner = ExitScanner(rules, candles, fees=bot_fees(bot), price_step=market.price_step,
                          timeframe_seconds=tf_ms // 1000)  # fmt: skip
    trade = scanner.open(start, entry.price)
    trade.entry_ts = entry_ms
    return scanner.scan(trade, start, len(candles))


def _exit_on_rule(session: Session, ctx: _OrderContext, result: TickResult, hit: ExitHit) -> None:
    """A paper bot's stop/ROI exit fills where the candles reached it (as a resting order
    would); a live bot sells at market now (stop orders on the exchange can come later)."""
    bot = ctx.bot
    if bot.mode == "live":
        _sell(session, ctx, result, hit.reason, action=hit.reason)
        return
    book = load_book(session, bot.id)
    if book.base_free <= 0:
        return
    order = _place(session, ctx, result, side="sell", client_order_id=ctx.client_order_id(2),
                   amount=book.base_free, reason=hit.reason)  # fmt: skip
    if order is None or order.state != "open":
        return
    fill = fill_at(session, bot, order, hit.price, candle_ts=from_ms(hit.ts),
                   now=ctx.now, market=ctx.market)  # fmt: skip
    if fill is not None:
        result.action = hit.reason
        result.events.append(("trade", _fill_event(bot, fill)))


def _order_event(bot: Bot, order: Any) -> dict[str, Any]:
    return {
        "bot_id": bot.id,
        "order_id": order.id,
        "client_order_id": order.client_order_id,
        "side": order.side,
        "type": order.type,
        "state": order.state,
        "bootstrap": bool(order.bootstrap),
    }


def _fill_event(bot: Bot, fill: Any) -> dict[str, Any]:
    return {
        "bot_id": bot.id,
        "order_id": fill.order_id,
        "side": fill.side,
        "amount": str(fill.amount),
        "price": str(fill.price),
        "fee": str(fill.fee),
        "closed_trade_pnl": None if fill.closed_trade_pnl is None else str(fill.closed_trade_pnl),
    }
