"""What TA-Lib offers a strategy document: each function's inputs, parameters, outputs and
lookback, read from `talib.abstract`, and one way to call it.

A few functions are left out because their values depend on where the series starts, so a
live tick (which loads a window of recent candles) could never agree with a backtest: the
cumulative OBV and AD, and the *INDEX functions that answer array positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import talib
from talib import abstract

__all__ = ["EXCLUDED", "FunctionInfo", "call", "function_info", "function_names", "lookback"]

EXCLUDED = {
    "OBV": "cumulative from the first candle (a tick's window would disagree with a backtest)",
    "AD": "cumulative from the first candle (a tick's window would disagree with a backtest)",
    "MAXINDEX": "answers array positions, which depend on where the series starts",
    "MININDEX": "answers array positions, which depend on where the series starts",
    "MINMAXINDEX": "answers array positions, which depend on where the series starts",
    "MAVP": "takes a per-candle period series",
}
PRICE_SERIES = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class FunctionInfo:
    """One TA-Lib function as a document sees it."""

    name: str
    group: str
    display_name: str
    # (input name, series it reads by default, overridable): a single-series input ("real",
    # "price") may be any expression; a multi-series one ("prices": high, low, close) reads
    # the candles themselves.
    inputs: tuple[tuple[str, tuple[str, ...], bool], ...]
    params: tuple[tuple[str, int | float], ...]
    outputs: tuple[str, ...]
    unstable: bool

    @property
    def param_defaults(self) -> dict[str, int | float]:
        return dict(self.params)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "group": self.group,
            "display_name": self.display_name,
            "inputs": [
                {"name": n, "default": list(series), "expression_allowed": free}
                for n, series, free in self.inputs
            ],
            "params": [
                {"name": n, "type": "int" if isinstance(d, int) else "float", "default": d}
                for n, d in self.params
            ],
            "outputs": list(self.outputs),
            "unstable_period": self.unstable,
        }


@lru_cache(maxsize=1)
def function_names() -> tuple[str, ...]:
    return tuple(sorted(n for n in talib.get_functions() if n not in EXCLUDED))


@lru_cache(maxsize=512)
def function_info(name: str) -> FunctionInfo | None:
    """The function called `name`, or None when TA-Lib has none (or it is excluded)."""
    if name not in function_names():
        return None
    info = abstract.Function(name).info
    inputs = []
    for input_name, series in info["input_names"].items():
        if isinstance(series, list | tuple):
            inputs.append((input_name, tuple(series), False))
        else:
            default = series if series in PRICE_SERIES else "close"
            inputs.append((input_name, (default,), True))
    params = tuple((k, v) for k, v in info["parameters"].items())
    return FunctionInfo(
        name=name,
        group=info["group"],
        display_name=info["display_name"],
        inputs=tuple(inputs),
        params=params,
        outputs=tuple(info["output_names"]),
        unstable="Function has an unstable period" in info["function_flags"],
    )


@lru_cache(maxsize=4096)
def _lookback(name: str, params: tuple[tuple[str, int | float], ...]) -> int:
    try:
        return int(abstract.Function(name, **dict(params)).lookback)
    except Exception:  # TA-Lib refuses the values: reported as invalid (-1)
        return -1


def lookback(name: str, params: dict[str, int | float]) -> int:
    """Candles TA-Lib needs before the first output; -1 when it refuses these values."""
    return _lookback(name, tuple(sorted(params.items())))


def call(
    name: str, inputs: list[np.ndarray], params: dict[str, int | float]
) -> tuple[np.ndarray, ...]:
    """The function's outputs as float64 arrays; all NaN where TA-Lib has nothing to say."""
    n = inputs[0].shape[0] if inputs else 0
    fn = getattr(talib, name)
    try:
        out = fn(*inputs, **params)
    except Exception:  # e.g. every input value NaN: nothing to compute yet
        info = function_info(name)
        count = len(info.outputs) if info else 1
        return tuple(np.full(n, np.nan) for _ in range(count))
    if not isinstance(out, tuple):
        out = (out,)
    return tuple(np.asarray(o, dtype=np.float64) for o in out)
