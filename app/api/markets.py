"""Markets, candles and the portfolio; the `import-candles` and `reconcile` commands.

Symbols in URLs: `ETH-BTC` or `ETH%2FBTC` (both mean ETH/BTC).
"""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
from flask import Blueprint, Flask
from pydantic import BaseModel, Field

from app.api.jwt import auth_required, current_user
from app.api.request_context import db_session
from app.api.validation import RequestModel, query, response

bp = Blueprint("markets", __name__)


def _num(value: Decimal | None) -> str | None:
    if value is None:
        return None
    return format(value.normalize(), "f") if value else "0"


def url_symbol(raw: str) -> str:
    """`ETH-BTC`, `eth-btc` or `ETH/BTC` -> `ETH/BTC`."""
    text = raw.strip()
    if "/" not in text:
        text = text.replace("-", "/", 1)
    return text.upper()


# -- markets and candles -----------------------------------------------------------------


class MarketOut(BaseModel):
    symbol: str
    base: str
    quote: str
    amount_step: str = Field(description="amounts are rounded down to a multiple of this")
    price_step: str = Field(description="prices are on this grid")
    min_amount: str | None = Field(None, description="smallest order amount (base), if any")
    min_notional: str | None = Field(None, description="smallest order value (quote), if any")


class MarketList(BaseModel):
    exchange: str
    items: list[MarketOut]


class CandleQuery(RequestModel):
    timeframe: str = Field(min_length=1, max_length=8, examples=["5m"])
    limit: int = Field(100, ge=1, le=1000)


class CandlesOut(BaseModel):
    exchange: str
    symbol: str
    timeframe: str
    columns: list[str] = Field(description="what each row of `candles` holds")
    candles: list[list[float]] = Field(description="closed candles, oldest first")


def _source() -> Any:
    from app.market.registry import default_exchange, get_market_source

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
            amount_step=_num(m.amount_step) or "0",
            price_step=_num(m.price_step) or "0",
            min_amount=_num(m.min_amount),
            min_notional=_num(m.min_notional),
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
    from app.market.base import timeframe_seconds
    from app.market.cache import cached_candles

    timeframe_seconds(query.timeframe)  # 422 before touching the source
    exchange, source = _source()
    name = url_symbol(symbol)
    source.market(name)  # 404 for an unknown symbol
    c = cached_candles(source, name, query.timeframe, query.limit)
    rows = [
        [int(t), float(o), float(h), float(lo), float(cl), float(v)]
        for t, o, h, lo, cl, v in zip(c.ts, c.open, c.high, c.low, c.close, c.volume, strict=True)
    ]
    return CandlesOut(
        exchange=exchange,
        symbol=name,
        timeframe=query.timeframe,
        columns=["ts_ms", "open", "high", "low", "close", "volume"],
        candles=rows,
    )


# -- portfolio ---------------------------------------------------------------------------


class PortfolioQuery(RequestModel):
    currency: str | None = Field(
        None, min_length=2, max_length=10, description="default: the user's base currency"
    )


class AssetValue(BaseModel):
    asset: str
    exchange: str
    amount: str
    priced: bool
    rate: str | None = Field(None, description="base-currency units per unit of the asset")
    value: str | None
    path: list[str] | None = Field(None, description="markets (and pegs) the rate came from")
    reason: str | None = Field(None, description="why the asset is unpriced")


class Unpriced(BaseModel):
    asset: str
    exchange: str
    amount: str
    reason: str


class BotValue(BaseModel):
    bot_id: int
    name: str
    exchange: str
    symbol: str
    quote: str
    value: str | None
    complete: bool


class PortfolioOut(BaseModel):
    snapshot_id: int
    as_of: str
    base_currency: str
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
    """Every bot's holdings valued in the base currency, stored as a pricing snapshot."""
    from app.services.portfolio import snapshot_payload, value_portfolio

    snap = value_portfolio(db_session(), current_user(), currency=query.currency)
    return snapshot_payload(snap)


@bp.get("/api/portfolio/snapshots/<int:snapshot_id>")
@auth_required
@response(PortfolioOut)
def portfolio_snapshot(snapshot_id: int) -> Any:
    """A stored valuation, exactly as it was computed (prices and FX included)."""
    from app.services.portfolio import get_pricing_snapshot, snapshot_payload

    return snapshot_payload(get_pricing_snapshot(db_session(), current_user(), snapshot_id))


# -- commands ----------------------------------------------------------------------------


