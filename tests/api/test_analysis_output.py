"""The per-ticker analysis the job stores, checked against values computed by hand on a fixture
(straight-line price ramps, where every indicator has a closed form), and per-ticker errors.

The fixture is served by a tiny market source (the market is the one thing tests may fake)."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

import numpy as np
import pytest

from app.domain.analysis import allocate
from app.domain.candles import Candles
from app.market.errors import ExchangeUnavailable, UnknownSymbol
from app.services.analysis import _jsonable, analyze_ticker
from app.store.job_contract import TransientJobError

N = 260  # candles


def ramp(step: float) -> Candles:
    """close = 100 + step * i, high/low one unit either side, hourly."""
    i = np.arange(N, dtype=np.float64)
    close = 100 + step * i
    ts = (np.arange(N, dtype=np.int64) + 1000) * 3_600_000
    return Candles(ts, close, close + 1, close - 1, close, np.ones(N))


class FixtureSource:
    name = "fixture"

    def __init__(self) -> None:
        self.series = {"UP/USD": ramp(0.5), "FAST/USD": ramp(1.0), "SHORT/USD": ramp(1.0)}
        self.series["SHORT/USD"] = self.series["SHORT/USD"].slice(0, 100)

    def candles(
        self, symbol: str, timeframe: str, since_ms: int | None = None, limit: int | None = None
    ) -> Candles:
        if symbol == "DOWN/USD":
            raise ExchangeUnavailable("exchange timed out")
        if symbol not in self.series:
            raise UnknownSymbol(f"unknown symbol {symbol!r}")
        c = self.series[symbol]
        return c.slice(max(0, len(c) - (limit or len(c))))


def hand_returns_std(step: float, window: int = 100) -> float:
    closes = [100 + step * i for i in range(N)]
    returns = [closes[k] / closes[k - 1] - 1 for k in range(N - window, N)]
    mean = sum(returns) / window
    return (sum((r - mean) ** 2 for r in returns) / (window - 1)) ** 0.5


def test_stored_analysis_matches_hand_computed_values() -> None:
    outcome = analyze_ticker(FixtureSource(), "UP/USD", "1h")
    assert outcome.error is None and outcome.analysis is not None
    a = outcome.analysis
    last = N - 1
    assert a.close == 100 + 0.5 * last  # 229.5
    assert a.sma50 == pytest.approx(sum(100 + 0.5 * i for i in range(N - 50, N)) / 50)  # 217.25
    assert a.sma200 == pytest.approx(100 + 0.5 * (N - 200 + last) / 2)  # 179.75
    assert a.sma50_slope == pytest.approx(0.5)  # SMA50 rises by the ramp's step
    assert a.rsi14 == 100.0  # no losing candle
    # EMAs of a straight line lag it by step*(period-1)/2 from their SMA seed on:
    assert a.macd == pytest.approx(0.5 * (26 - 12) / 2)  # 3.5
    assert a.macd_signal == pytest.approx(3.5) and a.macd_histogram == pytest.approx(0, abs=1e-9)
    assert a.atr14 == pytest.approx(2.0)  # every true range is high - low = 2
    assert a.atr_pct == pytest.approx(2.0 / 229.5)
    assert a.returns_std == pytest.approx(hand_returns_std(0.5), rel=1e-9)
    # score: price far above SMA200 (+0.25), SMA50 above SMA200 (+0.20), rising (+0.15),
    # histogram 0 (0), RSI 100 overbought (-0.20)
    assert a.score == pytest.approx(0.40)
    assert a.signal == "buy"
    assert any("overbought" in r for r in a.reasons)
    assert a.ts == (1000 + last) * 3_600_000
    stored = _jsonable({**a.to_dict(), "nan": float("nan"), "np": np.float64(1.5)})
    assert stored["nan"] is None and stored["np"] == 1.5 and stored["close"] == 229.5


def test_allocation_is_volatility_scaled_and_capped() -> None:
    source = FixtureSource()
    up = analyze_ticker(source, "UP/USD", "1h").analysis
    fast = analyze_ticker(source, "FAST/USD", "1h").analysis
    assert up is not None and fast is not None and up.signal == fast.signal == "buy"
    s_up, s_fast = hand_returns_std(0.5), hand_returns_std(1.0)
    amounts = allocate(Decimal(1000), [up, fast], 1.0)
    cent = Decimal("0.01")
    expected_up = Decimal(1000 * (1 / s_up) / (1 / s_up + 1 / s_fast))
    assert amounts["UP/USD"] == expected_up.quantize(cent, ROUND_DOWN)  # calmer: more capital
    assert amounts["UP/USD"] > amounts["FAST/USD"]
    capped = allocate(Decimal(1000), [up, fast], 0.3)
    assert capped == {"UP/USD": Decimal("300.00"), "FAST/USD": Decimal("300.00")}


def test_unknown_tickers_and_short_history_are_per_ticker_errors() -> None:
    source = FixtureSource()
    unknown = analyze_ticker(source, "NOPE/USD", "1h")
    assert unknown.analysis is None and unknown.error["code"] == "unknown_symbol"  # type: ignore[index]
    short = analyze_ticker(source, "SHORT/USD", "1h")
    assert short.error == {
        "code": "insufficient_history",
        "message": "SHORT/USD: analysis needs at least 210 candles, got 100",
    }
    with pytest.raises(TransientJobError, match="timed out"):  # a market outage: retry the job
        analyze_ticker(source, "DOWN/USD", "1h")
