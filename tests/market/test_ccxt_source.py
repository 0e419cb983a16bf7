"""The ccxt adapter against recorded binance, kucoin and luno responses on a local server."""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest

from app.errors import ValidationFailed
from app.market.base import MarketSource
from app.market.ccxt_source import rewrite_api_urls
from app.market.errors import (
    ExchangeAuthFailed,
    ExchangeRejected,
    ExchangeUnavailable,
    OrderNotFound,
    OrderRejected,
    OrderStateUnknown,
    UnknownSymbol,
    UnknownTimeframe,
)
from tests.market.conftest import API_KEY, SECRET, SECRETS


@dataclass(frozen=True)
class Case:
    symbol: str
    timeframe: str
    since: int
    closes: list[float]
    last: Decimal
    order_symbol: str
    order_price: Decimal
    order_amount: Decimal
    missing_timeframe: str
    markets: dict[str, tuple[str, str, str | None, str | None]]
    balance: dict[str, str]
    routes: dict[str, str] = field(default_factory=dict)
    leaky_error: dict[str, Any] = field(default_factory=dict)


CASES = {
    "binance": Case(
        symbol="BTC/USDT",
        timeframe="1h",
        since=1706628191000,
        closes=[43488.71, 43374.8, 43361.11],
        last=Decimal("73369.84"),
        order_symbol="ETH/USDT",
        order_price=Decimal("2410"),
        order_amount=Decimal("0.05"),
        missing_timeframe="7m",
        markets={
            "BTC/USDT": ("0.00001", "0.01", "0.00001", "5"),
            "ETH/USDT": ("0.0001", "0.01", "0.0001", "5"),
            "ADA/USDT": ("0.1", "0.0001", "0.1", "5"),
        },
        balance={"LTC": "0.919741", "ETH": "0.02229833"},
        routes={
            "candles": "GET /api/v3/klines",
            "ticker": "GET /api/v3/ticker/24hr",
            "order": "POST /api/v3/order",
            "fetch_order": "GET /api/v3/order",
            "cancel": "DELETE /api/v3/order",
            "balance": "GET /api/v3/account",
        },
        leaky_error={
            "code": -1000,
            "msg": "An unknown error occurred; key ${header:X-MBX-APIKEY} sig ${param:signature}",
        },
    ),
    "kucoin": Case(
        symbol="BTC/USDT",
        timeframe="1h",
        since=1706628191000,
        closes=[43501.0, 43396.4, 43369.4],
        last=Decimal("67400"),
        order_symbol="LTC/USDT",
        order_price=Decimal("70"),
        order_amount=Decimal("0.01"),
        missing_timeframe="7m",
        markets={
            "BTC/USDT": ("1E-8", "0.1", "0.00001", "0.1"),
            "ETH/USDT": ("1E-7", "0.01", "0.0001", "0.01"),
            "LTC/USDT": ("0.01", "0.001", "0.01", "0.1"),
        },
        balance={"USDT": "40.12618754", "LTC": "0.171021"},
        routes={
            "candles": "GET /api/v1/market/candles",
            "ticker": "GET /api/v1/market/stats",
            "order": "POST /api/v1/orders",
            "fetch_order": "GET /api/v1/order/client-order/*",
            "cancel": "DELETE /api/v1/orders/*",
            "balance": "GET /api/v1/accounts",
        },
        leaky_error={"code": "400100", "msg": "bad request from ${header:KC-API-KEY}"},
    ),
    "luno": Case(
        symbol="BTC/EUR",
        timeframe="1m",
        since=1664055000000,
        closes=[19612.65],
        last=Decimal("73998.98"),
        order_symbol="BTC/USDT",
        order_price=Decimal("70000"),
        order_amount=Decimal("0.001"),
        missing_timeframe="2h",
        markets={
            "BTC/EUR": ("0.0001", "0.01", "0.0002", None),
            "BTC/USDT": ("0.0001", "0.01", "0.0005", None),
        },
        balance={"BTC": "0.0015", "ZAR": "0.001417"},
        routes={
            "candles": "GET /api/exchange/1/candles",
            "ticker": "GET /api/1/ticker",
            "order": "POST /api/1/postorder",
            "fetch_order": "GET /api/exchange/3/order",
            "cancel": "POST /api/1/stoporder",
            "balance": "GET /api/1/balance",
        },
        leaky_error={
            "error": "denied for ${header:Authorization}",
            "error_code": "ErrInvalidArguments",
        },
    ),
}


@pytest.fixture
def case(exchange_id: str) -> Case:
    return CASES[exchange_id]


