"""A user's holdings across all bots, valued in the user's base currency, reproducibly.

Rates come only from market data: an asset is converted along the shortest chain of markets
of the bot's exchange (ETH -> BTC through ETH/BTC, BTC -> ZAR through BTC/ZAR, or through an
inverted pair such as ZAR/BTC), at most `MAX_HOPS` markets long, each at the source's last
price. The only rates not read from a market are the configured stablecoin pegs
(`PORTFOLIO_USD_PEGS`, default "USDT,USDC": one unit counts as one USD); a path that uses one
says so. An asset with no path is listed as unpriced with the reason, never given a made-up
rate, and the total is then marked incomplete.

When some asset has no path to the requested currency, the holdings are valued in the bots'
quote currency instead (the most common first) if everything can be priced there: the answer
says so (`requested_currency`, and a line in `assumptions`) rather than showing a total of 0.
A currency that no market of the user's exchanges trades (and that is not USD or a peg)
is refused (422).

Every valuation is stored as a `PricingSnapshot`: its inputs (holdings, the prices of the
markets on the paths, the paths, the pegs) and its result. `revalue(inputs)` recomputes the
result from the inputs alone, which is how a stored valuation is reproduced and checked.
Reading the portfolio stores a new snapshot only when the inputs changed (prices moved,
holdings changed); otherwise it answers the latest stored one.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.numbers import optional_decimal_text as _fmt
from app.domain.times import iso
from app.errors import AppError, NotFound, ValidationFailed
from app.market.base import MarketSource
from app.market.registry import default_exchange, get_market_source
from app.store.base import utcnow
from app.store.models import Bot, User
from app.store.models.ledger import Balance, Position, PricingSnapshot
from config import get_settings

__all__ = [
    "MAX_HOPS",
    "find_path",
    "get_pricing_snapshot",
    "revalue",
    "snapshot_payload",
    "usd_pegs",
    "value_portfolio",
]

MAX_HOPS = 3
ZERO = Decimal(0)
QUANTUM = Decimal("1E-18")

Market = tuple[str, str, str]  # symbol, base, quote
Step = dict[str, Any]  # {"symbol", "invert"} or {"peg": "USDT", "to": "USD"}


def usd_pegs() -> list[str]:
    raw = get_settings().portfolio_usd_pegs
    return [p.strip().upper() for p in raw.split(",") if p.strip()]


def find_path(
    asset: str, target: str, markets: Iterable[Market], pegs: dict[str, str] | None = None
) -> list[Step] | None:
    """The shortest conversion from `asset` to `target` (fewest steps, then fewest pegs,
    then alphabetical, so the same markets always give the same path); None if none exists."""
    if asset == target:
        return []
    graph: dict[str, list[tuple[str, Step]]] = {}
    for symbol, base, quote in sorted(markets):
        graph.setdefault(base, []).append((quote, {"symbol": symbol, "invert": False}))
        graph.setdefault(quote, []).append((base, {"symbol": symbol, "invert": True}))
    for coin, fiat in sorted((pegs or {}).items()):
        graph.setdefault(coin, []).append((fiat, {"peg": coin, "to": fiat}))
        graph.setdefault(fiat, []).append((coin, {"peg": fiat, "to": coin}))
    for edges in graph.values():
        edges.sort(key=lambda e: ("peg" in e[1], e[1].get("symbol", ""), e[0]))
    seen = {asset}
    queue: deque[tuple[str, list[Step]]] = deque([(asset, [])])
    while queue:
        node, path = queue.popleft()
        if len(path) >= MAX_HOPS:
            continue
        for nxt, step in graph.get(node, []):
            if nxt in seen:
                continue
            if nxt == target:
                return [*path, step]
            seen.add(nxt)
            queue.append((nxt, [*path, step]))
    return None


def _describe(path: list[Step]) -> list[str]:
    out = []
    for step in path:
        if "peg" in step:
            out.append(f"{step['peg']}={step['to']} (1:1 peg)")
        else:
            out.append(f"1/{step['symbol']}" if step["invert"] else step["symbol"])
    return out


def _rate(path: list[Step], prices: dict[str, str]) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 60
        rate = Decimal(1)
        for step in path:
            if "peg" in step:
                continue
            price = Decimal(prices[step["symbol"]])
            rate = rate / price if step["invert"] else rate * price
        return rate


def revalue(inputs: dict[str, Any]) -> dict[str, Any]:
    """The valuation of stored inputs (pure: no market access), as `value_portfolio` made it."""
    base = inputs["base_currency"]
    requested = inputs.get("requested_currency", base)
    assets: list[dict[str, Any]] = []
    totals: dict[tuple[str, str], dict[str, Any]] = {}
    for h in inputs["holdings"]:
        key = (h["exchange"], h["asset"])
        slot = totals.setdefault(key, {"amount": ZERO, "bots": []})
        slot["amount"] += Decimal(h["amount"])
        slot["bots"].append(h["bot_id"])
    bot_values: dict[int, Decimal | None] = {}
    total = ZERO
    complete = True
    for (exchange, asset), slot in sorted(totals.items()):
        route = inputs["paths"].get(f"{exchange}:{asset}")
        entry: dict[str, Any] = {
            "asset": asset,
            "exchange": exchange,
            "amount": _fmt(slot["amount"]),
            "priced": False,
            "rate": None,
            "value": None,
            "path": None,
            "reason": None,
        }
        if route is None or "reason" in route:
            entry["reason"] = (route or {}).get("reason", f"no price path to {base}")
            complete = False
        else:
            rate = _rate(route["steps"], inputs["prices"].get(exchange, {}))
            value = _value(slot["amount"], rate)
            entry.update(priced=True, rate=_fmt(_q(rate)), value=_fmt(value),
                         path=_describe(route["steps"]))  # fmt: skip
            total += value
        assets.append(entry)
    for h in inputs["holdings"]:
        route = inputs["paths"].get(f"{h['exchange']}:{h['asset']}")
        bot_id = int(h["bot_id"])
        current = bot_values.get(bot_id, ZERO)
        if route is None or "reason" in route or current is None:
            bot_values[bot_id] = None
            continue
        rate = _rate(route["steps"], inputs["prices"].get(h["exchange"], {}))
        bot_values[bot_id] = current + _value(Decimal(h["amount"]), rate)
    bots = []
    for b in inputs["bots"]:
        value = bot_values.get(int(b["bot_id"]), ZERO)
        bots.append({**b, "value": _fmt(value), "complete": value is not None})
    assumptions = [
        f"{coin} counted as 1 {fiat} (peg)" for coin, fiat in sorted(_used_pegs(inputs))
    ]
    if requested != base:
        assumptions.insert(
            0, f"no market path to {requested} for every asset: valued in {base}, the bots' "
            "quote currency",
        )
    return {
        "base_currency": base,
        "requested_currency": requested,
        "total": _fmt(total),
        "complete": complete,
        "assets": assets,
        "unpriced": [
            {k: a[k] for k in ("asset", "exchange", "amount", "reason")}
            for a in assets
            if not a["priced"]
        ],
        "bots": bots,
        "prices": inputs["prices"],
        "assumptions": assumptions,
    }


def _used_pegs(inputs: dict[str, Any]) -> set[tuple[str, str]]:
    used = set()
    for route in inputs["paths"].values():
        for step in route.get("steps", []):
            if "peg" in step:
                used.add((step["peg"], step["to"]))
    return used


def _q(value: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 60
        return value.quantize(QUANTUM, rounding=ROUND_HALF_EVEN)


def _value(amount: Decimal, rate: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 60
        return _q(amount * rate)


def _check_currency(code: str) -> str:
    code = code.strip().upper()
    if not (2 <= len(code) <= 10 and code.isalnum()):
        raise ValidationFailed(f"currency must be 2-10 letters or digits, got {code!r}")
    return code


def _source(exchange: str) -> Any:
    return get_market_source(exchange)


def _holdings(session: Session, user: User) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    bots = list(
        session.scalars(
            select(Bot).where(Bot.user_id == user.id, Bot.deleted_at.is_(None)).order_by(Bot.id)
        )
    )
    positions = {
        p.bot_id: p
        for p in session.scalars(select(Position).where(Position.bot_id.in_([b.id for b in bots])))
    }
    balances = list(
        session.scalars(
            select(Balance)
            .where(Balance.bot_id.in_(list(positions)))
            .order_by(Balance.bot_id, Balance.asset)
        )
    )
    exchange_of = {b.id: b.exchange.strip().lower() for b in bots}
    holdings = [
        {
            "bot_id": b.bot_id,
            "exchange": exchange_of[b.bot_id],
            "asset": b.asset,
            "amount": _fmt(b.total),
        }
        for b in balances
        if b.total != 0
    ]
    bot_rows = [
        {
            "bot_id": b.id,
            "name": b.name,
            "exchange": exchange_of[b.id],
            "symbol": b.symbol,
            "quote": positions[b.id].quote,
        }
        for b in bots
        if b.id in positions
    ]
    return holdings, bot_rows


def value_portfolio(
    session: Session,
    user: User,
    *,
    currency: str | None = None,
    sources: Mapping[str, MarketSource] | None = None,
) -> PricingSnapshot:
    """Value every bot's balances of `user` in `currency` (default: the user's base currency)
    - or, when some asset has no path there, in the bots' quote currency - and store the
    valuation with its inputs unless the latest stored one has the same inputs.
    `sources` (exchange -> source) overrides the process registry, for tests and scripts."""
    requested = _check_currency(currency or user.base_currency or "USD")
    pegs = {coin: "USD" for coin in usd_pegs() if coin != "USD"}
    holdings, bot_rows = _holdings(session, user)
    if currency is not None:
        _check_known(requested, {h["exchange"] for h in holdings}, sources, pegs)
    inputs = _inputs(requested, holdings, bot_rows, pegs, sources)
    valuation = revalue(inputs)
    if not valuation["complete"]:
        for quote in _quote_currencies(bot_rows, requested):
            alternative = {**_inputs(quote, holdings, bot_rows, pegs, sources),
                           "requested_currency": requested}  # fmt: skip
            if revalue(alternative)["complete"]:
                inputs, valuation = alternative, revalue(alternative)
                break
    latest = session.scalar(
        select(PricingSnapshot)
        .where(PricingSnapshot.user_id == user.id)
        .order_by(PricingSnapshot.id.desc())
        .limit(1)
    )
    if latest is not None and latest.inputs == inputs:
        return latest
    snap = PricingSnapshot(
        user_id=user.id,
        base_currency=inputs["base_currency"],
        total=Decimal(valuation["total"]),
        complete=valuation["complete"],
        inputs=inputs,
        valuation=valuation,
        created_at=utcnow(),
    )
    session.add(snap)
    session.flush()
    return snap


def _inputs(
    base: str,
    holdings: list[dict[str, Any]],
    bot_rows: list[dict[str, Any]],
    pegs: dict[str, str],
    sources: Mapping[str, MarketSource] | None,
) -> dict[str, Any]:
    """What a valuation in `base` is computed from: holdings, prices, paths and pegs."""
    prices: dict[str, dict[str, str]] = {}
    paths: dict[str, dict[str, Any]] = {}
    for exchange in sorted({h["exchange"] for h in holdings}):
        assets = sorted({h["asset"] for h in holdings if h["exchange"] == exchange})
        source = (sources or {}).get(exchange)
        _price_exchange(exchange, source, assets, base, pegs, prices, paths)
    return {
        "base_currency": base,
        "holdings": holdings,
        "bots": bot_rows,
        "prices": prices,
        "paths": paths,
        "pegs": pegs,
    }


def _quote_currencies(bot_rows: list[dict[str, Any]], requested: str) -> list[str]:
    """The bots' quote currencies, the most common first (ties alphabetical)."""
    counts = Counter(str(b["quote"]).upper() for b in bot_rows)
    counts.pop(requested, None)
    return sorted(counts, key=lambda q: (-counts[q], q))


