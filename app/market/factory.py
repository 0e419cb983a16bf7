"""Build a market source from plain options (the config layer maps env vars onto these).

``build_market_source(kind, **options)``:

* ``kind="replay"`` -> `ReplayMarketSource`. Options:
  ``candles_dirs`` (list of directories, later ones override earlier ones) or, instead,
  ``candles_dir`` and/or ``candles_import_dir`` (in that order); ``anchor`` (ISO-8601 instant,
  aware datetime or epoch ms; default 2026-01-01T00:00:00Z); ``speed`` (float > 0, default 1.0);
  ``now`` (callable returning epoch seconds, for tests).
* ``kind="ccxt"`` -> `CcxtMarketSource`. Options: ``exchange_id`` (or ``exchange``; required),
  ``api_key``, ``secret``, ``password``, ``uid``, ``base_url``, ``timeout_ms`` (10000),
  ``max_retries`` (3), ``backoff_base_s`` (0.5), ``sleep``, ``config`` (extra ccxt constructor
  settings), ``now``.

Unknown kinds or options raise ``ValueError`` (a configuration mistake, caught at startup).
This module reads no environment variables and imports neither source until it is asked for
one, so importing it stays cheap.
"""

from __future__ import annotations

from typing import Any

from app.market.base import MarketSource
from app.market.replay import ReplayMarketSource

__all__ = ["MARKET_KINDS", "build_market_source"]

MARKET_KINDS = ("replay", "ccxt")
_REPLAY_OPTIONS = {"candles_dirs", "candles_dir", "candles_import_dir", "anchor", "speed", "now"}
_CCXT_OPTIONS = {
    "exchange_id",
    "exchange",
    "api_key",
    "secret",
    "password",
    "uid",
    "base_url",
    "timeout_ms",
    "max_retries",
    "backoff_base_s",
    "sleep",
    "config",
    "now",
}


def _reject_unknown(kind: str, options: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"unknown option(s) for market source {kind!r}: {', '.join(unknown)}")


def build_market_source(kind: str, **options: Any) -> MarketSource:
    kind = (kind or "").strip().lower()
    if kind == "replay":
        _reject_unknown(kind, options, _REPLAY_OPTIONS)
        dirs = options.pop("candles_dirs", None)
        if dirs is None:
            dirs = [
                d
                for d in (options.pop("candles_dir", None), options.pop("candles_import_dir", None))
                if d
            ]
        else:
            options.pop("candles_dir", None)
            options.pop("candles_import_dir", None)
        if not dirs:
            raise ValueError("replay market source needs candles_dirs (or candles_dir)")
        return ReplayMarketSource(dirs, **options)
    if kind == "ccxt":
        _reject_unknown(kind, options, _CCXT_OPTIONS)
        # lazy: ccxt takes ~1 s and ~100 MB to import, and replay-only processes never need it
        from app.market.ccxt_source import CcxtMarketSource

        exchange_id = options.pop("exchange_id", None) or options.pop("exchange", None)
        options.pop("exchange", None)
        if not exchange_id:
            raise ValueError("ccxt market source needs exchange_id")
        return CcxtMarketSource(exchange_id, **options)
    raise ValueError(f"unknown market source {kind!r}; expected one of {', '.join(MARKET_KINDS)}")
