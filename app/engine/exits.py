"""Exits beyond the strategy's signal - stop-loss, trailing stop, minimal ROI, maximum holding
time - found candle by candle, the same way for a backtest, the paper broker and a tick.

Conventions (freqtrade's `IStrategy.should_exit` / `Backtesting._get_close_rate`, compared in
docs/backtesting.md):

* a trade is checked on every candle from the one it was entered on (at that candle's open);
* within one candle the checks run in this order, the first that fires wins: the exit signal
  of the previous candle (at the open; handled by the caller), the maximum holding time (at
  the open), the stop-loss, the minimal ROI, the trailing stop;
* the stop sits at `entry * (1 + stoploss)`, rounded up to the price tick. A trailing stop
  first moves with the candle's high (to `high * (1 - distance)`, rounded up, never down),
  then the candle's low is compared with it; the distance is `trailing.positive` once the
  profit at the high exceeds `trailing.offset`, else the stop-loss's (no move at all before
  the offset when `only_offset_is_reached`);
* a stop is hit when the low reaches it; it fills at the stop price, or at the open (as a
  market sell, with slippage) when the candle opened below it. A trailing stop hit on the
  entry candle fills at freqtrade's pessimistic price (the offset reached, then straight down);
* the ROI ratio in force is the table's entry with the largest minutes not above the trade's
  age (minutes from the entry candle's open to this candle's open); it fires when the profit
  at the high, after both fees, exceeds it, and fills at the price that earns exactly that
  ratio (rounded up to the tick), or at the open when the entry came into force at this
  candle's open and the open is above that price; always within [low, high].

Everything per candle is vectorised: a scan over a window of candles costs a few numpy calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from app.domain.candles import Candles
from app.domain.strategies.exits import ExitRules
from app.engine.fill_model import FeeSchedule, market_fill_price
from app.market.base import to_decimal

__all__ = ["EXIT_REASONS", "ExitHit", "ExitScanner", "TradeState"]

EXIT_REASONS = (
    "exit_signal", "stop_loss", "trailing_stop", "roi", "max_hold", "end_of_data", "manual",
    "emergency",
)  # fmt: skip
_EPS = 1e-9


@dataclass(frozen=True)
class ExitHit:
    """Where and how a trade ends: candle index, fill price (on the tick grid), reason."""

    index: int
    price: Decimal
    reason: str
    ts: int  # the candle's open time (epoch ms)


@dataclass
class TradeState:
    """An open trade as the scanner follows it: the stop moves with the candles scanned."""

    entry_index: int
    entry_ts: int
    entry_price: float
    stop_ticks: float  # -inf without a stop
    initial_ticks: float


class ExitScanner:
    """The exit rules over one candle series (a backtest's, or a tick's window)."""

    def __init__(
        self, rules: ExitRules, candles: Candles, *, fees: FeeSchedule, price_step: Decimal,
        timeframe_seconds: int,
    ) -> None:  # fmt: skip
        self.rules = rules
        self.c = candles
        self.fees = fees
        self.fee = float(fees.taker)
        self.step = price_step
        self.step_f = float(price_step)
        self.tf_minutes = timeframe_seconds // 60
        self.roi_keys = np.array([k for k, _ in rules.minimal_roi], dtype=np.int64)
        self.roi_ratios = np.array([r for _, r in rules.minimal_roi], dtype=np.float64)

    # -- helpers -------------------------------------------------------------------------

    def _ceil_ticks(self, price: np.ndarray | float) -> np.ndarray:
        return np.ceil(np.asarray(price, dtype=np.float64) / self.step_f - _EPS)

    def _floor_ticks(self, price: np.ndarray | float) -> np.ndarray:
        return np.floor(np.asarray(price, dtype=np.float64) / self.step_f + _EPS)

    def _price(self, ticks: float) -> Decimal:
        return Decimal(int(ticks)) * self.step

    def _market(self, index: int) -> Decimal:
        return market_fill_price("sell", to_decimal(float(self.c.open[index])), self.fees,
                                 self.step)  # fmt: skip

    def _profit(self, price: np.ndarray, entry: float) -> np.ndarray:
        """freqtrade's calc_profit_ratio for a long spot trade, both fees included."""
        return price * (1.0 - self.fee) / (entry * (1.0 + self.fee)) - 1.0

    # -- the trade -----------------------------------------------------------------------

    def open(self, entry_index: int, entry_price: Decimal) -> TradeState:
        entry = float(entry_price)
        stop = -np.inf
        if self.rules.stoploss is not None:
            stop = float(self._ceil_ticks(entry * (1.0 + self.rules.stoploss)))
        return TradeState(entry_index, int(self.c.ts[entry_index]), entry, stop, stop)

    def scan(self, trade: TradeState, lo: int, hi: int) -> ExitHit | None:
        """The first exit among candles lo..hi-1 (all at or after the entry candle), or None;
        the trade's stop has followed those candles when None is returned."""
        if hi <= lo:
            return None
        rules = self.rules
        c = self.c
        high = np.asarray(c.high[lo:hi], dtype=np.float64)
        low = np.asarray(c.low[lo:hi], dtype=np.float64)
        opens = np.asarray(c.open[lo:hi], dtype=np.float64)
        minutes = (np.asarray(c.ts[lo:hi], dtype=np.int64) - trade.entry_ts) // 60_000
        low_ticks = self._ceil_ticks(low)
        fired = np.zeros(hi - lo, dtype=bool)

        hold = np.zeros(hi - lo, dtype=bool)
        if rules.max_hold_minutes is not None:
            hold = minutes >= rules.max_hold_minutes
            fired |= hold

        stop_after = np.full(hi - lo, trade.stop_ticks)
        if rules.trailing and rules.stoploss is not None:
            profit_high = self._profit(high, trade.entry_price)
            distance = np.full(hi - lo, -rules.stoploss)
            if rules.trailing_positive is not None:
                distance = np.where(profit_high > rules.trailing_offset, rules.trailing_positive,
                                    distance)  # fmt: skip
            candidate = self._ceil_ticks(high * (1.0 - distance))
            if rules.trailing_only_offset_is_reached:
                candidate = np.where(profit_high < rules.trailing_offset, -np.inf, candidate)
            stop_after = np.maximum(np.maximum.accumulate(candidate), trade.stop_ticks)
        stop_before = np.r_[trade.stop_ticks, stop_after[:-1]]
        stop_hit = stop_after >= low_ticks
        fired |= stop_hit

        roi_hit = np.zeros(hi - lo, dtype=bool)
        roi_ratio = np.full(hi - lo, np.nan)
        if self.roi_keys.size:
            slot = np.searchsorted(self.roi_keys, minutes, side="right") - 1
            has = slot >= 0
            roi_ratio[has] = self.roi_ratios[slot[has]]
            with np.errstate(invalid="ignore"):
                roi_hit = has & (self._profit(high, trade.entry_price) > roi_ratio)
            fired |= roi_hit

        where = np.flatnonzero(fired)
        if where.size == 0:
            trade.stop_ticks = float(stop_after[-1])
            return None
        k = int(where[0])
        i = lo + k
        if hold[k]:
            return ExitHit(i, self._market(i), "max_hold", int(self.c.ts[i]))
        if stop_hit[k]:
            used = stop_before[k] if stop_before[k] >= low_ticks[k] else stop_after[k]
            trailing = used > trade.initial_ticks
            if not trailing or not roi_hit[k]:  # order: stop-loss, ROI, trailing stop
                return self._stop_fill(trade, i, used, opens[k], trailing, int(minutes[k]))
        assert roi_hit[k]
        return self._roi_fill(trade, i, float(roi_ratio[k]), int(minutes[k]), opens[k],
                              high[k], low[k])  # fmt: skip

    def _stop_fill(self, trade: TradeState, i: int, used: float, open_: float, trailing: bool,
                   minutes: int) -> ExitHit:  # fmt: skip
        reason = "trailing_stop" if trailing else "stop_loss"
        if self._floor_ticks(open_) < used:  # opened below the stop: sold at the open
            return ExitHit(i, self._market(i), reason, int(self.c.ts[i]))
        rules = self.rules
        if trailing and minutes == 0:
            # freqtrade's entry-candle case: the worst path that still arms the trailing stop
            if rules.trailing_only_offset_is_reached and rules.trailing_positive:
                rate = open_ * (1.0 + rules.trailing_offset - rules.trailing_positive)
            else:
                rate = open_ * (1.0 - abs(rules.stoploss or 0.0))
            ticks = max(float(self._ceil_ticks(rate)), float(self._ceil_ticks(self.c.low[i])))
            return ExitHit(i, self._price(ticks), reason, int(self.c.ts[i]))
        return ExitHit(i, self._price(used), reason, int(self.c.ts[i]))

    def _roi_fill(self, trade: TradeState, i: int, ratio: float, minutes: int, open_: float,
                  high: float, low: float) -> ExitHit:  # fmt: skip
        entry = trade.entry_price
        rate = entry * (1.0 + self.fee + ratio) / (1.0 - self.fee)
        key = int(self.roi_keys[np.searchsorted(self.roi_keys, minutes, side="right") - 1])
        if minutes > 0 and minutes == key and key % max(self.tf_minutes, 1) == 0 and open_ > rate:
            rate = open_
        ticks = float(self._ceil_ticks(rate))
        ticks = min(max(ticks, float(self._ceil_ticks(low))), float(self._floor_ticks(high)))
        return ExitHit(i, self._price(ticks), "roi", int(self.c.ts[i]))
