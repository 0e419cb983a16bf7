"""The exits of a trade beyond the strategy's exit signal, with values resolved.

`app.engine.exits` applies them candle by candle, the same way in a backtest, on paper and
in a tick; docs/backtesting.md sets the conventions beside freqtrade's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["NO_EXITS", "ExitRules"]


@dataclass(frozen=True)
class ExitRules:
    """A document's exits with parameter values resolved (ratios, minutes)."""

    stoploss: float | None = None  # e.g. -0.05: 5 % below the entry price
    trailing: bool = False
    trailing_positive: float | None = None
    trailing_offset: float = 0.0
    trailing_only_offset_is_reached: bool = False
    minimal_roi: tuple[tuple[int, float], ...] = ()  # (minutes, ratio), ascending minutes
    max_hold_minutes: int | None = None
    use_exit_signal: bool = True

    @property
    def active(self) -> bool:
        """Whether anything beyond the exit signal can close a trade."""
        return (
            self.stoploss is not None
            or self.trailing
            or bool(self.minimal_roi)
            or self.max_hold_minutes is not None
        )

    def roi_at(self, minutes: float) -> float | None:
        """The ROI ratio in force `minutes` after the entry (freqtrade's min_roi_reached_entry:
        the entry with the largest key not above the trade's age)."""
        found = None
        for key, ratio in self.minimal_roi:
            if key <= minutes:
                found = ratio
            else:
                break
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "stoploss": self.stoploss,
            "trailing_stop": self.trailing,
            "trailing_stop_positive": self.trailing_positive,
            "trailing_stop_positive_offset": self.trailing_offset,
            "trailing_only_offset_is_reached": self.trailing_only_offset_is_reached,
            "minimal_roi": {str(k): v for k, v in self.minimal_roi},
            "max_hold_minutes": self.max_hold_minutes,
            "use_exit_signal": self.use_exit_signal,
        }


NO_EXITS = ExitRules()
