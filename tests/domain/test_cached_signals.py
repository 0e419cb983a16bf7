"""Signals computed once per signal-moving parameter set: parameters that only move exits
(stop-loss, holding time) share one array, and a backtest through the cache is the
backtest of the strategy itself."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from app.domain.strategies import get_strategy
from app.domain.strategies.cached import CachedSignals
from app.domain.strategies.doc_model import StrategyDocument
from app.domain.strategies.doc_strategy import DocumentStrategy
from app.engine.backtest import run_backtest
from app.engine.fill_model import FeeSchedule
from app.market.base import MarketInfo
from tests.domain.helpers import random_walk

DOC = {
    "name": "rsi dip with exits",
    "parameters": {
        "period": {"type": "int", "default": 14, "min": 2, "max": 50},
        "level": {"type": "float", "default": 30, "min": 5, "max": 45},
        "sl": {"type": "float", "default": -0.05, "min": -0.5, "max": -0.005},
        "hold": {"type": "int", "default": 600, "min": 5, "max": 10000},
    },
    "indicators": {"rsi": {"ta": "RSI", "params": {"timeperiod": {"param": "period"}}}},
    "entry": {"op": "crosses_above", "args": [{"ref": "rsi"}, {"param": "level"}]},
    "exit": {"op": "crosses_above", "args": [{"ref": "rsi"}, 70]},
    "exits": {"stoploss": {"param": "sl"}, "max_hold_minutes": {"param": "hold"}},
}


def _doc() -> DocumentStrategy:
    return DocumentStrategy(StrategyDocument.model_validate(DOC), timeframe="5m")


def test_which_parameters_move_signals() -> None:
    assert _doc().signal_params() == {"period", "level"}
    assert get_strategy("sma_crossover").signal_params() == {"fast", "slow"}


def test_exit_only_parameters_share_one_signal_array() -> None:
    candles = random_walk(3000)
    inner = _doc()
    cached = CachedSignals(inner)
    sets = [{"period": 14, "level": 30, "sl": sl, "hold": hold}
            for sl in (-0.01, -0.05, -0.2) for hold in (30, 600)]  # fmt: skip
    arrays = [cached.signals(candles, inner.validate_params(v)) for v in sets]
    assert cached.computed == 1
    assert all(a is arrays[0] for a in arrays)
    assert not arrays[0].flags.writeable  # shared: nobody may change it
    np.testing.assert_array_equal(arrays[0], inner.signals(candles, inner.validate_params(sets[0])))
    other = cached.signals(candles, inner.validate_params({**sets[0], "period": 9}))
    assert cached.computed == 2
    np.testing.assert_array_equal(
        other, inner.signals(candles, inner.validate_params({**sets[0], "period": 9}))
    )
    cached.signals(random_walk(3000, seed=8), inner.validate_params(sets[0]))  # other candles
    assert cached.computed == 3


@pytest.mark.parametrize("sl", [-0.01, -0.03, -0.2])
def test_a_backtest_through_the_cache_is_the_strategys(sl: float) -> None:
    candles = random_walk(3000)
    inner = _doc()
    cached = CachedSignals(inner)
    cached.signals(candles, inner.validate_params({"sl": -0.4}))  # warm with other exits
    market = MarketInfo("AAA/BBB", "AAA", "BBB", Decimal("0.00000001"), Decimal("0.00000001"))
    kw = {"capital": Decimal(1000), "market": market, "fees": FeeSchedule(),
          "timeframe_seconds": 300}  # fmt: skip
    params = inner.validate_params({"sl": sl, "hold": 120})
    direct = run_backtest(candles, inner, params, **kw)  # type: ignore[arg-type]
    through = run_backtest(candles, cached, params, **kw)  # type: ignore[arg-type]
    assert cached.computed == 1
    assert through.metrics == direct.metrics
    assert [t.to_dict() for t in through.trades] == [t.to_dict() for t in direct.trades]
    assert {t.exit_reason for t in direct.trades} & {"stop_loss", "max_hold"}  # exits bite
