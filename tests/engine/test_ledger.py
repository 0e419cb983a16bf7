"""Ledger services: opening books, exact decimals on every database, equity snapshots, closed
trades and the performance metrics fed from them."""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal, localcontext

import pytest

from app.engine.broker import place_order, process_fills
from app.engine.ledger import (
    bot_equity,
    bot_performance,
    equity_curve,
    ledger_view,
    open_bot_ledger,
    record_equity_snapshot,
    split_symbol,
)
from app.errors import ValidationFailed
from app.store.models import Bot
from app.store.models.ledger import Balance, Position
from tests.engine.ledger_helpers import ETH_BTC, at, candles, create_bot

D = Decimal


def test_books_open_with_the_exact_capital_even_on_sqlite(session, make_user) -> None:
    bot_id = create_bot(make_user().id, capital=D("0.1"))
    assert session.get(Position, bot_id).initial_capital == D("0.1")
    assert session.get(Balance, (bot_id, "BTC")).free == D("0.1")
    odd = create_bot(make_user().id, capital=D("1234.567890123"))
    assert session.get(Balance, (odd, "BTC")).free == D("1234.567890123")


def test_ledger_decimals_round_trip_exactly(session, make_user) -> None:
    bot_id = create_bot(make_user().id)
    row = session.get(Balance, (bot_id, "ETH"))
    row.free = D("0.097579") + D("1E-18")
    session.commit()
    session.expire_all()
    assert session.get(Balance, (bot_id, "ETH")).free == D("0.097579000000000001")


def test_symbols_must_be_base_slash_quote(session, make_user) -> None:
    assert split_symbol("btc/usdt:USDT") == ("BTC", "USDT")
    user = make_user()
    bot = Bot(user_id=user.id, name="x", symbol="ETHBTC", timeframe="5m", strategy="s",
              capital=D(1))  # fmt: skip
    session.add(bot)
    session.flush()
    with pytest.raises(ValidationFailed):
        open_bot_ledger(session, bot)


def test_equity_snapshots_and_performance_come_from_the_ledger(session, make_user) -> None:
    bot_id = create_bot(make_user().id, capital=D("1"))
    bot = session.get(Bot, bot_id)
    first = record_equity_snapshot(session, bot, D("0.08"), ts=at(0))
    assert first.equity == D("1") and first.position_amount == 0
    assert record_equity_snapshot(session, bot, D("0.09"), ts=at(0)).id == first.id  # once per ts

    place_order(session, bot, side="buy", order_type="market", client_order_id="in",
                quote_amount=D("0.5"), now=at(1), market=ETH_BTC,
                reference_price=D("0.08"))  # fmt: skip
    (buy,) = process_fills(session, bot, candles([(0.08, 0.08, 0.08, 0.08)]), at(6), market=ETH_BTC)
    up = record_equity_snapshot(session, bot, D("0.1"), ts=at(5))
    assert up.equity == D("1") - buy.cost - buy.fee + buy.amount * D("0.1")
    assert bot_equity(session, bot, D("0.1")) == up.equity
    view = ledger_view(session, bot, D("0.1"))
    assert view.position == buy.amount and view.avg_entry_price == D("0.08")
    assert view.unrealised_pnl == buy.amount * D("0.02")
    assert view.balances["BTC"]["free"] == D("1") - buy.cost - buy.fee

    place_order(session, bot, side="sell", order_type="market", client_order_id="out",
                amount=buy.amount, now=at(11), market=ETH_BTC)  # fmt: skip
    rows = [(0.08, 0.08, 0.08, 0.08), (0.1, 0.1, 0.1, 0.1), (0.1, 0.1, 0.1, 0.1)]
    (sell,) = process_fills(session, bot, candles(rows), at(16), market=ETH_BTC)
    last = record_equity_snapshot(session, bot, D("0.1"), ts=at(10))
    assert [s.id for s in equity_curve(session, bot_id)] == [first.id, up.id, last.id]

    perf = bot_performance(session, bot).metrics
    assert perf.n_trades == 1 and perf.wins == 1
    assert perf.gross_profit == sell.cost - buy.cost - buy.fee - sell.fee
    assert perf.total_return == pytest.approx(float(last.equity) - 1.0)
    assert perf.start_ts is not None and perf.end_ts > perf.start_ts


def test_a_large_book_is_valued_without_losing_the_money_grid(session, make_user) -> None:
    # 1e12 of capital: products carry more than the default context's 28 digits
    bot_id = create_bot(make_user().id, capital=D("2000000000000"))
    bot = session.get(Bot, bot_id)
    place_order(session, bot, side="buy", order_type="market", client_order_id="big",
                quote_amount=D("1000000000000"), now=at(1), market=ETH_BTC,
                reference_price=D("0.08"))  # fmt: skip
    (buy,) = process_fills(session, bot, candles([(0.08, 0.08, 0.08, 0.08)]), at(6), market=ETH_BTC)
    view = ledger_view(session, bot, D("0.100000000000000001"))
    with localcontext() as ctx:
        ctx.prec = 80
        exact = buy.amount * D("0.100000000000000001") - view.cost_basis
    assert view.unrealised_pnl == exact.quantize(D("1E-18"), rounding=ROUND_FLOOR, context=ctx)
