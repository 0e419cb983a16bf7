"""SMA crossover: trend following on two simple moving averages of the close."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.domain.candles import Candles
from app.domain.indicators import sma
from app.domain.strategies.base import (
    Strategy,
    crossed_above,
    crossed_below,
    price_tolerance,
)


class SmaCrossoverParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    fast: int = Field(10, ge=2, le=500, description="fast SMA period (candles)")
    slow: int = Field(30, ge=3, le=1000, description="slow SMA period (candles), > fast")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> SmaCrossoverParams:
        if self.fast >= self.slow:
            raise ValueError("fast must be smaller than slow")
        return self


class SmaCrossover(Strategy[SmaCrossoverParams]):
    name = "sma_crossover"
    description = (
        "Enter long when the fast SMA of the close crosses above the slow SMA; "
        "exit when it crosses back below."
    )
    params_model = SmaCrossoverParams

    def warmup(self, params: SmaCrossoverParams) -> int:
        # the slow SMA is first valid at slow-1; a cross also needs the candle before
        return params.slow

    def _conditions(
        self, candles: Candles, params: SmaCrossoverParams
    ) -> tuple[np.ndarray, np.ndarray]:
        fast = sma(candles.close, params.fast)
        slow = sma(candles.close, params.slow)
        tol = price_tolerance(candles.close)
        return crossed_above(fast, slow, tol), crossed_below(fast, slow, tol)
