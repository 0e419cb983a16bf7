"""Which strategy a bot runs: a name (a built-in or a shipped template), or one version of
its owner's strategy document. Versions never change, so a compiled document is cached per
(document, version, timeframe) for every tick after the first."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.strategies import Strategy, get_strategy
from app.domain.strategies.doc_model import DocumentLimits, parse_document
from app.domain.strategies.doc_strategy import DocumentStrategy
from app.errors import NotFound
from app.store.models import Bot
from app.store.models.strategies import StrategyVersion
from config import get_settings

__all__ = [
    "bot_strategy",
    "clear_document_cache",
    "compiled_document",
    "document_limits",
    "document_strategy",
    "version_body",
]

_cache: dict[tuple[int, int, str | None], DocumentStrategy] = {}
_MAX_CACHED = 512


def document_limits() -> DocumentLimits:
    s = get_settings()
    return DocumentLimits(
        max_bytes=s.strategy_max_bytes,
        max_nodes=s.strategy_max_nodes,
        max_indicators=s.strategy_max_indicators,
        max_lookback=s.strategy_max_lookback,
        max_eval_ms=s.strategy_max_eval_ms,
    )


def version_body(session: Session, document_id: int, version: int) -> dict[str, Any]:
    body = session.scalar(
        select(StrategyVersion.body).where(
            StrategyVersion.document_id == document_id, StrategyVersion.version == version
        )
    )
    if body is None:
        raise NotFound(f"strategy document {document_id} has no version {version}")
    return body


def document_strategy(
    session: Session, document_id: int, version: int, timeframe: str | None
) -> DocumentStrategy:
    """The compiled version (bound to `timeframe`), from the cache after the first call."""
    key = (document_id, version, timeframe)
    hit = _cache.get(key)
    if hit is None:
        limits = document_limits()
        doc = parse_document(version_body(session, document_id, version), limits)
        hit = DocumentStrategy(doc, timeframe=timeframe, limits=limits)
        if len(_cache) >= _MAX_CACHED:
            _cache.clear()
        _cache[key] = hit
    return hit


def compiled_document(
    document_id: int, version: int | None, timeframe: str | None
) -> DocumentStrategy | None:
    """The version if this process has compiled it already, else None (no database read)."""
    if version is None:
        return None
    return _cache.get((document_id, version, timeframe))


def clear_document_cache() -> None:
    """Forget compiled versions (tests empty the database, so ids come round again)."""
    _cache.clear()


def bot_strategy(session: Session, bot: Bot) -> Strategy[Any]:
    if bot.strategy_document_id is not None and bot.strategy_version is not None:
        return document_strategy(
            session, bot.strategy_document_id, bot.strategy_version, bot.timeframe
        )
    return get_strategy(bot.strategy, bot.timeframe)
