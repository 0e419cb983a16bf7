"""`flask backtest`: a strategy over recorded candles, with the live bot's code."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from app.cli import said_once
from app.domain.report import NO_TAG
from app.domain.times import to_ms
from app.errors import AppError
from app.services import backtests as service
from app.services.bot_settings import normalised_params, normalised_sizing
from app.services.strategies import check_document
from app.store.base import as_utc


def _json_option(value: str | None, name: str) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        data = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc.msg}", param_hint=name) from None
    if not isinstance(data, dict):
        raise click.BadParameter("must be a JSON object", param_hint=name)
    return data


def _when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return as_utc(value)
    except ValueError:
        raise click.BadParameter(f"not an ISO-8601 time: {value!r}", param_hint=name) from None


@dataclass(frozen=True)
class RunOptions:
    """The options `flask backtest` and `flask search` share: what runs, over which range,
    with which money (as given on the command line; `_payload` checks them)."""

    timeframe: str | None
    strategy: str
    strategy_file: str | None
    params: str | None
    start: str | None
    end: str | None
    capital: Decimal
    stake: Decimal | None
    sizing: str | None
    fee: Decimal
    slippage_bps: Decimal


@click.command("backtest")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False),
    help="candle CSV named <EXCHANGE>_<BASE>-<QUOTE>_<TF>.csv",
)
@click.option("--symbol", help="symbol of the replay data (instead of --file), e.g. ETH/BTC")
@click.option(
    "--symbols",
    help="several pairs of the replay data sharing one wallet, comma-separated, e.g. "
    "ETH/BTC,LTC/BTC (instead of --symbol)",
)
@click.option("--max-open-trades", type=click.IntRange(min=1),
              help="with --symbols: trades open at once (default: one per pair)")  # fmt: skip
@click.option("--timeframe", help="timeframe (default: the file's)")
@click.option("--strategy", default="sma_crossover", show_default=True)
@click.option(
    "--strategy-file",
    "strategy_file",
    type=click.Path(exists=True, dir_okay=False),
    help="a strategy document (JSON or YAML) to run instead of --strategy",
)
@click.option("--params", help='strategy parameters as JSON, e.g. \'{"fast": 10, "slow": 30}\'')
@click.option("--start", help="first candle, ISO-8601 UTC")
@click.option("--end", help="end of the range (exclusive), ISO-8601 UTC")
@click.option("--capital", type=Decimal, default=Decimal("1"), show_default=True)
@click.option("--stake", type=Decimal, help="fixed stake per trade (sizing mode fixed)")
@click.option("--sizing", help='sizing as JSON, e.g. \'{"mode": "percent", "percent": 10}\'')
@click.option(
    "--fee",
    type=Decimal,
    default=Decimal("0.001"),
    show_default=True,
    help="fee rate on entry and exit (0.001 = 0.1 %)",
)
@click.option("--slippage-bps", type=Decimal, default=Decimal("0"), show_default=True)
@click.option("--trades/--no-trades", "show_trades", default=False, help="list every trade")
@click.option("--json", "as_json", is_flag=True, help="print the full result as JSON")
def backtest_command(
    path: str | None,
    symbol: str | None,
    symbols: str | None,
    max_open_trades: int | None,
    timeframe: str | None,
    strategy: str,
    strategy_file: str | None,
    params: str | None,
    start: str | None,
    end: str | None,
    capital: Decimal,
    stake: Decimal | None,
    sizing: str | None,
    fee: Decimal,
    slippage_bps: Decimal,
    show_trades: bool,
    as_json: bool,
) -> None:
    """Backtest a strategy over recorded candles with the live bot's code."""
    options = RunOptions(timeframe, strategy, strategy_file, params, start, end, capital, stake,
                         sizing, fee, slippage_bps)  # fmt: skip
    if symbols is not None:
        if path is not None or symbol is not None:
            raise click.UsageError("give one of --file, --symbol or --symbols")
        listed = listed_symbols(symbols)
        if len(listed) > 1:
            _pairs_backtest(listed, max_open_trades, options, show_trades, as_json)
            return
        symbol = listed[0] if listed else ""
    try:
        spec, data = spec_and_data(path, symbol, options)
        with _progress_bar() as progress:
            result = service.execute(spec, data, progress)
    except AppError as exc:
        raise click.ClickException(said_once(exc)) from None
    if as_json:
        click.echo(json.dumps(service.result_dict(spec, data, result), indent=2))
        return
    # the table needs only the summary and the metrics: no per-trade dicts, no equity curve
    out = {"summary": service.summary_dict(spec, data, result), "metrics": result.metrics.to_dict()}
    _print_summary(out, result, show_trades)
    _print_report(service.report_dict(spec, data, result, max_round_trips=0))


