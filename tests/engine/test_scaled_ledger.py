"""The integer ledger of a backtest's signal loop against the `Decimal` fill rules: every
trade, skipped entry, final book, equity point and metric identical, to the last unit and in
the same spelling, over recorded candles and over prices chosen to stress each rounding."""

from __future__ import annotations

import itertools
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.domain.candles import Candles
from app.domain.sizing import SizingConfig
from app.domain.strategies import get_strategy
from app.engine.backtest import BacktestResult, run_backtest, run_backtest_in_decimal
from app.engine.fill_model import FeeSchedule
from app.engine.scaled_ledger import ScaledLedger, to_units, units_decimal
from app.market.base import MarketInfo
from app.market.csv_candles import load_candle_file
from tests.support.recorded import SHIPPED

D = Decimal
SMA = get_strategy("sma_crossover")


def _recorded() -> tuple[Candles, MarketInfo]:
    name, series = load_candle_file(sorted(Path(SHIPPED).glob("*.csv"))[0])
    market = MarketInfo(name.symbol, name.base, name.quote, amount_step=series.amount_step,
                        price_step=series.price_step)  # fmt: skip
    return series.candles, market


def _both(candles: Candles, market: MarketInfo, **kw: Any) -> tuple[BacktestResult, ...]:
    params = SMA.validate_params(kw.pop("params", {"fast": 10, "slow": 30}))
    args = dict(capital=D(1), market=market, fees=FeeSchedule(D("0.001"), D("0.001")),
                timeframe_seconds=300) | kw  # fmt: skip
    return tuple(
        run(candles, SMA, params, **args)  # type: ignore[arg-type]
        for run in (run_backtest, run_backtest_in_decimal)
    )


def _identical(scaled: BacktestResult, exact: BacktestResult) -> None:
    def spelled(result: BacktestResult) -> list[dict[str, str]]:
        return [{k: repr(v) for k, v in vars(t).items()} for t in result.trades]

    assert exact.ledger == "decimal"
    assert spelled(scaled) == spelled(exact)
    assert scaled.trades == exact.trades
    assert scaled.skipped == exact.skipped
    assert scaled.final_book == exact.final_book
    assert np.array_equal(scaled.equity, exact.equity)
    assert scaled.metrics == exact.metrics
    assert [t.to_dict() for t in scaled.trades] == [t.to_dict() for t in exact.trades]


CAPITAL = D("12.3456789")
MARKETS = [("1", "1E-8"), ("0.001", "1E-10"), ("0.5", "0.00000025")]
SIZINGS = [
    SizingConfig(mode="fixed", stake=D("1.5")),
    SizingConfig(mode="fixed", stake=D("20")),  # more than the wallet: capped stakes
    SizingConfig(mode="percent", percent=D("37.5")),
    SizingConfig(mode="kelly", bootstrap_trades=3, kelly_cap=D("0.9")),
]
FEES = [
    FeeSchedule(D("0.001"), D("0.001")),
    FeeSchedule(D("0.0025"), D("0.00075"), D("7.5")),
    FeeSchedule(D(0), D(0)),
]


@pytest.mark.parametrize(
    ("steps", "sizing", "fees"), list(itertools.product(MARKETS, SIZINGS, FEES))
)
def test_recorded_candles_trade_the_same_on_integers_as_in_decimal(
    steps: tuple[str, str], sizing: SizingConfig, fees: FeeSchedule
) -> None:
    candles, market = _recorded()
    market = MarketInfo(market.symbol, market.base, market.quote, amount_step=D(steps[0]),
                        price_step=D(steps[1]))  # fmt: skip
    assert ScaledLedger.usable(market, CAPITAL)
    scaled, exact = _both(candles, market, sizing=sizing, fees=fees, capital=CAPITAL)
    # (Kelly sees no edge after its bootstrap trades here: its later entries have no stake)
    assert len(exact.trades) >= 3 and len(exact.trades) + len(exact.skipped) > 20
    assert scaled.ledger == "scaled"
    _identical(scaled, exact)


def _awkward_candles(seed: int, n: int = 3000) -> Candles:
    """A random walk of prices with all 17 digits of a float and a wide range."""
    rng = np.random.default_rng(seed)
    close = np.exp(np.cumsum(rng.normal(0, 0.01, n))) * rng.choice([1e-7, 0.37, 12345.678])
    opens = np.r_[close[0], close[:-1]] * (1 + rng.normal(0, 0.001, n))
    ts = np.arange(n, dtype=np.int64) * 300_000
    return Candles(ts, opens, np.maximum(opens, close) * 1.001, np.minimum(opens, close) * 0.999,
                   close, np.ones(n))  # fmt: skip


@pytest.mark.parametrize("seed", range(6))
def test_prices_of_every_digit_round_the_same_on_integers(seed: int) -> None:
    market = MarketInfo("A/B", "A", "B", amount_step=D("1E-12"), price_step=D("1E-15"))
    for sizing in SIZINGS[:3]:
        scaled, exact = _both(_awkward_candles(seed), market, sizing=sizing,
                              fees=FeeSchedule(D("0.00123"), D("0.00077"), D("3.3")),
                              params={"fast": 5, "slow": 20})  # fmt: skip
        assert len(exact.trades) > 20 and scaled.ledger == "scaled"
        _identical(scaled, exact)


def test_a_refused_order_is_reported_as_the_decimal_rules_word_it() -> None:
    candles, market = _recorded()
    scaled, exact = _both(candles, market, sizing=SizingConfig(mode="fixed", stake=D("1E-8")))
    assert exact.skipped and exact.skipped[0].reason.startswith("fill rejected: ")
    assert scaled.ledger == "decimal"  # redone in Decimal, which says why
    _identical(scaled, exact)


def test_a_wallet_past_the_exact_range_and_market_minimums_keep_the_decimal_rules() -> None:
    candles, market = _recorded()
    big = D("123456789012.5")
    assert not ScaledLedger.usable(market, big)
    percent = SizingConfig(mode="percent", percent=D(50))
    _identical(*_both(candles, market, capital=big, sizing=percent))
    floor = MarketInfo(market.symbol, market.base, market.quote, amount_step=market.amount_step,
                       price_step=market.price_step, min_notional=D("0.05"))  # fmt: skip
    assert not ScaledLedger.usable(floor, D(1))
    _identical(*_both(candles, floor, sizing=SizingConfig(mode="percent", percent=D(6))))


def test_units_are_the_ledgers_scale() -> None:
    assert to_units(D("0.00000001")) == 10**10
    assert to_units(D("1E-19")) is None
    assert repr(units_decimal(0)) == "Decimal('0E-18')"
    assert units_decimal(123) == D("1.23E-16")


def _cuts_near_signals(candles: Candles, count: int = 4) -> list[int]:
    """Lengths that end the data on, just after and just before the last few entry and exit
    signals: where a walk's look-ahead tables meet the end."""
    sig = SMA.signals(candles, SMA.validate_params({"fast": 10, "slow": 30}))
    marks = np.flatnonzero(sig != 0)[-count:]
    return sorted({int(i) + d for i in marks for d in (1, 2, 3) if 2 < int(i) + d <= len(sig)})


def test_data_ending_at_any_signal_trades_the_same_on_integers() -> None:
    candles, market = _recorded()
    cuts = _cuts_near_signals(candles)
    assert len(cuts) >= 8
    for n in cuts:
        scaled, exact = _both(candles.slice(0, n), market,
                              sizing=SizingConfig(mode="fixed", stake=D("0.1")))  # fmt: skip
        assert scaled.ledger == "scaled", n
        _identical(scaled, exact)
