"""Markets, candles and the portfolio; the `import-candles` and `reconcile` commands.

Symbols in URLs: `ETH-BTC` or `ETH%2FBTC` (both mean ETH/BTC).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask
from pydantic import Field

from app.api.jwt import auth_required, current_user
from app.api.request_context import db_session
from app.api.types import ApiModel
from app.api.validation import RequestModel, query, response
from app.domain.numbers import optional_decimal_text
from app.domain.times import iso_ms
from app.market.base import timeframe_seconds
from app.market.cache import cached_candles
from app.market.registry import default_exchange, get_market_source
from app.services.portfolio import get_pricing_snapshot, snapshot_payload, value_portfolio

bp = Blueprint("markets", __name__)


def url_symbol(raw: str) -> str:
    """`ETH-BTC`, `eth-btc` or `ETH/BTC` -> `ETH/BTC`."""
    text = raw.strip()
    if "/" not in text:
        text = text.replace("-", "/", 1)
    return text.upper()


# -- markets and candles -----------------------------------------------------------------


class MarketOut(ApiModel):
    symbol: str
    base: str
    quote: str
    amount_step: str = Field(description="amounts are rounded down to a multiple of this")
    price_step: str = Field(description="prices are on this grid")
    min_amount: str | None = Field(None, description="smallest order amount (base), if any")
    min_notional: str | None = Field(None, description="smallest order value (quote), if any")


class MarketList(ApiModel):
    exchange: str
    items: list[MarketOut]


class CandleQuery(RequestModel):
    timeframe: str = Field(min_length=1, max_length=8, examples=["5m"])
    limit: int = Field(100, ge=1, le=1000)


class CandlesOut(ApiModel):
    exchange: str
    symbol: str
    timeframe: str
    columns: list[str] = Field(description="what each row of `candles` holds")
    candles: list[tuple[str, float, float, float, float, float]] = Field(
        description="closed candles, oldest first: open time (ISO 8601 UTC), open, high, low, "
        "close, volume"
    )


def _source() -> Any:
    exchange = default_exchange()
    return exchange, get_market_source(exchange)


@bp.get("/api/markets")
@auth_required
@response(MarketList)
def list_markets() -> Any:
    """The markets of the configured market data source with their precision and minimums."""
    exchange, source = _source()
    items = [
        MarketOut(
            symbol=m.symbol,
            base=m.base,
            quote=m.quote,
            amount_step=optional_decimal_text(m.amount_step) or "0",
            price_step=optional_decimal_text(m.price_step) or "0",
            min_amount=optional_decimal_text(m.min_amount),
            min_notional=optional_decimal_text(m.min_notional),
        )
        for m in source.markets()
    ]
    return MarketList(exchange=exchange, items=items)


@bp.get("/api/markets/<path:symbol>/candles")
@auth_required
@query(CandleQuery)
@response(CandlesOut)
def market_candles(symbol: str, query: CandleQuery) -> Any:
    """The newest closed candles (from the shared candle cache). Unknown symbol: 404;
    unknown timeframe: 422."""
    timeframe_seconds(query.timeframe)  # 422 before touching the source
    exchange, source = _source()
    name = url_symbol(symbol)
    source.market(name)  # 404 for an unknown symbol
    c = cached_candles(source, name, query.timeframe, query.limit)
    rows = [
        (iso_ms(int(t)), float(o), float(h), float(lo), float(cl), float(v))
        for t, o, h, lo, cl, v in zip(c.ts, c.open, c.high, c.low, c.close, c.volume, strict=True)
    ]
    return CandlesOut(
        exchange=exchange,
        symbol=name,
        timeframe=query.timeframe,
        columns=["ts", "open", "high", "low", "close", "volume"],
        candles=rows,
    )


# -- portfolio ---------------------------------------------------------------------------


class PortfolioQuery(RequestModel):
    currency: str | None = Field(
        None, min_length=2, max_length=10, description="default: the user's base currency"
    )


class AssetValue(ApiModel):
    asset: str
    exchange: str
    amount: str
    priced: bool
    rate: str | None = Field(None, description="base-currency units per unit of the asset")
    value: str | None
    path: list[str] | None = Field(None, description="markets (and pegs) the rate came from")
    reason: str | None = Field(None, description="why the asset is unpriced")


class Unpriced(ApiModel):
    asset: str
    exchange: str
    amount: str
    reason: str


class BotValue(ApiModel):
    bot_id: int
    name: str
    exchange: str
    symbol: str
    quote: str
    value: str | None
    complete: bool


class PortfolioOut(ApiModel):
    snapshot_id: int
    as_of: str
    base_currency: str = Field(description="the currency the values are in")
    requested_currency: str = Field(
        description="the currency asked for; differs from base_currency when some asset had "
        "no market path to it and the bots' quote currency was used instead"
    )
    total: str = Field(description="sum of the priced assets")
    complete: bool = Field(description="false when some asset could not be priced")
    assets: list[AssetValue]
    unpriced: list[Unpriced]
    bots: list[BotValue]
    prices: dict[str, dict[str, str]] = Field(description="exchange -> symbol -> price used")
    assumptions: list[str]


@bp.get("/api/portfolio")
@auth_required
@query(PortfolioQuery)
@response(PortfolioOut)
def portfolio(query: PortfolioQuery) -> Any:
    """Every bot's holdings valued in the base currency (or, when an asset has no path to it,
    in the bots' quote currency), kept as a pricing snapshot when the inputs changed."""
    snap = value_portfolio(db_session(), current_user(), currency=query.currency)
    return snapshot_payload(snap)


@bp.get("/api/portfolio/snapshots/<int:snapshot_id>")
@auth_required
@response(PortfolioOut)
def portfolio_snapshot(snapshot_id: int) -> Any:
    """A stored valuation, exactly as it was computed (prices and FX included)."""
    return snapshot_payload(get_pricing_snapshot(db_session(), current_user(), snapshot_id))


# -- commands ----------------------------------------------------------------------------


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
