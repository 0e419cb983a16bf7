"""One bot's tick against the ledger: orders at the next open with deterministic client ids,
fills, sizing wired to the bot's closed trades (bootstrap, Kelly, negative edge), requested
exits - and a bot ticked candle by candle trades exactly like the backtest of the same data."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.domain.times import to_ms
from app.engine.tick import run_tick
from app.services.engine_hooks import TICK_HOOKS
from app.store.base import utcnow
from app.store.db import session_scope
from app.store.models import Bot
from app.store.models.ledger import EquitySnapshot, Fill, Order, Position
from tests.engine.helpers import (
    FIXTURE_CLOSE,
    FIXTURE_OPEN,
    HOUR_MS,
    T0,
    Clock,
    at,
    install_replay,
    make_bot,
    rows_from,
    uninstall_replay,
    write_candles,
)

D = Decimal


@pytest.fixture
def clock(app: Any, tmp_path: Path) -> Iterator[Clock]:
    directory = tmp_path / "candles"
    write_candles(directory, "TEST_AAA-BBB_1h.csv", rows_from(FIXTURE_OPEN, FIXTURE_CLOSE))
    c = Clock(T0)
    install_replay(directory, c)
    yield c
    uninstall_replay()


@pytest.fixture
def user_id(make_user: Any) -> int:
    return int(make_user().id)


def tick(bot_id: int, clock: Clock, k: int) -> Any:
    """The tick planned when candle k closes (the clock is set there), committed the way the
    dispatcher commits it (last_candle_ts moves on)."""
    clock.ms = T0 + (k + 1) * HOUR_MS
    with session_scope() as s:
        bot = s.get(Bot, bot_id)
        result = run_tick(s, bot, planned_at=at(clock.ms), now=utcnow(), hooks=TICK_HOOKS)
        if result.last_candle_ts is not None:
            bot.last_candle_ts = result.last_candle_ts
        if result.exit_done:
            bot.exit_requested_at = None
    return result


def orders(bot_id: int) -> list[Order]:
    with session_scope() as s:
        return list(s.scalars(select(Order).where(Order.bot_id == bot_id).order_by(Order.id)))


def test_entry_signal_places_a_market_buy_filled_at_the_next_open(clock, user_id) -> None:  # type: ignore[no-untyped-def]
    with session_scope() as s:
        bot_id = make_bot(s, user_id).id
    result = tick(bot_id, clock, 4)  # candle 4 carries the entry signal
    assert (result.signal, result.action) == (1, "buy")
    (order,) = orders(bot_id)
    planned_s = (T0 + 5 * HOUR_MS) // 1000
    assert order.client_order_id == f"{bot_id}-{planned_s}-0"
    assert (order.side, order.type, order.state) == ("buy", "market", "open")
    assert order.quote_amount == D("100.1")  # stake 100, the entry fee on top
    assert to_ms(order.fill_from) == T0 + 5 * HOUR_MS  # the next candle's open
    assert not order.bootstrap

    result = tick(bot_id, clock, 5)  # candle 5 has closed: the buy fills at its open
    assert result.signal == 0 and result.action is None
    (order,) = orders(bot_id)
    assert order.state == "filled" and order.average_price == D("13")
    assert order.filled_amount == D("7.692")
    with session_scope() as s:
        assert s.get(Position, bot_id).amount == D("7.692")
        snaps = s.scalars(select(EquitySnapshot).where(EquitySnapshot.bot_id == bot_id)).all()
        # valued at the close of candle 5 (16), stamped with its close time
        assert [to_ms(x.ts) for x in snaps][-1] == T0 + 6 * HOUR_MS
        assert snaps[-1].equity == D("1000") - D("100.095996") + D("7.692") * 16


def test_a_retried_tick_places_nothing_twice(clock, user_id) -> None:  # type: ignore[no-untyped-def]
    from app.engine import broker
    from app.store.db import new_session

    with session_scope() as s:
        bot_id = make_bot(s, user_id).id
    clock.ms = T0 + 5 * HOUR_MS
    lost = new_session()  # the first attempt runs, then its commit never happens
    run_tick(lost, lost.get(Bot, bot_id), planned_at=at(clock.ms), now=utcnow(), hooks=TICK_HOOKS)
    lost.rollback()
    lost.close()
    assert orders(bot_id) == []
    tick(bot_id, clock, 4)  # the retry places the order, once
    (order,) = orders(bot_id)
    client_order_id = f"{bot_id}-{(T0 + 5 * HOUR_MS) // 1000}-0"
    assert order.client_order_id == client_order_id
    with session_scope() as s:  # placing that id again returns the order, places nothing
        bot = s.get(Bot, bot_id)
        same = broker.place_order(
            s, bot, side="buy", order_type="market", quote_amount=D("100.1"),
            client_order_id=client_order_id, now=utcnow(),
        )  # fmt: skip
        assert same.id == order.id
    assert len(orders(bot_id)) == 1


def test_one_decision_per_candle(clock, user_id) -> None:  # type: ignore[no-untyped-def]
    with session_scope() as s:
        bot_id = make_bot(s, user_id).id
    tick(bot_id, clock, 4)
    with session_scope() as s:  # a second tick on the same candle acts on nothing
        bot = s.get(Bot, bot_id)
        result = run_tick(
            s, bot, planned_at=at(T0 + 5 * HOUR_MS + 1000), now=utcnow(), hooks=TICK_HOOKS
        )
    assert result.signal == 0 and result.last_candle_ts is None


def test_ticked_candle_by_candle_the_bot_trades_like_the_backtest(clock, user_id) -> None:  # type: ignore[no-untyped-def]
    from app.domain.sizing import SizingConfig
    from app.domain.strategies import get_strategy
    from app.engine.backtest import run_backtest
    from app.engine.fill_model import FeeSchedule
    from app.market.registry import get_market_source

    with session_scope() as s:
        bot_id = make_bot(s, user_id).id
    for k in range(3, len(FIXTURE_CLOSE)):
        tick(bot_id, clock, k)
    source = get_market_source("replay")
    strategy = get_strategy("sma_crossover")
    backtest = run_backtest(
        source.candles("AAA/BBB", "1h", since_ms=T0),
        strategy,
        strategy.validate_params({"fast": 2, "slow": 3}),
        capital=D("1000"),
        market=source.market("AAA/BBB"),
        fees=FeeSchedule(D("0.001"), D("0.001")),
        sizing=SizingConfig(mode="fixed", stake=D("100")),
        timeframe_seconds=3600,
    )
    with session_scope() as s:
        fills = s.scalars(select(Fill).where(Fill.bot_id == bot_id).order_by(Fill.id)).all()
        live = [(f.side, f.price, f.amount, f.fee) for f in fills]
        pnls = [f.closed_trade_pnl for f in fills if f.closed_trade_pnl is not None]
        position = s.get(Position, bot_id)
    expected = []
    for t in backtest.trades:
        expected += [("buy", t.entry_price, t.amount, t.entry_fee),
                     ("sell", t.exit_price, t.amount, t.exit_fee)]  # fmt: skip
    assert live == expected
    assert pnls == [t.pnl for t in backtest.trades] == [D("-15.568608"), D("21.204598")]
    assert position.amount == 0


EXIT_DOC = {
    "name": "sma with exits",
    "parameters": {"fast": {"type": "int", "default": 2, "min": 2, "max": 9},
                   "slow": {"type": "int", "default": 3, "min": 3, "max": 9}},
    "indicators": {"fast": {"ta": "SMA", "params": {"timeperiod": {"param": "fast"}}},
                   "slow": {"ta": "SMA", "params": {"timeperiod": {"param": "slow"}}}},
    "entry": {"op": "crosses_above", "args": [{"ref": "fast"}, {"ref": "slow"}], "tol": "price"},
    "exit": {"op": "crosses_below", "args": [{"ref": "fast"}, {"ref": "slow"}], "tol": "price"},
    "exits": {"stoploss": -0.15, "minimal_roi": {"0": 0.3}},
}  # fmt: skip


def test_ticked_bot_running_a_document_exits_like_the_backtest(clock, user_id) -> None:  # type: ignore[no-untyped-def]
    """Stops and ROI through the real ledger (the recorded prices step by 0.1): trade 1 (in at
    13) is stopped at 13 * 0.85 = 11.05, up to the tick 11.1, during candle 7, before its exit
    signal could sell at candle 8's open; trade 2 (in at 14) reaches the 30 % ROI on its entry
    candle (high 18.5) and sells at 14 * 1.301 / 0.999 = 18.23..., up to the tick 18.3."""
    from app.domain.sizing import SizingConfig
    from app.domain.strategies.doc_model import parse_document
    from app.domain.strategies.doc_strategy import DocumentStrategy
    from app.engine.backtest import run_backtest
    from app.engine.fill_model import FeeSchedule
    from app.market.registry import get_market_source
    from app.store.models.strategies import StrategyDocument, StrategyVersion

    with session_scope() as s:
        doc = StrategyDocument(user_id=user_id, name="sma with exits", latest_version=1)
        s.add(doc)
        s.flush()
        s.add(StrategyVersion(document_id=doc.id, version=1, body=EXIT_DOC))
        bot_id = make_bot(s, user_id, strategy="sma with exits", strategy_document_id=doc.id,
                          strategy_version=1).id  # fmt: skip
    for k in range(3, len(FIXTURE_CLOSE)):
        tick(bot_id, clock, k)
    source = get_market_source("replay")
    strategy = DocumentStrategy(parse_document(EXIT_DOC), timeframe="1h")
    backtest = run_backtest(
        source.candles("AAA/BBB", "1h", since_ms=T0), strategy, strategy.default_params(),
        capital=D("1000"), market=source.market("AAA/BBB"), fees=FeeSchedule(D("0.001"),
        D("0.001")), sizing=SizingConfig(mode="fixed", stake=D("100")), timeframe_seconds=3600,
    )  # fmt: skip
    assert [(t.exit_reason, t.exit_index, t.exit_price) for t in backtest.trades] == [
        ("stop_loss", 7, D("11.1")), ("roi", 11, D("18.3"))]  # fmt: skip
    with session_scope() as s:
        fills = s.scalars(select(Fill).where(Fill.bot_id == bot_id).order_by(Fill.id)).all()
        live = [(f.side, f.price, f.amount, f.fee, to_ms(f.candle_ts)) for f in fills]
        pnls = [f.closed_trade_pnl for f in fills if f.closed_trade_pnl is not None]
        reasons = [o.reason for o in orders(bot_id) if o.side == "sell"]
    expected = []
    for t in backtest.trades:
        expected += [("buy", t.entry_price, t.amount, t.entry_fee, t.entry_ts),
                     ("sell", t.exit_price, t.amount, t.exit_fee, t.exit_ts)]  # fmt: skip
    assert live == expected
    assert pnls == [t.pnl for t in backtest.trades]
    assert reasons == ["stop_loss", "roi"]


TRAILING_DOC = {**EXIT_DOC, "exits": {
    "stoploss": -0.2, "trailing": {"positive": 0.05, "offset": 0.1, "only_offset_is_reached": True},
    "max_hold_minutes": 600}}  # fmt: skip


def test_ticked_trailing_stops_fill_like_the_backtest(clock, user_id) -> None:  # type: ignore[no-untyped-def]
    """Both trades reach the 10 % offset on their entry candle and fall back through the
    trailing stop there (freqtrade's entry-candle price); the same document's fills through
    the ticked ledger equal the backtest's."""
    from app.domain.sizing import SizingConfig
    from app.domain.strategies.doc_model import parse_document
    from app.domain.strategies.doc_strategy import DocumentStrategy
    from app.engine.backtest import run_backtest
    from app.engine.fill_model import FeeSchedule
    from app.market.registry import get_market_source
    from app.store.models.strategies import StrategyDocument, StrategyVersion

    with session_scope() as s:
        doc = StrategyDocument(user_id=user_id, name="trailing", latest_version=1)
        s.add(doc)
        s.flush()
        s.add(StrategyVersion(document_id=doc.id, version=1, body=TRAILING_DOC))
        bot_id = make_bot(s, user_id, strategy="trailing", strategy_document_id=doc.id,
                          strategy_version=1).id  # fmt: skip
    for k in range(3, len(FIXTURE_CLOSE)):
        tick(bot_id, clock, k)
    source = get_market_source("replay")
    strategy = DocumentStrategy(parse_document(TRAILING_DOC), timeframe="1h")
    backtest = run_backtest(
        source.candles("AAA/BBB", "1h", since_ms=T0), strategy, strategy.default_params(),
        capital=D("1000"), market=source.market("AAA/BBB"), fees=FeeSchedule(D("0.001"),
        D("0.001")), sizing=SizingConfig(mode="fixed", stake=D("100")), timeframe_seconds=3600,
    )  # fmt: skip
    assert [(t.exit_reason, t.exit_index) for t in backtest.trades] == [
        ("trailing_stop", 5), ("trailing_stop", 11)]  # fmt: skip
    with session_scope() as s:
        fills = s.scalars(select(Fill).where(Fill.bot_id == bot_id).order_by(Fill.id)).all()
        live = [(f.side, f.price, f.amount, f.fee, to_ms(f.candle_ts)) for f in fills]
    expected = []
    for t in backtest.trades:
        expected += [("buy", t.entry_price, t.amount, t.entry_fee, t.entry_ts),
                     ("sell", t.exit_price, t.amount, t.exit_fee, t.exit_ts)]  # fmt: skip
    assert live == expected


def test_a_document_without_exit_signals_holds_through_them(clock, user_id) -> None:  # type: ignore[no-untyped-def]
    """`use_exit_signal: false`: the exit signal of candle 7 sells nothing (as in the
    backtest, where the trade runs to the end of the data)."""
    from app.store.models.strategies import StrategyDocument, StrategyVersion

    body = {**EXIT_DOC, "exits": {"use_exit_signal": False}}
    with session_scope() as s:
        doc = StrategyDocument(user_id=user_id, name="hold", latest_version=1)
        s.add(doc)
        s.flush()
        s.add(StrategyVersion(document_id=doc.id, version=1, body=body))
        bot_id = make_bot(s, user_id, strategy="hold", strategy_document_id=doc.id,
                          strategy_version=1).id  # fmt: skip
    results = {k: tick(bot_id, clock, k) for k in range(3, len(FIXTURE_CLOSE))}
    assert results[7].signal == -1 and results[7].action is None
    assert [o.side for o in orders(bot_id)] == ["buy"]


def test_a_real_stop_out_trips_the_stoploss_guard(clock, user_id) -> None:  # type: ignore[no-untyped-def]
    """The stop of trade 1 (candle 7, a loss) is a stop-out the guard counts: with a limit of
    one, the entry signal of candle 10 is held back and the bot paused."""
    from app.store.models.strategies import StrategyDocument, StrategyVersion

    with session_scope() as s:
        doc = StrategyDocument(user_id=user_id, name="sma with exits", latest_version=1)
        s.add(doc)
        s.flush()
        s.add(StrategyVersion(document_id=doc.id, version=1, body=EXIT_DOC))
        guard = {"max_drawdown": None, "max_losing_streak": None, "daily_loss_limit": None,
                 "stoploss_guard_trades": 1, "stoploss_guard_window_minutes": 60}  # fmt: skip
        bot_id = make_bot(s, user_id, strategy="sma with exits", strategy_document_id=doc.id,
                          strategy_version=1, protections=guard).id  # fmt: skip
    results = {k: tick(bot_id, clock, k) for k in range(3, 11)}
    assert results[7].action == "stop_loss"
    assert results[10].signal == 1 and results[10].action == "held"
    with session_scope() as s:
        bot = s.get(Bot, bot_id)
        assert (bot.status, bot.pause_reason) == ("paused", "protection:stoploss_guard")


def _closed_trades(bot_id: int, pnls: list[str]) -> None:
    """Closed round trips in the bot's history (what sizing learns from)."""
    now = utcnow() - timedelta(days=2)
    with session_scope() as s:
        for n, pnl in enumerate(pnls):
            order = Order(
                bot_id=bot_id, symbol="AAA/BBB", side="sell", type="market", state="filled",
                amount=D(1), reserved=D(1), client_order_id=f"hist-{bot_id}-{n}",
                fill_from=now, created_at=now,
            )  # fmt: skip
            s.add(order)
            s.flush()
            s.add(
                Fill(
                    order_id=order.id, bot_id=bot_id, side="sell", amount=D(1), price=D(10),
                    cost=D(10), fee=D(0), fee_asset="BBB", liquidity="taker",
                    realised_pnl=D(pnl), cost_basis_change=D(0), closed_trade_pnl=D(pnl),
                    candle_ts=now, filled_at=now + timedelta(seconds=n),
                )
            )  # fmt: skip


def test_bootstrap_below_five_trades_stakes_one_percent_and_tags_the_order(clock, user_id) -> None:  # type: ignore[no-untyped-def]
    with session_scope() as s:
        bot_id = make_bot(s, user_id, sizing={}).id
    _closed_trades(bot_id, ["5", "-1", "2", "3"])  # 4 < 5 closed trades
    result = tick(bot_id, clock, 4)
    (order,) = [o for o in orders(bot_id) if o.state == "open"]
    assert order.bootstrap is True
    assert order.quote_amount == D("10.01")  # 1 % of capital 1000, fee on top
    assert result.details["sizing"]["bootstrap"] is True


def test_kelly_stake_from_the_bots_own_trades(clock, user_id) -> None:  # type: ignore[no-untyped-def]
    with session_scope() as s:
        bot_id = make_bot(s, user_id, sizing={}).id
    # W = 3/5 = 0.6, R = avg win 2 / avg loss 1 = 2, f* = 0.6 - 0.4 / 2 = 0.4;
    # half-Kelly 0.2 (under the 0.25 cap) of equity 1000 = 200, + 0.1 % fee = 200.2
    _closed_trades(bot_id, ["2", "-1", "2", "-1", "2"])
    result = tick(bot_id, clock, 4)
    (order,) = [o for o in orders(bot_id) if o.state == "open"]
    assert order.quote_amount == D("200.2") and order.bootstrap is False
    sizing = result.details["sizing"]
    assert D(sizing["kelly_fraction"]) == D("0.4") and D(sizing["win_rate"]) == D("0.6")
    assert D(sizing["payoff_ratio"]) == D("2") and D(sizing["applied_fraction"]) == D("0.2")


def test_negative_edge_places_nothing_and_logs_the_numbers(clock, user_id, caplog) -> None:  # type: ignore[no-untyped-def]
    with session_scope() as s:
        bot_id = make_bot(s, user_id, sizing={}).id
    # W = 2/5 = 0.4, R = avg win 1 / avg loss 2 = 0.5, f* = 0.4 - 0.6 / 0.5 = -0.8
    _closed_trades(bot_id, ["1", "-2", "-2", "-2", "1"])
    with caplog.at_level(logging.INFO, logger="tradewind.tick"):
        result = tick(bot_id, clock, 4)
    assert result.signal == 1 and result.action == "no_stake"
    assert [o for o in orders(bot_id) if o.state == "open"] == []
    (record,) = [r for r in caplog.records if "stake 0" in r.getMessage()]
    assert record.levelno == logging.INFO
    message = record.getMessage()
    assert "win_rate=0.4" in message and "payoff=0.5" in message and "kelly=-0.8" in message


def test_requested_exit_sells_even_when_paused_and_finishes_when_flat(clock, user_id) -> None:  # type: ignore[no-untyped-def]
    with session_scope() as s:
        bot_id = make_bot(s, user_id).id
    tick(bot_id, clock, 4)
    tick(bot_id, clock, 5)  # long 7.692
    with session_scope() as s:
        bot = s.get(Bot, bot_id)
        bot.status = "paused"
        bot.exit_requested_at = utcnow()
    result = tick(bot_id, clock, 6)
    assert result.action == "exit" and not result.exit_done
    sell = orders(bot_id)[-1]
    assert (sell.side, sell.amount, sell.state) == ("sell", D("7.692"), "open")
    assert sell.client_order_id.endswith("-1")
    result = tick(bot_id, clock, 7)  # filled at open[7] = 15; nothing held, nothing open
    assert result.exit_done
    assert orders(bot_id)[-1].state == "filled" and orders(bot_id)[-1].average_price == D("15")
    with session_scope() as s:
        assert s.get(Position, bot_id).amount == 0


def test_a_tagged_entry_names_the_order_and_the_bot_reports_by_tag(clock, user_id) -> None:  # type: ignore[no-untyped-def]
    """The document's first true entry (in list order) tags the buy order; the bot's report
    counts its round trips by that tag, as the backtest of the same candles does."""
    from app.services.bot_report import bot_report
    from app.store.models.strategies import StrategyDocument, StrategyVersion
    from tests.domain.test_entry_tags import TAGGED

    with session_scope() as s:
        doc = StrategyDocument(user_id=user_id, name="tagged sma", latest_version=1)
        s.add(doc)
        s.flush()
        s.add(StrategyVersion(document_id=doc.id, version=1, body=TAGGED))
        bot_id = make_bot(s, user_id, strategy="tagged sma", strategy_document_id=doc.id,
                          strategy_version=1, strategy_params={}).id  # fmt: skip
    for k in range(3, len(FIXTURE_CLOSE)):
        tick(bot_id, clock, k)
    placed = orders(bot_id)
    assert [(o.side, o.entry_tag) for o in placed] == [
        ("buy", "cheap_cross"), ("sell", None), ("buy", "cross"), ("sell", None)]  # fmt: skip
    assert placed[0].reason.startswith("entry signal cheap_cross; fixed stake 100")
    with session_scope() as s:
        report = bot_report(s, s.get(Bot, bot_id))
    assert [t["entry_tag"] for t in report["round_trips"]] == ["cheap_cross", "cross"]
    rows = {r["key"]: (r["trades"], r["profit_abs"]) for r in report["tables"]["entry_tag"]}
    assert rows == {"cheap_cross": (1, "-15.568608"), "cross": (1, "21.204598")}
