"""Portfolio valuation: rates only from market data (plus disclosed stablecoin pegs), unpriced
assets say why, and every valuation is stored so it can be shown and recomputed again."""

from __future__ import annotations

from decimal import Decimal, localcontext
from pathlib import Path

import pytest

from app.engine.broker import place_order, process_fills
from app.errors import NotFound, ValidationFailed
from app.market.replay import ReplayMarketSource
from app.services.portfolio import find_path, get_pricing_snapshot, revalue, value_portfolio
from app.store.db import session_scope
from app.store.models import Bot, User
from app.store.models.ledger import Balance, PricingSnapshot
from config import get_settings, use_settings
from tests.engine.ledger_helpers import ETH_BTC, at, candles, create_bot
from tests.support.processes import ROOT

D = Decimal
ANCHOR_MS = 1_767_225_600_000
MARKETS = [("ETH/BTC", "ETH", "BTC"), ("BTC/USDT", "BTC", "USDT"), ("USDT/ZAR", "USDT", "ZAR")]


def test_paths_are_shortest_deterministic_and_may_invert_a_pair() -> None:
    assert find_path("BTC", "BTC", MARKETS) == []
    assert find_path("ETH", "BTC", MARKETS) == [{"symbol": "ETH/BTC", "invert": False}]
    assert find_path("ZAR", "BTC", MARKETS) == [
        {"symbol": "USDT/ZAR", "invert": True},
        {"symbol": "BTC/USDT", "invert": True},
    ]
    assert find_path("ETH", "ZAR", MARKETS) == [
        {"symbol": "ETH/BTC", "invert": False},
        {"symbol": "BTC/USDT", "invert": False},
        {"symbol": "USDT/ZAR", "invert": False},
    ]
    assert find_path("ETH", "USD", MARKETS) is None
    assert find_path("BTC", "USD", MARKETS, {"USDT": "USD"})[-1] == {"peg": "USDT", "to": "USD"}
    assert find_path("ETH", "EUR", MARKETS, {"USDT": "USD"}) is None
    # a direct market beats a peg of the same length
    both = [*MARKETS, ("BTC/USD", "BTC", "USD")]
    assert find_path("BTC", "USD", both, {"USDT": "USD"}) == [
        {"symbol": "BTC/USD", "invert": False}
    ]


def _write_csv(path: Path, price: float) -> None:
    rows = ["timestamp,open,high,low,close,volume"]
    for i in range(2 * 288):  # two days of 5m candles
        p = price * (1 + 0.0001 * (i % 7))
        rows.append(f"{ANCHOR_MS + i * 300_000},{p:.2f},{p * 1.001:.2f},{p * 0.999:.2f},{p:.2f},1")
    path.write_text("\n".join(rows) + "\n")


@pytest.fixture
def source(tmp_path: Path) -> ReplayMarketSource:
    _write_csv(tmp_path / "BINANCE_BTC-USDT_5m.csv", 42_000.0)
    _write_csv(tmp_path / "LUNO_USDT-ZAR_5m.csv", 18.5)
    now = (ANCHOR_MS + 86_400_000 + 1_234_000) / 1000
    return ReplayMarketSource([ROOT / "data" / "candles", tmp_path], now=lambda: now)


@pytest.fixture
def user_with_bot(app, make_user) -> tuple[User, int]:
    user = make_user(base_currency="ZAR")
    bot_id = create_bot(user.id, capital=D("0.8"))
    with session_scope() as db:
        bot = db.get(Bot, bot_id)
        place_order(db, bot, side="buy", order_type="market", client_order_id="p-1",
                    quote_amount=D("0.3"), now=at(1), market=ETH_BTC,
                    reference_price=D("0.08"))  # fmt: skip
        process_fills(db, bot, candles([(0.08, 0.081, 0.079, 0.08)]), at(6), market=ETH_BTC)
    return user, bot_id


def _holdings(bot_id: int) -> dict[str, Decimal]:
    with session_scope() as db:
        return {b.asset: b.total for b in db.query(Balance).filter(Balance.bot_id == bot_id)}


