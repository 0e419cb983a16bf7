"""Market analysis for one ticker, and a capital split across analysed tickers.

`analyze` reads the trend (SMA 50/200 and the slope of SMA 50), the momentum (RSI 14, MACD
12/26/9) and the volatility (ATR 14 as a fraction of price, std of returns) at the last
candle, and turns them into a score in [-1, 1], a signal and human-readable reasons.

Score: a weighted sum of five components, each clipped to [-1, 1] (weights sum to 1):

    price vs SMA 200       0.25   (close/SMA200 - 1) / 5 %
    SMA 50 vs SMA 200      0.20   (SMA50/SMA200 - 1) / 3 %
    SMA 50 slope           0.15   slope per candle / (0.1 * ATR)
    MACD histogram         0.20   histogram / (0.25 * ATR)
    RSI 14                 0.20   +1 at or below 30 (oversold), -1 at or above 70
                                  (overbought), (RSI - 50) / 40 in between

signal = "buy" if score >= 0.25, "sell" if score <= -0.25, else "hold".

`allocate` splits capital over the "buy" tickers by inverse volatility (std of returns),
caps each ticker and rounds down to cents; see its docstring.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from decimal import ROUND_DOWN, Decimal, localcontext
from typing import Any, Literal

import numpy as np

from app.domain import indicators as ind
from app.domain.candles import Candles
from app.errors import ValidationFailed

__all__ = [
    "BUY_THRESHOLD",
    "MIN_CANDLES",
    "SELL_THRESHOLD",
    "InsufficientHistory",
    "TickerAnalysis",
    "allocate",
    "analyze",
]

SMA_FAST = 50
SMA_SLOW = 200
SLOPE_WINDOW = 10
RSI_PERIOD = 14
ATR_PERIOD = 14
VOL_WINDOW = 100
# SMA 200 is first valid at index 199; the SMA 50 slope then needs SLOPE_WINDOW valid values.
MIN_CANDLES = SMA_SLOW + SLOPE_WINDOW
BUY_THRESHOLD = 0.25
SELL_THRESHOLD = -0.25
OVERSOLD = 30.0
OVERBOUGHT = 70.0
CENT = Decimal("0.01")

Signal = Literal["buy", "sell", "hold"]


class InsufficientHistory(ValidationFailed):
    code = "insufficient_history"


@dataclass(frozen=True)
class TickerAnalysis:
    ticker: str
    ts: int  # open time (epoch ms) of the last candle analysed
    candles: int
    close: float
    sma50: float
    sma200: float
    sma50_slope: float  # least-squares slope of SMA 50 over 10 candles, price units/candle
    rsi14: float
    macd: float
    macd_signal: float
    macd_histogram: float
    atr14: float
    atr_pct: float  # ATR 14 / close
    returns_std: float  # sample std of the last 100 per-candle simple returns
    score: float
    signal: Signal
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["reasons"] = list(self.reasons)
        return out


def _clip(x: float) -> float:
    return max(-1.0, min(1.0, x))


def _score(
    close: float, sma50: float, sma200: float, slope: float, rsi: float, hist: float, atr: float
) -> tuple[float, list[str]]:
    reasons: list[str] = []
    vs200 = close / sma200 - 1.0
    reasons.append(
        f"price {abs(vs200):.1%} {'above' if vs200 >= 0 else 'below'} SMA200 "
        f"({'uptrend' if vs200 >= 0 else 'downtrend'})"
    )
    cross = sma50 / sma200 - 1.0
    reasons.append(
        f"SMA50 {'above' if cross >= 0 else 'below'} SMA200 by {abs(cross):.1%} "
        f"({'bullish' if cross >= 0 else 'bearish'} regime)"
    )
    unit = atr if atr > 0 else math.inf  # no range at all: slope and MACD say nothing
    reasons.append(
        f"SMA50 {'rising' if slope > 0 else 'falling' if slope < 0 else 'flat'} "
        f"({slope / unit:+.2f} ATR per candle)"
    )
    reasons.append(
        f"MACD histogram {'positive' if hist > 0 else 'negative' if hist < 0 else 'zero'} "
        f"({hist / unit:+.2f} ATR)"
    )
    if rsi <= OVERSOLD:
        t_rsi = 1.0
        reasons.append(f"RSI {rsi:.1f} oversold (<= {OVERSOLD:.0f}): rebound likely")
    elif rsi >= OVERBOUGHT:
        t_rsi = -1.0
        reasons.append(f"RSI {rsi:.1f} overbought (>= {OVERBOUGHT:.0f}): stretched")
    else:
        t_rsi = (rsi - 50.0) / 40.0
        reasons.append(f"RSI {rsi:.1f} neutral")
    score = (
        0.25 * _clip(vs200 / 0.05)
        + 0.20 * _clip(cross / 0.03)
        + 0.15 * _clip(slope / (0.1 * unit))
        + 0.20 * _clip(hist / (0.25 * unit))
        + 0.20 * t_rsi
    )
    return _clip(score), reasons


def analyze(ticker: str, candles: Candles) -> TickerAnalysis:
    """Analysis at the last candle; InsufficientHistory below MIN_CANDLES candles.

    Recursive indicators (EMA, Wilder) depend on where the series starts: pass the same
    history length to compare runs (a few hundred candles or more is plenty).
    """
    n = len(candles)
    if n < MIN_CANDLES:
        raise InsufficientHistory(
            f"{ticker}: analysis needs at least {MIN_CANDLES} candles, got {n}",
            details=[{"loc": ["candles"], "msg": f"need >= {MIN_CANDLES} candles, got {n}"}],
        )
    close_arr = np.asarray(candles.close, dtype=np.float64)
    sma50_arr = ind.sma(close_arr, SMA_FAST)
    m = ind.macd(close_arr, 12, 26, 9)
    values = {
        "close": float(close_arr[-1]),
        "sma50": float(sma50_arr[-1]),
        "sma200": float(ind.sma(close_arr, SMA_SLOW)[-1]),
        "sma50_slope": float(ind.linreg_slope(sma50_arr[-SLOPE_WINDOW:], SLOPE_WINDOW)[-1]),
        "rsi14": float(ind.rsi(close_arr, RSI_PERIOD)[-1]),
        "macd": float(m.line[-1]),
        "macd_signal": float(m.signal[-1]),
        "macd_histogram": float(m.histogram[-1]),
        "atr14": float(ind.atr(candles.high, candles.low, close_arr, ATR_PERIOD)[-1]),
        "returns_std": float(ind.rolling_returns_std(close_arr, VOL_WINDOW)[-1]),
    }
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if bad or values["close"] <= 0 or values["sma200"] <= 0:
        raise ValidationFailed(
            f"{ticker}: candles give no usable analysis (non-finite or non-positive values)",
            code="invalid_candles",
            details=[{"loc": ["candles"], "msg": f"not finite: {', '.join(bad) or 'none'}"}],
        )
    score, reasons = _score(
        values["close"],
        values["sma50"],
        values["sma200"],
        values["sma50_slope"],
        values["rsi14"],
        values["macd_histogram"],
        values["atr14"],
    )
    atr_pct = values["atr14"] / values["close"]
    reasons.append(
        f"volatility: ATR {atr_pct:.2%} of price, returns std {values['returns_std']:.2%}"
    )
    signal: Signal = (
        "buy" if score >= BUY_THRESHOLD else "sell" if score <= SELL_THRESHOLD else "hold"
    )
    return TickerAnalysis(
        ticker=ticker,
        ts=int(candles.ts[-1]),
        candles=n,
        atr_pct=atr_pct,
        score=score,
        signal=signal,
        reasons=tuple(reasons),
        **values,
    )


def _capped_amounts(
    capital: Decimal, inv_vol: dict[str, Decimal], cap: Decimal
) -> dict[str, Decimal]:
    """Amounts proportional to inv_vol, none above cap * capital, excess spread on the rest.

    Decimal maths, multiplying before dividing, so that exact splits stay exact to the cent.
    """
    cap_amount = capital * cap
    budget = capital
    free = dict(inv_vol)
    amounts: dict[str, Decimal] = {}
    while free:  # each round caps at least one more ticker, or ends
        total = sum(free.values(), Decimal(0))
        share = {t: budget * v / total for t, v in free.items()}
        over = [t for t, a in share.items() if a > cap_amount]
        if not over:
            amounts.update(share)
            break
        for t in over:
            amounts[t] = cap_amount
            budget -= cap_amount
            del free[t]
    return amounts


def allocate(
    capital: Decimal,
    analyses: Sequence[TickerAnalysis],
    max_per_ticker: float | Decimal = 0.25,
) -> dict[str, Decimal]:
    """Split `capital` over the tickers whose signal is "buy", by inverse volatility.

    Weight of ticker i = (1/std_i) / sum(1/std_j) over the buy tickers, then capped at
    `max_per_ticker` of the capital with the excess spread over the uncapped ones (so fewer
    than 1/max_per_ticker buy tickers leave part of the capital unallocated). Buy tickers
    with a zero or non-finite returns std are left out. Every analysed ticker appears in the
    result, in input order, with Decimal("0.00") if it gets nothing; with no buy ticker at
    all everything is 0 and the whole capital stays in cash. Amounts are rounded down to cents
    and never add up to more than `capital`.
    """
    capital = Decimal(str(capital))
    if not capital.is_finite() or capital < 0:
        raise ValidationFailed("capital must be a finite amount >= 0", code="validation_error")
    if not 0 < max_per_ticker <= 1:
        raise ValidationFailed("max_per_ticker must be in (0, 1]", code="validation_error")
    tickers = [a.ticker for a in analyses]
    if len(set(tickers)) != len(tickers):
        raise ValidationFailed("each ticker may appear only once", code="validation_error")

    result = {t: Decimal("0.00") for t in tickers}
    chosen = [
        a
        for a in analyses
        if a.signal == "buy" and math.isfinite(a.returns_std) and a.returns_std > 0
    ]
    if not chosen or capital == 0:
        return result
    with localcontext() as ctx:
        ctx.prec = 60
        inv_vol = {a.ticker: 1 / Decimal(repr(float(a.returns_std))) for a in chosen}
        amounts = _capped_amounts(capital, inv_vol, Decimal(str(max_per_ticker)))
        for ticker, amount in amounts.items():
            result[ticker] = amount.quantize(CENT, ROUND_DOWN)
    excess = sum(result.values(), Decimal(0)) - capital
    if excess > 0:  # division rounding in the last digit; take it from the largest amount
        top = max(result, key=lambda t: result[t])
        result[top] -= excess
    return result
