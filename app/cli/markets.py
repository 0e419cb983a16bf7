"""`flask import-candles` (validate and import candle CSVs), `flask download-candles` (fetch
them from an exchange) and `flask reconcile` (check every bot's ledger adds up)."""

from __future__ import annotations

import contextlib
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from app.api.markets import url_symbol
from app.domain.numbers import optional_decimal_text as _num
from app.domain.times import from_ms
from app.errors import AppError, ValidationFailed
from app.market.csv_candles import CandleFileName, import_candle_file, parse_candle_text
from app.services import candle_downloads
from app.services.reconcile import reconcile_all, use_snapshot
from app.store.db import new_session
from config import get_settings


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
    return from_ms(ms).strftime("%Y-%m-%dT%H:%MZ")


def _read_csv(path: Path) -> str:
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


def _fail(message: str, code: int = 2, command: str = "import-candles") -> NoReturn:
    click.echo(f"{command}: {message}", err=True)
    raise SystemExit(code)


@click.command("reconcile")
@click.option("--bot", "bot_ids", type=int, multiple=True, help="only these bots (repeatable)")
def reconcile_command(bot_ids: tuple[int, ...]) -> None:
    """Check every bot's ledger: initial capital + realised PnL - fees = cash + open positions
    at cost, to the smallest unit (and that balances, positions, orders and fills agree).
    Exits 1 naming each bot that does not add up."""

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


@click.command("download-candles")
@click.option("--exchange", required=True, help="a ccxt exchange id, e.g. binance")
@click.option("--symbol", "symbols", required=True, multiple=True, help="BASE/QUOTE (repeatable)")
@click.option("--timeframe", required=True, help="e.g. 1h")
@click.option("--start", required=True, type=click.DateTime(), help="first candle, UTC")
@click.option("--end", type=click.DateTime(), help="end of the range (exclusive), default now")
def download_candles_command(
    exchange: str,
    symbols: tuple[str, ...],
    timeframe: str,
    start: datetime,
    end: datetime | None,
) -> None:
    """Download candles from an exchange into the import directory the replay feed reads.

    Pages through the exchange within its rate limit; running it again fetches only candles
    not stored yet, and an interrupted run resumes after the last stored page. Gaps (candles
    the exchange does not have) are reported.
    """
    try:
        spec = candle_downloads.build_spec(
            exchange,
            [url_symbol(s) for part in symbols for s in part.split(",") if s.strip()],
            timeframe,
            start.replace(tzinfo=UTC),
            end.replace(tzinfo=UTC) if end else None,
        )
    except AppError as exc:
        _fail(exc.message, command="download-candles")
    bars: dict[str, Any] = {}
    done: dict[str, int] = {}

    with contextlib.ExitStack() as stack:

        def progress(symbol: str, now: int, total: int) -> None:
            if symbol not in bars:
                bar = click.progressbar(length=max(total, 1), label=symbol, file=sys.stderr)
                bars[symbol] = stack.enter_context(bar)
                done[symbol] = 0
            bars[symbol].update(now - done[symbol])
            done[symbol] = now

        try:
            results = candle_downloads.run_download(spec, on_progress=progress)
        except AppError as exc:
            stack.close()
            _fail(
                f"{exc.message} (what was fetched is kept; run again to resume)",
                code=1,
                command="download-candles",
            )
    for r in results:
        gaps = r.gaps
        gap_text = (
            "no gaps"
            if gaps.count == 0
            else f"{gaps.count} gap(s), {gaps.missing_candles} missing candle(s); first: "
            + ", ".join(f"after {_iso(g.after_ts)} ({g.missing} missing)" for g in gaps.first)
        )
        span = f"{_iso(r.first_ts)}..{_iso(r.last_ts)}" if r.first_ts is not None else "empty"
        click.echo(
            f"[ok]   {r.name.symbol} {r.name.timeframe} ({r.name.exchange}): {r.fetched} new "
            f"candle(s) in {r.pages} page(s), {r.stored} stored {span}, {gap_text}"
        )
