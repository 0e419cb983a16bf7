"""MACD trend: follow the MACD line crossing its signal line."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.domain.candles import Candles
from app.domain.indicators import macd
from app.domain.strategies.base import (
    Strategy,
    crossed_above,
    crossed_below,
    price_tolerance,
)

# EMAs forget their seed by (1 - 2/(p+1)) per candle: 10 slow periods leave ~e^-20.
_CONVERGENCE_PERIODS = 10


class MacdTrendParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    fast: int = Field(12, ge=2, le=200, description="fast EMA period")
    slow: int = Field(26, ge=3, le=500, description="slow EMA period, > fast")
    signal: int = Field(9, ge=2, le=200, description="EMA period of the signal line")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> MacdTrendParams:
        if self.fast >= self.slow:
            raise ValueError("fast must be smaller than slow")
        return self


class MacdTrend(Strategy[MacdTrendParams]):
    name = "macd_trend"
    description = (
        "Enter long when the MACD line crosses above its signal line (histogram turns "
        "positive); exit when it crosses back below."
    )
    params_model = MacdTrendParams

    def warmup(self, params: MacdTrendParams) -> int:
        # the histogram is first valid at slow+signal-2; a cross also needs the candle before
        return params.slow + params.signal - 1

    def lookback(self, params: MacdTrendParams) -> int:
        return self.warmup(params) + _CONVERGENCE_PERIODS * params.slow

    def _conditions(
        self, candles: Candles, params: MacdTrendParams
    ) -> tuple[np.ndarray, np.ndarray]:
        hist = macd(candles.close, params.fast, params.slow, params.signal).histogram
        tol = price_tolerance(candles.close)
        return crossed_above(hist, 0.0, tol), crossed_below(hist, 0.0, tol)
