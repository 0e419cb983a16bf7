"""Per-ticker analysis and inverse-volatility allocation."""

from __future__ import annotations

import json
from decimal import Decimal as D

import numpy as np
import pytest

from app.domain import indicators as ind
from app.domain.analysis import (
    MIN_CANDLES,
    InsufficientHistory,
    TickerAnalysis,
    allocate,
    analyze,
)
from app.errors import ValidationFailed
from tests.domain.helpers import candles_from_close, load_csv, random_walk
from tests.support.recorded import recorded_file


def clip(x):
    return max(-1.0, min(1.0, x))


# ---- analyze ----------------------------------------------------------------------------


def test_insufficient_history_boundary():
    walk = random_walk(MIN_CANDLES, seed=2)
    assert MIN_CANDLES == 210
    with pytest.raises(InsufficientHistory) as err:
        analyze("ABC/USD", walk.slice(0, MIN_CANDLES - 1))
    assert isinstance(err.value, ValidationFailed)
    assert err.value.code == "insufficient_history" and err.value.status == 422
    assert "209" in err.value.message
    assert analyze("ABC/USD", walk).candles == MIN_CANDLES


def test_values_are_the_indicators_at_the_last_candle():
    c = random_walk(600, seed=4)
    a = analyze("ABC/USD", c)
    close = c.close
    assert a.ts == int(c.ts[-1]) and a.close == close[-1]
    assert a.sma50 == pytest.approx(np.mean(close[-50:]), rel=1e-12)
    assert a.sma200 == pytest.approx(np.mean(close[-200:]), rel=1e-12)
    sma50 = np.array([np.mean(close[i - 49 : i + 1]) for i in range(590, 600)])
    assert a.sma50_slope == pytest.approx(np.polyfit(np.arange(10), sma50, 1)[0], rel=1e-8)
    assert a.rsi14 == ind.rsi(close, 14)[-1]
    m = ind.macd(close, 12, 26, 9)
    assert (a.macd, a.macd_signal, a.macd_histogram) == (
        m.line[-1],
        m.signal[-1],
        m.histogram[-1],
    )
    assert a.atr_pct == pytest.approx(ind.atr(c.high, c.low, close, 14)[-1] / close[-1])
    returns = close[-100:] / close[-101:-1] - 1
    assert a.returns_std == pytest.approx(np.std(returns, ddof=1), rel=1e-9)


def test_score_is_the_documented_weighted_sum():
    a = analyze("ABC/USD", random_walk(800, seed=8))
    rsi_term = 1.0 if a.rsi14 <= 30 else -1.0 if a.rsi14 >= 70 else (a.rsi14 - 50) / 40
    expected = (
        0.25 * clip((a.close / a.sma200 - 1) / 0.05)
        + 0.20 * clip((a.sma50 / a.sma200 - 1) / 0.03)
        + 0.15 * clip(a.sma50_slope / (0.1 * a.atr14))
        + 0.20 * clip(a.macd_histogram / (0.25 * a.atr14))
        + 0.20 * rsi_term
    )
    assert a.score == pytest.approx(expected, rel=1e-12)
    assert -1 <= a.score <= 1


def test_steady_uptrend_is_a_buy_with_an_overbought_warning():
    # +0.2 % every candle: far above SMA200 (+0.25), SMA50 far above SMA200 (+0.20), SMA50
    # rising (+0.15 * ~0.9), RSI 100 overbought (-0.20): score about +0.38
    a = analyze("UP/USD", candles_from_close(100 * 1.002 ** np.arange(400)))
    assert a.signal == "buy"
    assert 0.3 < a.score < 0.45
    assert a.rsi14 == 100
    assert any("overbought" in r for r in a.reasons)
    assert a.reasons[0].startswith("price") and "above SMA200" in a.reasons[0]


def test_steady_downtrend_is_a_sell():
    a = analyze("DOWN/USD", candles_from_close(100 * 0.998 ** np.arange(400)))
    assert a.signal == "sell"
    assert -0.45 < a.score < -0.3
    assert any("oversold" in r for r in a.reasons)
    assert any("below SMA200" in r for r in a.reasons)


def test_flat_market_is_a_hold():
    a = analyze("FLAT/USD", candles_from_close(100 + np.sin(np.arange(400) * 0.7) * 0.1))
    assert a.signal == "hold"
    assert abs(a.score) < 0.25


def test_non_positive_prices_are_rejected():
    close = np.full(300, 100.0)
    close[-1] = np.nan
    with pytest.raises(ValidationFailed) as err:
        analyze("BAD/USD", candles_from_close(close))
    assert err.value.code == "invalid_candles"


