"""`signal`: a bot driven from outside (TradingView alerts and the like). It never signals on
its own; entries and exits arrive at `POST /api/signals/{token}` and run on the bot's next
tick through the same sizing, protections, gates and broker as any other order."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict

from app.domain.candles import Candles
from app.domain.strategies.base import Strategy

SIGNAL = "signal"


class SignalParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SignalStrategy(Strategy[SignalParams]):
    name = SIGNAL
    description = (
        "Trades on signals sent to POST /api/signals/{token} (e.g. TradingView alerts); "
        "never on its own."
    )
    params_model = SignalParams

    def warmup(self, params: SignalParams) -> int:
        return 1

    def _conditions(self, candles: Candles, params: SignalParams) -> tuple[np.ndarray, np.ndarray]:
        none = np.zeros(len(candles), dtype=bool)
        return none, none
