"""RSI mean reversion: buy the recovery from oversold, sell into overbought."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.domain.candles import Candles
from app.domain.indicators import rsi
from app.domain.strategies.base import TIE_TOLERANCE, Strategy, crossed_above

# Wilder smoothing forgets its seed by (1 - 1/period) per candle: 10 periods leave < 0.01 %.
_CONVERGENCE_PERIODS = 10


class RsiMeanReversionParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    period: int = Field(14, ge=2, le=200, description="RSI period (Wilder smoothing)")
    oversold: float = Field(30.0, gt=0, lt=100, description="enter when RSI rises back above")
    overbought: float = Field(70.0, gt=0, lt=100, description="exit when RSI rises above")

    @model_validator(mode="after")
    def _ordered_levels(self) -> RsiMeanReversionParams:
        if self.oversold >= self.overbought:
            raise ValueError("oversold must be smaller than overbought")
        return self


class RsiMeanReversion(Strategy[RsiMeanReversionParams]):
    name = "rsi_mean_reversion"
    description = (
        "Enter long when RSI crosses back above the oversold level (from below); exit when "
        "RSI crosses above the overbought level. If both happen on one candle, exit wins."
    )
    params_model = RsiMeanReversionParams

    def warmup(self, params: RsiMeanReversionParams) -> int:
        # RSI is first valid at index `period`; a cross also needs the candle before
        return params.period + 1

    def lookback(self, params: RsiMeanReversionParams) -> int:
        return self.warmup(params) + _CONVERGENCE_PERIODS * params.period

    def _conditions(
        self, candles: Candles, params: RsiMeanReversionParams
    ) -> tuple[np.ndarray, np.ndarray]:
        r = rsi(candles.close, params.period)
        # strict: RSI sitting on the level (within TIE_TOLERANCE RSI points) is not a cross
        return (
            crossed_above(r, params.oversold, TIE_TOLERANCE),
            crossed_above(r, params.overbought, TIE_TOLERANCE),
        )