def _leaks(exc: BaseException) -> list[str]:
    basic = base64.b64encode(f"{API_KEY}:{SECRET}".encode()).decode()
    texts = [str(exc), repr(exc), getattr(exc, "message", ""), repr(getattr(exc, "details", ""))]
    return [s for s in (*SECRETS, basic) for t in texts if s in t]


def test_markets_and_precision(make_source, case: Case) -> None:
    source = make_source()
    assert isinstance(source, MarketSource)
    markets = {m.symbol: m for m in source.markets()}
    assert set(markets) == set(case.markets)
    for symbol, (amount_step, price_step, min_amount, min_notional) in case.markets.items():
        info = source.market(symbol)
        assert info == markets[symbol]
        assert info.amount_step == Decimal(amount_step)
        assert info.price_step == Decimal(price_step)
        assert info.min_amount == (Decimal(min_amount) if min_amount else None)
        assert info.min_notional == (Decimal(min_notional) if min_notional else None)
    assert symbol.split("/") == [info.base, info.quote]


def test_unknown_symbol_and_timeframe_raise_without_asking_for_candles(
    make_source, fake_exchange, case: Case
) -> None:
    source = make_source()
    with pytest.raises(UnknownSymbol):
        source.market("NOPE/USDT")
    with pytest.raises(UnknownSymbol):
        source.candles("NOPE/USDT", case.timeframe)
    with pytest.raises(UnknownTimeframe):
        source.candles(case.symbol, case.missing_timeframe)
    assert fake_exchange.requests(case.routes["candles"]) == []


def test_candles_since(make_source, case: Case) -> None:
    candles = make_source().candles(case.symbol, case.timeframe, since_ms=case.since, limit=3)
    assert candles.close.tolist() == case.closes
    assert candles.ts.tolist() == sorted(candles.ts.tolist())
    assert candles.ts[0] >= case.since


def test_still_open_candle_is_dropped(make_source, fake_exchange, case: Case) -> None:
    fake_exchange.live_candles = True  # the recorded rows now end with the candle open right now
    now = time.time()
    source = make_source(now=lambda: now)
    tf_ms = {"1h": 3_600_000, "1m": 60_000}[case.timeframe]
    candles = source.candles(case.symbol, case.timeframe, limit=2)
    assert fake_exchange.requests(case.routes["candles"])
    assert len(candles) <= 2
    assert all(ts + tf_ms <= now * 1000 for ts in candles.ts.tolist())
    if case.symbol != "BTC/EUR":  # luno recorded a single candle, which is the open one
        assert len(candles) >= 1
        assert candles.ts[-1] == int(now * 1000) // tf_ms * tf_ms - tf_ms


def test_last_price(make_source, case: Case) -> None:
    assert make_source().last_price(case.symbol) == case.last


@pytest.mark.parametrize("fault", ["timeout", "rate_limit"])
def test_reads_are_retried(make_source, fake_exchange, sleeps, case: Case, fault: str) -> None:
    source = make_source()
    source.markets()
    fake_exchange.fail(case.routes["ticker"], fault)
    assert source.last_price(case.symbol) == case.last
    assert len(fake_exchange.requests(case.routes["ticker"])) == 2
    assert sleeps == [0.5]


def test_reads_give_up_after_max_retries(make_source, fake_exchange, sleeps, case: Case) -> None:
    source = make_source(max_retries=2, backoff_base_s=0.25)
    source.markets()
    fake_exchange.fail(case.routes["ticker"], "rate_limit", "timeout", "rate_limit", "rate_limit")
    with pytest.raises(ExchangeUnavailable) as err:
        source.last_price(case.symbol)
    assert err.value.status == 503
    assert len(fake_exchange.requests(case.routes["ticker"])) == 3
    assert sleeps == [0.25, 0.5]
    assert not _leaks(err.value)


@pytest.mark.parametrize("fault", ["timeout", "rate_limit"])
def test_create_order_is_sent_once(
    make_source, fake_exchange, sleeps, case: Case, fault: str
) -> None:
    source = make_source()
    source.markets()
    fake_exchange.fail(case.routes["order"], fault)
    with pytest.raises(OrderStateUnknown) as err:
        source.create_order(
            case.order_symbol, "buy", "limit", case.order_amount, case.order_price, "tw-b1-t1"
        )
    assert err.value.client_order_id == "tw-b1-t1"
    assert err.value.reason == {"timeout": "timeout", "rate_limit": "rate_limited"}[fault]
    assert "fetch_order_by_client_id" in err.value.message
    source.close()  # then wait out the server's slow answer: nothing may follow it
    assert fake_exchange.wait_for_no_connections() == 0
    assert len(fake_exchange.requests(case.routes["order"])) == 1
    assert sleeps == []
    assert not _leaks(err.value)


