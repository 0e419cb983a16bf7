"""GET /api/markets, /api/markets/{symbol}/candles, /api/portfolio and its snapshots."""

from __future__ import annotations

import time
from datetime import datetime
from decimal import Decimal

import pytest

from app.domain.times import to_ms
from app.engine.broker import place_order, process_fills
from app.store.db import session_scope
from app.store.models import Bot
from tests.engine.ledger_helpers import ETH_BTC, at, candles, create_bot


@pytest.fixture
def user(make_user):
    return make_user()


def test_everything_needs_a_token(client) -> None:
    for url in (
        "/api/markets",
        "/api/markets/ETH-BTC/candles?timeframe=5m",
        "/api/portfolio",
        "/api/portfolio/snapshots/1",
    ):
        resp = client.get(url)
        assert resp.status_code == 401, url
        assert resp.get_json()["error"]["code"] == "unauthorized"


def test_markets_list_precision_and_minimums(client, user, auth_headers) -> None:
    resp = client.get("/api/markets", headers=auth_headers(user))
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["exchange"] == "replay"
    eth = next(m for m in body["items"] if m["symbol"] == "ETH/BTC")
    assert eth == {
        "symbol": "ETH/BTC",
        "base": "ETH",
        "quote": "BTC",
        "amount_step": "0.001",
        "price_step": "0.000001",
        "min_amount": None,
        "min_notional": None,
    }


@pytest.mark.parametrize("spelling", ["ETH-BTC", "ETH%2FBTC", "eth-btc"])
def test_candles_by_url_symbol(client, user, auth_headers, spelling) -> None:
    resp = client.get(
        f"/api/markets/{spelling}/candles?timeframe=15m&limit=7", headers=auth_headers(user)
    )
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["symbol"] == "ETH/BTC" and body["timeframe"] == "15m"
    assert body["columns"] == ["ts", "open", "high", "low", "close", "volume"]
    rows = body["candles"]
    assert len(rows) == 7
    assert all(r[0].endswith("Z") for r in rows)  # ISO 8601 UTC, like every other timestamp
    ts = [to_ms(datetime.fromisoformat(r[0])) for r in rows]
    assert ts == sorted(ts) and all(b - a == 900_000 for a, b in zip(ts, ts[1:], strict=False))
    assert ts[-1] + 900_000 <= time.time() * 1000  # closed candles only
    assert all(r[2] >= max(r[1], r[4]) and r[3] <= min(r[1], r[4]) for r in rows)


@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        ("/api/markets/DOGE-BTC/candles?timeframe=5m", 404, "unknown_symbol"),
        ("/api/markets/ETH-BTC/candles?timeframe=7m", 422, "unknown_timeframe"),
        ("/api/markets/ETH-BTC/candles", 422, "validation_error"),
        ("/api/markets/ETH-BTC/candles?timeframe=5m&limit=0", 422, "validation_error"),
        ("/api/markets/ETH-BTC/candles?timeframe=5m&limit=100000", 422, "validation_error"),
        ("/api/markets/ETH-BTC/candles?timeframe=5m&limit=abc", 422, "validation_error"),
        ("/api/markets/ETH-BTC/candles?timeframe=5m&extra=1", 422, "validation_error"),
        ("/api/portfolio?currency=%24%24", 422, "validation_error"),
    ],
)
def test_bad_requests_get_clear_errors(client, user, auth_headers, url, status, code) -> None:
    resp = client.get(url, headers=auth_headers(user))
    assert resp.status_code == status, resp.get_json()
    err = resp.get_json()["error"]
    assert err["code"] == code and err["message"]


def test_portfolio_is_stored_reproducible_and_private(
    client, user, make_user, auth_headers
) -> None:
    bot_id = create_bot(user.id, capital=Decimal("2"))
    with session_scope() as db:
        bot = db.get(Bot, bot_id)
        place_order(db, bot, side="buy", order_type="market", client_order_id="api-1",
                    quote_amount=Decimal("1"), now=at(1), market=ETH_BTC,
                    reference_price=Decimal("0.08"))  # fmt: skip
        process_fills(db, bot, candles([(0.08, 0.081, 0.079, 0.08)]), at(6), market=ETH_BTC)

    # the shipped replay data has no path from BTC to USD: valued in the bots' quote
    # currency instead (a non-zero total), and the answer says so; no rate is invented
    usd = client.get("/api/portfolio", headers=auth_headers(user))
    assert usd.status_code == 200, usd.get_json()
    body = usd.get_json()
    assert body["requested_currency"] == "USD" and body["base_currency"] == "BTC"
    assert body["complete"] is True and Decimal(body["total"]) > 0
    assert body["assumptions"][0].startswith("no market path to USD")
    assert body["as_of"].endswith("Z")
    # reading again stores nothing new while nothing changed
    assert client.get("/api/portfolio", headers=auth_headers(user)).get_json() == body

    unknown = client.get("/api/portfolio?currency=XYZ", headers=auth_headers(user))
    assert unknown.status_code == 422 and unknown.get_json()["error"]["code"] == "unknown_currency"

    btc = client.get("/api/portfolio?currency=btc", headers=auth_headers(user)).get_json()
    assert btc["complete"] is True and btc["base_currency"] == "BTC"
    assert btc["requested_currency"] == "BTC" and btc["assumptions"] == []
    eth = next(a for a in btc["assets"] if a["asset"] == "ETH")
    assert eth["path"] == ["ETH/BTC"] and eth["rate"] == btc["prices"]["replay"]["ETH/BTC"]
    assert Decimal(btc["total"]) == sum(Decimal(a["value"]) for a in btc["assets"])
    assert btc["bots"][0]["bot_id"] == bot_id and btc["bots"][0]["value"] == btc["total"]

    again = client.get(f"/api/portfolio/snapshots/{btc['snapshot_id']}", headers=auth_headers(user))
    assert again.status_code == 200 and again.get_json() == btc

    stranger = make_user()
    hidden = client.get(
        f"/api/portfolio/snapshots/{btc['snapshot_id']}", headers=auth_headers(stranger)
    )
    assert hidden.status_code == 404
    empty = client.get("/api/portfolio", headers=auth_headers(stranger)).get_json()
    assert empty["assets"] == [] and empty["bots"] == [] and empty["complete"] is True
