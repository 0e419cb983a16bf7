"""The four built-in strategies shipped as documents trade exactly like their hand-written
implementations: the same trades (candles, prices, amounts, results) on every recorded candle
file - the shipped sample, and the larger files beside the checkout when present."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from app.domain.sizing import SizingConfig
from app.domain.strategies import get_strategy
from app.domain.strategies.doc_strategy import DocumentStrategy
from app.domain.strategies.templates import template_document
from app.engine.backtest import run_backtest
from app.engine.fill_model import FeeSchedule
from app.market.base import MarketInfo
from app.market.csv_candles import load_candle_file
from tests.support.recorded import SHARED, SHIPPED

BUILT_INS = ["bollinger_breakout", "macd_trend", "rsi_mean_reversion", "sma_crossover"]
FILES = sorted(SHIPPED.glob("*.csv")) + sorted(SHARED.glob("*.csv"))


def _trades(strategy, candles, market):  # type: ignore[no-untyped-def]
    result = run_backtest(
        candles, strategy, strategy.default_params(), capital=Decimal(1), market=market,
        fees=FeeSchedule(Decimal("0.001"), Decimal("0.001")),
        sizing=SizingConfig(mode="percent", percent=Decimal(50)), timeframe_seconds=300,
    )  # fmt: skip
    return [
        (t.entry_index, t.entry_price, t.amount, t.exit_index, t.exit_price, t.pnl, t.exit_reason)
        for t in result.trades
    ]


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{Path(p).parent.name}/{Path(p).name}")
def test_templates_trade_like_the_hand_written_strategies(path: Path) -> None:
    name, series = load_candle_file(path)
    market = MarketInfo(f"{name.base}/{name.quote}", name.base, name.quote,
                        amount_step=series.amount_step, price_step=series.price_step)  # fmt: skip
    for strategy_name in BUILT_INS:
        template = DocumentStrategy(template_document(strategy_name), timeframe=name.timeframe)
        hand = get_strategy(strategy_name)
        want = _trades(hand, series.candles, market)
        assert want, strategy_name
        assert _trades(template, series.candles, market) == want, strategy_name
