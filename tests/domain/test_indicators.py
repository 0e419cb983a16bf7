"""Indicators against hand-computed values, against naive loops, and for prefix stability."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.domain import indicators as ind
from tests.domain.helpers import random_walk

NAN = math.nan


def assert_series(actual, expected, rel=1e-12):
    actual = np.asarray(actual, dtype=float)
    expected = np.asarray(expected, dtype=float)
    assert actual.shape == expected.shape
    assert np.array_equal(np.isnan(actual), np.isnan(expected)), (actual, expected)
    mask = ~np.isnan(expected)
    np.testing.assert_allclose(actual[mask], expected[mask], rtol=rel, atol=1e-12)


# ---- hand-computed fixtures -------------------------------------------------------------


def test_sma_hand():
    # window 3: (1+2+3)/3=2, (2+3+4)/3=3, (3+4+6)/3=13/3
    assert_series(ind.sma([1, 2, 3, 4, 6], 3), [NAN, NAN, 2, 3, 13 / 3])


def test_ema_hand():
    # alpha = 2/(3+1) = 0.5, seed = mean(2,4,6) = 4 at index 2
    # i3: 0.5*4 + 0.5*8 = 6 ; i4: 0.5*6 + 0.5*4 = 5 ; i5: 0.5*5 + 0.5*2 = 3.5
    assert_series(ind.ema([2, 4, 6, 8, 4, 2], 3), [NAN, NAN, 4, 6, 5, 3.5])


def test_wilder_hand():
    # alpha = 1/2, seed = mean(2,4) = 3 at index 1; i2: 3/2 + 6/2 = 4.5 ; i3: 4.5/2 + 8/2 = 6.25
    assert_series(ind.wilder([2, 4, 6, 8], 2), [NAN, 3, 4.5, 6.25])


def test_rsi_hand():
    # closes 10,11,12,11,13,12 -> changes +1,+1,-1,+2,-1
    # i3: avg gain (1+1+0)/3 = 2/3, avg loss (0+0+1)/3 = 1/3, RS 2 -> 100 - 100/3
    # i4: gain (2/3*2 + 2)/3 = 10/9, loss (1/3*2 + 0)/3 = 2/9, RS 5 -> 100 - 100/6
    # i5: gain (10/9*2 + 0)/3 = 20/27, loss (2/9*2 + 1)/3 = 13/27, RS 20/13 -> 100 - 1300/33
    expected = [NAN, NAN, NAN, 100 - 100 / 3, 100 - 100 / 6, 100 - 1300 / 33]
    assert_series(ind.rsi([10, 11, 12, 11, 13, 12], 3), expected)


def test_rsi_edge_cases_without_losses_or_moves():
    assert_series(ind.rsi([1, 2, 3, 4], 2), [NAN, NAN, 100, 100])
    assert_series(ind.rsi([5, 5, 5, 5], 2), [NAN, NAN, 50, 50])
    assert_series(ind.rsi([4, 3, 2, 1], 2), [NAN, NAN, 0, 0])
    assert np.isnan(ind.rsi([1, 2], 2)).all()


def test_macd_hand():
    # EMA2 (alpha 2/3) of 2,4,6,8,4,2: seed 3 at i1, then 5, 7, 5, 3
    # EMA3 (alpha 1/2): seed 4 at i2, then 6, 5, 3.5
    # line from i2: 1, 1, 0, -0.5
    # signal EMA2 of the line: seed mean(1,1)=1 at i3; i4: 1/3*1 + 2/3*0 = 1/3;
    #   i5: 1/3*(1/3) + 2/3*(-0.5) = -2/9
    m = ind.macd([2, 4, 6, 8, 4, 2], fast=2, slow=3, signal=2)
    assert_series(m.line, [NAN, NAN, 1, 1, 0, -0.5])
    assert_series(m.signal, [NAN, NAN, NAN, 1, 1 / 3, -2 / 9])
    assert_series(m.histogram, [NAN, NAN, NAN, 0, -1 / 3, -0.5 + 2 / 9])


def test_macd_rejects_fast_not_below_slow():
    with pytest.raises(ValueError):
        ind.macd([1.0] * 50, fast=26, slow=12)


def test_true_range_and_atr_hand():
    high = [10, 12, 13, 11]
    low = [8, 9, 11, 10]
    close = [9, 11, 13, 10.5]
    # TR0 = 10-8 = 2 (no previous close); TR1 = max(3, |12-9|, |9-9|) = 3
    # TR2 = max(2, |13-11|, |11-11|) = 2 ; TR3 = max(1, |11-13|, |10-13|) = 3 (gap down)
    assert_series(ind.true_range(high, low, close), [2, 3, 2, 3])
    # ATR2: first = mean(TR1, TR2) = 2.5 at i2 ; i3: (2.5*1 + 3)/2 = 2.75
    assert_series(ind.atr(high, low, close, 2), [NAN, NAN, 2.5, 2.75])


def test_bollinger_hand():
    b = ind.bollinger([1, 2, 3, 4, 6], period=3, k=2)
    # i2: mean 2, population var (1+0+1)/3 = 2/3 ; i3: mean 3, var 2/3
    # i4: window 3,4,6: mean 13/3, deviations -4/3,-1/3,5/3 -> var (16+1+25)/9/3 = 14/9
    s = [NAN, NAN, math.sqrt(2 / 3), math.sqrt(2 / 3), math.sqrt(14) / 3]
    mid = [NAN, NAN, 2, 3, 13 / 3]
    assert_series(b.mid, mid)
    assert_series(b.upper, [m + 2 * v for m, v in zip(mid, s, strict=True)])
    assert_series(b.lower, [m - 2 * v for m, v in zip(mid, s, strict=True)])


def test_returns_std_hand():
    close = [100, 110, 99, 99]
    # returns: nan, 0.1, -0.1, 0.0
    assert_series(ind.pct_returns(close), [NAN, 0.1, -0.1, 0.0])
    # window 2, sample std: (0.1,-0.1) -> sqrt(0.02/1) ; (-0.1,0) -> sqrt(2*0.05^2/1)
    assert_series(ind.rolling_returns_std(close, 2), [NAN, NAN, math.sqrt(0.02), math.sqrt(0.005)])
    # whole series: mean 0, sum of squares 0.02, /(3-1) -> 0.01 -> std 0.1
    assert ind.returns_std(close) == pytest.approx(0.1, rel=1e-12)
    assert math.isnan(ind.returns_std([100]))


def test_linreg_slope_hand():
    # t = 0,1,2 (mean 1), sum((t-1)^2) = 2
    # window 1,2,4: (-1*1 + 0*2 + 1*4)/2 = 1.5 ; window 2,4,7: (-2 + 7)/2 = 2.5
    assert_series(ind.linreg_slope([1, 2, 4, 7], 3), [NAN, NAN, 1.5, 2.5])
    with pytest.raises(ValueError):
        ind.linreg_slope([1, 2, 3], 1)


def test_short_and_empty_inputs_give_nan():
    assert ind.sma([], 3).shape == (0,)
    assert ind.ema([], 3).shape == (0,)
    assert np.isnan(ind.sma([1, 2], 3)).all()
    assert np.isnan(ind.ema([1, 2], 3)).all()
    assert np.isnan(ind.atr([1, 2], [1, 2], [1, 2], 2)).all()


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_bad_period_is_rejected(bad):
    with pytest.raises(ValueError):
        ind.sma([1.0, 2.0, 3.0], bad)


# ---- against naive loops on longer random data ------------------------------------------


def loop_smooth(x, period, alpha, first=0):
    out = [NAN] * len(x)
    if first + period > len(x):
        return out
    y = sum(x[first : first + period]) / period
    out[first + period - 1] = y
    for i in range(first + period, len(x)):
        y = (1 - alpha) * y + alpha * x[i]
        out[i] = y
    return out


def loop_rsi(close, period):
    gains = [max(b - a, 0.0) for a, b in zip(close, close[1:], strict=False)]
    losses = [max(a - b, 0.0) for a, b in zip(close, close[1:], strict=False)]
    ag = loop_smooth(gains, period, 1 / period)
    al = loop_smooth(losses, period, 1 / period)
    out = [NAN] * len(close)
    for i in range(period, len(close)):
        g, loss = ag[i - 1], al[i - 1]
        out[i] = (50.0 if g == 0 else 100.0) if loss == 0 else 100 - 100 / (1 + g / loss)
    return out


def loop_sma(x, period):
    return [NAN] * (period - 1) + [
        sum(x[i - period + 1 : i + 1]) / period for i in range(period - 1, len(x))
    ]


# 9000 values cross several rolling blocks and smoothing chunks.
N_LOOP = 9000


@pytest.fixture(scope="module")
def walk():
    return random_walk(N_LOOP, seed=3)


@pytest.mark.parametrize("period", [2, 3, 12, 26, 200])
def test_ema_matches_loop(walk, period):
    x = walk.close.tolist()
    assert_series(ind.ema(walk.close, period), loop_smooth(x, period, 2 / (period + 1)), 1e-11)


def test_sma_and_std_match_direct_windows(walk):
    x = walk.close
    windows = np.lib.stride_tricks.sliding_window_view(x, 20)
    assert_series(ind.sma(x, 20), loop_sma(x.tolist(), 20), 1e-11)
    expected_std = [NAN] * 19 + list(windows.std(axis=1))
    assert_series(ind.rolling_std(x, 20), expected_std, 1e-7)
    expected_sample = [NAN] * 19 + list(windows.std(axis=1, ddof=1))
    assert_series(ind.rolling_std(x, 20, ddof=1), expected_sample, 1e-7)


def test_rsi_matches_loop(walk):
    assert_series(ind.rsi(walk.close, 14), loop_rsi(walk.close.tolist(), 14), 1e-9)


def test_atr_matches_loop(walk):
    tr = ind.true_range(walk.high, walk.low, walk.close).tolist()
    assert_series(ind.atr(walk.high, walk.low, walk.close, 14), loop_smooth(tr, 14, 1 / 14, 1))


def test_linreg_slope_matches_polyfit(walk):
    x = walk.close[:3000]
    t = np.arange(10)
    expected = [NAN] * 9 + [
        np.polyfit(t, w, 1)[0] for w in np.lib.stride_tricks.sliding_window_view(x, 10)
    ]
    got = ind.linreg_slope(x, 10)
    np.testing.assert_allclose(got[9:], expected[9:], rtol=0, atol=1e-9 * float(np.mean(x)))
    assert np.isnan(got[:9]).all()


def test_small_prices_keep_their_precision():
    # BTC-quoted altcoins trade near 1e-5: rolling sums must not lose them to cancellation.
    x = random_walk(5000, seed=11).close * 1e-7
    windows = np.lib.stride_tricks.sliding_window_view(x, 20)
    assert_series(ind.sma(x, 20)[19:], windows.mean(axis=1), 1e-11)
    assert_series(ind.rolling_std(x, 20)[19:], windows.std(axis=1), 1e-7)


# ---- value i depends only on 0..i -------------------------------------------------------


def test_every_indicator_is_identical_on_a_prefix(walk):
    c, h, lo = walk.close, walk.high, walk.low
    full = {
        "sma": ind.sma(c, 20),
        "ema": ind.ema(c, 12),
        "rsi": ind.rsi(c, 14),
        "macd": ind.macd(c).histogram,
        "atr": ind.atr(h, lo, c, 14),
        "boll": ind.bollinger(c, 20, 2.0).upper,
        "rstd": ind.rolling_returns_std(c, 30),
        "slope": ind.linreg_slope(c, 10),
    }
    for cut in (1, 25, 1023, 1024, 1025, 4100, 5000, N_LOOP - 1):
        part = {
            "sma": ind.sma(c[:cut], 20),
            "ema": ind.ema(c[:cut], 12),
            "rsi": ind.rsi(c[:cut], 14),
            "macd": ind.macd(c[:cut]).histogram,
            "atr": ind.atr(h[:cut], lo[:cut], c[:cut], 14),
            "boll": ind.bollinger(c[:cut], 20, 2.0).upper,
            "rstd": ind.rolling_returns_std(c[:cut], 30),
            "slope": ind.linreg_slope(c[:cut], 10),
        }
        for name, values in part.items():
            np.testing.assert_array_equal(values, full[name][:cut], err_msg=f"{name} cut={cut}")


def test_long_series_block_boundaries_and_precision():
    # 20k values cross many rolling blocks: still prefix-identical and close to direct means
    rng = np.random.default_rng(5)
    x = 4e-5 * np.exp(np.cumsum(rng.normal(0.0, 0.01, 20_000)))
    full_sma, full_std = ind.sma(x, 10), ind.rolling_std(x, 10)
    for cut in (4104, 4105, 4106, 8201, 12_000, 16_397):
        np.testing.assert_array_equal(ind.sma(x[:cut], 10), full_sma[:cut])
        np.testing.assert_array_equal(ind.rolling_std(x[:cut], 10), full_std[:cut])
    windows = np.lib.stride_tricks.sliding_window_view(x, 10)
    np.testing.assert_allclose(full_sma[9:], windows.mean(axis=1), rtol=1e-11)
    np.testing.assert_allclose(full_std[9:], windows.std(axis=1), rtol=1e-7)
