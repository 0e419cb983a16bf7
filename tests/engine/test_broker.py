"""The paper broker on a real database: orders, fills, cancels, idempotency, rejections,
the emergency stop, and one fill per order even when two workers race for it."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from app.engine.broker import (
    PaperOrderRejected,
    cancel_open_orders,
    cancel_order,
    place_order,
    process_fills,
)
from app.errors import Conflict
from app.services.reconcile import reconcile_all
from app.store.db import new_session, session_scope
from app.store.emergency_flag import TradingHalted
from app.store.models import Bot, SystemState
from app.store.models.ledger import Balance, Fill, Order, Position
from tests.engine.ledger_helpers import ETH_BTC, at, candles, create_bot

D = Decimal
ROWS = [
    (0.080, 0.081, 0.0795, 0.0805),
    (0.0805, 0.0812, 0.0801, 0.081),
    (0.081, 0.0815, 0.0790, 0.080),
]


@pytest.fixture
def bot_id(make_user) -> int:
    return create_bot(make_user().id)


def _balances(session, bot_id: int) -> dict[str, tuple[Decimal, Decimal]]:
    rows = session.scalars(select(Balance).where(Balance.bot_id == bot_id))
    return {b.asset: (b.free, b.locked) for b in rows}


def _all_ok(session) -> None:
    results = reconcile_all(session)
    assert results and all(r.ok for r in results), [r.problems for r in results]


def _place(session, bot, **kw):
    kw.setdefault("side", "buy")
    kw.setdefault("order_type", "market")
    kw.setdefault("client_order_id", "b1-t1")
    kw.setdefault("now", at(1))
    kw.setdefault("market", ETH_BTC)
    kw.setdefault("reference_price", D("0.08"))
    return place_order(session, bot, **kw)


def test_open_ledger_gives_the_capital_in_quote_and_nothing_else(session, bot_id) -> None:
    assert _balances(session, bot_id) == {"BTC": (D(1), D(0)), "ETH": (D(0), D(0))}
    pos = session.get(Position, bot_id)
    assert (pos.base, pos.quote, pos.initial_capital, pos.amount) == ("ETH", "BTC", D(1), D(0))
    from app.engine.ledger import open_bot_ledger

    open_bot_ledger(session, session.get(Bot, bot_id))  # idempotent
    session.flush()
    assert _balances(session, bot_id)["BTC"] == (D(1), D(0))


def test_market_order_fills_at_the_open_of_the_candle_after_the_signal(session, bot_id) -> None:
    bot = session.get(Bot, bot_id)
    order = _place(session, bot, quote_amount=D("0.5"), now=at(6), reason="enter signal",
                   bootstrap=True)  # fmt: skip
    assert order.state == "open" and order.reserved == D("0.5") and order.bootstrap
    assert order.fill_from == at(5)  # the candle in progress when the order was placed
    assert _balances(session, bot_id)["BTC"] == (D("0.5"), D("0.5"))

    assert process_fills(session, bot, candles(ROWS[:1]), at(6), market=ETH_BTC) == []
    fills = process_fills(session, bot, candles(ROWS), at(16), market=ETH_BTC)
    assert len(fills) == 1
    fill = fills[0]
    assert fill.price == D("0.0805")  # open of the 12:05 candle, no slippage configured
    assert fill.candle_ts == at(5) and fill.liquidity == "taker"
    assert fill.cost + fill.fee <= D("0.5")
    session.refresh(order)
    assert order.state == "filled" and order.filled_amount == fill.amount == order.amount
    btc, eth = _balances(session, bot_id)["BTC"], _balances(session, bot_id)["ETH"]
    assert btc == (D(1) - fill.cost - fill.fee, D(0)) and eth == (fill.amount, D(0))
    pos = session.get(Position, bot_id)
    assert pos.amount == fill.amount and pos.cost_basis == fill.cost
    assert pos.opened_at == at(5)
    # nothing more to fill
    assert process_fills(session, bot, candles(ROWS), at(16), market=ETH_BTC) == []
    _all_ok(session)


def test_the_same_client_order_id_places_nothing_twice(session, bot_id, make_user) -> None:
    bot = session.get(Bot, bot_id)
    first = _place(session, bot, quote_amount=D("0.3"))
    again = _place(session, bot, quote_amount=D("0.3"))
    assert again.id == first.id
    assert session.scalar(select(func.count()).select_from(Order)) == 1
    assert _balances(session, bot_id)["BTC"] == (D("0.7"), D("0.3"))
    session.commit()
    other = session.get(Bot, create_bot(make_user().id))
    with pytest.raises(Conflict):
        _place(session, other, quote_amount=D("0.3"))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"amount": D("1000")},  # beyond the balance
        {"quote_amount": D("1.5")},
        {"amount": D("0.0001")},  # under the amount step
        {"amount": D("-1")},
        {"side": "sell", "amount": D("1")},  # nothing to sell
        {"order_type": "limit", "amount": D("1")},  # no price
        {"order_type": "stop", "amount": D("1")},
    ],
)
def test_impossible_orders_are_rejected_and_nothing_changes(session, bot_id, kwargs) -> None:
    bot = session.get(Bot, bot_id)
    before = _balances(session, bot_id)
    with pytest.raises(PaperOrderRejected) as err:
        _place(session, bot, **kwargs)
    assert err.value.status == 422 and err.value.reason
    session.commit()
    assert session.scalar(select(func.count()).select_from(Order)) == 0
    assert _balances(session, bot_id) == before
    _all_ok(session)


def test_emergency_stop_refuses_the_order_and_stores_nothing(session, bot_id) -> None:
    session.execute(update(SystemState).where(SystemState.id == 1).values(emergency_stop=True))
    session.commit()
    with pytest.raises(TradingHalted):
        _place(session, session.get(Bot, bot_id), quote_amount=D("0.1"))
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Order)) == 0
    assert _balances(session, bot_id)["BTC"] == (D(1), D(0))


def test_limit_orders_fill_when_reached_and_can_be_cancelled(session, bot_id) -> None:
    bot = session.get(Bot, bot_id)
    buy = _place(session, bot, order_type="limit", amount=D("2"), price=D("0.0792"),
                 client_order_id="lim-1")  # fmt: skip
    far = _place(session, bot, order_type="limit", amount=D("1"), price=D("0.05"),
                 client_order_id="lim-2")  # fmt: skip
    reserved = buy.reserved + far.reserved
    assert _balances(session, bot_id)["BTC"] == (D(1) - reserved, reserved)

    fills = process_fills(session, bot, candles(ROWS), at(16), market=ETH_BTC)
    assert [f.order_id for f in fills] == [buy.id]
    assert fills[0].price == D("0.0792") and fills[0].liquidity == "maker"
    assert fills[0].fee == D("2") * D("0.0792") * D("0.001")

    cancelled = cancel_order(session, far.id, bot_id=bot_id, reason="user cancelled")
    assert cancelled.state == "cancelled" and cancelled.state_reason == "user cancelled"
    assert _balances(session, bot_id)["BTC"][1] == 0
    with pytest.raises(Conflict):
        cancel_order(session, far.id, reason="again")
    with pytest.raises(Conflict):
        cancel_order(session, buy.id, reason="filled already")
    _all_ok(session)


def test_cancel_open_orders_releases_every_reservation(session, bot_id) -> None:
    bot = session.get(Bot, bot_id)
    _place(session, bot, order_type="limit", amount=D("1"), price=D("0.05"), client_order_id="a")
    _place(session, bot, quote_amount=D("0.2"), client_order_id="b")
    assert cancel_open_orders(session, bot_id, reason="bot stopped") == 2
    assert cancel_open_orders(session, None, reason="again") == 0
    assert _balances(session, bot_id)["BTC"] == (D(1), D(0))
    states = set(session.scalars(select(Order.state)))
    assert states == {"cancelled"}
    _all_ok(session)


def test_a_buy_the_next_open_made_too_expensive_ends_rejected(session, bot_id) -> None:
    bot = session.get(Bot, bot_id)
    order = _place(session, bot, amount=D("12"), reference_price=D("0.08"))
    gap_up = candles([(0.09, 0.091, 0.089, 0.09)], t0_ms=int(at(0).timestamp() * 1000))
    assert process_fills(session, bot, gap_up, at(6), market=ETH_BTC) == []
    session.refresh(order)
    assert order.state == "rejected" and "insufficient BTC" in order.state_reason
    assert _balances(session, bot_id)["BTC"] == (D(1), D(0))
    _all_ok(session)


def test_a_round_trip_feeds_the_closed_trades(session, bot_id) -> None:
    from app.engine.ledger import closed_trade_pnls, closed_trades

    bot = session.get(Bot, bot_id)
    _place(session, bot, quote_amount=D("0.5"), client_order_id="in")
    (buy,) = process_fills(session, bot, candles(ROWS), at(4), market=ETH_BTC)
    _place(session, bot, side="sell", amount=buy.amount, client_order_id="out", now=at(11))
    (sell,) = process_fills(session, bot, candles(ROWS), at(16), market=ETH_BTC)
    assert sell.price == D("0.081")
    expected = (sell.cost - buy.cost) - buy.fee - sell.fee
    assert closed_trade_pnls(session, bot_id) == [expected]
    (trade,) = closed_trades(session, bot_id)
    assert trade.pnl == expected and trade.entry_ts < trade.exit_ts
    assert session.get(Position, bot_id).amount == 0
    _all_ok(session)


def test_two_workers_racing_fill_an_order_once(app, bot_id) -> None:
    with session_scope() as db:
        _place(db, db.get(Bot, bot_id), quote_amount=D("0.5"))
    barrier = threading.Barrier(2)
    results: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        db = new_session()
        try:
            bot = db.get(Bot, bot_id)
            barrier.wait()
            results.append(len(process_fills(db, bot, candles(ROWS), at(16), market=ETH_BTC)))
            db.commit()
        except BaseException as exc:  # SQLite may refuse the loser's write: that is fine
            db.rollback()
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 1, (results, errors)
    with session_scope() as db:
        assert db.scalar(select(func.count()).select_from(Fill)) == 1
        _all_ok(db)
