"""A user's watchlist: tickers of the market source they follow, analysed in one job."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.errors import NotFound, ValidationFailed
from app.market.errors import UnknownSymbol
from app.market.registry import get_market_source
from app.services.analysis import MAX_BULK_TICKERS, build_payload, normalise_ticker
from app.services.analysis import submit_analysis as _submit_analysis
from app.services.jobs import Submission
from app.store.base import utcnow
from app.store.models.analysis import WatchlistItem

MAX_ITEMS = MAX_BULK_TICKERS


def list_items(session: Session, user_id: int) -> list[WatchlistItem]:
    return list(
        session.scalars(
            select(WatchlistItem)
            .where(WatchlistItem.user_id == user_id)
            .order_by(WatchlistItem.ticker)
        )
    )


def _check_listed(ticker: str) -> None:
    try:
        get_market_source().market(ticker)
    except UnknownSymbol:
        raise ValidationFailed(
            f"{ticker} is not a market of the configured market source",
            code="unknown_ticker",
            details=[{"loc": ["body", "ticker"], "msg": "unknown ticker"}],
        ) from None


def add_item(session: Session, user_id: int, raw_ticker: str) -> tuple[WatchlistItem, bool]:
    """Add a ticker (idempotent); returns the item and whether it was new."""
    ticker = normalise_ticker(raw_ticker)
    existing = session.scalars(
        select(WatchlistItem).where(
            WatchlistItem.user_id == user_id, WatchlistItem.ticker == ticker
        )
    ).first()
    if existing is not None:
        return existing, False
    count = session.scalar(
        select(func.count()).select_from(WatchlistItem).where(WatchlistItem.user_id == user_id)
    )
    if (count or 0) >= MAX_ITEMS:
        raise ValidationFailed(f"a watchlist holds at most {MAX_ITEMS} tickers")
    _check_listed(ticker)
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    session.execute(
        insert(WatchlistItem)
        .values(user_id=user_id, ticker=ticker, created_at=utcnow())
        .on_conflict_do_nothing()
    )
    item = session.scalars(
        select(WatchlistItem).where(
            WatchlistItem.user_id == user_id, WatchlistItem.ticker == ticker
        )
    ).one()
    return item, True


def remove_item(session: Session, user_id: int, raw_ticker: str) -> None:
    ticker = normalise_ticker(raw_ticker)
    result = session.execute(
        delete(WatchlistItem).where(
            WatchlistItem.user_id == user_id, WatchlistItem.ticker == ticker
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"{ticker} is not on your watchlist")


def analyze_watchlist(
    session: Session,
    user_id: int,
    *,
    capital: Any,
    idempotency_key: str | None = None,
    **options: Any,
) -> Submission:
    """One analysis job over every ticker on the watchlist."""
    tickers = [item.ticker for item in list_items(session, user_id)]
    if not tickers:
        raise ValidationFailed("the watchlist is empty: add tickers first", code="empty_watchlist")
    payload = build_payload(tickers, capital, limit=MAX_BULK_TICKERS, **options)
    return _submit_analysis(session, user_id, payload, idempotency_key)
