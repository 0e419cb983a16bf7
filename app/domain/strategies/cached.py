"""A strategy whose signals are computed once per signal-moving parameter set.

A parameter search runs many backtests of one strategy over the same candles. Parameters
that only move exits (stop-loss, trailing stop, ROI, holding time) leave the signals as they
were, so trials that differ only in those share one signal array: `CachedSignals` wraps the
strategy and keys its signals on the candles and the values of `signal_params()`. Everything
else (validation, warm-up, exit rules) is the wrapped strategy's, so a backtest through the
wrapper is the backtest of the strategy itself.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
from pydantic import BaseModel

from app.domain.candles import Candles
from app.domain.strategies.base import Strategy
from app.domain.strategies.exits import ExitRules

__all__ = ["CachedSignals"]


class CachedSignals(Strategy[Any]):
    """`inner` with its signals remembered (up to `size` arrays, least recently used out)."""

    def __init__(self, inner: Strategy[Any], size: int = 256) -> None:
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]
        self.description = inner.description  # type: ignore[misc]
        self.params_model = inner.params_model  # type: ignore[misc]
        self._keys = sorted(inner.signal_params())
        self._size = size
        self._arrays: OrderedDict[tuple[int, tuple[Any, ...]], tuple[Candles, np.ndarray]] = (
            OrderedDict()
        )
        self.computed = 0  # signal arrays actually computed (the rest were reused)

    @property
    def cache_key(self) -> str:
        return self.inner.cache_key

    def signal_params(self) -> frozenset[str]:
        return self.inner.signal_params()

    def validate_params(self, data: Any) -> Any:
        return self.inner.validate_params(data)

    def warmup(self, params: Any) -> int:
        return self.inner.warmup(params)

    def lookback(self, params: Any) -> int:
        return self.inner.lookback(params)

    def exit_rules(self, params: Any) -> ExitRules:
        return self.inner.exit_rules(params)

    def signals(self, candles: Candles, params: BaseModel) -> np.ndarray:
        values = params.model_dump()
        key = (id(candles), tuple((k, values[k]) for k in self._keys))
        hit = self._arrays.get(key)
        if hit is not None and hit[0] is candles:
            self._arrays.move_to_end(key)
            return hit[1]
        sig = self.inner.signals(candles, params)
        sig.flags.writeable = False  # shared between trials: nobody may change it
        self.computed += 1
        self._arrays[key] = (candles, sig)
        if len(self._arrays) > self._size:
            self._arrays.popitem(last=False)
        return sig

    def entry_tags(self, candles: Candles, params: Any) -> list[str | None] | None:
        return self.inner.entry_tags(candles, params)

    def _conditions(self, candles: Candles, params: Any) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError("CachedSignals.signals delegates to the wrapped strategy")
