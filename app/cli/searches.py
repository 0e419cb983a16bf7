"""`flask search`: a parameter search over recorded candles (one pair, or several sharing
one wallet), in this process."""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from typing import Any

import click

from app.cli import said_once
from app.cli.backtests import RunOptions, listed_symbols, pairs_spec_and_data, spec_and_data
from app.domain.search import OBJECTIVES
from app.errors import AppError
from app.services import searches as service


@click.command("search")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False),
              help="candle CSV named <EXCHANGE>_<BASE>-<QUOTE>_<TF>.csv")  # fmt: skip
@click.option("--symbol", help="symbol of the replay data (instead of --file), e.g. ETH/BTC")
@click.option("--symbols", help="several pairs of the replay data sharing one wallet, "
              "comma-separated (instead of --symbol)")  # fmt: skip
@click.option("--max-open-trades", type=click.IntRange(min=1),
              help="with --symbols: trades open at once (default: one per pair)")  # fmt: skip
@click.option("--timeframe", help="timeframe (default: the file's)")
@click.option("--strategy", default="sma_crossover", show_default=True)
@click.option("--strategy-file", "strategy_file", type=click.Path(exists=True, dir_okay=False),
              help="a strategy document (JSON or YAML) instead of --strategy")  # fmt: skip
@click.option("--params", help="values of the parameters not searched, as JSON")
@click.option("--ranges", required=True,
              help='JSON, e.g. \'{"fast": {"low": 5, "high": 30}}\'')  # fmt: skip
@click.option("--objective", type=click.Choice(OBJECTIVES), default="sharpe", show_default=True)
@click.option("--trials", type=int, default=100, show_default=True, help="trial budget")
@click.option("--timeout", "timeout_seconds", type=float, default=600, show_default=True,
              help="time budget in seconds")  # fmt: skip
@click.option("--seed", type=int, help="seed of the sampler (repeatable searches)")
@click.option("--folds", type=int, help="walk-forward: this many folds (2..20)")
@click.option("--in-sample", "in_sample", type=float, default=0.75, show_default=True,
              help="walk-forward: each fold's share fitted on")  # fmt: skip
@click.option("--start", help="first candle, ISO-8601 UTC")
@click.option("--end", help="end of the range (exclusive), ISO-8601 UTC")
@click.option("--capital", type=Decimal, default=Decimal("1"), show_default=True)
@click.option("--stake", type=Decimal, help="fixed stake per trade (sizing mode fixed)")
@click.option("--sizing", help="sizing as JSON, as a bot's")
@click.option("--fee", type=Decimal, default=Decimal("0.001"), show_default=True)
@click.option("--slippage-bps", type=Decimal, default=Decimal("0"), show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the full result as JSON")
def search_command(
    path: str | None,
    symbol: str | None,
    symbols: str | None,
    max_open_trades: int | None,
    timeframe: str | None,
    strategy: str,
    strategy_file: str | None,
    params: str | None,
    ranges: str,
    objective: str,
    trials: int,
    timeout_seconds: float,
    seed: int | None,
    folds: int | None,
    in_sample: float,
    start: str | None,
    end: str | None,
    capital: Decimal,
    stake: Decimal | None,
    sizing: str | None,
    fee: Decimal,
    slippage_bps: Decimal,
    as_json: bool,
) -> None:
    """Search a strategy's parameters (Optuna) with the backtester, in this process."""
    try:
        wanted = json.loads(ranges)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc.msg}", param_hint="--ranges") from None
    listed: list[str] = []
    if symbols is not None:
        if path is not None or symbol is not None:
            raise click.UsageError("give one of --file, --symbol or --symbols")
        listed = listed_symbols(symbols)
        symbol = listed[0] if listed else ""
    options = RunOptions(timeframe, strategy, strategy_file, params, start, end, capital, stake,
                         sizing, fee, slippage_bps)  # fmt: skip
    try:
        data: Any
        if len(listed) > 1:
            spec, data = pairs_spec_and_data(listed, max_open_trades, options)
        else:
            spec, data = spec_and_data(path, symbol, options)
        search = service.check_search(spec, {
            "ranges": wanted, "objective": objective, "trials": trials,
            "timeout_seconds": timeout_seconds, "seed": seed,
            "walk_forward": None if folds is None else {"folds": folds, "in_sample": in_sample},
        })  # fmt: skip
        total = trials * (folds or 1)
        with click.progressbar(length=total, label="search", file=sys.stderr) as bar:
            done = [0]

            def on_trial(n: int, best: Any) -> None:
                bar.update(n - done[0])
                done[0] = n

            run = service.run_walk_forward if folds is not None else service.run_search
            result = run(search, data, on_trial=on_trial)
    except AppError as exc:
        raise click.ClickException(said_once(exc)) from None
    result = {"summary": service.summary(search, data), **result}
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    if folds is not None:
        _print_folds(result)
        return
    best = result["best"]
    click.echo(f"trials    {result['trials_done']} of {trials} ({result['stopped_by']} budget), "
               f"{result['seconds']} s")  # fmt: skip
    click.echo(f"objective {objective}")
    if best is None:
        click.echo("best      none: no trial could be scored")
        return
    click.echo(f"best      {best['value']:.6g} at trial {best['trial']}: "
               f"{json.dumps(best['params'])}")  # fmt: skip


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f} %"


def _print_folds(result: dict[str, Any]) -> None:
    click.echo(f"{'fold':<5}{'in-sample':<24}{'IS return':>11}{'OOS return':>12}"
               f"{'efficiency':>12}  params")  # fmt: skip
    for row in result["folds"]:
        eff = "-" if row["efficiency"] is None else f"{row['efficiency']:.2f}"
        click.echo(f"{row['fold']:<5}{row['in_sample']['start']:<24}"
                   f"{_pct(row['in_sample_return']):>11}{_pct(row['out_of_sample_return']):>12}"
                   f"{eff:>12}  {json.dumps(row['params'])}")  # fmt: skip
    click.echo(result["walk_forward"]["verdict"])
