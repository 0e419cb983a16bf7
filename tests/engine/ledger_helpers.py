"""Builders shared by the ledger, broker, portfolio and reconcile tests (plain functions)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np

from app.domain.candles import Candles
from app.market.base import MarketInfo

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)
FIVE_MIN_MS = 300_000

ETH_BTC = MarketInfo(
    symbol="ETH/BTC",
    base="ETH",
    quote="BTC",
    amount_step=Decimal("0.001"),
    price_step=Decimal("0.000001"),
)


def at(minutes: float) -> datetime:
    """T0 plus some minutes."""
    return datetime.fromtimestamp((T0_MS + int(minutes * 60_000)) / 1000, tz=UTC)


def candles(rows: Sequence[Sequence[float]], *, t0_ms: int = T0_MS) -> Candles:
    """Candles from (open, high, low, close) rows, 5 minutes apart from `t0_ms`."""
    arr = np.asarray(rows, dtype=np.float64)
    n = arr.shape[0]
    return Candles(
        ts=t0_ms + FIVE_MIN_MS * np.arange(n, dtype=np.int64),
        open=arr[:, 0].copy(),
        high=arr[:, 1].copy(),
        low=arr[:, 2].copy(),
        close=arr[:, 3].copy(),
        volume=np.ones(n),
    )


def create_bot(user_id: int, **fields: Any) -> int:
    """Insert a paper bot (committed) with its ledger opened; returns its id."""
    from app.engine.ledger import open_bot_ledger
    from app.store.db import session_scope
    from app.store.models import Bot

    values: dict[str, Any] = {
        "name": "test bot",
        "exchange": "replay",
        "symbol": "ETH/BTC",
        "timeframe": "5m",
        "strategy": "sma_crossover",
        "capital": Decimal("1"),
        "maker_fee": Decimal("0.001"),
        "taker_fee": Decimal("0.002"),
        "slippage_bps": Decimal("0"),
    }
    values.update(fields)
    with session_scope() as db:
        bot = Bot(user_id=user_id, **values)
        db.add(bot)
        db.flush()
        open_bot_ledger(db, bot)
        return bot.id