@contextmanager
def _progress_bar() -> Iterator[Callable[[float], None]]:
    with click.progressbar(length=1000, label="backtest", file=sys.stderr) as bar:
        done = [0]

        def progress(fraction: float) -> None:
            target = int(fraction * 1000)
            if target > done[0]:
                bar.update(target - done[0])
                done[0] = target

        yield progress


def _pairs_backtest(
    symbols: list[str],
    max_open_trades: int | None,
    options: RunOptions,
    show_trades: bool,
    as_json: bool,
) -> None:
    """`--symbols`: one wallet over several pairs of the replay data (docs/backtesting.md)."""
    try:
        spec, datas = pairs_spec_and_data(symbols, max_open_trades, options)
        with _progress_bar() as progress:
            result = service.execute_pairs(spec, datas, progress)
    except AppError as exc:
        raise click.ClickException(said_once(exc)) from None
    if as_json:
        click.echo(json.dumps(service.pairs_result_dict(spec, datas, result), indent=2))
        return
    out = {"summary": service.pairs_summary_dict(spec, result),
           "metrics": result.metrics.to_dict()}  # fmt: skip
    _print_summary(out, result, show_trades)
    _print_report(service.pairs_report_dict(spec, datas, result, max_round_trips=0))


def _payload(symbol: str | None, o: RunOptions) -> dict[str, Any]:
    """The job payload the options describe (strategy checked, range parsed)."""
    tf, strategy = o.timeframe or "5m", o.strategy
    sizing_data = _json_option(o.sizing, "--sizing")
    if o.stake is not None:
        sizing_data = {**(sizing_data or {}), "mode": "fixed", "stake": str(o.stake)}
    start_at, end_at = _when(o.start, "--start"), _when(o.end, "--end")
    document = None
    if o.strategy_file is not None:
        checked = check_document(Path(o.strategy_file).read_text(encoding="utf-8"), tf)
        document = checked.doc.model_dump(mode="json", exclude_none=True)
        strategy = checked.doc.name
        values = checked.validate_params(_json_option(o.params, "--params") or {})
        strategy_params = values.model_dump(mode="json")
    else:
        strategy_params = _params(strategy, _json_option(o.params, "--params"))
    return {
        "strategy": strategy,
        "strategy_params": strategy_params,
        "strategy_document": document,
        "symbol": symbol,
        "timeframe": tf,
        "capital": str(o.capital),
        "sizing": _sizing(sizing_data),
        "maker_fee": str(o.fee),
        "taker_fee": str(o.fee),
        "slippage_bps": str(o.slippage_bps),
        "start_ms": None if start_at is None else to_ms(start_at),
        "end_ms": None if end_at is None else to_ms(end_at),
    }


def spec_and_data(
    path: str | None, symbol: str | None, options: RunOptions
) -> tuple[service.BacktestSpec, service.CandleData]:
    """The backtest the options describe, and its candles (shared with `flask search`);
    AppError when the request is bad."""
    if (path is None) == (symbol is None):
        raise click.UsageError("give exactly one of --file or --symbol")
    if path is not None:
        data = service.candle_file_data(path, options.timeframe)
        symbol, options = data.market.symbol, replace(options, timeframe=data.timeframe)
    spec = service.BacktestSpec.from_payload(_payload(symbol, options))
    if path is None:
        data = service.load_candles(spec)
    else:
        data = service.CandleData(
            service._clip(data.candles, spec.start_ms, spec.end_ms),
            data.market,
            data.timeframe,
            data.source,
        )
    if len(data.candles) == 0:
        raise click.ClickException("no candles in the requested range")
    return spec, data


def listed_symbols(symbols: str) -> list[str]:
    """`--symbols` as a list: comma-separated pairs."""
    return [s.strip() for s in symbols.split(",") if s.strip()]


def pairs_spec_and_data(
    symbols: list[str], max_open_trades: int | None, options: RunOptions
) -> tuple[service.BacktestSpec, list[service.CandleData]]:
    """The several-pair backtest the options describe, and each pair's candles (shared with
    `flask search --symbols`); AppError when the request is bad."""
    service.requested_symbols({"symbols": symbols})
    payload = _payload(symbols[0], options)
    payload |= {"symbols": symbols, "max_open_trades": max_open_trades or len(symbols)}
    spec = service.BacktestSpec.from_payload(payload)
    datas = service.load_pairs(spec)
    for name, data in zip(symbols, datas, strict=True):
        if len(data.candles) == 0:
            raise click.ClickException(f"no candles of {name} in the requested range")
    return spec, datas


def _params(strategy: str, params: dict[str, Any] | None) -> dict[str, Any]:
    return normalised_params(strategy, params)


def _sizing(sizing: dict[str, Any] | None) -> dict[str, Any]:
    return normalised_sizing(sizing)


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value * 100:.2f} %" if pct else f"{value:.4f}"


