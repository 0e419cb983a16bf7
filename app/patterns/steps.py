"""The step types a pattern can use. Indicator maths is `app.domain` (numpy); a step only picks
the values at the last candle, names them, and says in words what it saw.

Each step type declares its arguments (a pydantic model, unknown names refused) and its
outputs (what `{{ steps.<id>.<output> }}` may refer to; checked when the file is loaded).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.domain import indicators as ind
from app.domain.analysis import InsufficientHistory, TickerAnalysis
from app.domain.analysis import analyze as domain_analyze
from app.domain.candles import Candles

Signal = Literal["buy", "sell", "hold"]
Scalar = float | int | bool | str | None


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class StepInput:
    ticker: str
    candles: Candles
    analysis: TickerAnalysis | None  # the default analysis, when already computed


@dataclass(frozen=True)
class StepType:
    name: str
    args: type[Args]
    outputs: tuple[str, ...]
    run: Callable[[StepInput, Any], dict[str, Any]]
    description: str


def _need(data: StepInput, n: int, step: str) -> None:
    if len(data.candles) < n:
        raise InsufficientHistory(
            f"{data.ticker}: step {step} needs at least {n} candles, got {len(data.candles)}"
        )


def _last(values: np.ndarray) -> float:
    return float(values[-1]) if values.shape[0] else math.nan


# -- analysis: the default per-ticker analysis of app.domain.analysis ----------------------


def _analysis(data: StepInput, _args: Args) -> dict[str, Any]:
    result = data.analysis or domain_analyze(data.ticker, data.candles)
    out = result.to_dict()
    out["reason"] = f"default analysis: {result.signal} (score {result.score:+.2f})"
    return out


# -- trend ---------------------------------------------------------------------------------


class TrendArgs(Args):
    fast: int = Field(50, ge=2, le=1000)
    slow: int = Field(200, ge=3, le=2000)
    slope_window: int = Field(10, ge=2, le=500)

    @model_validator(mode="after")
    def _ordered(self) -> TrendArgs:
        if self.fast >= self.slow:
            raise ValueError("fast must be smaller than slow")
        return self


def _trend(data: StepInput, args: TrendArgs) -> dict[str, Any]:
    _need(data, args.slow + args.slope_window, "trend")
    close = np.asarray(data.candles.close, dtype=np.float64)
    fast = ind.sma(close, args.fast)
    slow = _last(ind.sma(close, args.slow))
    slope = _last(ind.linreg_slope(fast[-args.slope_window :], args.slope_window))
    last = float(close[-1])
    direction = "up" if slope > 0 else "down" if slope < 0 else "flat"
    golden = _last(fast) > slow
    return {
        "close": last,
        "sma_fast": _last(fast),
        "sma_slow": slow,
        "slope": slope,
        "slope_pct": slope / last if last else math.nan,
        "direction": direction,
        "fast_above_slow": golden,
        "close_above_slow": last > slow,
        "reason": f"SMA{args.fast} {'above' if golden else 'below'} SMA{args.slow}, "
        f"SMA{args.fast} trending {direction}",
    }


# -- momentum ------------------------------------------------------------------------------


class MomentumArgs(Args):
    rsi_period: int = Field(14, ge=2, le=500)
    macd_fast: int = Field(12, ge=2, le=500)
    macd_slow: int = Field(26, ge=3, le=1000)
    macd_signal: int = Field(9, ge=2, le=500)

    @model_validator(mode="after")
    def _ordered(self) -> MomentumArgs:
        if self.macd_fast >= self.macd_slow:
            raise ValueError("macd_fast must be smaller than macd_slow")
        return self


def _momentum(data: StepInput, args: MomentumArgs) -> dict[str, Any]:
    _need(data, max(args.rsi_period + 1, args.macd_slow + args.macd_signal - 1), "momentum")
    close = np.asarray(data.candles.close, dtype=np.float64)
    rsi = _last(ind.rsi(close, args.rsi_period))
    m = ind.macd(close, args.macd_fast, args.macd_slow, args.macd_signal)
    hist = _last(m.histogram)
    return {
        "rsi": rsi,
        "macd": _last(m.line),
        "macd_signal": _last(m.signal),
        "macd_histogram": hist,
        "reason": f"RSI{args.rsi_period} {rsi:.1f}, MACD histogram "
        f"{'positive' if hist > 0 else 'negative' if hist < 0 else 'zero'}",
    }


# -- volatility ----------------------------------------------------------------------------


class VolatilityArgs(Args):
    atr_period: int = Field(14, ge=2, le=500)
    window: int = Field(100, ge=2, le=2000)


def _volatility(data: StepInput, args: VolatilityArgs) -> dict[str, Any]:
    _need(data, max(args.atr_period, args.window) + 1, "volatility")
    c = data.candles
    close = np.asarray(c.close, dtype=np.float64)
    atr = _last(ind.atr(c.high, c.low, close, args.atr_period))
    std = _last(ind.rolling_returns_std(close, args.window))
    last = float(close[-1])
    atr_pct = atr / last if last else math.nan
    return {
        "atr": atr,
        "atr_pct": atr_pct,
        "returns_std": std,
        "reason": f"ATR{args.atr_period} {atr_pct:.2%} of price, returns std {std:.2%}",
    }


# -- rules: the first rule whose conditions all hold decides -------------------------------

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


class Condition(Args):
    left: Scalar
    op: Literal["<", "<=", ">", ">=", "==", "!="]
    right: Scalar


class Rule(Args):
    when: list[Condition] = Field(min_length=1, max_length=20)
    signal: Signal
    score: float | None = Field(None, ge=-1, le=1)
    reason: str = Field("", max_length=300)


class RulesArgs(Args):
    rules: list[Rule] = Field(min_length=1, max_length=50)
    default: Signal = "hold"
    default_score: float = Field(0.0, ge=-1, le=1)
    default_reason: str = Field("no rule matched", max_length=300)


def _holds(cond: Condition) -> bool:
    left, right = cond.left, cond.right
    if isinstance(left, bool) or isinstance(right, bool) or cond.op in ("==", "!="):
        return _OPS[cond.op](left, right)
    if isinstance(left, str) or isinstance(right, str):
        raise ValueError(f"cannot compare {left!r} {cond.op} {right!r}: not numbers")
    if left is None or right is None:
        raise ValueError(f"cannot compare {left!r} {cond.op} {right!r}")
    return _OPS[cond.op](float(left), float(right))


def _rules(_data: StepInput, args: RulesArgs) -> dict[str, Any]:
    for i, rule in enumerate(args.rules):
        if all(_holds(c) for c in rule.when):
            score = rule.score
            if score is None:
                score = 1.0 if rule.signal == "buy" else -1.0 if rule.signal == "sell" else 0.0
            return {
                "signal": rule.signal,
                "score": score,
                "matched": i,
                "reason": rule.reason or f"rule {i + 1} matched",
            }
    return {
        "signal": args.default,
        "score": args.default_score,
        "matched": None,
        "reason": args.default_reason,
    }


# -- weighted_score: a weighted sum of named inputs, and a signal from thresholds -----------


class WeightedScoreArgs(Args):
    inputs: dict[str, float] = Field(min_length=1, max_length=20)
    weights: dict[str, float] = Field(min_length=1, max_length=20)
    buy_above: float = Field(0.25, ge=-1, le=1)
    sell_below: float = Field(-0.25, ge=-1, le=1)

    @model_validator(mode="after")
    def _matching(self) -> WeightedScoreArgs:
        if set(self.inputs) != set(self.weights):
            raise ValueError("inputs and weights must name the same entries")
        if self.sell_below >= self.buy_above:
            raise ValueError("sell_below must be smaller than buy_above")
        total = sum(abs(w) for w in self.weights.values())
        if total == 0:
            raise ValueError("weights must not all be zero")
        return self


def _weighted_score(_data: StepInput, args: WeightedScoreArgs) -> dict[str, Any]:
    total = sum(abs(w) for w in args.weights.values())
    score = sum(max(-1.0, min(1.0, args.inputs[k])) * w for k, w in args.weights.items()) / total
    signal = "buy" if score >= args.buy_above else "sell" if score <= args.sell_below else "hold"
    return {
        "score": score,
        "signal": signal,
        "reason": f"weighted score {score:+.2f} -> {signal}",
    }


STEP_TYPES: dict[str, StepType] = {
    t.name: t
    for t in (
        StepType(
            "analysis",
            Args,
            (*TickerAnalysis.__dataclass_fields__, "reason"),
            _analysis,
            "The default analysis (trend, momentum, volatility, score, signal, reasons).",
        ),
        StepType(
            "trend",
            TrendArgs,
            (
                "close",
                "sma_fast",
                "sma_slow",
                "slope",
                "slope_pct",
                "direction",
                "fast_above_slow",
                "close_above_slow",
                "reason",
            ),
            _trend,
            "SMA fast/slow, slope of the fast SMA (least squares over slope_window candles).",
        ),
        StepType(
            "momentum",
            MomentumArgs,
            ("rsi", "macd", "macd_signal", "macd_histogram", "reason"),
            _momentum,
            "RSI and MACD (line, signal, histogram) at the last candle.",
        ),
        StepType(
            "volatility",
            VolatilityArgs,
            ("atr", "atr_pct", "returns_std", "reason"),
            _volatility,
            "ATR (absolute and as a fraction of price) and the std of simple returns.",
        ),
        StepType(
            "rules",
            RulesArgs,
            ("signal", "score", "matched", "reason"),
            _rules,
            "Ordered rules; the first whose conditions all hold gives the signal.",
        ),
        StepType(
            "weighted_score",
            WeightedScoreArgs,
            ("score", "signal", "reason"),
            _weighted_score,
            "Weighted mean of inputs clipped to [-1, 1]; signal from buy/sell thresholds.",
        ),
    )
}
