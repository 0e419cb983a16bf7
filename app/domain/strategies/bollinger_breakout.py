"""Bollinger breakout: ride a close that breaks out above the upper band."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from app.domain.candles import Candles
from app.domain.indicators import bollinger
from app.domain.strategies.base import (
    Strategy,
    crossed_above,
    crossed_below,
    price_tolerance,
)


class BollingerBreakoutParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    period: int = Field(20, ge=2, le=500, description="SMA/std window (candles)")
    k: float = Field(2.0, gt=0, le=10, description="band width in population std devs")


class BollingerBreakout(Strategy[BollingerBreakoutParams]):
    name = "bollinger_breakout"
    description = (
        "Enter long when the close crosses above the upper Bollinger band; exit when it "
        "crosses below the middle band (the SMA)."
    )
    params_model = BollingerBreakoutParams

    def warmup(self, params: BollingerBreakoutParams) -> int:
        # bands are first valid at period-1; a cross also needs the candle before
        return params.period

    def _conditions(
        self, candles: Candles, params: BollingerBreakoutParams
    ) -> tuple[np.ndarray, np.ndarray]:
        bands = bollinger(candles.close, params.period, params.k)
        close = np.asarray(candles.close, dtype=np.float64)
        tol = price_tolerance(close)
        return crossed_above(close, bands.upper, tol), crossed_below(close, bands.mid, tol)
