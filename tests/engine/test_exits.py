"""Exits beyond the signal, on candle series small enough to work out by hand: the fill price
and candle of a stop-loss (also when the candle opens below it), a trailing stop, an ROI exit
(its price, with fees, and at the open when a new ROI step starts there), a maximum holding
time, and the order of checks when two exits fire on one candle."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from app.domain.candles import Candles
from app.domain.sizing import SizingConfig
from app.domain.strategies.doc_model import parse_document
from app.domain.strategies.doc_strategy import DocumentStrategy
from app.engine.backtest import run_backtest
from app.engine.fill_model import FeeSchedule
from app.market.base import MarketInfo

D = Decimal
HOUR = 3_600_000
T0 = 1_700_002_800_000  # a whole hour
MARKET = MarketInfo("AAA/BBB", "AAA", "BBB", amount_step=D("0.001"), price_step=D("0.01"))
NO_FEES = FeeSchedule(maker=D(0), taker=D(0))
# candle 1 closes above 100.5 (the entry signal), so every trade here enters at candle 2's open
LEAD = [(100, 100, 100, 100), (100, 101, 100, 101)]


def candles(rows: list[tuple[float, float, float, float]]) -> Candles:
    rows = LEAD + rows
    o, h, lo, c = (np.array(col, dtype=np.float64) for col in zip(*rows, strict=True))
    ts = T0 + HOUR * np.arange(len(rows), dtype=np.int64)
    return Candles(ts, o, h, lo, c, np.ones(len(rows)))


def first_trade(rows: list[tuple[float, float, float, float]], exits: dict[str, Any],
                fees: FeeSchedule = NO_FEES) -> Any:  # fmt: skip
    doc = parse_document({
        "name": "hand",
        "entry": {"op": "crosses_above", "args": [{"series": "close"}, 100.5]},
        "exits": exits,
    })  # fmt: skip
    strategy = DocumentStrategy(doc, timeframe="1h")
    result = run_backtest(
        candles(rows), strategy, strategy.default_params(), capital=D(1000), market=MARKET,
        fees=fees, sizing=SizingConfig(mode="fixed", stake=D(100)), timeframe_seconds=3600,
    )  # fmt: skip
    trade = result.trades[0]
    assert trade.entry_index == 2
    return trade


def test_stop_loss_fills_at_the_stop_when_the_low_reaches_it():
    # entry 102 -> stop 102 * 0.95 = 96.90; candle 3's low 97 stays above, candle 4's low 96
    # reaches it and the candle opened above it: sold at 96.90 during candle 4
    trade = first_trade(
        [(102, 103, 101, 102), (101, 101, 97, 98), (98, 99, 96, 97), (97, 98, 96, 97)],
        {"stoploss": -0.05},
    )
    assert trade.entry_price == D(102)
    assert (trade.exit_index, trade.exit_price, trade.exit_reason) == (4, D("96.90"), "stop_loss")
    assert trade.exit_ts == T0 + 4 * HOUR


def test_stop_loss_after_a_gap_fills_at_the_open():
    # candle 4 opens at 95, below the 96.90 stop: the stop sells at that open
    trade = first_trade(
        [(102, 103, 101, 102), (101, 101, 97, 98), (95, 96, 94, 95)], {"stoploss": -0.05}
    )
    assert (trade.exit_index, trade.exit_price, trade.exit_reason) == (4, D(95), "stop_loss")


def test_stop_exactly_at_the_low_is_hit():
    trade = first_trade([(102, 103, 101, 102), (99, 99, 96.9, 98)], {"stoploss": -0.05})
    assert (trade.exit_index, trade.exit_price) == (3, D("96.90"))


def test_trailing_stop_moves_with_the_high_before_the_low_is_checked():
    # entry 100, stop 90. Candle 2: profit at the high 1 % < offset 5 %: nothing moves.
    # Candle 3: high 106 (6 % > 5 %): stop -> 106 * 0.98 = 103.88; low 104 stays above.
    # Candle 4: high 107 -> stop 104.86 first, then the low 104.5 reaches it: sold at 104.86.
    trade = first_trade(
        [(100, 101, 99.5, 100.5), (100.5, 106, 104, 105.5), (105.5, 107, 104.5, 105),
         (105, 105, 100, 101)],
        {"stoploss": -0.10,
         "trailing": {"positive": 0.02, "offset": 0.05, "only_offset_is_reached": True}},
    )  # fmt: skip
    assert (trade.exit_index, trade.exit_price) == (4, D("104.86"))
    assert trade.exit_reason == "trailing_stop"


def test_trailing_stop_never_moves_down():
    # candle 3 sets the stop at 103.88; candle 4's lower high (105) would give 102.90, the stop
    # stays 103.88 and candle 4's low 103.5 reaches it
    trade = first_trade(
        [(100, 101, 99.5, 100.5), (100.5, 106, 104, 105.5), (105, 105, 103.5, 104)],
        {"stoploss": -0.10, "trailing": {"positive": 0.02, "offset": 0.05}},
    )
    assert (trade.exit_index, trade.exit_price, trade.exit_reason) == (
        4, D("103.88"), "trailing_stop")  # fmt: skip


def test_roi_fills_at_the_price_that_earns_the_ratio():
    # entry 100, ROI 5 % from minute 0: candle 3's high 106 passes it; sold at exactly 105
    trade = first_trade(
        [(100, 103, 99, 102), (102, 106, 101, 104)], {"minimal_roi": {"0": 0.05, "120": 0.01}}
    )
    assert (trade.exit_index, trade.exit_price, trade.exit_reason) == (3, D(105), "roi")


def test_roi_price_includes_both_fees():
    # 0.1 % fees: 100 * (1.001 + 0.05) / 0.999 = 105.2052..., up to the tick: 105.21
    fees = FeeSchedule(maker=D("0.001"), taker=D("0.001"))
    trade = first_trade([(100, 103, 99, 102), (102, 106, 101, 104)], {"minimal_roi": {"0": 0.05}},
                        fees)  # fmt: skip
    assert (trade.exit_index, trade.exit_price, trade.exit_reason) == (3, D("105.21"), "roi")


def test_new_roi_step_at_the_open_fills_at_the_open():
    # minute 120 (candle 4's open) the ROI drops to 1 % (101); candle 4 opens at 103 > 101
    trade = first_trade(
        [(100, 103, 99, 102), (102, 104, 101, 103), (103, 103.5, 102, 103)],
        {"minimal_roi": {"0": 0.05, "120": 0.01}},
    )
    assert (trade.exit_index, trade.exit_price, trade.exit_reason) == (4, D(103), "roi")


def test_max_hold_sells_at_the_open_once_the_time_is_up():
    trade = first_trade(
        [(100, 101, 99, 100), (100, 101, 99, 100), (99.5, 101, 99, 100)],
        {"max_hold_minutes": 120},
    )
    assert (trade.exit_index, trade.exit_price, trade.exit_reason) == (4, D("99.5"), "max_hold")


def test_stop_loss_wins_over_roi_on_one_candle():
    # candle 3 reaches both the 3 % ROI (high 104) and the 95 stop (low 94): the stop is
    # checked first, as in freqtrade
    trade = first_trade([(100, 101, 99, 100), (100, 104, 94, 100)],
                        {"stoploss": -0.05, "minimal_roi": {"0": 0.03}})  # fmt: skip
    assert (trade.exit_index, trade.exit_price, trade.exit_reason) == (3, D(95), "stop_loss")


def test_roi_wins_over_a_trailing_stop_on_one_candle():
    # candle 3: the high 104 moves the trailing stop to 102.96 and the low 102.5 reaches it,
    # but the 3 % ROI (103) is checked before the trailing stop
    trade = first_trade(
        [(100, 100.5, 99.8, 100), (100, 104, 102.5, 103)],
        {"stoploss": -0.10, "trailing": {"positive": 0.01}, "minimal_roi": {"0": 0.03}},
    )
    assert (trade.exit_index, trade.exit_price, trade.exit_reason) == (3, D(103), "roi")


def test_an_exit_signal_fills_at_the_next_open_before_any_stop():
    doc = parse_document({
        "name": "hand",
        "entry": {"op": "crosses_above", "args": [{"series": "close"}, 100.5]},
        "exit": {"op": "crosses_below", "args": [{"series": "close"}, 99.5]},
        "exits": {"stoploss": -0.05},
    })  # fmt: skip
    strategy = DocumentStrategy(doc, timeframe="1h")
    # candle 3 closes at 99 (exit signal); candle 4 opens at 98 and its low 90 is below the
    # 95 stop: the signal's market sell at candle 4's open comes first
    result = run_backtest(
        candles([(100, 101, 99.6, 100), (100, 100, 98.5, 99), (98, 98, 90, 91)]), strategy,
        strategy.default_params(), capital=D(1000), market=MARKET, fees=NO_FEES,
        sizing=SizingConfig(mode="fixed", stake=D(100)), timeframe_seconds=3600,
    )  # fmt: skip
    trade = result.trades[0]
    assert (trade.exit_index, trade.exit_price, trade.exit_reason) == (4, D(98), "exit_signal")


@pytest.mark.parametrize("reason", ["stop_loss", "roi"])
def test_a_new_entry_can_follow_an_exit_on_the_next_signal(reason):
    exits = {"stoploss": -0.05} if reason == "stop_loss" else {"minimal_roi": {"0": 0.05}}
    rows = [(100, 100, 94, 95) if reason == "stop_loss" else (100, 106, 99, 100),
            (100, 100, 99, 100), (100, 101, 100, 101), (102, 103, 101, 102)]  # fmt: skip
    doc = parse_document({
        "name": "hand",
        "entry": {"op": "crosses_above", "args": [{"series": "close"}, 100.5]},
        "exits": exits,
    })  # fmt: skip
    strategy = DocumentStrategy(doc, timeframe="1h")
    result = run_backtest(
        candles(rows), strategy, strategy.default_params(), capital=D(1000), market=MARKET,
        fees=NO_FEES, sizing=SizingConfig(mode="fixed", stake=D(100)), timeframe_seconds=3600,
    )  # fmt: skip
    first, second = result.trades
    assert (first.exit_index, first.exit_reason) == (2, reason)
    assert (second.entry_index, second.entry_price) == (5, D(102))
    assert second.exit_reason == "end_of_data"