def test_zar_valuation_goes_through_the_markets(session, source, user_with_bot) -> None:
    user, bot_id = user_with_bot
    snap = value_portfolio(session, user, sources={"replay": source})
    v = snap.valuation
    assert v["base_currency"] == "ZAR" and v["complete"] and v["unpriced"] == []
    held = _holdings(bot_id)
    eth_btc = source.last_price("ETH/BTC")
    btc_usdt = source.last_price("BTC/USDT")
    usdt_zar = source.last_price("USDT/ZAR")
    by_asset = {a["asset"]: a for a in v["assets"]}
    assert by_asset["ETH"]["path"] == ["ETH/BTC", "BTC/USDT", "USDT/ZAR"]
    assert by_asset["BTC"]["path"] == ["BTC/USDT", "USDT/ZAR"]
    with localcontext() as ctx:
        ctx.prec = 60
        btc_zar = btc_usdt * usdt_zar
        expected_btc = (held["BTC"] * btc_zar).quantize(D("1E-18"))
        expected_eth = (held["ETH"] * eth_btc * btc_zar).quantize(D("1E-18"))
    assert D(by_asset["BTC"]["value"]) == expected_btc
    assert D(by_asset["ETH"]["value"]) == expected_eth
    assert D(v["total"]) == expected_btc + expected_eth == snap.total
    assert v["prices"]["replay"] == {
        "ETH/BTC": str(eth_btc.normalize()),
        "BTC/USDT": str(btc_usdt.normalize()),
        "USDT/ZAR": str(usdt_zar.normalize()),
    }
    assert v["assumptions"] == []
    assert v["bots"] == [
        {"bot_id": bot_id, "name": "test bot", "exchange": "replay", "symbol": "ETH/BTC",
         "quote": "BTC", "value": v["total"], "complete": True}
    ]  # fmt: skip


def test_usd_uses_the_disclosed_peg_and_without_it_nothing_is_invented(
    session, source, user_with_bot
) -> None:
    user, _ = user_with_bot
    v = value_portfolio(session, user, currency="usd", sources={"replay": source}).valuation
    assert v["complete"] and v["base_currency"] == "USD"
    by_asset = {a["asset"]: a for a in v["assets"]}
    assert by_asset["BTC"]["path"] == ["BTC/USDT", "USDT=USD (1:1 peg)"]
    assert v["assumptions"] == ["USDT counted as 1 USD (peg)"]

    previous = get_settings()
    use_settings(previous.model_copy(update={"portfolio_usd_pegs": ""}))
    try:
        v = value_portfolio(session, user, currency="USD", sources={"replay": source}).valuation
    finally:
        use_settings(previous)
    # no path to USD: valued in the bot's quote currency, and the answer says so
    assert v["complete"] and v["requested_currency"] == "USD" and v["base_currency"] == "BTC"
    assert D(v["total"]) > 0 and v["unpriced"] == []
    assert v["assumptions"][0].startswith("no market path to USD for every asset: valued in BTC")
    assert {a["asset"]: a["path"] for a in v["assets"]} == {"BTC": [], "ETH": ["ETH/BTC"]}


def test_an_unknown_currency_is_refused(session, source, user_with_bot):
    user, _ = user_with_bot
    with pytest.raises(ValidationFailed) as err:
        value_portfolio(session, user, currency="XYZ", sources={"replay": source})
    assert err.value.code == "unknown_currency" and "XYZ" in err.value.message
    # in the bot's own quote currency everything is priced from one market
    v = value_portfolio(session, user, currency="BTC", sources={"replay": source}).valuation
    assert v["complete"] and v["requested_currency"] == "BTC"


def test_reading_again_stores_no_new_snapshot_until_the_inputs_change(
    session, source, user_with_bot
) -> None:
    user, bot_id = user_with_bot
    first = value_portfolio(session, user, sources={"replay": source})
    again = value_portfolio(session, user, sources={"replay": source})
    assert again.id == first.id
    assert session.query(PricingSnapshot).filter_by(user_id=user.id).count() == 1
    balance = session.get(Balance, (bot_id, "BTC"))
    balance.free += D("0.1")  # the holdings changed: a new valuation is kept
    session.flush()
    changed = value_portfolio(session, user, sources={"replay": source})
    assert changed.id != first.id and D(changed.valuation["total"]) > D(first.valuation["total"])


def test_a_snapshot_reproduces_its_valuation_and_is_private(
    session, source, user_with_bot, make_user
) -> None:
    user, _ = user_with_bot
    snap = value_portfolio(session, user, sources={"replay": source})
    session.commit()
    stored = get_pricing_snapshot(session, user, snap.id)
    assert revalue(stored.inputs) == stored.valuation
    assert stored.inputs["holdings"] and stored.inputs["paths"]
    with pytest.raises(NotFound):
        get_pricing_snapshot(session, make_user(), snap.id)
    with pytest.raises(NotFound):
        get_pricing_snapshot(session, user, snap.id + 1000)
