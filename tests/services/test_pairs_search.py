"""A parameter search over several pairs sharing one wallet, on the shipped candles: every
trial is the several-pair backtest of its parameters, and a walk-forward cuts every pair at
the same times (its folds and figures checked against a direct computation)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from app.domain.search import efficiency
from app.services import backtests, searches

DATA = Path(__file__).resolve().parents[2] / "data" / "candles"
SYMBOLS = ("ETH-BTC", "LTC-BTC", "XMR-BTC")
RANGES = {"fast": {"low": 5, "high": 10}, "slow": {"low": 20, "high": 30}}


def _pairs(first_late_by: int = 0) -> list[backtests.CandleData]:
    """The three shipped pairs as hourly candles; the second starts `first_late_by` hours
    later than the others, so the walk's time axis is not any one pair's."""
    datas = [backtests.candle_file_data(DATA / f"BINANCE_{s}_5m.csv", "1h") for s in SYMBOLS]
    late = datas[1]
    datas[1] = replace(late, candles=late.candles.slice(first_late_by))
    return datas


def _spec(symbols: list[str], max_open: int = 2) -> backtests.BacktestSpec:
    return backtests.BacktestSpec.from_payload({
        "strategy": "sma_crossover", "strategy_params": {"fast": 10, "slow": 30},
        "symbol": symbols[0], "symbols": symbols, "max_open_trades": max_open,
        "timeframe": "1h", "capital": "1", "sizing": {"mode": "fixed", "stake": "0.1"},
    })  # fmt: skip


def _search(spec: backtests.BacktestSpec, **extra: object) -> searches.SearchSpec:
    return searches.check_search(spec, {
        "ranges": RANGES, "objective": "profit", "trials": 6, "timeout_seconds": 600, "seed": 5,
        **extra,
    })  # fmt: skip


def _clipped(datas: list[backtests.CandleData], first: int, end: int | None):  # type: ignore[no-untyped-def]
    """Each pair's candles of times [first, end): the window a fold must run over."""
    out = []
    for d in datas:
        ts = d.candles.ts
        lo = int(np.searchsorted(ts, first))
        hi = len(ts) if end is None else int(np.searchsorted(ts, end))
        out.append(replace(d, candles=d.candles.slice(lo, hi)))
    return out


def test_every_trial_is_the_several_pair_backtest_of_its_parameters() -> None:
    datas = _pairs()
    spec = _spec([d.market.symbol for d in datas])
    result = searches.run_search(_search(spec), datas)
    assert result["trials_done"] == 6
    scored = [t for t in result["trials"] if t["value"] is not None]
    assert scored, "at least one trial must trade"
    for trial in scored:
        direct = backtests.execute_pairs(replace(spec, strategy_params={**spec.strategy_params,
                                                                        **trial["params"]}),
                                         datas)  # fmt: skip
        assert trial["value"] == direct.metrics.total_return
    best = result["best"]
    assert best["value"] == max(t["value"] for t in scored)
    summary = searches.summary(_search(spec), datas)
    assert summary["symbols"] == ["ETH/BTC", "LTC/BTC", "XMR/BTC"]
    assert summary["max_open_trades"] == 2


def test_max_open_trades_is_the_searched_backtests() -> None:
    datas = _pairs()
    symbols = [d.market.symbol for d in datas]
    one = searches.run_search(_search(_spec(symbols, max_open=1)), datas)
    three = searches.run_search(_search(_spec(symbols, max_open=3)), datas)
    assert [t["params"] for t in one["trials"]] != [] and one["trials"] != three["trials"]
    for result, max_open in ((one, 1), (three, 3)):
        trial = next(t for t in result["trials"] if t["value"] is not None)
        spec = replace(_spec(symbols, max_open), strategy_params={"fast": 10, "slow": 30,
                                                                  **trial["params"]})  # fmt: skip
        assert trial["value"] == backtests.execute_pairs(spec, datas).metrics.total_return


def test_a_walk_forward_cuts_every_pair_at_the_same_times() -> None:
    datas = _pairs(first_late_by=100)  # LTC/BTC starts 100 hours after the others
    spec = _spec([d.market.symbol for d in datas])
    search = _search(spec, walk_forward={"folds": 3, "in_sample": 0.75})
    result = searches.run_walk_forward(search, datas)
    axis = np.unique(np.concatenate([d.candles.ts for d in datas]))
    assert len(axis) == len(datas[0].candles) == 528  # the union: the late pair adds no time
    assert searches.summary(search, datas)["candles"] == 528
    size = len(axis) // 3
    for k, row in enumerate(result["folds"]):
        lo, mid, hi = k * size, k * size + 132, k * size + 176
        assert row["in_sample"]["start"] == backtests.iso_ms(int(axis[lo]))
        assert row["out_of_sample"]["start"] == backtests.iso_ms(int(axis[mid]))
        assert row["out_of_sample"]["end"] == backtests.iso_ms(int(axis[hi - 1]))
        end = int(axis[hi]) if hi < len(axis) else None
        in_sample = _clipped(datas, int(axis[lo]), int(axis[mid]))
        out_of_sample = _clipped(datas, int(axis[mid]), end)
        fitted = searches.run_search(replace(search, seed=5 + k, walk_forward=None), in_sample)
        assert row["params"] == fitted["best"]["params"]
        assert row["in_sample_value"] == fitted["best"]["value"]
        best = replace(spec, strategy_params=row["params"])
        is_return = backtests.execute_pairs(best, in_sample).metrics.total_return
        oos_return = backtests.execute_pairs(best, out_of_sample).metrics.total_return
        assert row["in_sample_return"] == is_return
        assert row["out_of_sample_return"] == oos_return
        assert row["efficiency"] == efficiency(is_return, 132 / 24, oos_return, 44 / 24)
    assert len(_clipped(datas, int(axis[0]), int(axis[size]))[1].candles) == size - 100


def test_one_pair_windows_are_unchanged_by_the_time_axis() -> None:
    data = _pairs()[0]
    walk = searches.SearchData.of(data)
    assert walk.ts is data.candles.ts
    window = walk.window(10, 50)
    assert len(window.pairs) == 1 and len(window.pairs[0].candles) == 40
    assert int(window.pairs[0].candles.ts[0]) == int(data.candles.ts[10])


def test_a_window_is_a_span_of_time_even_when_empty() -> None:
    walk = searches.SearchData.of(_pairs(first_late_by=300))
    early = walk.window(0, 100)  # before the late pair's first candle
    assert [len(d.candles) for d in early.pairs] == [100, 0, 100]
    assert [len(d.candles) for d in walk.window(528, 528).pairs] == [0, 0, 0]
    assert [len(d.candles) for d in walk.window(500, 528).pairs] == [28, 28, 28]
