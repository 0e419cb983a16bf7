"""Where "now" is in a recorded candle series: a pure mapping, so every process agrees.

Two numbers configure it, nothing else (no process start time, no state):

* ``anchor``: a wall-clock instant (default 2026-01-01T00:00:00Z). At the anchor the replay is
  at the first recorded candle of every series.
* ``speed``: recorded time per wall time (default 1.0: one recorded 5m candle per real 5
  minutes).

The mapping, for a series whose recorded open times are ``first .. last`` at timeframe ``tf``:

* virtual time ``V = anchor + floor((wall - anchor) * speed)``; at speed 1 ``V`` is the wall
  clock itself.
* the series is laid end to end on the virtual timeline, forever in both directions: loop ``k``
  shows recorded candle ``r`` at ``origin + k * period + (r - first)``, where ``origin`` is the
  anchor floored to ``tf`` and ``period = last - first + tf`` (the recorded span including its
  last candle). So presented timestamps are the recorded ones shifted by a whole number of
  candles: aligned to the timeframe, strictly increasing, and across a loop boundary the last
  recorded candle is followed one ``tf`` later by the first one again (prices jump there,
  time never goes back).
* a candle is closed when ``presented_open + tf <= V``.

At speed 1 presented candle times therefore line up with real time and a bot ticking on real
candle boundaries sees exactly one new closed candle per tick. At other speeds the presented
timestamps run ahead of (speed > 1) or behind (speed < 1) the wall clock: for demos only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction

from app.domain.times import to_ms

__all__ = [
    "DEFAULT_ANCHOR",
    "DEFAULT_ANCHOR_MS",
    "ReplayClock",
    "ReplayPosition",
    "Timeline",
    "parse_anchor",
    "replay_position",
    "virtual_time_ms",
]

DEFAULT_ANCHOR = "2026-01-01T00:00:00Z"
DEFAULT_ANCHOR_MS = 1_767_225_600_000


def parse_anchor(value: str | datetime | int | None) -> int:
    """Anchor as epoch ms from an ISO-8601 string (``Z`` or offset; naive means UTC), an aware
    datetime, or epoch ms. ``None`` gives the default."""
    if value is None:
        return DEFAULT_ANCHOR_MS
    if isinstance(value, bool):
        raise ValueError("replay anchor must be an ISO-8601 instant or epoch milliseconds")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"replay anchor {text!r} is not an ISO-8601 instant") from None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return to_ms(value)
    raise ValueError("replay anchor must be an ISO-8601 instant or epoch milliseconds")


def _speed(speed: float | Fraction | str) -> Fraction:
    s = Fraction(str(speed)) if not isinstance(speed, Fraction) else speed
    if s <= 0:
        raise ValueError(f"replay speed must be > 0, got {speed}")
    return s


def virtual_time_ms(wall_ms: int, anchor_ms: int, speed: float | Fraction = 1) -> int:
    """The replay's notion of now: exact integer maths, identical on every machine."""
    return anchor_ms + math.floor((wall_ms - anchor_ms) * _speed(speed))


@dataclass(frozen=True)
class Timeline:
    """One recorded series laid end to end on the virtual timeline (see module docstring)."""

    first_ts: int
    period_ms: int
    origin_ms: int

    @classmethod
    def for_series(cls, first_ts: int, last_ts: int, tf_ms: int, anchor_ms: int) -> Timeline:
        if last_ts < first_ts or tf_ms <= 0:
            raise ValueError("a timeline needs last_ts >= first_ts and tf_ms > 0")
        return cls(first_ts, last_ts - first_ts + tf_ms, anchor_ms - anchor_ms % tf_ms)

    def loop_of(self, virtual_ms: int) -> int:
        return (virtual_ms - self.origin_ms) // self.period_ms

    def loop_start(self, loop: int) -> int:
        return self.origin_ms + loop * self.period_ms

    def shift(self, loop: int) -> int:
        """Add to a recorded timestamp to present it in ``loop``."""
        return self.loop_start(loop) - self.first_ts

    def to_recorded(self, virtual_ms: int) -> tuple[int, int]:
        """(loop, recorded instant) shown at ``virtual_ms``."""
        loop = self.loop_of(virtual_ms)
        return loop, virtual_ms - self.shift(loop)


@dataclass(frozen=True)
class ReplayPosition:
    virtual_ms: int
    loop: int
    recorded_ms: int


def replay_position(
    wall_ms: int,
    *,
    anchor_ms: int,
    speed: float | Fraction,
    first_ts: int,
    last_ts: int,
    tf_ms: int,
) -> ReplayPosition:
    """Pure mapping wall time -> (virtual time, loop, recorded instant) for one series."""
    v = virtual_time_ms(wall_ms, anchor_ms, speed)
    loop, recorded = Timeline.for_series(first_ts, last_ts, tf_ms, anchor_ms).to_recorded(v)
    return ReplayPosition(v, loop, recorded)


class ReplayClock:
    """Virtual "now" of the replay; ``now`` (seconds since the epoch, like ``time.time``) is
    injectable so tests control time."""

    def __init__(
        self,
        anchor: str | datetime | int | None = None,
        speed: float | Fraction | str = 1.0,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.anchor_ms = parse_anchor(anchor)
        self.speed = _speed(speed)
        self._now = now

    def wall_ms(self) -> int:
        return math.floor(self._now() * 1000)

    def now_ms(self) -> int:
        return virtual_time_ms(self.wall_ms(), self.anchor_ms, self.speed)

    def timeline(self, first_ts: int, last_ts: int, tf_ms: int) -> Timeline:
        return Timeline.for_series(first_ts, last_ts, tf_ms, self.anchor_ms)