def test_create_order_insufficient_funds(make_source, fake_exchange, case: Case) -> None:
    source = make_source()
    fake_exchange.fail(case.routes["order"], "insufficient_funds")
    with pytest.raises(OrderRejected) as err:
        source.create_order(
            case.order_symbol, "buy", "limit", case.order_amount, case.order_price, "tw-b1-t2"
        )
    assert err.value.code == "insufficient_funds"
    assert err.value.status == 422
    assert len(fake_exchange.requests(case.routes["order"])) == 1
    assert not _leaks(err.value)


def test_create_and_look_up_order(make_source, fake_exchange, case: Case) -> None:
    source = make_source()
    placed = source.create_order(
        case.order_symbol, "buy", "limit", case.order_amount, case.order_price, "tw-b1-t3"
    )
    assert placed["id"]
    assert placed["client_order_id"] == "tw-b1-t3"
    assert placed["symbol"] == case.order_symbol
    assert placed["side"] == "buy"
    assert placed["amount"] == case.order_amount
    (sent,) = fake_exchange.requests(case.routes["order"])
    assert "tw-b1-t3" in sent.params.values()

    found = source.fetch_order_by_client_id("tw-b1-t3", case.order_symbol)
    assert found["client_order_id"] == "tw-b1-t3"
    assert found["id"]
    assert found["status"] in {"open", "closed", "canceled"}
    assert isinstance(found["amount"], Decimal)


def test_order_not_found(make_source, fake_exchange, case: Case) -> None:
    source = make_source()
    source.markets()
    fake_exchange.fail(case.routes["fetch_order"], "order_not_found")
    with pytest.raises(OrderNotFound):
        source.fetch_order_by_client_id("tw-missing", case.order_symbol)


def test_cancel_order(make_source, fake_exchange, case: Case) -> None:
    source = make_source()
    cancelled = source.cancel_order("1234567", case.order_symbol)
    assert cancelled["id"]
    assert len(fake_exchange.requests(case.routes["cancel"])) == 1


def test_fetch_balance(make_source, case: Case) -> None:
    balance = make_source().fetch_balance()
    assert {asset: str(b["total"]) for asset, b in balance.items()} == case.balance


def test_rejected_credentials(make_source, fake_exchange, case: Case) -> None:
    fake_exchange.fail(case.routes["balance"], "auth")
    with pytest.raises(ExchangeAuthFailed) as err:
        make_source().fetch_balance()
    assert err.value.status == 422
    assert len(fake_exchange.requests(case.routes["balance"])) == 1
    assert not _leaks(err.value)


def test_secrets_never_reach_errors_or_logs(
    make_source, fake_exchange, case: Case, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_exchange.add_error("leaky", 400, case.leaky_error)
    source = make_source(max_retries=1)
    source.markets()
    errors: list[BaseException] = []
    for route, call in (
        ("balance", source.fetch_balance),
        (
            "order",
            lambda: source.create_order(
                case.order_symbol, "sell", "limit", case.order_amount, case.order_price, "c1"
            ),
        ),
    ):
        fake_exchange.fail(case.routes[route], "leaky")
        with pytest.raises(ExchangeRejected) as err:
            call()
        errors.append(err.value)
    fake_exchange.fail(case.routes["balance"], "timeout", "timeout")
    with pytest.raises(ExchangeUnavailable) as err:
        source.fetch_balance()
    errors.append(err.value)
    basic = base64.b64encode(f"{API_KEY}:{SECRET}".encode()).decode()
    echoed = [
        r
        for r in fake_exchange.requests()
        if any(API_KEY in v or basic in v for v in r.headers.values())
    ]
    assert echoed, "the fake exchange should have seen the key (so it could leak it)"
    for exc in errors:
        assert exc.__cause__ is None and exc.__context__ is None
        assert not _leaks(exc), exc
    assert not [s for s in SECRETS if s in caplog.text]


def test_close_releases_the_session(make_source, fake_exchange, case: Case) -> None:
    source = make_source()
    source.last_price(case.symbol)
    assert fake_exchange.open_connections() >= 1
    source.close()
    source.close()
    assert source.closed
    assert fake_exchange.wait_for_no_connections() == 0
    for adapter in source.exchange.session.adapters.values():
        assert len(adapter.poolmanager.pools) == 0
    seen = len(fake_exchange.requests())
    with pytest.raises(ExchangeUnavailable):
        source.last_price(case.symbol)
    with pytest.raises(ExchangeUnavailable):
        source.create_order(
            case.order_symbol, "buy", "limit", case.order_amount, case.order_price, "late"
        )
    assert len(fake_exchange.requests()) == seen


def test_rate_limiting_on_and_ccxt_retries_off(make_source, fake_exchange) -> None:
    source = make_source()
    assert source.exchange.enableRateLimit is True
    assert source.exchange.options["maxRetriesOnFailure"] == 0
    urls: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, str):
            urls.append(node)
        elif isinstance(node, dict):
            for v in node.values():
                walk(v)

    walk(source.exchange.urls["api"])
    assert urls
    assert all(u == fake_exchange.url or u.startswith(fake_exchange.url + "/") for u in urls)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("hold", "limit", Decimal("1"), Decimal("1"), "c"), "side"),
        (("buy", "stop", Decimal("1"), Decimal("1"), "c"), "order_type"),
        (("buy", "limit", Decimal("0"), Decimal("1"), "c"), "amount"),
        (("buy", "limit", Decimal("1"), None, "c"), "price"),
        (("buy", "market", Decimal("1"), None, ""), "client_order_id"),
    ],
)
def test_create_order_validates_before_sending(
    make_source, fake_exchange, case: Case, args: tuple, message: str
) -> None:
    with pytest.raises(ValidationFailed, match=message):
        make_source().create_order(case.order_symbol, *args)
    assert fake_exchange.requests(case.routes["order"]) == []


