"""`flask reconcile`: exit 0 when every ledger adds up to the smallest unit; exit 1 naming the
bot and the difference when one does not."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import update

from app.engine.broker import place_order, process_fills
from app.store.db import session_scope
from app.store.models import Bot
from app.store.models.ledger import Balance, Position
from tests.engine.ledger_helpers import ETH_BTC, at, candles, create_bot

D = Decimal
ROWS = [(0.08, 0.081, 0.079, 0.0805), (0.0805, 0.082, 0.080, 0.081), (0.081, 0.083, 0.08, 0.082)]


def _trade(bot_id: int) -> None:
    with session_scope() as db:
        bot = db.get(Bot, bot_id)
        stake = db.get(Position, bot_id).initial_capital * D("0.4")
        place_order(db, bot, side="buy", order_type="market", client_order_id=f"{bot_id}-in",
                    quote_amount=stake, now=at(1), market=ETH_BTC,
                    reference_price=D("0.08"))  # fmt: skip
        (fill,) = process_fills(db, bot, candles(ROWS), at(16), market=ETH_BTC)
        place_order(db, bot, side="sell", order_type="limit", client_order_id=f"{bot_id}-out",
                    amount=fill.amount / 2, price=D("0.0825"), now=at(6),
                    market=ETH_BTC)  # fmt: skip
        process_fills(db, bot, candles(ROWS), at(16), market=ETH_BTC)
        place_order(db, bot, side="sell", order_type="limit", client_order_id=f"{bot_id}-open",
                    amount=fill.amount / 4, price=D("0.5"), now=at(11), market=ETH_BTC)  # fmt: skip


def test_clean_ledgers_reconcile(app, make_user) -> None:
    ids = [create_bot(make_user().id), create_bot(make_user().id, capital=D("0.1"))]
    for bot_id in ids:
        _trade(bot_id)
    result = app.test_cli_runner().invoke(args=["reconcile"])
    assert result.exit_code == 0, result.output
    assert "2 bot(s) checked, 0 not reconciled" in result.output
    for bot_id in ids:
        assert f"[ok]   bot {bot_id}" in result.output


def test_one_satoshi_fraction_off_is_reported_with_the_bot_and_difference(app, make_user) -> None:
    good, bad = create_bot(make_user().id), create_bot(make_user().id)
    _trade(good)
    _trade(bad)
    with session_scope() as db:
        row = db.get(Balance, (bad, "BTC"))
        db.execute(
            update(Balance)
            .where(Balance.bot_id == bad, Balance.asset == "BTC")
            .values(free=row.free + D("1E-18"))
        )
    result = app.test_cli_runner().invoke(args=["reconcile"])
    assert result.exit_code == 1
    assert f"[FAIL] bot {bad}: difference 0.000000000000000001 BTC" in result.output
    assert f"[ok]   bot {good}" in result.output
    only_good = app.test_cli_runner().invoke(args=["reconcile", "--bot", str(good)])
    assert only_good.exit_code == 0, only_good.output


def test_a_position_that_disagrees_with_its_fills_is_reported(app, make_user) -> None:
    bot_id = create_bot(make_user().id)
    _trade(bot_id)
    with session_scope() as db:
        db.execute(
            update(Position)
            .where(Position.bot_id == bot_id)
            .values(realised_pnl=Position.realised_pnl + D("0.001"))
        )
        db.execute(
            update(Balance)
            .where(Balance.bot_id == bot_id, Balance.asset == "ETH")
            .values(locked=D("0"))
        )
    result = app.test_cli_runner().invoke(args=["reconcile"])
    assert result.exit_code == 1
    assert "position realised PnL" in result.output
    assert "ETH locked 0 but open sell orders reserve" in result.output
