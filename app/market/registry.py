"""Process-wide market sources, built from settings on first use and closed on shutdown.

`get_market_source()` is the configured default (`MARKET_DATA`: the replay feed, or the ccxt
exchange named by `CCXT_EXCHANGE`); `get_market_source("replay")` is always the replay feed
and `get_market_source("kucoin")` a public-data ccxt source for that exchange.
"""

from __future__ import annotations

import threading
from typing import Any

from app.market.base import MarketSource
from app.market.factory import build_market_source

_lock = threading.Lock()
_sources: dict[str, MarketSource] = {}


def _options(exchange: str) -> tuple[str, dict[str, Any]]:
    from config import get_settings

    settings = get_settings()
    if exchange == "replay":
        return "replay", {
            "candles_dirs": [settings.candles_dir, settings.candles_import_dir],
            "anchor": settings.replay_anchor,
            "speed": settings.replay_speed,
        }
    options: dict[str, Any] = {
        "exchange_id": exchange,
        "timeout_ms": settings.ccxt_timeout_ms,
        "max_retries": settings.ccxt_max_retries,
        "backoff_base_s": settings.ccxt_backoff_base_s,
    }
    if exchange == settings.ccxt_exchange:
        options.update(
            base_url=settings.ccxt_base_url,
            api_key=settings.ccxt_api_key,
            secret=settings.ccxt_secret,
            password=settings.ccxt_password,
            uid=settings.ccxt_uid,
        )
    return "ccxt", options


def default_exchange() -> str:
    from config import get_settings

    settings = get_settings()
    return "replay" if settings.market_data == "replay" else settings.ccxt_exchange


def get_market_source(exchange: str | None = None) -> MarketSource:
    """The shared source for an exchange id ("replay" or a ccxt id); default per MARKET_DATA."""
    key = (exchange or default_exchange()).strip().lower()
    with _lock:
        source = _sources.get(key)
        if source is None:
            kind, options = _options(key)
            source = build_market_source(kind, **options)
            _sources[key] = source
        return source


def close_market_sources() -> None:
    """Close every source (exchange sessions included); safe to call twice."""
    with _lock:
        sources = list(_sources.values())
        _sources.clear()
    for source in sources:
        source.close()
