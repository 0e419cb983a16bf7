"""The backtester on a hand-computed fixture: trades, fills, fees and metrics worked out on
paper (see the numbers in each test), fixed stake and bootstrapped Kelly."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from app.domain.candles import Candles
from app.domain.sizing import SizingConfig
from app.domain.strategies import get_strategy
from app.engine.backtest import run_backtest
from app.engine.fill_model import FeeSchedule
from app.market.base import MarketInfo
from tests.engine.helpers import FIXTURE_CLOSE, FIXTURE_OPEN, HOUR_MS, T0, rows_from

D = Decimal
MARKET = MarketInfo("AAA/BBB", "AAA", "BBB", amount_step=D("0.001"), price_step=D("0.01"))
FEES = FeeSchedule(maker=D("0.001"), taker=D("0.001"))


def fixture_candles() -> Candles:
    rows = rows_from(FIXTURE_OPEN, FIXTURE_CLOSE)
    cols = list(zip(*rows, strict=True))
    return Candles(
        np.array(cols[0], dtype=np.int64), *(np.array(c, dtype=np.float64) for c in cols[1:])
    )


def run(sizing: SizingConfig, **kw: object):  # type: ignore[no-untyped-def]
    strategy = get_strategy("sma_crossover")
    return run_backtest(
        fixture_candles(),
        strategy,
        strategy.validate_params({"fast": 2, "slow": 3}),
        capital=D("1000"),
        market=MARKET,
        fees=FEES,
        sizing=sizing,
        timeframe_seconds=3600,
        **kw,  # type: ignore[arg-type]
    )


def test_signals_of_the_fixture_are_the_hand_computed_ones() -> None:
    # SMA2 - SMA3 crosses above 0 at candles 4 and 10, below at 7 and 13
    strategy = get_strategy("sma_crossover")
    sig = strategy.signals(fixture_candles(), strategy.validate_params({"fast": 2, "slow": 3}))
    assert {int(i): int(sig[i]) for i in np.flatnonzero(sig)} == {4: 1, 7: -1, 10: 1, 13: -1}


def test_fixed_stake_trades_fill_at_the_next_open_with_fees_on_entry_and_exit() -> None:
    result = run(SizingConfig(mode="fixed", stake=D("100")))
    first, second = result.trades
    # trade 1: stake 100 + 0.1 % fee on top -> amount floor(100 / 13, 0.001) = 7.692 at open[5]
    assert (first.entry_index, first.entry_price, first.amount) == (5, D("13"), D("7.692"))
    assert first.entry_cost == D("99.996") and first.entry_fee == D("0.099996")
    # exit signal at 7 -> sold at open[8] = 11: proceeds 84.612, fee 0.084612
    assert (first.exit_index, first.exit_price) == (8, D("11"))
    assert first.exit_proceeds == D("84.612") and first.exit_fee == D("0.084612")
    # net: 84.612 - 99.996 - 0.099996 - 0.084612
    assert first.pnl == D("-15.568608")
    assert first.exit_reason == "exit_signal" and not first.bootstrap
    # trade 2: bought 7.142 at open[11] = 14, sold at open[14] = 17
    assert (second.entry_price, second.amount, second.exit_price) == (D("14"), D("7.142"), D("17"))
    assert second.pnl == D("121.414") - D("99.988") - D("0.099988") - D("0.121414")
    assert second.pnl == D("21.204598")
    assert result.final_equity == D("1000") + first.pnl + second.pnl == D("1005.63599")
    assert second.entry_ts == T0 + 11 * HOUR_MS and second.exit_ts == T0 + 14 * HOUR_MS
    # freqtrade's profit_ratio: net result over what the entry cost, fee included
    assert first.profit_ratio == D("-15.568608") / D("100.095996")


def test_equity_curve_and_metrics_match_the_hand_computation() -> None:
    result = run(SizingConfig(mode="fixed", stake=D("100")))
    expected = [1000.0] * 5 + [
        899.904004 + 7.692 * 16,  # entry filled at open[5], valued at close[5]
        899.904004 + 7.692 * 15,
        899.904004 + 7.692 * 11,
        984.431392,  # flat after the exit at open[8]
        984.431392,
        984.431392,
        884.343404 + 7.142 * 18,
        884.343404 + 7.142 * 12,
        884.343404 + 7.142 * 8,
        1005.63599,  # flat after the exit at open[14]
    ]
    assert np.allclose(result.equity, expected, rtol=0, atol=1e-9)
    m = result.metrics
    assert m.total_return == pytest.approx(0.00563599, abs=1e-12)
    assert m.n_trades == 2 and m.wins == 1 and m.losses == 1 and m.win_rate == 0.5
    assert m.profit_factor == pytest.approx(21.204598 / 15.568608, rel=1e-12)
    peak, trough = 899.904004 + 7.692 * 16, 884.343404 + 7.142 * 8
    assert m.max_drawdown == pytest.approx(1 - trough / peak, rel=1e-12)
    assert m.max_drawdown_peak_ts == T0 + 5 * HOUR_MS
    assert m.max_drawdown_trough_ts == T0 + 13 * HOUR_MS
    # in a position from the entry fill to the exit fill: 3 + 3 hours of 14
    assert m.exposure == pytest.approx(6 / 14)


def test_kelly_bootstraps_below_five_trades_at_one_percent_of_capital() -> None:
    result = run(SizingConfig())  # the default: half-Kelly, bootstrap 5 trades at 1 %
    first, second = result.trades
    assert first.bootstrap and second.bootstrap
    # stake 1 % of 1000 = 10 (+ fee on top): floor(10 / 13, 0.001) = 0.769
    assert first.amount == D("0.769") and first.entry_cost == D("9.997")
    assert second.amount == D("0.714")  # floor(10 / 14, 0.001)
    assert "bootstrap" in first.sizing_reason


def test_negative_edge_skips_the_entry_and_says_why() -> None:
    # with no bootstrap, Kelly needs a track record: the first entry has none (no trades,
    # no measurable edge) so nothing is ever bought
    result = run(SizingConfig(bootstrap_trades=0))
    assert result.trades == []
    assert [s.index for s in result.skipped] == [4, 10]
    assert "no measurable edge" in result.skipped[0].reason
    assert result.final_equity == D("1000")


def test_a_position_open_at_the_end_is_sold_at_the_last_open_like_freqtrade() -> None:
    candles = fixture_candles().slice(0, 12)  # ends long: the entry fills at open[11]
    strategy = get_strategy("sma_crossover")
    result = run_backtest(
        candles,
        strategy,
        strategy.validate_params({"fast": 2, "slow": 3}),
        capital=D("1000"),
        market=MARKET,
        fees=FEES,
        sizing=SizingConfig(mode="fixed", stake=D("100")),
        timeframe_seconds=3600,
    )
    last = result.trades[-1]
    assert last.exit_reason == "end_of_data" and last.entry_index == last.exit_index == 11
    assert last.entry_price == last.exit_price == D("14")  # force exit at the last open
    assert last.pnl == -(D("0.099988") * 2)  # only the two fees
    assert result.equity[-1] == pytest.approx(float(result.final_equity))
    assert result.final_equity == D("984.431392") - D("0.199976")


def test_progress_reaches_one() -> None:
    seen: list[float] = []
    run(SizingConfig(mode="fixed", stake=D("100")), progress=seen.append)
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
