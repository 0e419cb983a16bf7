"""The pure wall-time -> replay-position mapping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction

import pytest

from app.market.replay_clock import (
    DEFAULT_ANCHOR_MS,
    ReplayClock,
    Timeline,
    parse_anchor,
    replay_position,
    virtual_time_ms,
)

ANCHOR = 1_767_225_600_000  # 2026-01-01T00:00:00Z
TF = 300_000
FIRST, LAST = 1_519_171_200_000, 1_519_171_200_000 + 99 * TF  # 100 recorded 5m candles
PERIOD = 100 * TF


def test_default_anchor_is_2026_01_01() -> None:
    assert DEFAULT_ANCHOR_MS == ANCHOR
    assert parse_anchor(None) == ANCHOR
    assert ReplayClock().anchor_ms == ANCHOR


@pytest.mark.parametrize(
    "value",
    [
        "2026-01-01T00:00:00Z",
        "2026-01-01T01:00:00+01:00",
        "2026-01-01T00:00:00",
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2025, 12, 31, 19, tzinfo=timezone(timedelta(hours=-5))),
        ANCHOR,
        str(ANCHOR),
    ],
)
def test_anchor_forms(value: object) -> None:
    assert parse_anchor(value) == ANCHOR  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01", True, 1.5])
def test_bad_anchor(value: object) -> None:
    with pytest.raises(ValueError):
        parse_anchor(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("speed", [0, -1, "0"])
def test_speed_must_be_positive(speed: object) -> None:
    with pytest.raises(ValueError):
        ReplayClock(speed=speed)  # type: ignore[arg-type]


def test_virtual_time() -> None:
    assert virtual_time_ms(ANCHOR + 12_345, ANCHOR, 1.0) == ANCHOR + 12_345
    assert virtual_time_ms(ANCHOR + 1000, ANCHOR, 2.5) == ANCHOR + 2500
    assert virtual_time_ms(ANCHOR - 1000, ANCHOR, 2) == ANCHOR - 2000
    # exact rational maths: 0.1 means 1/10, not the float nearest to it
    assert virtual_time_ms(ANCHOR + 30, ANCHOR, 0.1) == ANCHOR + 3
    assert virtual_time_ms(ANCHOR + 7, ANCHOR, Fraction(1, 3)) == ANCHOR + 2


def test_position_at_anchor_is_first_recorded_candle() -> None:
    pos = replay_position(ANCHOR, anchor_ms=ANCHOR, speed=1, first_ts=FIRST, last_ts=LAST, tf_ms=TF)
    assert (pos.virtual_ms, pos.loop, pos.recorded_ms) == (ANCHOR, 0, FIRST)


def test_position_loops_and_extends_backwards() -> None:
    def at(wall: int, speed: float = 1) -> tuple[int, int]:
        p = replay_position(
            wall, anchor_ms=ANCHOR, speed=speed, first_ts=FIRST, last_ts=LAST, tf_ms=TF
        )
        return p.loop, p.recorded_ms

    assert at(ANCHOR + 7 * TF + 10) == (0, FIRST + 7 * TF + 10)
    assert at(ANCHOR + PERIOD - 1) == (0, LAST + TF - 1)
    assert at(ANCHOR + PERIOD) == (1, FIRST)
    assert at(ANCHOR + 5 * PERIOD + 3 * TF) == (5, FIRST + 3 * TF)
    assert at(ANCHOR - 1) == (-1, LAST + TF - 1)
    assert at(ANCHOR + PERIOD // 2, speed=2) == (1, FIRST)


def test_timeline_is_strictly_increasing_across_loop_boundaries() -> None:
    tl = Timeline.for_series(FIRST, LAST, TF, ANCHOR)
    presented = [FIRST + i * TF + tl.shift(loop) for loop in (-2, -1, 0, 1, 2) for i in range(100)]
    steps = {b - a for a, b in zip(presented, presented[1:], strict=False)}
    assert steps == {TF}
    assert presented[200] == ANCHOR  # loop 0 starts at the anchor
    assert all(p % TF == 0 for p in presented)


def test_origin_is_anchor_floored_to_the_timeframe() -> None:
    tl = Timeline.for_series(FIRST, LAST, TF, ANCHOR + 123_456)
    assert tl.origin_ms == ANCHOR + 123_456 - 123_456 % TF


def test_clock_uses_injected_now_and_is_deterministic() -> None:
    wall = ANCHOR / 1000 + 3600.25
    a = ReplayClock("2026-01-01T00:00:00Z", 1.0, now=lambda: wall)
    b = ReplayClock(ANCHOR, "1", now=lambda: wall)
    assert a.now_ms() == b.now_ms() == ANCHOR + 3_600_250
    fast = ReplayClock(ANCHOR, 12, now=lambda: wall)
    assert fast.now_ms() == ANCHOR + 12 * 3_600_250
