"""The grid of planned instants on which a bot ticks: integer epoch-ms arithmetic, exact for
any interval (a `Fraction`), so planning never drifts and never lands before a candle close."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class TickGrid:
    """Instants `origin + ceil(k * interval)` in epoch ms (k any integer).

    Rounding up keeps every planned instant at or after the candle close it stands for, so
    a tick never runs a hair before its candle is closed on the replay clock.
    """

    origin_ms: int
    interval_ms: Fraction
    timeframe_ms: int

    def at(self, k: int) -> int:
        num, den = self.interval_ms.numerator, self.interval_ms.denominator
        return self.origin_ms - ((-k * num) // den)  # integer ceil(k * interval)

    def index_at_or_before(self, t_ms: int) -> int:
        # at(k) <= t  <=>  ceil(k * interval) <= t - origin  <=>  k <= (t - origin) / interval
        num, den = self.interval_ms.numerator, self.interval_ms.denominator
        return ((t_ms - self.origin_ms) * den) // num

    def latest_due(self, t_ms: int) -> int:
        """The last planned instant at or before `t_ms`."""
        return self.at(self.index_at_or_before(t_ms))

    def next_after(self, t_ms: int) -> int:
        """The first planned instant strictly after `t_ms`."""
        return self.at(self.index_at_or_before(t_ms) + 1)

    def first_due(self, now_ms: int, last_tick_ms: int | None) -> int:
        """Where a (re)started or rescheduled bot's next tick goes: the latest instant due,
        so it acts on the newest closed candle at once - unless a tick already ran there."""
        due = self.latest_due(now_ms)
        if last_tick_ms is not None and last_tick_ms >= due:
            due = self.next_after(max(now_ms, last_tick_ms))
        return due

    def steps_between(self, earlier_ms: int, later_ms: int) -> int:
        """How many grid steps lie from one planned instant to a later one."""
        return self.index_at_or_before(later_ms) - self.index_at_or_before(earlier_ms)

    @property
    def interval_seconds(self) -> float:
        return float(self.interval_ms) / 1000.0
