"""Walk-forward validation on the shipped ETH/BTC candles: the folds, and every figure of
each fold, checked against a direct computation (a search of the in-sample window, a
backtest of its best parameters on the out-of-sample window)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from app.domain.search import efficiency
from app.services import backtests, searches

FILE = Path(__file__).resolve().parents[2] / "data" / "candles" / "BINANCE_ETH-BTC_5m.csv"
RANGES = {"fast": {"low": 5, "high": 10}, "slow": {"low": 20, "high": 30}}


@pytest.fixture(scope="module")
def setup():  # type: ignore[no-untyped-def]
    data = backtests.candle_file_data(FILE, "1h")
    spec = backtests.BacktestSpec.from_payload({
        "strategy": "sma_crossover", "strategy_params": {"fast": 10, "slow": 30},
        "symbol": data.market.symbol, "timeframe": "1h", "capital": "1",
        "sizing": {"mode": "fixed", "stake": "0.1"},
    })  # fmt: skip
    search = searches.check_search(spec, {
        "ranges": RANGES, "objective": "profit", "trials": 6, "timeout_seconds": 600,
        "seed": 5, "walk_forward": {"folds": 3, "in_sample": 0.75},
    })  # fmt: skip
    return data, spec, search, searches.run_walk_forward(search, data)


def _window(data, lo, hi):  # type: ignore[no-untyped-def]
    return backtests.CandleData(data.candles.slice(lo, hi), data.market, "1h", data.source)


def test_the_folds_split_the_range(setup) -> None:  # type: ignore[no-untyped-def]
    data, _, _, result = setup
    n = len(data.candles)
    assert n == 528  # 6,336 five-minute candles as hours
    size = n // 3  # 176 candles a fold: 132 fitted on, 44 checked on
    spans = [(r["in_sample"]["candles"], r["out_of_sample"]["candles"]) for r in result["folds"]]
    assert spans == [(132, 44)] * 3
    ts = data.candles.ts
    for k, row in enumerate(result["folds"]):
        lo = k * size
        assert row["in_sample"]["start"] == backtests.iso_ms(int(ts[lo]))
        assert row["out_of_sample"]["start"] == backtests.iso_ms(int(ts[lo + 132]))
        assert row["out_of_sample"]["end"] == backtests.iso_ms(int(ts[lo + 175]))
    assert result["trials_done"] == 18


def test_each_fold_against_a_direct_computation(setup) -> None:  # type: ignore[no-untyped-def]
    data, spec, search, result = setup
    for k, row in enumerate(result["folds"]):
        lo = k * 176
        fitted = searches.run_search(replace(search, seed=5 + k, walk_forward=None),
                                     _window(data, lo, lo + 132))  # fmt: skip
        assert row["params"] == fitted["best"]["params"]
        assert row["in_sample_value"] == fitted["best"]["value"]
        best = replace(spec, strategy_params=row["params"])
        is_run = backtests.execute(best, _window(data, lo, lo + 132))
        oos_run = backtests.execute(best, _window(data, lo + 132, lo + 176))
        assert row["in_sample_return"] == is_run.metrics.total_return
        assert row["out_of_sample_return"] == oos_run.metrics.total_return
        assert row["efficiency"] == efficiency(is_run.metrics.total_return, 132 / 24,
                                               oos_run.metrics.total_return, 44 / 24)  # fmt: skip


def test_the_verdict_across_folds(setup) -> None:  # type: ignore[no-untyped-def]
    _, _, _, result = setup
    wf = result["walk_forward"]
    oos = [r["out_of_sample_return"] for r in result["folds"]]
    assert wf["out_of_sample_return"] == pytest.approx(math.prod(1 + x for x in oos) - 1)
    effs = [r["efficiency"] for r in result["folds"] if r["efficiency"] is not None]
    assert wf["efficiency"] == (sum(effs) / len(effs) if effs else None)
    fast = [r["params"]["fast"] for r in result["folds"]]
    mean = sum(fast) / 3
    cv = math.sqrt(sum((x - mean) ** 2 for x in fast) / 3) / mean
    assert wf["parameter_stability"]["fast"] == {"values": fast, "cv": pytest.approx(cv)}
    if wf["out_of_sample_return"] <= 0:
        assert wf["holds"] is False and wf["verdict"].startswith("falls apart")


def test_efficiency_and_too_few_candles(setup) -> None:  # type: ignore[no-untyped-def]
    assert efficiency(0.1, 10, 0.01, 2) == pytest.approx((0.01 / 2) / (0.1 / 10))
    assert efficiency(-0.1, 10, 0.01, 2) is None  # nothing earned in sample to compare with
    data, _, search, _ = setup
    tiny = _window(data, 0, 50)
    with pytest.raises(backtests.ValidationFailed) as err:
        searches.run_walk_forward(search, tiny)
    assert err.value.code == "too_few_candles"


def test_the_time_budget_is_the_whole_searchs(setup) -> None:  # type: ignore[no-untyped-def]
    data, _, search, result = setup
    assert result["stopped_by"] == "trials"
    spent = searches.run_walk_forward(replace(search, timeout_seconds=1e-9), data)
    assert spent["stopped_by"] == "time" and spent["trials_done"] == 0
    assert all(r["params"] is None for r in spent["folds"])
    assert spent["walk_forward"]["holds"] is False
    assert spent["walk_forward"]["verdict"].startswith("no fold produced")
