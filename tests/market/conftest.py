"""Fixtures for the market tests: the fake exchange and adapters pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.market.exchange_server import RecordedExchange

REPO = Path(__file__).resolve().parents[2]
SAMPLE_DIR = REPO / "data" / "candles"

API_KEY = "tw-test-KEY-7f3a9c1e5b"
SECRET = "tw-test-SECRET-0d8e4b6a2f"
PASSWORD = "tw-test-PASS-91c3"
SECRETS = (API_KEY, SECRET, PASSWORD)
EXCHANGES = ("binance", "kucoin", "luno")


@pytest.fixture(params=EXCHANGES)
def exchange_id(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def fake_exchange(exchange_id: str) -> Iterator[RecordedExchange]:
    with RecordedExchange(exchange_id) as server:
        server.state.timeout_sleep_s = 0.8
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    """Backoff delays the adapter asked for (recorded instead of slept)."""
    return []


@pytest.fixture
def make_source(
    fake_exchange: RecordedExchange, sleeps: list[float]
) -> Iterator[Callable[..., Any]]:
    from app.market.ccxt_source import CcxtMarketSource

    made: list[CcxtMarketSource] = []

    def make(**overrides: Any) -> CcxtMarketSource:
        options: dict[str, Any] = {
            "api_key": API_KEY,
            "secret": SECRET,
            "password": PASSWORD,
            "base_url": fake_exchange.url,
            "timeout_ms": 300,
            "max_retries": 3,
            "sleep": sleeps.append,
            "config": {"rateLimit": 1},
        }
        options.update(overrides)
        source = CcxtMarketSource(fake_exchange.exchange, **options)
        made.append(source)
        return source

    yield make
    for source in made:
        source.close()