def _check_known(
    code: str,
    exchanges: set[str],
    sources: Mapping[str, MarketSource] | None,
    pegs: dict[str, str],
) -> None:
    """422 for a currency that no market of the user's exchanges (or the default market
    data) trades and that is neither USD nor a peg: nothing could ever be valued in it."""
    known = {"USD", *pegs}
    for exchange in sorted(exchanges | {default_exchange()}):
        try:
            source = (sources or {}).get(exchange) or _source(exchange)
            for m in source.markets():
                known.update((m.base.upper(), m.quote.upper()))
        except (AppError, ValueError):
            continue  # an exchange without market data proves nothing either way
        if code in known:
            return
    if code not in known:
        raise ValidationFailed(
            f"unknown currency {code!r}: no market trades it; try one of "
            f"{', '.join(sorted(known))}",
            code="unknown_currency",
            details=[{"loc": ["query", "currency"], "msg": f"unknown currency {code}"}],
        )


def _price_exchange(
    exchange: str,
    source: MarketSource | None,
    assets: list[str],
    base: str,
    pegs: dict[str, str],
    prices: dict[str, dict[str, str]],
    paths: dict[str, dict[str, Any]],
) -> None:
    try:
        source = source or _source(exchange)
        markets = [(m.symbol, m.base.upper(), m.quote.upper()) for m in source.markets()]
    except (AppError, ValueError) as exc:
        for asset in assets:
            if asset != base:
                paths[f"{exchange}:{asset}"] = {"reason": f"market data of {exchange} unavailable: "
                                                f"{getattr(exc, 'message', exc)}"}  # fmt: skip
            else:
                paths[f"{exchange}:{asset}"] = {"steps": []}
        return
    table = prices.setdefault(exchange, {})
    for asset in assets:
        path = find_path(asset, base, markets, pegs)
        key = f"{exchange}:{asset}"
        if path is None:
            paths[key] = {
                "reason": f"no market path from {asset} to {base} on {exchange} within "
                f"{MAX_HOPS} markets" + ("" if pegs else " (no stablecoin pegs configured)")
            }
            continue
        try:
            for step in path:
                if "symbol" in step and step["symbol"] not in table:
                    price = source.last_price(step["symbol"])
                    if not price.is_finite() or price <= 0:
                        raise ValueError(f"{step['symbol']} has no usable price ({price})")
                    table[step["symbol"]] = _fmt(price)
        except (AppError, ValueError) as exc:
            paths[key] = {"reason": f"no price for {asset}: {getattr(exc, 'message', exc)}"}
            continue
        paths[key] = {"steps": path}


def get_pricing_snapshot(session: Session, user: User, snapshot_id: int) -> PricingSnapshot:
    """One of the user's stored valuations; another user's is not found."""
    snap = session.get(PricingSnapshot, snapshot_id)
    if snap is None or snap.user_id != user.id:
        raise NotFound("pricing snapshot not found")
    return snap


def snapshot_payload(snap: PricingSnapshot, *, include_inputs: bool = False) -> dict[str, Any]:
    valuation = {"requested_currency": snap.base_currency, **snap.valuation}
    out = {"snapshot_id": snap.id, "as_of": iso(snap.created_at), **valuation}
    if include_inputs:
        out["inputs"] = snap.inputs
    return out
