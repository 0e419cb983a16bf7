"""The planned grid of ticks: candle boundaries of the market's clock, never drifting."""

from __future__ import annotations

from decimal import Decimal as D
from fractions import Fraction

import pytest

from app.domain.tick_grid import TickGrid
from app.engine.tick import entry_budget, tick_grid
from app.market.replay_clock import DEFAULT_ANCHOR_MS
from tests.engine.helpers import HOUR_MS, T0


def test_exchange_grid_is_epoch_aligned_candle_boundaries() -> None:
    grid = TickGrid(0, Fraction(300_000), 300_000)
    t = T0 + 123_456
    assert grid.latest_due(t) == T0
    assert grid.next_after(t) == T0 + 300_000
    assert grid.next_after(T0) == T0 + 300_000  # strictly after
    assert grid.latest_due(T0) == T0
    assert grid.steps_between(T0, T0 + 7 * 300_000) == 7


def test_replay_grid_runs_at_replay_speed_and_rounds_up() -> None:
    # 5m candles at speed 7: a candle closes every 300/7 s; instants are rounded UP so the
    # replay clock (floor((wall - anchor) * speed)) has always reached the boundary
    grid = TickGrid(T0, Fraction(300_000) / 7, 300_000)
    assert [grid.at(k) - T0 for k in range(4)] == [0, 42_858, 85_715, 128_572]
    for k in range(1, 50):
        wall = grid.at(k)
        assert T0 + ((wall - T0) * 7) >= T0 + k * 300_000  # the virtual close has passed
        assert grid.latest_due(wall) == wall and grid.latest_due(wall - 1) == grid.at(k - 1)
        assert grid.next_after(wall - 1) == wall


def test_tick_grid_follows_settings(settings) -> None:  # type: ignore[no-untyped-def]
    from config import use_settings

    try:
        use_settings(settings.model_copy(update={"replay_speed": 60.0}))
        replay = tick_grid("replay", "1m")
        assert replay.origin_ms == DEFAULT_ANCHOR_MS and replay.interval_seconds == 1.0
        assert tick_grid("binance", "1h") == TickGrid(0, Fraction(HOUR_MS), HOUR_MS)
    finally:
        use_settings(settings)


def test_unknown_timeframe_is_refused() -> None:
    from app.market.errors import UnknownTimeframe

    with pytest.raises(UnknownTimeframe):
        tick_grid("binance", "7m")


def test_entry_budget_puts_the_fee_on_top_of_the_stake_within_cash() -> None:
    assert entry_budget(D("100"), D("0.001"), D("1000")) == D("100.1")
    assert entry_budget(D("100"), D("0.001"), D("50")) == D("50")
    assert entry_budget(D("100"), D("0"), D("-1")) == D("0")
