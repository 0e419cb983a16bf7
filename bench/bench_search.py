"""Parameter-search benchmark: trials per second of the SMA crossover search (fast 5-30,
slow 20-100, Sharpe objective, fixed stake, 0.1 % fee) on the ETH/BTC 5m recording (the full
one beside the checkout when present, else the shipped sample), next to baselines measured
in the same run:

* plain backtests: the same engine run in a loop over parameter sets of the same grid, no
  sampler, no bookkeeping - the most a search could do per core;
* the search: `app.services.searches.run_search`, Optuna's TPE proposing every trial;
* memory: the process's peak RSS before and after the trials (it must not grow with them);
* several pairs: the same search over ETH/BTC, LTC/BTC and XMR/BTC from one wallet (at most
  two trades open), next to a plain loop of the several-pair backtests it runs;
* with `--workers 1,3`: the same search as a background job on a throw-away Postgres
  database (`BENCH_POSTGRES_URL`, default the local one), run by that many `flask worker`
  processes, each count after the other in this run; trials/s from the search's start to its
  result, so it includes proposing under the row lock and recording each trial.

The issue's reference figures (freqtrade 2026.9 hyperopt on the same search: 0.70-0.88
epochs/s with -j 2; vectorbt 1.2.0: 57 trials/s once compiled; goal: 60 trials/s) were
measured elsewhere and are printed for context, not measured here.

    .venv/bin/python bench/bench_search.py [--trials 200] [--plain 100] [--workers 1,3]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg2  # noqa: E402
from _data import candle_files  # noqa: E402
from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from sqlalchemy import select  # noqa: E402

from app.domain.sizing import validate_sizing_config  # noqa: E402
from app.engine.backtest import run_backtest  # noqa: E402
from app.engine.fill_model import FeeSchedule  # noqa: E402
from app.engine.pairs import PairData, run_pairs_backtest  # noqa: E402
from app.market.base import TIMEFRAME_SECONDS  # noqa: E402
from app.services import backtests, searches  # noqa: E402
from app.store.db import init_database, session_scope, shutdown_database  # noqa: E402
from app.store.models import Job  # noqa: E402
from app.store.models.searches import SearchRun  # noqa: E402
from config import get_settings, use_settings  # noqa: E402

FILE = candle_files("*ETH-BTC_5m.csv")[0]  # the full recording beside the checkout, if any
REFERENCE_CANDLES = 25_968
RANGES = {"fast": {"low": 5, "high": 30}, "slow": {"low": 20, "high": 100}}
GOAL = 60.0
FREQTRADE = (0.70, 0.88)
VECTORBT = 57.0


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")


def _admin(sql: str) -> None:
    conn = psycopg2.connect(f"{ADMIN}/postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


def _worker_search(url: str, env: dict[str, str], workers: int, trials: int) -> tuple[float, int]:
    """One search job run by `workers` worker processes; (trials/s, candles)."""
    with session_scope() as session:
        job = searches.submit_search(session, None, {
            "strategy": "sma_crossover", "strategy_params": {"fast": 10, "slow": 30},
            "symbol": "ETH/BTC", "timeframe": "5m", "capital": "1",
            "sizing": {"mode": "fixed", "stake": "0.1"}, "ranges": RANGES,
            "objective": "sharpe", "trials": trials, "timeout_seconds": 3600, "seed": 1,
        }).job  # fmt: skip
        job_id = job.id
    procs = [subprocess.Popen([str(Path(sys.executable).parent / "flask"), "--app", "wsgi",
                               "worker"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for _ in range(workers)]  # fmt: skip
    try:
        while True:
            with session_scope() as session:
                row = session.get(Job, job_id)
                assert row is not None
                if row.state not in ("queued", "running"):
                    started = session.scalar(
                        select(SearchRun.created_at).where(SearchRun.job_id == job_id))  # fmt: skip
                    state, finished, result = row.state, row.finished_at, row.result
                    break
            time.sleep(0.2)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(60)
    if state != "succeeded" or started is None or finished is None or result is None:
        raise SystemExit(f"the search with {workers} worker(s) ended {state}")
    took = (finished - started).total_seconds()
    return result["trials_done"] / took, result["summary"]["candles"]


def multi_worker(counts: list[int], trials: int) -> None:
    """The search as a job, spread over 1, 2, ... worker processes (see the docstring)."""
    name = f"bench_search_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    _admin(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg2://{ADMIN.split('://', 1)[1]}/{name}"
    folder = Path(tempfile.mkdtemp(prefix="bench-search-"))
    try:
        cfg = Config(str(ROOT / "alembic.ini"))
        cfg.attributes["database_url"] = url
        cfg.attributes["configure_logger"] = False
        command.upgrade(cfg, "head")
        (folder / "candles").mkdir()
        (folder / "none").mkdir()
        shutil.copy(FILE, folder / "candles" / FILE.name)
        dirs = {"database_url": url, "candles_dir": str(folder / "candles"),
                "candles_import_dir": str(folder / "none")}  # fmt: skip
        init_database(use_settings(get_settings().model_copy(update=dirs)))
        env = {**os.environ, "DATABASE_URL": url, "CANDLES_DIR": dirs["candles_dir"],
               "CANDLES_IMPORT_DIR": dirs["candles_import_dir"], "SCHEDULER_ENABLED": "true",
               "TRADING_ENABLED": "false", "SELF_HEALING_ENABLED": "false",
               "LOG_LEVEL": "WARNING", "REDIS_URL": ""}  # fmt: skip
        base = None
        for n in counts:
            rate, candles = _worker_search(url, env, n, trials)
            base = base or rate
            print(f"search job, {n} worker(s) {rate:8.1f} /s   ({trials} trials on {candles} "
                  f"candles, {rate / base:.2f}x the first count)")  # fmt: skip
    finally:
        shutdown_database()
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--plain", type=int, default=100)
    parser.add_argument("--workers", help="also run the search as a job on this many worker "
                        "processes, e.g. 1,3 (needs Postgres)")  # fmt: skip
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
    several_pairs(max(args.trials // 4, 10), max(args.plain // 4, 5))
    if args.workers:
        print(f"machine: {os.cpu_count()} cores, shared with whatever else runs on it")
        multi_worker([int(n) for n in args.workers.split(",")], args.trials)


def several_pairs(trials: int, plain_runs: int) -> None:
    """Trials/s of a search over three pairs from one wallet, beside a plain loop of the
    several-pair backtests themselves."""
    datas = [backtests.candle_file_data(candle_files(f"*{name}_5m.csv")[0])
             for name in ("ETH-BTC", "LTC-BTC", "XMR-BTC")]  # fmt: skip
    symbols = [d.market.symbol for d in datas]
    spec = backtests.BacktestSpec.from_payload({
        "strategy": "sma_crossover", "strategy_params": {"fast": 10, "slow": 30},
        "symbol": symbols[0], "symbols": symbols, "max_open_trades": 2, "timeframe": "5m",
        "capital": "1", "sizing": {"mode": "fixed", "stake": "0.1"},
    })  # fmt: skip
    wanted = {"ranges": RANGES, "objective": "sharpe", "trials": trials, "timeout_seconds": 3600,
              "seed": 1}  # fmt: skip
    search = searches.check_search(spec, wanted)
    strategy = backtests.spec_strategy(spec)
    fees = FeeSchedule(maker=spec.maker_fee, taker=spec.taker_fee, slippage_bps=spec.slippage_bps)
    pairs = [PairData(d.candles, d.market) for d in datas]
    rng = random.Random(2)
    grid = [(f, s) for f in range(5, 31) for s in range(20, 101) if f < s]
    started = time.perf_counter()
    for fast, slow in (rng.choice(grid) for _ in range(plain_runs)):
        run_pairs_backtest(pairs, strategy, strategy.validate_params({"fast": fast, "slow": slow}),
                           capital=spec.capital, fees=fees,
                           sizing=validate_sizing_config(spec.sizing), timeframe_seconds=300,
                           max_open_trades=2)  # fmt: skip
    plain = plain_runs / (time.perf_counter() - started)
    started = time.perf_counter()
    result = searches.run_search(search, datas)
    rate = result["trials_done"] / (time.perf_counter() - started)
    candles = sum(len(d.candles) for d in datas)
    print(f"three pairs ({candles} candles, max 2 open): plain several-pair backtests "
          f"{plain:.1f} /s, search trials {rate:.1f} /s ({rate / plain:.2f}x the plain loop)")


if __name__ == "__main__":
    main()
