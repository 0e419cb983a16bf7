"""A live bot against the fake exchange of tests/market: candles from a replay feed installed
as the bot's exchange (so the test decides the signals), orders to the fake Binance server
through the owner's stored credentials."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.store.db import session_scope
from app.store.models.ledger import Order
from tests.engine.helpers import (
    FIXTURE_CLOSE,
    FIXTURE_OPEN,
    T0,
    Clock,
    make_bot,
    rows_from,
    write_candles,
)
from tests.market.conftest import API_KEY, SECRET
from tests.market.exchange_server import RecordedExchange

ORDER = "POST /api/v3/order"
LOOKUP = "GET /api/v3/order"
CANCEL = "DELETE /api/v3/order"
SYMBOL = "BTC/USDT"


@contextmanager
def live_exchange(settings: Any, tmp_path: Path) -> Iterator[tuple[RecordedExchange, Clock]]:
    """The fake Binance as the configured exchange (short timeout, no read retries), live
    trading enabled (with gates a fresh bot passes), and a replay feed of the hand-made
    fixture serving its candles."""
    from app.market import registry
    from app.market.cache import clear_candle_cache
    from app.market.replay import ReplayMarketSource
    from config import use_settings

    directory = tmp_path / "live-candles"
    write_candles(directory, "TEST_BTC-USDT_1h.csv", rows_from(FIXTURE_OPEN, FIXTURE_CLOSE))
    clock = Clock(T0)
    with RecordedExchange("binance") as server:
        server.state.timeout_sleep_s = 0.8
        use_settings(
            settings.model_copy(
                update={
                    "ccxt_exchange": "binance",
                    "ccxt_base_url": server.url,
                    "ccxt_timeout_ms": 300,
                    "ccxt_max_retries": 0,
                    "ccxt_backoff_base_s": 0.0,
                    "live_trading_enabled": True,
                    "live_min_paper_days": 0,
                    "live_min_closed_trades": 0,
                }
            )
        )
        registry.close_market_sources()
        with registry._lock:
            registry._sources["binance"] = ReplayMarketSource(
                [directory], anchor=T0, speed=1.0, now=clock
            )
        clear_candle_cache()
        try:
            yield server, clock
        finally:
            registry.close_market_sources()
            clear_candle_cache()
            use_settings(settings)


def make_live_bot(user_id: int, **fields: Any) -> int:
    """A running live bot on the fake Binance, and its owner's Binance credentials."""
    from app.services.credentials import NewCredential, add_credential

    with session_scope() as s:
        add_credential(s, user_id, NewCredential("binance", "main", API_KEY, SECRET))
        values = {"exchange": "binance", "symbol": SYMBOL, "mode": "live", **fields}
        return int(make_bot(s, user_id, **values).id)


def set_lookup(server: RecordedExchange, *, status: str, side: str, qty: str, quote: str) -> None:
    """What the fake answers to an order lookup from now on."""
    server.state.routes[LOOKUP] = {
        "status": 200,
        "body": {
            "symbol": "BTCUSDT",
            "orderId": "9780331417",
            "orderListId": "-1",
            "clientOrderId": "${param:origClientOrderId}",
            "price": "0.00000000",
            "origQty": qty,
            "executedQty": qty if status == "FILLED" else "0.00000000",
            "cummulativeQuoteQty": quote if status == "FILLED" else "0.00000000",
            "status": status,
            "timeInForce": "GTC",
            "type": "MARKET",
            "side": side,
            "time": str(T0 + 5 * 3_600_000),
            "updateTime": str(T0 + 5 * 3_600_000),
            "isWorking": True,
        },
    }


def live_orders(bot_id: int) -> list[Order]:
    with session_scope() as s:
        return list(s.scalars(select(Order).where(Order.bot_id == bot_id).order_by(Order.id)))
