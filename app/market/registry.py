"""Process-wide market sources, built from settings on first use and closed on shutdown.

`get_market_source()` is the configured default (`MARKET_DATA`: the replay feed, or the ccxt
exchange named by `CCXT_EXCHANGE`); `get_market_source("replay")` is always the replay feed
and `get_market_source("kucoin")` a public-data ccxt source for that exchange.

`get_account_source(key, exchange, api_key=..., ...)` is a source signed with one user's
exchange credentials (live trading), built once per `key` and closed with the others.
"""

from __future__ import annotations

import threading
from typing import Any

from app.market.base import MarketSource
from app.market.factory import build_market_source
from config import get_settings

REPLAY_EXCHANGE = "replay"  # recorded candles, paper fills only: never a live market

_lock = threading.Lock()
_sources: dict[str, MarketSource] = {}
_accounts: dict[str, Any] = {}


def _options(exchange: str) -> tuple[str, dict[str, Any]]:
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


def get_account_source(
    key: str,
    exchange: str,
    *,
    api_key: str,
    secret: str,
    password: str | None = None,
    uid: str | None = None,
) -> Any:
    """The ccxt source of one exchange account, built on first use for `key` (which names the
    credential and its version: `"<id>:<fingerprint>"`); an older version of the same
    credential is closed when its replacement is built. The settings' `CCXT_BASE_URL` applies
    when `exchange` is the configured `CCXT_EXCHANGE`, as for the public sources."""
    exchange = exchange.strip().lower()
    stale: list[Any] = []
    with _lock:
        source = _accounts.get(key)
        if source is None:
            _kind, options = _options(exchange)
            options.update(api_key=api_key, secret=secret, password=password, uid=uid)
            source = build_market_source("ccxt", **options)
            prefix = key.split(":", 1)[0] + ":"
            for old in [k for k in _accounts if k.startswith(prefix)]:
                stale.append(_accounts.pop(old))
            _accounts[key] = source
    for old_source in stale:
        old_source.close()
    return source


def close_market_sources() -> None:
    """Close every source (exchange and account sessions included); safe to call twice."""
    with _lock:
        sources = [*_sources.values(), *_accounts.values()]
        _sources.clear()
        _accounts.clear()
    for source in sources:
        source.close()
