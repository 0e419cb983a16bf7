"""Backtests with exits beyond the signal (stop-loss, ROI, trailing stop, maximum holding time)
on the integer ledger against the `Decimal` fill rules: every trade, skipped entry, final book,
equity point and metric identical, to the last unit and in the same spelling, over recorded
candles with every sizing mode, fees with slippage and several market steps."""

from __future__ import annotations

import itertools
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from app.domain.candles import Candles
from app.domain.sizing import SizingConfig
from app.domain.strategies.doc_model import parse_document
from app.domain.strategies.doc_strategy import DocumentStrategy
from app.domain.strategies.templates import template_document
from app.engine.backtest import BacktestResult, run_backtest, run_backtest_in_decimal
from app.engine.fill_model import FeeSchedule
from app.market.base import MarketInfo
from app.market.csv_candles import load_candle_file
from tests.engine.test_scaled_ledger import _identical
from tests.support.recorded import SHIPPED, largest_recorded_file

D = Decimal
TIGHT = {"stoploss": -0.004, "minimal_roi": {"0": 0.006, "60": 0.002},
         "trailing": {"positive": 0.002, "offset": 0.003}, "max_hold_minutes": 600}  # fmt: skip
WIDE = {"stoploss": -0.02, "minimal_roi": {"0": 0.03}, "max_hold_minutes": 240,
        "use_exit_signal": False}  # fmt: skip


@cache
def _recorded(path: Path) -> tuple[Candles, MarketInfo]:
    name, series = load_candle_file(path)
    market = MarketInfo(name.symbol, name.base, name.quote, amount_step=series.amount_step,
                        price_step=series.price_step)  # fmt: skip
    return series.candles, market


def _strategy(template: str, exits: dict[str, Any]) -> DocumentStrategy:
    doc = template_document(template)
    assert doc is not None
    doc = parse_document({**doc.model_dump(mode="json", exclude_none=True), "exits": exits})
    return DocumentStrategy(doc, timeframe="5m")


def _both(candles: Candles, market: MarketInfo, strategy: DocumentStrategy,
          **kw: Any) -> tuple[BacktestResult, BacktestResult]:  # fmt: skip
    args = dict(capital=D(1), market=market, fees=FeeSchedule(D("0.001"), D("0.001")),
                timeframe_seconds=300) | kw  # fmt: skip
    return tuple(  # type: ignore[return-value]
        run(candles, strategy, strategy.default_params(), **args)  # type: ignore[arg-type]
        for run in (run_backtest, run_backtest_in_decimal)
    )


SIZINGS = [
    SizingConfig(mode="fixed", stake=D("0.3")),
    SizingConfig(mode="fixed", stake=D("5")),  # more than the wallet: capped stakes
    SizingConfig(mode="percent", percent=D("37.5")),
    SizingConfig(mode="kelly", bootstrap_trades=3, kelly_cap=D("0.9")),
]
FEES = [FeeSchedule(D("0.001"), D("0.001")), FeeSchedule(D("0.0025"), D("0.00075"), D("7.5"))]


@pytest.mark.parametrize(("template", "exits", "sizing", "fees"), list(itertools.product(
    ["sma_crossover", "breakout_atr_stop"], [TIGHT, WIDE], SIZINGS, FEES)))  # fmt: skip
def test_recorded_exits_fill_the_same_on_integers_as_in_decimal(
    template: str, exits: dict[str, Any], sizing: SizingConfig, fees: FeeSchedule
) -> None:
    candles, market = _recorded(sorted(Path(SHIPPED).glob("*.csv"))[0])
    scaled, exact = _both(candles, market, _strategy(template, exits), sizing=sizing, fees=fees)
    # an entry the Decimal rules refuse (Kelly's small stakes can buy less than one amount
    # step) sends the run back to Decimal, which words the refusal; any other runs on integers
    refused = any("rejected" in s.reason for s in exact.skipped)
    assert scaled.ledger == ("decimal" if refused else "scaled")
    assert not refused or sizing.mode == "kelly"
    assert len(exact.trades) >= 3 and len(exact.trades) + len(exact.skipped) > 10
    _identical(scaled, exact)


@pytest.mark.parametrize("steps", [("1", "1E-8"), ("0.001", "1E-10"), ("0.5", "0.00000025")])
def test_exits_on_other_market_steps_fill_the_same_on_integers(steps: tuple[str, str]) -> None:
    candles, market = _recorded(sorted(Path(SHIPPED).glob("*.csv"))[0])
    market = MarketInfo(market.symbol, market.base, market.quote, amount_step=D(steps[0]),
                        price_step=D(steps[1]))  # fmt: skip
    scaled, exact = _both(candles, market, _strategy("sma_crossover", TIGHT),
                          capital=D("12.3456789"),
                          sizing=SizingConfig(mode="percent", percent=D(50)))  # fmt: skip
    assert scaled.ledger == "scaled"
    _identical(scaled, exact)


def test_the_largest_recorded_file_exits_the_same_on_integers() -> None:
    candles, market = _recorded(largest_recorded_file())
    scaled, exact = _both(candles, market, _strategy("sma_crossover", TIGHT),
                          sizing=SizingConfig(mode="percent", percent=D(50)))  # fmt: skip
    assert scaled.ledger == "scaled" and len(exact.trades) > 100
    assert {t.exit_reason for t in exact.trades} >= {"stop_loss", "roi", "trailing_stop",
                                                      "exit_signal"}  # fmt: skip
    _identical(scaled, exact)


def test_every_exit_reason_is_covered_and_max_hold_sells_at_the_open() -> None:
    candles, market = _recorded(sorted(Path(SHIPPED).glob("*.csv"))[0])
    reasons: set[str] = set()
    for exits in (TIGHT, WIDE):
        scaled, exact = _both(candles, market, _strategy("sma_crossover", exits),
                              sizing=SizingConfig(mode="fixed", stake=D("0.3")))  # fmt: skip
        _identical(scaled, exact)
        reasons |= {t.exit_reason for t in scaled.trades}
    assert reasons >= {"stop_loss", "roi", "trailing_stop", "max_hold", "exit_signal"}


def test_exits_with_market_minimums_keep_the_decimal_rules() -> None:
    candles, market = _recorded(sorted(Path(SHIPPED).glob("*.csv"))[0])
    market = MarketInfo(market.symbol, market.base, market.quote,
                        amount_step=market.amount_step, price_step=market.price_step,
                        min_notional=D("0.001"))  # fmt: skip
    scaled, exact = _both(candles, market, _strategy("sma_crossover", TIGHT))
    assert scaled.ledger == "decimal"
    _identical(scaled, exact)
