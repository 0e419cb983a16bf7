"""ccxt adapter (``MARKET_DATA=ccxt``): market data and order routing on a real exchange.

ccxt (sync) is imported when a `CcxtMarketSource` is built, never when this module is
imported (it costs about 0.6 s and 68 MB per process).

Reads (``markets``, ``candles``, ``last_price``, ``fetch_order_by_client_id``,
``fetch_balance``) are retried with exponential backoff (``backoff_base_s * 2**attempt``) on
ccxt's transient errors (NetworkError and its subclasses RequestTimeout, RateLimitExceeded,
DDoSProtection, ExchangeNotAvailable) up to ``max_retries`` times, then raise
`ExchangeUnavailable`. ccxt's own request retry (``maxRetriesOnFailure``) is forced to 0 so that
this is the only retry layer, and rate limiting (``enableRateLimit``) is on.

Writes are never retried. ``create_order`` sends the order at most once: if the request may
have reached the exchange but no answer came back (timeout, dropped connection, 429 / DDoS
protection, exchange unavailable) it raises `OrderStateUnknown`, whose message says to look the
order up by its client order id; the caller decides. ``cancel_order`` likewise.

Exchange errors become our errors (`app.market.errors`) with messages that name the exchange and
its reason; every message is scrubbed of the API key, secret, password and uid (and request
signatures) before it is raised, and ccxt's exception is not chained (its text can carry signed
URLs). ccxt's wire logging goes to a logger pinned above DEBUG, because ccxt logs request
headers (API keys) at DEBUG.

``base_url`` points every API URL of the exchange at another server (tests use a local one):
each string in ``exchange.urls['api']`` (a string or a nested dict) keeps its path and gets the
scheme and host of ``base_url`` (plus its path as a prefix).

Orders are plain dicts: ``id, client_order_id, symbol, side, type, status, price, average,
amount, filled, remaining, cost, fee (dict cost/currency or None), timestamp (ms or None)``
with Decimal numbers. ``status`` is ccxt's (``open``, ``closed``, ``canceled``, ...) or None when
the exchange only acknowledged the request (kucoin and luno answer an order with its id only):
fetch the order for its state.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import numpy as np

from app.domain.candles import Candles
from app.errors import AppError, ValidationFailed
from app.market.base import MarketInfo, timeframe_seconds, to_decimal
from app.market.ccxt_precision import market_info_from_ccxt
from app.market.errors import (
    DuplicateOrder,
    ExchangeAuthFailed,
    ExchangeRejected,
    ExchangeUnavailable,
    NotSupportedByExchange,
    OrderNotFound,
    OrderRejected,
    OrderStateUnknown,
    UnknownSymbol,
    UnknownTimeframe,
)

__all__ = ["CcxtMarketSource", "rewrite_api_urls"]

log = logging.getLogger("tradewind.market.ccxt")
_wire_log = logging.getLogger("tradewind.market.ccxt.wire")
_wire_log.setLevel(logging.INFO)

# Spot only: skip the futures/margin/currency endpoints ccxt would otherwise call on load.
_EXCHANGE_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {
        "fetchMarkets": {"types": ["spot"]},
        "fetchCurrencies": False,
        "fetchMargins": False,
    },
    "kucoin": {"fetchMarkets": {"types": ["spot"], "fetchTickersFees": False}},
}
_LOAD_MARKETS_PARAMS: dict[str, dict[str, Any]] = {"kucoin": {"marginables": False}}
# ccxt maps its unified ``clientOrderId`` param for most exchanges; luno needs its own name.
_CLIENT_ID_PARAM: dict[str, str] = {"luno": "client_order_id"}
_SIGNED_PARAM_RE = re.compile(r"(?i)(signature|apikey|api_key|api-key|passphrase|token)=[^&\s\"']+")


def rewrite_api_urls(api: Any, base_url: str) -> Any:
    """``urls['api']`` with every URL moved onto ``base_url``, keeping each path."""
    if isinstance(api, str):
        parts = urlsplit(api)
        if not parts.scheme:
            return api
        base = urlsplit(base_url)
        return urlunsplit(
            (base.scheme, base.netloc, base.path.rstrip("/") + parts.path, parts.query, "")
        )
    if isinstance(api, Mapping):
        return {k: rewrite_api_urls(v, base_url) for k, v in api.items()}
    if isinstance(api, list):
        return [rewrite_api_urls(v, base_url) for v in api]
    return api


def _dec(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return to_decimal(value)
    except (ArithmeticError, ValueError, TypeError):
        return None


class CcxtMarketSource:
    """`MarketSource` plus order routing over one ccxt exchange; see the module docstring."""

    def __init__(
        self,
        exchange_id: str,
        api_key: str | None = None,
        secret: str | None = None,
        password: str | None = None,
        uid: str | None = None,
        base_url: str | None = None,
        timeout_ms: int = 10_000,
        max_retries: int = 3,
        backoff_base_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        *,
        config: Mapping[str, Any] | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        import ccxt  # deliberately here: importing this module must stay cheap

        exchange_id = (exchange_id or "").strip().lower()
        if exchange_id not in ccxt.exchanges:
            raise ValidationFailed(
                f"unknown exchange {exchange_id!r} for ccxt", code="unknown_exchange"
            )
        if max_retries < 0 or timeout_ms <= 0 or backoff_base_s < 0:
            raise ValidationFailed("max_retries >= 0, timeout_ms > 0, backoff_base_s >= 0")
        self._ccxt = ccxt
        self.name = f"ccxt:{exchange_id}"
        self.exchange_id = exchange_id
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self._sleep = sleep
        self._now = now
        self._secrets = self._secret_variants(api_key, secret, password, uid)

        options: dict[str, Any] = {"defaultType": "spot", "maxRetriesOnFailure": 0}
        options.update(_EXCHANGE_OPTIONS.get(exchange_id, {}))
        settings: dict[str, Any] = {
            "enableRateLimit": True,
            "timeout": int(timeout_ms),
            "logger": _wire_log,
            "options": options,
        }
        for key, value in (
            ("apiKey", api_key),
            ("secret", secret),
            ("password", password),
            ("uid", uid),
        ):
            if value:
                settings[key] = value
        for key, value in (config or {}).items():
            if key == "options":
                options.update(value)
            else:
                settings[key] = value
        exchange = getattr(ccxt, exchange_id)(settings)
        exchange.has = {**exchange.has, "fetchCurrencies": False}
        if base_url:
            exchange.urls = {
                **exchange.urls,
                "api": rewrite_api_urls(exchange.urls["api"], base_url),
            }
        self.exchange = exchange
        self._lock = threading.RLock()
        self._closed = False
        self._market_infos: dict[str, MarketInfo] | None = None

    # -- plumbing ----------------------------------------------------------------------------

    @staticmethod
    def _secret_variants(*values: str | None) -> list[str]:
        found = [v for v in values if v and len(v) >= 4]
        api_key, secret = values[0], values[1]
        if api_key and secret:
            found.append(base64.b64encode(f"{api_key}:{secret}".encode()).decode())
        found += [quote(v, safe="") for v in list(found)]
        return sorted(set(found), key=len, reverse=True)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        text = _SIGNED_PARAM_RE.sub(lambda m: f"{m.group(1)}=***", text)
        return text if len(text) <= 300 else text[:297] + "..."

    def _check_open(self) -> None:
        if self._closed:
            raise ExchangeUnavailable(f"{self.exchange_id} market source is closed")

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return fn(*args, **kwargs)

    def _attempt(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        """One ccxt call; a ccxt error is returned, not raised, so that the error we raise in
        its place carries no reference to it (its text may hold signed URLs, and its HTTP
        response would keep the socket open for as long as the caller keeps our error)."""
        try:
            return self._call(fn, *args, **kwargs), None
        except self._ccxt.BaseError as exc:
            return None, exc

    def _read(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One read, retried with exponential backoff on transient ccxt errors."""
        self._check_open()
        attempt = 0
        while True:
            result, exc = self._attempt(fn, *args, **kwargs)
            if exc is None:
                return result
            error: AppError | None = None
            if not isinstance(exc, self._ccxt.NetworkError):
                error = self._map_error(exc, what)
            elif attempt >= self.max_retries:
                error = ExchangeUnavailable(
                    f"{self.exchange_id} {what} failed after {attempt + 1} attempt(s): "
                    f"{type(exc).__name__}: {self._scrub(str(exc))}"
                )
            kind = type(exc).__name__
            del exc  # our traceback must not reach the ccxt error (see `_attempt`)
            if error is not None:
                raise error
            delay = self.backoff_base_s * (2**attempt)
            log.warning(
                "%s %s: %s, retry %d/%d in %.2fs",
                self.exchange_id,
                what,
                kind,
                attempt + 1,
                self.max_retries,
                delay,
            )
            self._sleep(delay)
            attempt += 1

    def _map_error(self, exc: Exception, what: str) -> AppError:
        ccxt = self._ccxt
        ex = self.exchange_id
        reason = self._scrub(str(exc))
        if isinstance(exc, ccxt.InsufficientFunds):
            return OrderRejected(
                f"{ex} rejected {what}: insufficient funds ({reason})", code="insufficient_funds"
            )
        if isinstance(exc, ccxt.DuplicateOrderId):
            return DuplicateOrder(f"{ex} already has an order with this client order id ({reason})")
        if isinstance(exc, ccxt.OrderNotFound):
            return OrderNotFound(f"{ex}: order not found ({reason})")
        if isinstance(exc, ccxt.InvalidOrder):
            return OrderRejected(
                f"{ex} rejected {what}: invalid order ({reason})", code="invalid_order"
            )
        if isinstance(exc, ccxt.BadSymbol):
            return UnknownSymbol(f"{ex}: unknown symbol ({reason})")
        if isinstance(exc, ccxt.AuthenticationError):
            return ExchangeAuthFailed(
                f"{ex} refused the API credentials for {what} ({type(exc).__name__}: {reason})"
            )
        if isinstance(exc, ccxt.NotSupported):
            return NotSupportedByExchange(f"{ex} does not support {what} ({reason})")
        if isinstance(exc, ccxt.NetworkError):
            return ExchangeUnavailable(f"{ex} {what} failed: {type(exc).__name__}: {reason}")
        return ExchangeRejected(f"{ex} {what} failed: {type(exc).__name__}: {reason}")

    # -- markets -----------------------------------------------------------------------------

    def _load_markets(self) -> dict[str, MarketInfo]:
        if self._market_infos is None:
            params = _LOAD_MARKETS_PARAMS.get(self.exchange_id, {})
            markets = self._read("load markets", self.exchange.load_markets, False, dict(params))
            mode = self.exchange.precisionMode
            infos = {}
            for symbol, m in markets.items():
                if not m.get("spot") or m.get("active") is False:
                    continue
                try:
                    infos[symbol] = market_info_from_ccxt(m, mode)
                except (KeyError, ValueError, ArithmeticError) as exc:
                    log.warning("%s: skipping market %s: %s", self.exchange_id, symbol, exc)
            self._market_infos = infos
        return self._market_infos

    def reload_markets(self) -> None:
        """Forget the cached market list (e.g. after a listing change)."""
        with self._lock:
            self._market_infos = None
            self.exchange.markets = None

    def markets(self) -> list[MarketInfo]:
        return sorted(self._load_markets().values(), key=lambda m: m.symbol)

    def market(self, symbol: str) -> MarketInfo:
        info = self._load_markets().get(symbol)
        if info is None:
            raise UnknownSymbol(f"unknown symbol {symbol!r} on {self.exchange_id}")
        return info

    def price_to_precision(self, symbol: str, price: Decimal) -> Decimal:
        """``price`` rounded the exchange's way (correct in every precision mode)."""
        self.market(symbol)
        return Decimal(self.exchange.price_to_precision(symbol, float(price)))

    def amount_to_precision(self, symbol: str, amount: Decimal) -> Decimal:
        self.market(symbol)
        return Decimal(self.exchange.amount_to_precision(symbol, float(amount)))

    # -- market data -------------------------------------------------------------------------

    def _check_timeframe(self, timeframe: str) -> int:
        tf_ms = timeframe_seconds(timeframe) * 1000
        offered = self.exchange.timeframes or {}
        if timeframe not in offered:
            raise UnknownTimeframe(
                f"{self.exchange_id} does not offer timeframe {timeframe!r}; "
                f"it offers: {', '.join(offered)}"
            )
        return tf_ms

    def candles(
        self,
        symbol: str,
        timeframe: str,
        since_ms: int | None = None,
        limit: int | None = None,
    ) -> Candles:
        tf_ms = self._check_timeframe(timeframe)
        self.market(symbol)
        if limit is not None and limit <= 0:
            return Candles.empty()
        # Without ``since`` the exchange's newest row is usually the open candle: ask for one
        # more so that ``limit`` closed candles remain after dropping it.
        ask = limit + 1 if (limit is not None and since_ms is None) else limit
        rows = self._read(
            "fetch candles", self.exchange.fetch_ohlcv, symbol, timeframe, since_ms, ask
        )
        return self._to_candles(rows or [], tf_ms, limit)

    def _to_candles(self, rows: list[list[Any]], tf_ms: int, limit: int | None) -> Candles:
        clean = [r[:6] for r in rows if len(r) >= 5 and None not in r[:5]]
        if not clean:
            return Candles.empty()
        arr = np.array([[v if v is not None else 0.0 for v in r] for r in clean], dtype=np.float64)
        if arr.shape[1] == 5:
            arr = np.column_stack([arr, np.zeros(len(arr))])
        ts = arr[:, 0].astype(np.int64)
        now_ms = int(self._now() * 1000)
        order = np.argsort(ts, kind="stable")
        ts, arr = ts[order], arr[order]
        keep = np.r_[True, ts[1:] != ts[:-1]] & (ts + tf_ms <= now_ms)
        ts, arr = ts[keep], arr[keep]
        if limit is not None:
            ts, arr = ts[-limit:], arr[-limit:]
        return Candles(ts, *(np.ascontiguousarray(arr[:, i]) for i in range(1, 6)))

    def last_price(self, symbol: str) -> Decimal:
        self.market(symbol)
        ticker = self._read("fetch ticker", self.exchange.fetch_ticker, symbol)
        for key in ("last", "close"):
            price = _dec(ticker.get(key))
            if price is not None and price > 0:
                return price
        bid, ask = _dec(ticker.get("bid")), _dec(ticker.get("ask"))
        if bid and ask:
            return (bid + ask) / 2
        raise ExchangeRejected(f"{self.exchange_id} returned no price for {symbol}")

    # -- account and orders ------------------------------------------------------------------

    def fetch_balance(self) -> dict[str, dict[str, Decimal | None]]:
        """``{asset: {"free", "used", "total"}}`` for assets with a non-zero total."""
        self._load_markets()  # ours first: ccxt would load them without our spot-only params
        raw = self._read("fetch balance", self.exchange.fetch_balance)
        out: dict[str, dict[str, Decimal | None]] = {}
        for asset, total in (raw.get("total") or {}).items():
            entry = raw.get(asset) or {}
            t = _dec(total)
            if t is None or t == 0:
                continue
            out[asset] = {
                "free": _dec(entry.get("free")),
                "used": _dec(entry.get("used")),
                "total": t,
            }
        return out

    def create_order(
        self,
        symbol: str,
        side: str,
        order_type: str,
        amount: Decimal,
        price: Decimal | None,
        client_order_id: str,
    ) -> dict[str, Any]:
        """Place one order, at most once; see the module docstring for the failure contract."""
        if side not in ("buy", "sell"):
            raise ValidationFailed(f"side must be buy or sell, got {side!r}")
        if order_type not in ("market", "limit"):
            raise ValidationFailed(f"order_type must be market or limit, got {order_type!r}")
        if not client_order_id:
            raise ValidationFailed("client_order_id is required")
        if amount is None or amount <= 0:
            raise ValidationFailed("amount must be > 0")
        if order_type == "limit" and (price is None or price <= 0):
            raise ValidationFailed("a limit order needs a price > 0")
        self.market(symbol)  # a read: markets load (with retries) before the single write
        self._check_open()
        params = {_CLIENT_ID_PARAM.get(self.exchange_id, "clientOrderId"): client_order_id}
        raw, exc = self._attempt(
            self.exchange.create_order,
            symbol,
            order_type,
            side,
            float(amount),
            float(price) if price is not None else None,
            params,
        )
        error = self._order_error(exc, client_order_id) if exc is not None else None
        del exc  # our traceback must not reach the ccxt error (see `_attempt`)
        if error is not None:
            raise error
        order = self._order(raw, symbol)
        # Some exchanges only acknowledge (an id); fill in what was asked, leave status None.
        order["client_order_id"] = order["client_order_id"] or client_order_id
        order["side"] = order["side"] or side
        order["type"] = order["type"] or order_type
        if order["amount"] is None:
            order["amount"] = amount
        if order["price"] is None and order_type == "limit":
            order["price"] = price
        return order

    def _order_error(self, exc: Any, client_order_id: str) -> AppError:
        ccxt = self._ccxt
        if not isinstance(exc, ccxt.NetworkError):
            return self._map_error(exc, f"order {client_order_id!r}")
        reason = {
            ccxt.RequestTimeout: "timeout",
            ccxt.RateLimitExceeded: "rate_limited",
            ccxt.DDoSProtection: "rate_limited",
            ccxt.ExchangeNotAvailable: "exchange_unavailable",
        }.get(type(exc), "network")
        return OrderStateUnknown(
            f"{self.exchange_id} create order {client_order_id!r}: no definite answer "
            f"({reason}: {type(exc).__name__}); the order may or may not exist. It was not "
            f"retried: look it up with fetch_order_by_client_id({client_order_id!r}) "
            "before placing it again",
            client_order_id=client_order_id,
            reason=reason,
        )

    def fetch_order_by_client_id(self, client_order_id: str, symbol: str) -> dict[str, Any]:
        """The order placed with ``client_order_id``; raises `OrderNotFound` if none."""
        self.market(symbol)
        if self.exchange_id == "luno":
            raw = self._read("fetch order", self._luno_order_by_client_id, client_order_id)
        else:
            raw = self._read(
                "fetch order",
                self.exchange.fetch_order,
                None,
                symbol,
                {"clientOrderId": client_order_id},
            )
        order = self._order(raw, symbol)
        order["client_order_id"] = order["client_order_id"] or client_order_id
        return order

    def _luno_order_by_client_id(self, client_order_id: str) -> dict[str, Any]:
        """Luno's GET /api/exchange/3/order?client_order_id=..., which ccxt has no method for;
        signed and sent through ccxt so errors and rate limiting behave the same."""
        ex = self.exchange
        ex.throttle()
        req = ex.sign("order", ["exchangePrivate"], "GET", {"client_order_id": client_order_id})
        url = req["url"].replace(f"/{ex.version}/order", "/3/order", 1)
        raw = ex.fetch(url, "GET", req["headers"], req["body"])
        side = (raw.get("side") or "").upper()
        status = (raw.get("status") or "").upper()
        parsed = ex.parse_order(
            {
                **raw,
                "type": "BID" if side == "BUY" else "ASK" if side == "SELL" else raw.get("type"),
                "state": {"AWAITING": "PENDING", "PENDING": "PENDING"}.get(status, status),
            }
        )
        parsed["clientOrderId"] = raw.get("client_order_id") or client_order_id
        return parsed

    def cancel_order(self, order_id: str, symbol: str) -> dict[str, Any]:
        """Cancel once, never retried (a lost answer means: fetch the order to see)."""
        self.market(symbol)
        self._check_open()
        raw, exc = self._attempt(self.exchange.cancel_order, order_id, symbol)
        error: AppError | None = None
        if isinstance(exc, self._ccxt.NetworkError):
            error = ExchangeUnavailable(
                f"{self.exchange_id} cancel order {order_id!r}: no definite answer "
                f"({type(exc).__name__}); fetch the order to see whether it is still open"
            )
        elif exc is not None:
            error = self._map_error(exc, f"cancel of order {order_id!r}")
        del exc  # our traceback must not reach the ccxt error (see `_attempt`)
        if error is not None:
            raise error
        order = self._order(raw or {}, symbol)
        order["id"] = order["id"] or order_id
        return order

    @staticmethod
    def _order(raw: Mapping[str, Any], symbol: str) -> dict[str, Any]:
        fee = raw.get("fee") or None
        return {
            "id": raw.get("id"),
            "client_order_id": raw.get("clientOrderId"),
            "symbol": raw.get("symbol") or symbol,
            "side": raw.get("side"),
            "type": raw.get("type"),
            "status": raw.get("status"),
            "price": _dec(raw.get("price")),
            "average": _dec(raw.get("average")),
            "amount": _dec(raw.get("amount")),
            "filled": _dec(raw.get("filled")),
            "remaining": _dec(raw.get("remaining")),
            "cost": _dec(raw.get("cost")),
            "fee": (
                {"cost": _dec(fee.get("cost")), "currency": fee.get("currency")}
                if fee and fee.get("cost") is not None
                else None
            ),
            "timestamp": raw.get("timestamp"),
        }

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the HTTP session; idempotent, never raises."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self.exchange.close()
            except Exception:  # shutdown must not fail on a broken session
                log.warning("%s: closing the HTTP session failed", self.exchange_id, exc_info=False)

    @property
    def closed(self) -> bool:
        return self._closed