@click.command("import-candles")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--exchange", help="exchange name, when the file name does not follow the convention")
@click.option("--symbol", help="BASE/QUOTE, when the file name does not follow the convention")
@click.option("--timeframe", help="e.g. 5m, when the file name does not follow the convention")
def import_candles_command(
    paths: tuple[Path, ...], exchange: str | None, symbol: str | None, timeframe: str | None
) -> None:
    """Validate candle CSVs (timestamp,open,high,low,close,volume) and import them.

    Files are named <EXCHANGE>_<BASE>-<QUOTE>_<TIMEFRAME>.csv (or pass --exchange, --symbol and
    --timeframe for a single file). Every file is validated first; if any is invalid nothing is
    imported. Gaps are reported, not refused. A directory imports every *.csv in it.
    """
    from app.errors import AppError
    from app.market.csv_candles import CandleFileName, import_candle_file, parse_candle_text
    from config import get_settings

    files: list[Path] = []
    for p in paths:
        files.extend(sorted(p.glob("*.csv")) if p.is_dir() else [p])
    if not files:
        _fail("no CSV files found")
    override = None
    if exchange or symbol or timeframe:
        if not (exchange and symbol and timeframe) or len(files) != 1:
            _fail("--exchange, --symbol and --timeframe go together, for exactly one file")
        try:
            override = CandleFileName.from_symbol(exchange, url_symbol(symbol), timeframe)
        except AppError as exc:
            _fail(exc.message)

    failed = False
    checked: list[tuple[Path, Any, int]] = []
    for f in files:
        try:
            name = override or CandleFileName.parse(f.name)
            series = parse_candle_text(_read_csv(f), name.timeframe, f.name)
            checked.append((f, name, len(series.candles)))
        except AppError as exc:
            failed = True
            click.echo(f"[FAIL] {f}: {exc.message}", err=True)
            for d in exc.details[1:10]:
                click.echo(f"       {d.get('msg', d)}", err=True)
    if failed:
        _fail("nothing was imported: fix the files above and run again", code=1)

    target = get_settings().candles_import_dir
    for f, name, rows in checked:
        with click.progressbar(length=rows, label=f.name, file=sys.stderr) as bar:
            done = [0]

            def progress(n: int, _total: int, bar: Any = bar, done: list[int] = done) -> None:
                bar.update(n - done[0])
                done[0] = n

            result = import_candle_file(f, target, name=name, on_progress=progress)
        gaps = result.gaps
        gap_text = (
            "no gaps"
            if gaps.count == 0
            else f"{gaps.count} gap(s), {gaps.missing_candles} missing candle(s); first: "
            + ", ".join(f"after {_iso(g.after_ts)} ({g.missing} missing)" for g in gaps.first)
        )
        click.echo(
            f"[ok]   {result.name.symbol} {result.name.timeframe} ({result.name.exchange}): "
            f"{result.rows} candles {_iso(result.first_ts)}..{_iso(result.last_ts)}, {gap_text}"
            f"{' (replaced)' if result.replaced else ''} -> {result.path}"
        )


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%MZ")


def _read_csv(path: Path) -> str:
    from app.errors import ValidationFailed

    try:
        return path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ValidationFailed(f"{path}: file not found", code="invalid_candles") from None
    except IsADirectoryError:
        raise ValidationFailed(f"{path}: is a directory", code="invalid_candles") from None
    except UnicodeDecodeError as exc:
        raise ValidationFailed(
            f"{path.name}: not UTF-8 text (byte {exc.start})", code="invalid_candles"
        ) from None


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"import-candles: {message}", err=True)
    raise SystemExit(code)


@click.command("reconcile")
@click.option("--bot", "bot_ids", type=int, multiple=True, help="only these bots (repeatable)")
def reconcile_command(bot_ids: tuple[int, ...]) -> None:
    """Check every bot's ledger: initial capital + realised PnL - fees = cash + open positions
    at cost, to the smallest unit (and that balances, positions, orders and fills agree).
    Exits 1 naming each bot that does not add up."""
    from app.services.reconcile import reconcile_all, use_snapshot
    from app.store.db import new_session

    session = new_session()
    try:
        use_snapshot(session)
        results = reconcile_all(session, bot_ids or None)
    finally:
        session.rollback()
        session.close()
    bad = [r for r in results if not r.ok]
    for r in results:
        if r.ok:
            click.echo(f"[ok]   bot {r.bot_id}: {_num(r.actual)} {r.quote}")
        else:
            click.echo(
                f"[FAIL] bot {r.bot_id}: difference {_num(r.difference)} {r.quote}", err=True
            )
            for problem in r.problems:
                click.echo(f"       {problem}", err=True)
    click.echo(f"{len(results)} bot(s) checked, {len(bad)} not reconciled")
    if bad:
        raise SystemExit(1)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.cli.add_command(import_candles_command)
    app.cli.add_command(reconcile_command)