def test_rewrite_api_urls_keeps_paths_in_nested_structures() -> None:
    api = {
        "public": "https://api.binance.com/api/v3",
        "futures": {"rest": "https://fapi.binance.com/fapi/v1", "list": ["https://x.io/a/b"]},
        "bare": "https://api-futures.kucoin.com",
        "template": "https://api.{hostname}/v2",
        "not_a_url": "spot",
    }
    out = rewrite_api_urls(api, "http://127.0.0.1:9000/pre/")
    assert out == {
        "public": "http://127.0.0.1:9000/pre/api/v3",
        "futures": {
            "rest": "http://127.0.0.1:9000/pre/fapi/v1",
            "list": ["http://127.0.0.1:9000/pre/a/b"],
        },
        "bare": "http://127.0.0.1:9000/pre",
        "template": "http://127.0.0.1:9000/pre/v2",
        "not_a_url": "spot",
    }
    assert rewrite_api_urls("https://api.luno.com/api", "http://h:1") == "http://h:1/api"


def test_unknown_exchange_is_rejected() -> None:
    from app.market.ccxt_source import CcxtMarketSource

    with pytest.raises(ValidationFailed) as err:
        CcxtMarketSource("no-such-exchange")
    assert err.value.code == "unknown_exchange"


BINANCE_ERRORS = {
    "bad_symbol": ("GET /api/v3/ticker/24hr", 400, -1121, "Invalid symbol."),
    "lot_size": ("POST /api/v3/order", 400, -1013, "Filter failure: LOT_SIZE"),
    "funds": (
        "POST /api/v3/order",
        400,
        -2010,
        "Account has insufficient balance for requested action.",
    ),
    "auth": ("GET /api/v3/account", 401, -2015, "Invalid API-key, IP, or permissions for action."),
    "other": (
        "GET /api/v3/account",
        400,
        -1000,
        "An unknown error occurred while processing the request.",
    ),
}


@pytest.mark.parametrize(
    ("name", "error", "code"),
    [
        ("bad_symbol", UnknownSymbol, "unknown_symbol"),
        ("lot_size", OrderRejected, "invalid_order"),
        ("funds", OrderRejected, "insufficient_funds"),
        ("auth", ExchangeAuthFailed, "exchange_auth_failed"),
        ("other", ExchangeRejected, "exchange_error"),
    ],
)
def test_binance_error_mapping(sleeps, name: str, error: type, code: str) -> None:
    from app.market.ccxt_source import CcxtMarketSource
    from tests.market.exchange_server import RecordedExchange

    with RecordedExchange("binance") as server:
        source = CcxtMarketSource(
            "binance", API_KEY, SECRET, base_url=server.url, sleep=sleeps.append
        )
        try:
            source.markets()
            route, status, err_code, msg = BINANCE_ERRORS[name]
            server.add_error("mapped", status, {"code": err_code, "msg": msg})
            server.fail(route, "mapped")
            with pytest.raises(error) as err:
                if route.startswith("POST"):
                    source.create_order(
                        "ETH/USDT", "buy", "limit", Decimal("1"), Decimal("1"), "c9"
                    )
                elif "ticker" in route:
                    source.last_price("BTC/USDT")
                else:
                    source.fetch_balance()
            assert err.value.code == code
            assert len(server.requests(route)) == 1
            assert sleeps == []
        finally:
            source.close()
