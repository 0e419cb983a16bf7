"""What a parameter search may ask for, and how a trial is scored.

A search explores ranges of a strategy's parameters; each range must lie within the one the
strategy declares (its parameter schema's minimum/maximum, or its choices), so a search can
never propose values a bot would refuse. The objectives are written in docs/backtesting.md
("Parameter search"); each is "higher is better", and a trial whose objective cannot be
computed (a Sharpe below the minimum of daily returns, say) scores nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.domain.metrics import PerformanceMetrics
from app.domain.report import calmar

__all__ = ["OBJECTIVES", "ParamRange", "RangeError", "objective_value", "parse_ranges"]

OBJECTIVES = ("profit", "sharpe", "sortino", "calmar", "profit_dd")


class RangeError(ValueError):
    """A requested range the strategy does not allow; `field` names the parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ParamRange:
    """One searched parameter: integers or floats in [low, high], or one of `choices`."""

    name: str
    kind: str  # "int", "float" or "choice"
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "choice":
            return {"choices": list(self.choices or ())}
        low, high = self.low, self.high
        if self.kind == "int":
            return {"low": int(low or 0), "high": int(high or 0)}
        return {"low": low, "high": high}


def _number(value: Any, field: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RangeError(field, f"{what} must be a number")
    return float(value)


def _declared_bounds(schema: Mapping[str, Any]) -> tuple[float | None, float | None]:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    return low, high


def _one_range(name: str, want: Any, declared: Mapping[str, Any]) -> ParamRange:
    field = f"ranges.{name}"
    if not isinstance(want, Mapping):
        raise RangeError(field, 'a range is {"low": .., "high": ..} or {"choices": [..]}')
    if "enum" in declared:
        allowed = list(declared["enum"])
        choices = want.get("choices")
        if not isinstance(choices, list) or not choices or set(want) != {"choices"}:
            raise RangeError(field, f"{name} is a choice: give a non-empty 'choices' list")
        outside = [c for c in choices if c not in allowed]
        if outside:
            raise RangeError(field, f"{outside} not among the declared choices {allowed}")
        return ParamRange(name, "choice", choices=tuple(dict.fromkeys(choices)))
    kind = {"integer": "int", "number": "float"}.get(str(declared.get("type")))
    if kind is None:
        raise RangeError(field, f"{name} cannot be searched")
    if set(want) != {"low", "high"}:
        raise RangeError(field, f"{name} needs exactly 'low' and 'high'")
    low = _number(want["low"], field, "low")
    high = _number(want["high"], field, "high")
    if kind == "int" and (low != int(low) or high != int(high)):
        raise RangeError(field, f"{name} is an integer: low and high must be whole numbers")
    if low > high:
        raise RangeError(field, "low must not exceed high")
    lo, hi = _declared_bounds(declared)
    below = lo is not None and (low < lo or ("exclusiveMinimum" in declared and low <= lo))
    above = hi is not None and (high > hi or ("exclusiveMaximum" in declared and high >= hi))
    if below or above:
        raise RangeError(
            field,
            f"{name} in [{want['low']}, {want['high']}] is outside the declared range "
            f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]",
        )
    return ParamRange(name, kind, low=low, high=high)


def parse_ranges(ranges: Any, params_schema: Mapping[str, Any]) -> list[ParamRange]:
    """The requested ranges, each checked against the strategy's declared parameter."""
    if not isinstance(ranges, Mapping) or not ranges:
        raise RangeError("ranges", "give at least one parameter range")
    declared = params_schema.get("properties", {})
    out = []
    for name, want in ranges.items():
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise RangeError(f"ranges.{name}", f"unknown parameter {name!r}; declared: {known}")
        out.append(_one_range(str(name), want, declared[name]))
    return out


def objective_value(objective: str, m: PerformanceMetrics) -> float | None:
    """The score of one trial (higher is better); None when it cannot be computed."""
    if objective == "profit":
        return m.total_return
    if objective == "sharpe":
        return m.sharpe
    if objective == "sortino":
        return m.sortino
    if objective == "calmar":
        return calmar(m)
    if objective == "profit_dd":
        return None if m.total_return is None else m.total_return - m.max_drawdown
    raise ValueError(f"unknown objective {objective!r}")


@dataclass(frozen=True)
class Fold:
    """Candle index windows [is_lo, is_hi) fitted on and [oos_lo, oos_hi) checked on."""

    is_lo: int
    is_hi: int
    oos_lo: int
    oos_hi: int


def walk_forward_folds(n: int, folds: int, in_sample: float) -> list[Fold]:
    """`folds` consecutive, non-overlapping windows of equal length (the last takes the
    remainder), each split into its first `in_sample` share (fit) and the rest (check)."""
    size = n // folds
    out = []
    for k in range(folds):
        lo = k * size
        hi = n if k == folds - 1 else lo + size
        cut = lo + int((hi - lo) * in_sample)
        out.append(Fold(lo, cut, cut, hi))
    return out


def efficiency(is_return: float | None, is_days: float, oos_return: float | None,
               oos_days: float) -> float | None:  # fmt: skip
    """Walk-forward efficiency: out-of-sample return per day over in-sample return per day;
    None when the in-sample window made no profit to compare with."""
    if is_return is None or oos_return is None or is_return <= 0 or is_days <= 0 or oos_days <= 0:
        return None
    return (oos_return / oos_days) / (is_return / is_days)


def stability(values: list[Any]) -> dict[str, Any]:
    """How much a parameter's chosen value moved across folds: its values, and for numbers
    the coefficient of variation (population std / |mean|; 0 = the same every fold)."""
    out: dict[str, Any] = {"values": values}
    numbers = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numbers) == len(values) and values:
        mean = sum(numbers) / len(numbers)
        std = (sum((x - mean) ** 2 for x in numbers) / len(numbers)) ** 0.5
        out["cv"] = std / abs(mean) if mean else None
    else:
        out["distinct"] = len({str(v) for v in values})
    return out