def test_to_dict_is_plain_json():
    out = analyze("ABC/USD", random_walk(400, seed=1)).to_dict()
    assert isinstance(out["reasons"], list) and out["signal"] in {"buy", "sell", "hold"}
    assert json.loads(json.dumps(out, allow_nan=False)) == out


def test_real_file_analysis():
    path = recorded_file("BINANCE_XLM-BTC_5m.csv")
    candles = load_csv(path)
    a = analyze("XLM/BTC", candles)
    assert a.candles == len(candles) and a.ts == int(candles.ts[-1])
    assert 0 < a.atr_pct < 0.1 and 0 < a.returns_std < 0.1
    assert 0 <= a.rsi14 <= 100 and -1 <= a.score <= 1
    assert len(a.reasons) == 6


# ---- allocate ---------------------------------------------------------------------------


def fake(ticker, signal="buy", std=0.01):
    return TickerAnalysis(
        ticker=ticker, ts=0, candles=300, close=1.0, sma50=1.0, sma200=1.0, sma50_slope=0.0,
        rsi14=50.0, macd=0.0, macd_signal=0.0, macd_histogram=0.0, atr14=0.01, atr_pct=0.01,
        returns_std=std, score=0.5 if signal == "buy" else 0.0, signal=signal, reasons=(),
    )  # fmt: skip


def test_inverse_volatility_with_cap_and_redistribution():
    # 1/std = 100, 50, 25 (sum 175): 0.571, 0.286, 0.143 -> A capped at 0.5, the other
    # 0.5 split 50:25 -> 1/3 and 1/6 ; of 1000: 500.00, 333.33, 166.66 (rounded down)
    out = allocate(D(1000), [fake("A", std=0.01), fake("B", std=0.02), fake("C", std=0.04)], 0.5)
    assert out == {"A": D("500.00"), "B": D("333.33"), "C": D("166.66")}


def test_uncapped_inverse_volatility():
    # 1/std = 100, 50 -> 2/3, 1/3 of 90 = 60.00, 30.00 (cap 1)
    assert allocate(D(90), [fake("A", std=0.01), fake("B", std=0.02)], 1.0) == {
        "A": D("60.00"),
        "B": D("30.00"),
    }


def test_default_cap_leaves_cash_when_few_buys():
    # two buys, cap 0.25 each: 250 + 250, 500 stays unallocated
    out = allocate(D(1000), [fake("A"), fake("B", std=0.05), fake("C", "sell")])
    assert out == {"A": D("250.00"), "B": D("250.00"), "C": D("0.00")}


def test_only_buy_signals_with_a_usable_volatility_get_money():
    out = allocate(
        D(1000),
        [fake("A", "hold"), fake("B", "sell"), fake("C", std=0.0), fake("D", std=float("nan")),
         fake("E")],
        1.0,
    )  # fmt: skip
    assert out == {"A": D(0), "B": D(0), "C": D(0), "D": D(0), "E": D("1000.00")}


def test_no_buy_signal_allocates_nothing():
    out = allocate(D(1000), [fake("A", "hold"), fake("B", "sell")])
    assert out == {"A": D("0.00"), "B": D("0.00")}
    assert allocate(D(1000), []) == {}


def test_rounds_down_to_cents_and_never_exceeds_capital():
    # 100.01 / 3 = 33.3366... -> 33.33 each, total 99.99
    out = allocate(D("100.01"), [fake("A"), fake("B"), fake("C")], 1.0)
    assert set(out.values()) == {D("33.33")}
    rng = np.random.default_rng(0)
    for _ in range(200):
        k = int(rng.integers(1, 12))
        cap = float(rng.uniform(0.05, 1.0))
        capital = D(str(round(float(rng.uniform(0, 1e6)), 2)))
        items = [fake(f"T{i}", std=float(rng.uniform(0.001, 0.1))) for i in range(k)]
        got = allocate(capital, items, cap)
        assert sum(got.values()) <= capital
        assert all(v >= 0 and v == v.quantize(D("0.01")) for v in got.values())
        assert all(v <= capital * D(repr(cap)) for v in got.values())


@pytest.mark.parametrize(
    ("capital", "items", "cap"),
    [
        (D(-1), [], 0.25),
        (D("NaN"), [], 0.25),
        (D(1), [], 0.0),
        (D(1), [], 1.5),
        (D(1), [fake("A"), fake("A")], 0.25),
    ],
)
def test_bad_allocation_input(capital, items, cap):
    with pytest.raises(ValidationFailed):
        allocate(capital, items, cap)