def _print_summary(out: dict[str, Any], result: Any, show_trades: bool) -> None:
    s, m = out["summary"], out["metrics"]
    rows = [
        ("strategy", f"{s['strategy']} {json.dumps(s['strategy_params'])}"),
        ("market", f"{', '.join(s.get('symbols') or [s['symbol']])} {s['timeframe']}"
                   + (f" (max {s['max_open_trades']} open)" if s.get("symbols") else "")),
        ("range", f"{s['start']} .. {s['end']}"),
        ("candles", str(s["candles"])),
        (
            "trades",
            f"{s['trades']} ({s['bootstrap_trades']} bootstrap, "
            f"{s['skipped_entries']} entries skipped)",
        ),  # fmt: skip
        ("capital", s["capital"]),
        ("final equity", s["final_equity"]),
        ("total return", _fmt(m["total_return"], pct=True)),
        ("max drawdown", _fmt(m["max_drawdown"], pct=True)),
        ("win rate", _fmt(m["win_rate"], pct=True)),
        ("profit factor", _fmt(m["profit_factor"])),
        ("sharpe", _fmt(m["sharpe"])),
        ("sortino", _fmt(m["sortino"])),
        ("exposure", _fmt(m["exposure"], pct=True)),
    ]
    width = max(len(k) for k, _ in rows)
    click.echo("-" * (width + 40))
    for key, value in rows:
        click.echo(f"{key:<{width}}  {value}")
    click.echo("-" * (width + 40))
    if show_trades:
        click.echo(f"{'entry':<26}{'exit':<26}{'entry price':>14}{'exit price':>14}"
                   f"{'amount':>14}{'profit %':>10}  reason")  # fmt: skip
        for t in result.trades:
            d = t.to_dict()
            click.echo(
                f"{d['entry_time']:<26}{d['exit_time']:<26}{d['entry_price']:>14}"
                f"{d['exit_price']:>14}{d['amount']:>14}"
                f"{float(t.profit_ratio) * 100:>9.3f}%  {t.exit_reason}"
            )


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    days, rest = divmod(seconds, 86_400)
    clock = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}"
    return f"{days}d {clock}" if days else clock


def _print_report(report: dict[str, Any]) -> None:
    """The report's totals and its exit-reason and monthly tables (docs/backtesting.md)."""
    t = report["totals"]
    dd = t["max_drawdown"]
    best, worst = t["best_trade"], t["worst_trade"]
    rows = [
        ("wins / draws / losses", f"{t['wins']} / {t['draws']} / {t['losses']}"),
        ("total profit", f"{t['profit_total_abs']} ({_fmt(t['profit_total'], pct=True)})"),
        ("average profit", _fmt(t["profit_mean"], pct=True)),
        ("CAGR", _fmt(t["cagr"], pct=True)),
        ("calmar", _fmt(t["calmar"])),
        ("SQN", _fmt(t["sqn"])),
        ("expectancy", f"{t['expectancy'] or '-'} (ratio {_fmt(t['expectancy_ratio'])})"),
        ("best / worst trade", f"{_fmt(best and best['profit_ratio'], pct=True)} / "
                               f"{_fmt(worst and worst['profit_ratio'], pct=True)}"),
        ("avg duration win / loss", f"{_duration(t['winner_duration_mean_s'])} / "
                                    f"{_duration(t['loser_duration_mean_s'])}"),
        ("drawdown", f"{dd['abs']:.8g} from {dd['start'] or '-'} to {dd['trough'] or '-'}, "
                     f"recovered {dd['recovery'] or 'never' if dd['start'] else '-'}"),
        ("market change", _fmt(t["market_change"], pct=True)),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key:<{width}}  {value}")
    names = ("symbol", "entry_tag", "exit_reason", "month")
    for name in [n for n in names if n in report["tables"]]:
        rows = report["tables"][name]
        if name == "entry_tag" and all(r["key"] == NO_TAG for r in rows):
            continue  # a strategy without tagged entries: nothing to tell apart
        click.echo(f"\nby {'pair' if name == 'symbol' else name.replace('_', ' ')}")
        click.echo(f"{'':<16}{'trades':>7}{'w/d/l':>10}{'avg %':>9}{'profit':>22}"
                   f"{'avg duration':>14}")  # fmt: skip
        for row in rows:
            wdl = f"{row['wins']}/{row['draws']}/{row['losses']}"
            avg = "-" if row["profit_mean"] is None else f"{row['profit_mean'] * 100:.3f}"
            held = _duration(row["duration_mean_s"])
            click.echo(f"{row['key']:<16}{row['trades']:>7}{wdl:>10}{avg:>9}"
                       f"{row['profit_abs']:>22}{held:>14}")  # fmt: skip
