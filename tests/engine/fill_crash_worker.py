"""A process that trades one bot on paper forever, for the SIGKILL test.

Usage: python -m tests.engine.fill_crash_worker BOT_ID SEED

Each round places a market order in one transaction (buy half the free quote, or sell the
whole position), then fills it in another, printing "filling" right before the fill. With
TRADEWIND_TEST_FILL_PAUSE set, the broker sleeps inside the fill between writing the order's
state + fill row and writing the balances + position, which is where the test kills it.
On start it first fills whatever a killed predecessor left open.
"""

from __future__ import annotations

import random
import sys
import uuid
from decimal import Decimal

from app.engine.broker import place_order, process_fills
from app.engine.ledger import get_book
from app.store.db import init_database, session_scope
from app.store.models import Bot
from config import get_settings
from tests.engine.ledger_helpers import ETH_BTC, at, candles


def _candles(rng: random.Random):
    rows = []
    price = 0.08
    for _ in range(4):
        price = round(price * rng.uniform(0.97, 1.03), 6)
        rows.append((price, price * 1.01, price * 0.99, price))
    return candles(rows)


def main(bot_id: int, seed: int) -> None:
    init_database(get_settings())
    rng = random.Random(seed)
    with session_scope() as db:
        process_fills(db, db.get(Bot, bot_id), _candles(rng), at(30), market=ETH_BTC)
    while True:
        with session_scope() as db:
            bot = db.get(Bot, bot_id)
            book = get_book(db, bot_id)
            common = {
                "order_type": "market",
                "client_order_id": f"crash-{uuid.uuid4().hex[:16]}",
                "now": at(1),
                "market": ETH_BTC,
                "reference_price": Decimal("0.08"),
            }
            if book.base_free > 0:
                place_order(db, bot, side="sell", amount=book.base_free, **common)
            else:
                place_order(db, bot, side="buy", quote_amount=book.quote_free / 2, **common)
        print("filling", flush=True)
        with session_scope() as db:
            process_fills(db, db.get(Bot, bot_id), _candles(rng), at(30), market=ETH_BTC)
        print("filled", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
