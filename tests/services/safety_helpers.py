"""Rows the safety tests need (closed trades, equity, credentials), written as the ledger and
accounts features would write them, committed so that every session sees them."""

from __future__ import annotations

import itertools
from datetime import datetime
from decimal import Decimal
from typing import Any

from app.store.db import session_scope
from app.store.models import Bot
from app.store.models.accounts import ExchangeCredential
from app.store.models.ledger import EquitySnapshot, Fill, Order
from tests.engine.ledger_helpers import create_bot

_ids = itertools.count(1)


def make_bot(user_id: int, **fields: Any) -> int:
    """A bot with its ledger opened (paper, 5m ETH/BTC on the replay feed)."""
    return create_bot(user_id, **fields)


def set_bot(bot_id: int, **values: Any) -> None:
    with session_scope() as db:
        bot = db.get(Bot, bot_id)
        for name, value in values.items():
            setattr(bot, name, value)


def get_bot(bot_id: int) -> Bot:
    with session_scope() as db:
        bot = db.get(Bot, bot_id)
        db.expunge(bot)
        return bot


def add_closed_trade(bot_id: int, pnl: str | Decimal, at: datetime, reason: str = "signal") -> None:
    """One exit fill that closed a round trip with net result `pnl`."""
    n = next(_ids)
    with session_scope() as db:
        order = Order(
            bot_id=bot_id,
            symbol="ETH/BTC",
            side="sell",
            type="market",
            state="filled",
            amount=Decimal("1"),
            reserved=Decimal("0"),
            client_order_id=f"test-exit-{bot_id}-{n}",
            fill_from=at,
            created_at=at,
            filled_at=at,
            closed_at=at,
            reason=reason,
        )
        db.add(order)
        db.flush()
        db.add(
            Fill(
                order_id=order.id,
                bot_id=bot_id,
                side="sell",
                amount=Decimal("1"),
                price=Decimal("0.08"),
                cost=Decimal("0.08"),
                fee=Decimal("0"),
                fee_asset="BTC",
                liquidity="taker",
                realised_pnl=Decimal(pnl),
                cost_basis_change=Decimal("-0.08"),
                closed_trade_pnl=Decimal(pnl),
                trade_opened_at=at,
                candle_ts=at,
                filled_at=at,
            )
        )


def add_equity(bot_id: int, at: datetime, equity: str | Decimal) -> None:
    with session_scope() as db:
        db.add(
            EquitySnapshot(
                bot_id=bot_id,
                ts=at,
                equity=Decimal(equity),
                cash=Decimal(equity),
                position_amount=Decimal(0),
                price=Decimal("0.08"),
            )
        )


def add_credential(user_id: int, exchange: str) -> None:
    """A credential row (its ciphertext is never read by the gates, only its existence)."""
    with session_scope() as db:
        db.add(
            ExchangeCredential(
                user_id=user_id,
                exchange=exchange,
                label=f"{exchange}-{next(_ids)}",
                key_hint="abcd",
                ciphertext="not-a-real-token",
            )
        )
