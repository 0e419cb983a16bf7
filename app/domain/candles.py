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

    @classmethod
    def empty(cls) -> Candles:
        f = np.empty(0, dtype=np.float64)
        return cls(np.empty(0, dtype=np.int64), f, f, f, f, f)
