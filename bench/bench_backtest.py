"""Backtest benchmark: the core loop's candles per second on the largest recorded file, and
the whole `flask backtest` process, each next to a baseline measured in the same run.

* core loop: SMA crossover (10/30), fixed stake, 0.1 % fee - the engine (vectorised signals,
  Python only per trade) against a naive per-candle Python loop doing the same trading
  (running SMA sums, float fills at the next open) over the same candles;
* process: `flask --app wsgi backtest --file <ETH/BTC 5m, else the largest>` wall time and
  peak RSS against the bare start-up of the same process (`python -c "import wsgi"`), both
  best of N, and next to the issue's reference for freqtrade 2026.9 `backtesting` of the
  same SMA 10/30 over the same file (measured elsewhere, printed for context);
* several pairs: the one-wallet walk (`app.engine.pairs`) over every BINANCE 5m file, with
  room for every pair (max_open_trades = pairs, a stake the wallet always pays), against the
  same pairs backtested one by one (`run_backtest`), which then gives the same trades; the
  walk is also timed with every fill in `Decimal` (`run_pairs_backtest_in_decimal`), the
  reference its integer ledgers are held to. The three run in turns, so one machine load
  weighs on all of them.

The core loop is also timed with every fill in `Decimal` (`run_backtest_in_decimal`, the
reference the integer ledger is held to), with the same trades; and so is the engine with
exits beyond the signal (the SMA crossover template with a stop-loss, ROI, a trailing stop
and a maximum holding time, percent sizing), against the same with every fill in `Decimal`.

Targets (the speed issue): the core loop at least as fast as the naive loop, with exact
results; the several-pair walk within 1.3x the time of its pairs one by one; the whole
process at least 10x faster than freqtrade's and under 120 MiB; each is printed with the
figure it judges.

    .venv/bin/python bench/bench_backtest.py [--repeat 7] [--runs 5]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _data import candle_files, largest_candle_file  # noqa: E402

BIN = Path(sys.executable).parent
FAST, SLOW, STAKE, FEE, CAPITAL = 10, 30, 0.1, 0.001, 1.0
TARGET_NAIVE_RATIO = 1.0
TARGET_PAIRS_RATIO = 1.3  # the one-wallet walk against the same pairs one by one
# freqtrade 2026.9 `backtesting`, SMA 10/30 on BINANCE ETH/BTC 5m (25,968 candles), measured
# elsewhere by the speed issue: wall seconds and peak RSS
FREQTRADE_S = (5.8, 6.8)
FREQTRADE_MIB = 366
FREQTRADE_CANDLES = 25_968
TARGET_VS_FREQTRADE = 10.0
TARGET_PROCESS_MIB = 120
PROCESS_FILE = "BINANCE_ETH-BTC_5m.csv"
EXITS = {"stoploss": -0.004, "minimal_roi": {"0": 0.006, "60": 0.002},
         "trailing": {"positive": 0.002, "offset": 0.003}, "max_hold_minutes": 600}


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def naive_backtest(ts, o, c) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    """Per-candle loop: running SMAs, a cross acted on at the next open, one position."""
    fast_sum = slow_sum = 0.0
    prev_diff = None
    cash, held, trades = CAPITAL, 0.0, 0
    pending = 0  # +1 buy / -1 sell at the next open
    closes = c.tolist()
    opens = o.tolist()
    for i, close in enumerate(closes):
        if pending == 1:
            amount = STAKE / opens[i]
            cash -= amount * opens[i] * (1 + FEE)
            held, pending = amount, 0
        elif pending == -1:
            cash += held * opens[i] * (1 - FEE)
            held, pending, trades = 0.0, 0, trades + 1
        fast_sum += close
        slow_sum += close
        if i >= FAST:
            fast_sum -= closes[i - FAST]
        if i >= SLOW:
            slow_sum -= closes[i - SLOW]
        if i >= SLOW - 1:
            diff = fast_sum / FAST - slow_sum / SLOW
            tol = 1e-9 * abs(close)
            if prev_diff is not None and i >= SLOW:
                if diff > tol and not prev_diff > tol and held == 0:
                    pending = 1
                elif diff < -tol and not prev_diff < -tol and held > 0:
                    pending = -1
            prev_diff = diff
    if held:
        cash += held * closes[-1] * (1 - FEE)
        trades += 1
    return trades, cash


def _exits_strategy():  # type: ignore[no-untyped-def]
    """The SMA crossover template with every exit beyond the signal, set tight enough that
    each of them ends trades."""
    from app.domain.strategies.doc_model import parse_document
    from app.domain.strategies.doc_strategy import DocumentStrategy
    from app.domain.strategies.templates import template_document

    doc = template_document("sma_crossover")
    assert doc is not None
    doc = parse_document({**doc.model_dump(mode="json", exclude_none=True), "exits": EXITS})
    return DocumentStrategy(doc, timeframe="5m")


def core(path: Path, repeat: int) -> None:
    from app.engine.backtest import run_backtest, run_backtest_in_decimal
    from app.engine.fill_model import FeeSchedule
    from app.services.backtests import BacktestSpec, candle_file_data, execute

    data = candle_file_data(path)
    c = data.candles
    spec = BacktestSpec.from_payload(
        {
            "strategy": "sma_crossover",
            "strategy_params": {"fast": FAST, "slow": SLOW},
            "symbol": data.market.symbol,
            "timeframe": data.timeframe,
            "capital": str(CAPITAL),
            "sizing": {"mode": "fixed", "stake": str(STAKE)},
            "taker_fee": str(FEE),
            "maker_fee": str(FEE),
        }
    )
    from app.domain.sizing import SizingConfig
    from app.domain.strategies import get_strategy

    strategy = get_strategy("sma_crossover")
    params = strategy.validate_params({"fast": FAST, "slow": SLOW})

    def timed(fn) -> float:  # type: ignore[no-untyped-def]
        fn()
        runs = []
        for _ in range(repeat):
            started = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - started)
        return statistics.median(runs)

    def side_by_side(*fns) -> list[float]:  # type: ignore[no-untyped-def]
        """Median time of each of `fns`, run in turns (one machine load for all)."""
        runs: list[list[float]] = [[] for _ in fns]
        for fn in fns:
            fn()
        for _ in range(repeat):
            for k, fn in enumerate(fns):
                started = time.perf_counter()
                fn()
                runs[k].append(time.perf_counter() - started)
        return [statistics.median(r) for r in runs]

    # as `wsgi` does once a `flask` process has started: its long-lived objects stay out of
    # every later collection (the engine's trade records would otherwise have the collector
    # walk the whole app again and again; the naive loop's floats never do)
    gc.freeze()
    result = execute(spec, data)
    fees = FeeSchedule(Decimal(str(FEE)), Decimal(str(FEE)))

    def in_decimal():  # type: ignore[no-untyped-def]
        return run_backtest_in_decimal(c, strategy, params, capital=spec.capital,
                                       market=data.market, fees=fees,
                                       sizing=SizingConfig(mode="fixed", stake=Decimal(str(STAKE))),
                                       timeframe_seconds=300)  # fmt: skip

    reference = in_decimal()
    exact = (reference.trades == result.trades and reference.final_book == result.final_book
             and result.ledger == "scaled")  # fmt: skip
    signals = timed(lambda: strategy.signals(c, params))
    naive_trades, naive_cash = naive_backtest(c.ts, c.open, c.close)
    ours, naive, decimal_time = side_by_side(lambda: execute(spec, data),
                                             lambda: naive_backtest(c.ts, c.open, c.close),
                                             in_decimal)  # fmt: skip
    n = len(c)
    print(f"file: {path.name} ({n} candles), SMA {FAST}/{SLOW}, fixed stake {STAKE}, fee {FEE}")
    print(
        f"  engine    : {n / ours / 1e6:6.2f} M candles/s  ({ours * 1000:6.1f} ms, "
        f"{len(result.trades)} trades, final equity {Decimal(result.final_equity):.8f})"
    )
    print(f"    of which signals alone: {n / signals / 1e6:6.1f} M candles/s "
          f"({signals * 1000:.2f} ms)")  # fmt: skip
    print(
        f"  naive loop: {n / naive / 1e6:6.2f} M candles/s  ({naive * 1000:6.1f} ms, "
        f"{naive_trades} trades, final equity {naive_cash:.8f})"
    )
    print(f"  engine, every fill in Decimal (the reference): {n / decimal_time / 1e6:6.2f} M "
          f"candles/s ({decimal_time * 1000:6.1f} ms; same trades, final book and integer "
          f"ledger used: {exact})")  # fmt: skip
    print(f"  ratio engine/naive: {naive / ours:.2f}x (the Decimal engine: "
          f"{naive / decimal_time:.2f}x)")  # fmt: skip
    print(f"  target >= {TARGET_NAIVE_RATIO:.1f}x the naive loop, exact: "
          f"{_verdict(naive / ours >= TARGET_NAIVE_RATIO and exact)}")  # fmt: skip
    per_trade = (ours - signals) / max(len(result.trades), 1)
    print(f"  engine cost per round trip (sizing + 2 orders + 2 fills): {per_trade * 1e6:.0f} us")
    exits_strategy = _exits_strategy()
    exits_params = exits_strategy.default_params()
    percent = SizingConfig(mode="percent", percent=Decimal(50))

    def with_exits(run=run_backtest):  # type: ignore[no-untyped-def]
        return run(c, exits_strategy, exits_params, capital=spec.capital, market=data.market,
                   fees=fees, sizing=percent, timeframe_seconds=300)  # fmt: skip

    fast_exits, decimal_exits = with_exits(), with_exits(run_backtest_in_decimal)
    exits_exact = (fast_exits.trades == decimal_exits.trades and fast_exits.ledger == "scaled"
                   and fast_exits.final_book == decimal_exits.final_book)  # fmt: skip
    reasons = sorted({t.exit_reason for t in fast_exits.trades})
    exits_time, exits_decimal_time = side_by_side(with_exits,
                                                  lambda: with_exits(run_backtest_in_decimal))
    print(f"  engine with stop-loss, ROI, trailing stop and max hold ({len(fast_exits.trades)} "
          f"trades: {', '.join(reasons)}): {n / exits_time / 1e6:6.2f} M candles/s "
          f"({exits_time * 1000:6.1f} ms)")  # fmt: skip
    speedup = exits_decimal_time / exits_time
    print(f"    baseline, the same with every fill in Decimal: "
          f"{n / exits_decimal_time / 1e6:6.2f} M candles/s ({exits_decimal_time * 1000:6.1f} "
          f"ms); ratio: {speedup:.2f}x faster; same trades and final book, integer ledger "
          f"used: {exits_exact}")  # fmt: skip
    slow_spec = BacktestSpec.from_payload(
        {**spec.payload(), "strategy_params": {"fast": 50, "slow": 200}}
    )
    slow_result = execute(slow_spec, data)
    slow = timed(lambda: execute(slow_spec, data))
    print(
        f"  engine, SMA 50/200 ({len(slow_result.trades)} trades): "
        f"{n / slow / 1e6:6.2f} M candles/s ({slow * 1000:.1f} ms)"
    )


def pairs(repeat: int) -> None:
    from app.domain.sizing import SizingConfig
    from app.domain.strategies import get_strategy
    from app.engine.backtest import run_backtest
    from app.engine.fill_model import FeeSchedule
    from app.engine.pairs import PairData, run_pairs_backtest, run_pairs_backtest_in_decimal
    from app.services.backtests import candle_file_data

    datas = [candle_file_data(p) for p in sorted(candle_files("BINANCE_*-BTC_5m.csv"))]
    strategy = get_strategy("sma_crossover")
    params = strategy.validate_params({"fast": FAST, "slow": SLOW})
    fees = FeeSchedule(Decimal(str(FEE)), Decimal(str(FEE)))
    sizing = SizingConfig(mode="fixed", stake=Decimal(str(STAKE)))
    capital = Decimal(str(STAKE * 10 * len(datas)))  # every pair can always pay its stake
    pair_data = [PairData(d.candles, d.market) for d in datas]

    def walk(run=run_pairs_backtest):  # type: ignore[no-untyped-def]
        return run(pair_data, strategy, params, capital=capital, fees=fees, sizing=sizing,
                   timeframe_seconds=300, max_open_trades=len(datas))  # fmt: skip

    def one_by_one():  # type: ignore[no-untyped-def]
        return [run_backtest(d.candles, strategy, params, capital=capital, market=d.market,
                             fees=fees, sizing=sizing, timeframe_seconds=300)
                for d in datas]  # fmt: skip

    def in_decimal():  # type: ignore[no-untyped-def]
        return walk(run_pairs_backtest_in_decimal)

    def side_by_side(*fns) -> list[float]:  # type: ignore[no-untyped-def]
        """Median time of each of `fns`, run in turns (one machine load for all)."""
        runs: list[list[float]] = [[] for _ in fns]
        for _ in range(repeat):
            for k, fn in enumerate(fns):
                started = time.perf_counter()
                fn()
                runs[k].append(time.perf_counter() - started)
        return [statistics.median(r) for r in runs]

    multi, singles, reference = walk(), one_by_one(), in_decimal()
    same = sorted((t.symbol, t.entry_index, t.pnl) for t in multi.trades) == sorted(
        (d.market.symbol, t.entry_index, t.pnl) for d, r in zip(datas, singles, strict=True)
        for t in r.trades)  # fmt: skip
    exact = (multi.trades == reference.trades and multi.skipped == reference.skipped
             and multi.final_equity == reference.final_equity
             and (multi.equity == reference.equity).all() and multi.ledger == "scaled")  # fmt: skip
    ours, base, decimal_time = side_by_side(walk, one_by_one, in_decimal)
    n = sum(len(d.candles) for d in datas)
    print(f"{len(datas)} pairs, {n} candles, SMA {FAST}/{SLOW}, {len(multi.trades)} trades "
          f"(the same as one by one: {same})")  # fmt: skip
    print(f"  one wallet walk : {n / ours / 1e6:6.2f} M candles/s ({ours * 1000:6.1f} ms)")
    print(f"  baseline, pairs one by one:   {n / base / 1e6:6.2f} M candles/s "
          f"({base * 1000:6.1f} ms)")  # fmt: skip
    print(f"  the walk with every fill in Decimal (the reference): {n / decimal_time / 1e6:6.2f} "
          f"M candles/s ({decimal_time * 1000:6.1f} ms; same trades, skipped entries, wallet "
          f"and equity, integer ledgers used: {exact})")  # fmt: skip
    print(f"  ratio walk/one-by-one time: {ours / base:.2f}x (the Decimal walk: "
          f"{decimal_time / base:.2f}x)")  # fmt: skip
    print(f"  target <= {TARGET_PAIRS_RATIO:.1f}x the pairs one by one, exact: "
          f"{_verdict(ours / base <= TARGET_PAIRS_RATIO and exact)}")  # fmt: skip


def process(path: Path, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
            "LOG_LEVEL": "WARNING",
            "JWT_SECRET_KEY": "bench-" + "x" * 40,
            "ENCRYPTION_KEY": "ZGV2LWluc2VjdXJlLWVuY3J5cHRpb24ta2V5LTAwMDA=",
        }
        env.pop("REDIS_URL", None)
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # compiled modules cached, as after an install
        command = [str(BIN / "flask"), "--app", "wsgi", "backtest", "--file", str(path),
                   "--stake", str(STAKE), "--fee", str(FEE)]  # fmt: skip
        startup = [str(BIN / "python"), "-c", "import wsgi"]

        def best(cmd: list[str]) -> tuple[float, float]:
            """(best wall seconds, peak RSS in MiB of the run) over `runs` runs."""
            times, peaks = [], []
            for _ in range(runs):
                started = time.perf_counter()
                child = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)  # fmt: skip
                _, status, usage = os.wait4(child.pid, 0)
                times.append(time.perf_counter() - started)
                if os.waitstatus_to_exitcode(status) != 0:
                    raise SystemExit(f"{' '.join(cmd)} failed")
                peaks.append(usage.ru_maxrss / 1024)  # KiB on Linux
            return min(times), max(peaks)

        whole, rss = best(command)
        bare, bare_rss = best(startup)
    print(f"flask backtest process on {path.name} (best of {runs}): {whole:.3f} s wall, "
          f"peak RSS {rss:.0f} MiB")  # fmt: skip
    print(f"  baseline, app start-up alone (python -c 'import wsgi'): {bare:.3f} s, "
          f"{bare_rss:.0f} MiB")  # fmt: skip
    print(f"  ratio whole/start-up: {whole / bare:.2f}x; the backtest itself adds "
          f"{(whole - bare) * 1000:.0f} ms")  # fmt: skip
    lo, hi = FREQTRADE_S
    goal = lo / TARGET_VS_FREQTRADE
    print(f"  reference (measured elsewhere on {FREQTRADE_CANDLES} candles): freqtrade "
          f"backtesting {lo}-{hi} s, {FREQTRADE_MIB} MiB; ours is {lo / whole:.1f}-"
          f"{hi / whole:.1f}x faster, {FREQTRADE_MIB / rss:.1f}x less memory")  # fmt: skip
    print(f"  target >= {TARGET_VS_FREQTRADE:.0f}x faster than freqtrade (<= {goal:.2f} s): "
          f"{_verdict(whole <= goal)}; RSS <= {TARGET_PROCESS_MIB} MiB: "
          f"{_verdict(rss <= TARGET_PROCESS_MIB)}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("APP_ENV", "development")
    largest = largest_candle_file()
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    named = [p for p in candle_files() if p.name == PROCESS_FILE]
    # first, while this process is small: a child's peak RSS counts what it was forked from
    process(named[0] if named else largest, args.runs)
    core(largest, args.repeat)
    pairs(args.repeat)


if __name__ == "__main__":
    main()
