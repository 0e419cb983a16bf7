"""What every strategy is: validated params in, one int8 signal per closed candle out.

Signal contract (the engine, backtests and tests rely on it):

* `signals(candles, params)` returns an int8 array as long as `candles`: ENTER (+1) = enter
  long, EXIT (-1) = exit long, NONE (0) = nothing. A strategy emits events (a cross, a
  breakout), not a state; an ENTER while already long or an EXIT while flat means nothing.
* Signal i uses only candles 0..i, all of them closed; acting on it is the caller's business
  (e.g. at the next candle's open). Computing on any prefix gives the same values.
* `signals[:warmup(params)]` is always 0; `signals[warmup(params)]` is the first candle that
  can carry a signal, so a tick needs at least `warmup(params) + 1` candles.
* `lookback(params)` is how many candles a live tick should load so its last signal matches a
  long backtest: more than `warmup` for strategies with recursive (EMA/Wilder) smoothing.
* Everything is vectorised over the whole array: no Python loop per candle.
* Crossings treat values closer than TIE_TOLERANCE (1e-9) of the price as equal, so that
  floating-point noise on a flat market (equal closes, coarse ticks) cannot flip a
  comparison back and forth and invent signals. That is far below any tick size.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
from pydantic import BaseModel

from app.domain.candles import Candles
from app.domain.strategies.exits import NO_EXITS, ExitRules
from app.domain.validation import validate_model

__all__ = [
    "TIE_TOLERANCE",
    "ENTER",
    "EXIT",
    "NONE",
    "Strategy",
    "crossed_above",
    "crossed_below",
    "position_from_signals",
    "price_tolerance",
]

ENTER = 1
EXIT = -1
NONE = 0

TIE_TOLERANCE = 1e-9

P = TypeVar("P", bound=BaseModel)


class Strategy(ABC, Generic[P]):
    """A long-only spot strategy. Subclasses set `name`, `description`, `params_model`."""

    name: ClassVar[str]
    description: ClassVar[str]
    params_model: ClassVar[type[BaseModel]]

    def validate_params(self, data: Mapping[str, Any] | BaseModel | None) -> P:
        """Params model from a dict (None or {} gives the defaults); ValidationFailed if bad."""
        return validate_model(  # type: ignore[return-value]
            self.params_model, data, f"invalid parameters for strategy {self.name}"
        )

    def default_params(self) -> P:
        return self.validate_params(None)

    def params_json_schema(self) -> dict[str, Any]:
        return self.params_model.model_json_schema()

    def describe(self) -> dict[str, Any]:
        """JSON-ready listing for the API."""
        return {
            "name": self.name,
            "description": self.description,
            "params_schema": self.params_json_schema(),
            "default_params": self.default_params().model_dump(),
        }

    @abstractmethod
    def warmup(self, params: P) -> int:
        """Index of the first candle that can carry a signal (= candles needed before it)."""

    def lookback(self, params: P) -> int:
        """Candles a live tick should load; enough for recursive smoothing to have converged."""
        return self.warmup(params) + 1

    def exit_rules(self, params: P) -> ExitRules:
        """Stop-loss, trailing stop, ROI and holding time; the hand-written ones have none."""
        return NO_EXITS

    @property
    def cache_key(self) -> str:
        """What tells this strategy's signals apart in shared caches (documents: a hash)."""
        return self.name

    def signal_params(self) -> frozenset[str]:
        """The parameters that can change `signals` (and the warm-up); the others only move
        exits, so two parameter sets equal on these share their signals. Hand-written
        strategies: all of them."""
        return frozenset(self.params_model.model_fields)

    def signals(self, candles: Candles, params: P) -> np.ndarray:
        """int8 array of ENTER/EXIT/NONE, one per candle; see the module docstring."""
        if not isinstance(params, self.params_model):
            raise TypeError(
                f"{self.name} expects {self.params_model.__name__}, got {type(params).__name__}; "
                "use validate_params() first"
            )
        n = len(candles)
        out = np.zeros(n, dtype=np.int8)
        if n == 0:
            return out
        enter, exit_ = self._conditions(candles, params)
        out[enter] = ENTER
        out[exit_] = EXIT  # an exit on the same candle wins: long-only must be able to get out
        out[: min(self.warmup(params), n)] = NONE
        return out

    def entry_tags(self, candles: Candles, params: P) -> list[str | None] | None:
        """The tag of each candle's entry (None where it has none), or None when the
        strategy names no entries: only documents with tagged entries do."""
        return None

    @abstractmethod
    def _conditions(self, candles: Candles, params: P) -> tuple[np.ndarray, np.ndarray]:
        """Boolean (enter, exit) arrays; NaN comparisons are False, warm-up is zeroed after."""

    def __repr__(self) -> str:
        return f"<Strategy {self.name}>"


def _cross(over: np.ndarray, diff: np.ndarray) -> np.ndarray:
    """True at i when `over` starts at i: over[i], not over[i-1], and diff[i-1] is a number."""
    out = np.zeros(over.shape[0], dtype=bool)
    out[1:] = over[1:] & ~over[:-1] & np.isfinite(diff[:-1])
    return out


def crossed_above(
    a: np.ndarray, b: np.ndarray | float, tol: np.ndarray | float = 0.0
) -> np.ndarray:
    """True at i when a[i] > b[i] + tol and not a[i-1] > b[i-1] + tol (False at 0 and NaN).

    `tol` (scalar or per-candle array, >= 0) is the band within which a and b count as equal.
    """
    diff = np.asarray(a - b, dtype=np.float64)
    return _cross(diff > tol, diff)


def crossed_below(
    a: np.ndarray, b: np.ndarray | float, tol: np.ndarray | float = 0.0
) -> np.ndarray:
    """True at i when a[i] < b[i] - tol and not a[i-1] < b[i-1] - tol (False at 0 and NaN)."""
    diff = np.asarray(a - b, dtype=np.float64)
    return _cross(diff < -tol, diff)


def price_tolerance(close: np.ndarray) -> np.ndarray:
    """Per-candle tie band for comparing price-valued series (see TIE_TOLERANCE)."""
    return TIE_TOLERANCE * np.abs(np.asarray(close, dtype=np.float64))


def position_from_signals(signals: np.ndarray) -> np.ndarray:
    """Long-only state (int8: 1 long, 0 flat) after each candle's signal, vectorised.

    The state after candle i is set by the last non-zero signal at or before i. Useful for
    vectorised backtests: the position held during candle i+1 is `position_from_signals(s)[i]`.
    """
    s = np.asarray(signals)
    idx = np.where(s != NONE, np.arange(s.shape[0]), -1)
    np.maximum.accumulate(idx, out=idx)
    last = np.where(idx >= 0, s[np.maximum(idx, 0)], NONE)
    return (last == ENTER).astype(np.int8)
