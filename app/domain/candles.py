"""Candles as numpy arrays: the one shape indicator maths, strategies and backtests share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Candles:
    """Closed candles in ascending time order. `ts` is the candle open time in epoch ms."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def slice(self, start: int, stop: int | None = None) -> Candles:
        s = slice(start, stop)
        return Candles(
            self.ts[s], self.open[s], self.high[s], self.low[s], self.close[s], self.volume[s]
        )

    def aggregate(self, tf_ms: int) -> Candles:
        """These candles bucketed into `tf_ms` candles aligned to the epoch (as exchanges do):
        first open, highest high, lowest low, last close, summed volume."""
        if len(self) == 0:
            return self
        bucket = self.ts - np.mod(self.ts, tf_ms)
        starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
        ends = np.r_[starts[1:], self.ts.size]
        return Candles(
            bucket[starts],
            self.open[starts],
            np.maximum.reduceat(self.high, starts),
            np.minimum.reduceat(self.low, starts),
            self.close[ends - 1],
            np.add.reduceat(self.volume, starts),
        )

    @classmethod
    def empty(cls) -> Candles:
        f = np.empty(0, dtype=np.float64)
        return cls(np.empty(0, dtype=np.int64), f, f, f, f, f)
