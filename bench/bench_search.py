"""Parameter-search benchmark: trials per second of the SMA crossover search (fast 5-30,
slow 20-100, Sharpe objective, fixed stake, 0.1 % fee) on the ETH/BTC 5m recording (the full
one beside the checkout when present, else the shipped sample), next to baselines measured
in the same run:

* plain backtests: the same engine run in a loop over parameter sets of the same grid, no
  sampler, no bookkeeping - the most a search could do per core;
* the search: `app.services.searches.run_search`, Optuna's TPE proposing every trial;
* memory: the process's peak RSS before and after the trials (it must not grow with them).

The issue's reference figures (freqtrade 2026.9 hyperopt on the same search: 0.70-0.88
epochs/s with -j 2; vectorbt 1.2.0: 57 trials/s once compiled; goal: 60 trials/s) were
measured elsewhere and are printed for context, not measured here.

    .venv/bin/python bench/bench_search.py [--trials 200] [--plain 100]
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _data import candle_files  # noqa: E402

from app.domain.sizing import validate_sizing_config  # noqa: E402
from app.engine.backtest import run_backtest  # noqa: E402
from app.engine.fill_model import FeeSchedule  # noqa: E402
from app.market.base import TIMEFRAME_SECONDS  # noqa: E402
from app.services import backtests, searches  # noqa: E402

FILE = candle_files("*ETH-BTC_5m.csv")[0]  # the full recording beside the checkout, if any
REFERENCE_CANDLES = 25_968
RANGES = {"fast": {"low": 5, "high": 30}, "slow": {"low": 20, "high": 100}}
GOAL = 60.0
FREQTRADE = (0.70, 0.88)
VECTORBT = 57.0


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--plain", type=int, default=100)
    args = parser.parse_args()

    data = backtests.candle_file_data(FILE)
    spec = backtests.BacktestSpec.from_payload({
        "strategy": "sma_crossover", "strategy_params": {"fast": 10, "slow": 30},
        "symbol": data.market.symbol, "timeframe": data.timeframe, "capital": "1",
        "sizing": {"mode": "fixed", "stake": "0.1"},
    })  # fmt: skip
    search = searches.check_search(spec, {
        "ranges": RANGES, "objective": "sharpe", "trials": args.trials,
        "timeout_seconds": 3600, "seed": 1,
    })  # fmt: skip
    print(f"data: {FILE.name}, {len(data.candles)} candles; SMA crossover fast 5-30, slow 20-100")

    strategy = backtests.spec_strategy(spec)
    fees = FeeSchedule(maker=spec.maker_fee, taker=spec.taker_fee, slippage_bps=spec.slippage_bps)
    sizing = validate_sizing_config(spec.sizing)
    rng = random.Random(1)
    grid = [(f, s) for f in range(5, 31) for s in range(20, 101) if f < s]
    sets = [rng.choice(grid) for _ in range(args.plain)]
    run_backtest(data.candles, strategy, strategy.validate_params({"fast": 10, "slow": 30}),
                 capital=spec.capital, market=data.market, fees=fees, sizing=sizing,
                 timeframe_seconds=TIMEFRAME_SECONDS[data.timeframe])  # warm-up  # fmt: skip
    started = time.perf_counter()
    for fast, slow in sets:
        params = strategy.validate_params({"fast": fast, "slow": slow})
        run_backtest(data.candles, strategy, params, capital=spec.capital, market=data.market,
                     fees=fees, sizing=sizing,
                     timeframe_seconds=TIMEFRAME_SECONDS[data.timeframe])  # fmt: skip
    plain = args.plain / (time.perf_counter() - started)

    before = _rss_mb()
    started = time.perf_counter()
    result = searches.run_search(search, data)
    took = time.perf_counter() - started
    rate = result["trials_done"] / took
    after = _rss_mb()

    print(f"plain backtests        {plain:8.1f} /s   (baseline, {args.plain} runs)")
    print(f"search trials          {rate:8.1f} /s   ({result['trials_done']} trials, "
          f"{rate / plain:.2f}x the plain loop)")  # fmt: skip
    best = result["best"]
    print(f"best sharpe            {best['value']:.4f} at {best['params']}")
    print(f"peak RSS               {before:8.1f} MB before the trials, {after:.1f} MB after")
    lo, hi = FREQTRADE
    same = len(data.candles) == REFERENCE_CANDLES
    print(f"reference (measured elsewhere on {REFERENCE_CANDLES} candles): freqtrade hyperopt "
          f"{lo}-{hi} epochs/s, vectorbt {VECTORBT} trials/s"
          + (f"; ours is {rate / hi:.0f}-{rate / lo:.0f}x freqtrade's" if same
             else "; not comparable: this run has another number of candles"))  # fmt: skip
    verdict = "met" if rate >= GOAL else "NOT met"
    print(f"goal {GOAL:.0f} trials/s on this machine: {verdict}")


if __name__ == "__main__":
    main()
