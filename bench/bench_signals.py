"""Throughput of every strategy's signals, against a pure-Python SMA crossover in the same run.

    .venv/bin/python bench/bench_signals.py [--tile N] [--repeat R]

Loads the largest CSV of ../shared/data/ohlcv (numpy.loadtxt), tiles it N times (default:
enough for about one million candles; tiling only adds price jumps at the seams, which do not
change the cost), and prints candles/second for each strategy with default params, for
signals plus the vectorised long/flat position, and the ratio to the baseline: a naive
per-candle Python loop computing an SMA 10/30 crossover with running sums over the same closes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _data import candle_files  # noqa: E402

from app.domain.candles import Candles  # noqa: E402
from app.domain.strategies import list_strategies, position_from_signals  # noqa: E402


def load_largest() -> tuple[Path, Candles]:
    files = candle_files()
    data = np.loadtxt(files[0], delimiter=",", skiprows=1)
    candles = Candles(
        ts=data[:, 0].astype(np.int64),
        open=np.ascontiguousarray(data[:, 1]),
        high=np.ascontiguousarray(data[:, 2]),
        low=np.ascontiguousarray(data[:, 3]),
        close=np.ascontiguousarray(data[:, 4]),
        volume=np.ascontiguousarray(data[:, 5]),
    )
    return files[0], candles


def tile(c: Candles, times: int) -> Candles:
    step = int(c.ts[1] - c.ts[0]) if len(c) > 1 else 60_000
    ts = c.ts[0] + step * np.arange(len(c) * times, dtype=np.int64)
    return Candles(
        ts, *(np.tile(getattr(c, f), times) for f in ("open", "high", "low", "close", "volume"))
    )


def naive_sma_crossover(close: list[float], fast: int = 10, slow: int = 30) -> list[int]:
    """The baseline: one Python iteration per candle, O(1) work each (running sums).

    Same rule as ours, including the tie band: differences within 1e-9 of the close are 0.
    """
    out = [0] * len(close)
    sum_f = sum_s = 0.0
    prev_diff = None
    for i, c in enumerate(close):
        tol = 1e-9 * abs(c)
        sum_f += c
        sum_s += c
        if i >= fast:
            sum_f -= close[i - fast]
        if i >= slow:
            sum_s -= close[i - slow]
        if i >= slow - 1:
            diff = sum_f / fast - sum_s / slow
            side = 1 if diff > tol else -1 if diff < -tol else 0
            if prev_diff is not None and side != prev_diff and side != 0:
                out[i] = side
            prev_diff = side
    return out


def best_of(repeat: int, fn) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile", type=int, default=0, help="repeat the file N times")
    parser.add_argument("--repeat", type=int, default=5, help="best of R runs")
    args = parser.parse_args()

    path, base = load_largest()
    times = args.tile or max(1, round(1_000_000 / len(base)))
    candles = tile(base, times)
    n = len(candles)
    print(f"data: {path.name}, {len(base)} candles x {times} = {n} candles")

    close_list = candles.close.tolist()
    t_base = best_of(max(1, args.repeat // 2), lambda: naive_sma_crossover(close_list))
    base_rate = n / t_base
    print(f"{'baseline: pure-Python SMA 10/30 loop':<42}{base_rate:>14,.0f} candles/s   1.0x")

    ours = {s.name: s for s in list_strategies()}["sma_crossover"]
    p = ours.validate_params({"fast": 10, "slow": 30})
    same = np.array_equal(ours.signals(candles, p), np.array(naive_sma_crossover(close_list)))
    print(f"  (sma_crossover 10/30 gives the same signals as the baseline: {same})")

    for s in list_strategies():
        params = s.default_params()
        t = best_of(args.repeat, lambda s=s, params=params: s.signals(candles, params))
        t_pos = best_of(
            args.repeat,
            lambda s=s, params=params: position_from_signals(s.signals(candles, params)),
        )
        for label, secs in ((s.name, t), (f"{s.name} + positions", t_pos)):
            rate = n / secs
            print(f"{label:<42}{rate:>14,.0f} candles/s {rate / base_rate:>6.1f}x")


if __name__ == "__main__":
    main()
