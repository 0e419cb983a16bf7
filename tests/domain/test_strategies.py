"""Strategies: registry, params validation, hand-made signal fixtures, no look-ahead."""

from __future__ import annotations

import numpy as np
import pytest

from app.domain import indicators as ind
from app.domain.candles import Candles
from app.domain.strategies import (
    ENTER,
    EXIT,
    NONE,
    crossed_above,
    crossed_below,
    get_strategy,
    list_strategies,
    position_from_signals,
)
from app.errors import ValidationFailed
from tests.domain.helpers import candles_from_close, load_csv, random_walk
from tests.support.recorded import recorded_file

NAMES = ["bollinger_breakout", "macd_trend", "rsi_mean_reversion", "sma_crossover"]

# Small periods so that signals happen often on short data.
SMALL_PARAMS = {
    "sma_crossover": {"fast": 3, "slow": 8},
    "rsi_mean_reversion": {"period": 5, "oversold": 35, "overbought": 65},
    "bollinger_breakout": {"period": 10, "k": 1.0},
    "macd_trend": {"fast": 3, "slow": 7, "signal": 4},
}


# ---- registry and params ----------------------------------------------------------------


def test_registry_lists_the_four_strategies_and_the_templates():
    names = [s.name for s in list_strategies()]
    assert set(NAMES) < set(names) and names == sorted(names)
    for name in NAMES:
        s = get_strategy(name)
        assert s.name == name
        assert s.description


def test_unknown_strategy_names_the_known_ones():
    with pytest.raises(ValidationFailed) as err:
        get_strategy("moon_shot")
    assert err.value.code == "unknown_strategy"
    assert err.value.status == 422
    for name in NAMES:
        assert name in err.value.message
    assert set(NAMES) < set(err.value.details[0]["known"])


def test_unhashable_name_is_unknown_not_a_crash():
    with pytest.raises(ValidationFailed):
        get_strategy(["sma_crossover"])  # type: ignore[arg-type]


@pytest.mark.parametrize("name", NAMES)
def test_defaults_validate_and_schema_is_strict(name):
    s = get_strategy(name)
    params = s.validate_params({})
    assert params == s.validate_params(None) == s.default_params()
    schema = s.params_json_schema()
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(params.model_dump())
    described = s.describe()
    assert described["default_params"] == params.model_dump()
    assert s.warmup(params) >= 1
    assert s.lookback(params) > s.warmup(params)


@pytest.mark.parametrize(
    ("name", "data", "loc"),
    [
        ("sma_crossover", {"fast": 30, "slow": 10}, []),
        ("sma_crossover", {"fast": 10, "slow": 10}, []),
        ("sma_crossover", {"fast": 1}, ["fast"]),
        ("sma_crossover", {"fast": "5"}, ["fast"]),
        ("sma_crossover", {"fast": 5, "extra": 1}, ["extra"]),
        ("rsi_mean_reversion", {"oversold": 70, "overbought": 30}, []),
        ("rsi_mean_reversion", {"overbought": 100}, ["overbought"]),
        ("rsi_mean_reversion", {"period": 1}, ["period"]),
        ("bollinger_breakout", {"k": 0}, ["k"]),
        ("bollinger_breakout", {"period": True}, ["period"]),
        ("macd_trend", {"fast": 26, "slow": 12}, []),
        ("macd_trend", {"signal": 0}, ["signal"]),
    ],
)
def test_bad_params_raise_validation_failed_with_details(name, data, loc):
    with pytest.raises(ValidationFailed) as err:
        get_strategy(name).validate_params(data)
    assert err.value.code == "validation_error"
    assert name in err.value.message
    assert err.value.details
    assert err.value.details[0]["loc"] == loc
    assert isinstance(err.value.details[0]["msg"], str)


def test_params_that_are_not_a_mapping_are_rejected():
    with pytest.raises(ValidationFailed):
        get_strategy("sma_crossover").validate_params([1, 2])  # type: ignore[arg-type]


def test_signals_refuse_a_raw_dict():
    s = get_strategy("sma_crossover")
    with pytest.raises(TypeError):
        s.signals(candles_from_close([1.0] * 50), {"fast": 2, "slow": 3})  # type: ignore[arg-type]


# ---- hand-made fixtures -----------------------------------------------------------------


def signals_for(name, close, **params):
    s = get_strategy(name)
    return s.signals(candles_from_close(close), s.validate_params(params)).tolist()


def test_sma_crossover_hand():
    close = [5, 4, 3, 2, 3, 4, 5, 4, 3, 2]
    # SMA2 - SMA3 from i2: -0.5, -0.5, -0.167, +0.5, +0.5, +0.167, -0.5, -0.5
    # -> crosses above at i5, below at i8
    assert signals_for("sma_crossover", close, fast=2, slow=3) == [0, 0, 0, 0, 0, 1, 0, 0, -1, 0]


def test_rsi_mean_reversion_hand():
    # RSI2 of 10,9,8,9,10,11: i2 0 ; i3 gain .5 loss .5 -> 50 (crosses 30: enter)
    # i4 gain .75 loss .25 -> 75 (crosses 70: exit) ; i5 87.5
    close = [10, 9, 8, 9, 10, 11]
    assert signals_for("rsi_mean_reversion", close, period=2) == [0, 0, 0, 1, -1, 0]


def test_rsi_mean_reversion_exit_wins_when_both_levels_are_crossed():
    # RSI2 of 10,9,8,12: i2 0 ; i3 gain (0+4)/2 = 2, loss (1+0)/2 = .5 -> 80: above 30 and 70
    assert signals_for("rsi_mean_reversion", [10, 9, 8, 12], period=2) == [0, 0, 0, -1]


def test_bollinger_breakout_hand():
    close = [10, 10, 10, 10, 13, 12, 9]
    # period 3, k 1: i3 upper 10 (std 0), close 10 not above
    # i4 window 10,10,13: mean 11, std sqrt(2) -> upper 12.41 < 13, prev close 10 <= 10: enter
    # i6 window 13,12,9: mid 11.33 > 9, prev close 12 >= mid 11.67: exit
    assert signals_for("bollinger_breakout", close, period=3, k=1.0) == [0, 0, 0, 0, 1, 0, -1]


def test_macd_trend_hand():
    # fast 2 (alpha 2/3), slow 3 (alpha 1/2), signal 2 on 3,4,6,8,6,3,4,8, exact fractions:
    # EMA2 from i1: 7/2, 31/6, 127/18, 343/54, 667/162, 1963/486, 9739/1458
    # EMA3 from i2: 13/3, 37/6, 73/12, 109/24, 205/48, 589/96
    # line from i2: 5/6, 8/9, 29/108, -275/648, -901/3888, 12697/23328
    # signal: seed mean(5/6, 8/9) = 31/36 at i3, then 151/324, -31/243, -383/1944, 10399/34992
    # histogram from i3: 1/36, -16/81, -577/1944, -5/144, 17293/69984
    close = [3, 4, 6, 8, 6, 3, 4, 8]
    hist = ind.macd(close, 2, 3, 2).histogram
    expected = [1 / 36, -16 / 81, -577 / 1944, -5 / 144, 17293 / 69984]
    np.testing.assert_allclose(hist[3:], expected, rtol=1e-12)
    # warm-up slow+signal-1 = 4: the cross below at i4 counts, the cross above is at i7
    assert signals_for("macd_trend", close, fast=2, slow=3, signal=2) == [0, 0, 0, 0, -1, 0, 0, 1]


def test_warmup_region_is_zero_and_first_signal_can_land_on_warmup():
    s = get_strategy("sma_crossover")
    p = s.validate_params({"fast": 2, "slow": 3})
    # SMA2 - SMA3 at i2 = (4+2)/2 - (5+4+2)/3 = -2/3, at i3 = (2+7)/2 - (4+2+7)/3 = +1/6:
    # the cross is at i3 = warmup; at i4 SMA2 7 > SMA3 16/3 still, no new cross
    sig = s.signals(candles_from_close([5, 4, 2, 7, 7]), p)
    assert s.warmup(p) == 3
    assert sig.tolist() == [0, 0, 0, 1, 0]


def test_empty_and_short_inputs():
    for name in NAMES:
        s = get_strategy(name)
        p = s.default_params()
        assert s.signals(Candles.empty(), p).shape == (0,)
        short = s.signals(candles_from_close([1.0, 2.0, 3.0]), p)
        assert short.tolist() == [0, 0, 0]


# ---- against a naive per-candle reference -----------------------------------------------


def reference_signals(name, candles, p):
    """Rule restated with explicit per-candle comparisons over the indicator values.

    Values within the tie band (1e-9 of the close; 1e-9 RSI points) count as equal.
    """
    c = candles.close
    tol = [1e-9 * abs(x) for x in c]

    def cross_up(d, t, i):  # d: difference series, t: tie band
        return d(i) > t(i) and d(i - 1) == d(i - 1) and not d(i - 1) > t(i - 1)

    def cross_down(d, t, i):
        return d(i) < -t(i) and d(i - 1) == d(i - 1) and not d(i - 1) < -t(i - 1)

    if name == "sma_crossover":
        a, b = ind.sma(c, p.fast), ind.sma(c, p.slow)
        up = down = lambda i: a[i] - b[i]  # noqa: E731
        t_up = t_down = lambda i: tol[i]  # noqa: E731
    elif name == "rsi_mean_reversion":
        r = ind.rsi(c, p.period)
        up = lambda i: r[i] - p.oversold  # noqa: E731
        down = lambda i: r[i] - p.overbought  # noqa: E731
        t_up = t_down = lambda i: 1e-9  # noqa: E731
    elif name == "bollinger_breakout":
        bands = ind.bollinger(c, p.period, p.k)
        up = lambda i: c[i] - bands.upper[i]  # noqa: E731
        down = lambda i: c[i] - bands.mid[i]  # noqa: E731
        t_up = t_down = lambda i: tol[i]  # noqa: E731
    else:
        h = ind.macd(c, p.fast, p.slow, p.signal).histogram
        up = down = lambda i: h[i]  # noqa: E731
        t_up = t_down = lambda i: tol[i]  # noqa: E731
    s = get_strategy(name)
    out = []
    for i in range(len(candles)):
        if i < s.warmup(p):
            out.append(NONE)
        elif name == "rsi_mean_reversion" and cross_up(down, t_down, i):
            out.append(EXIT)  # RSI exits on a cross *above* overbought
        elif name != "rsi_mean_reversion" and cross_down(down, t_down, i):
            out.append(EXIT)
        elif cross_up(up, t_up, i):
            out.append(ENTER)
        else:
            out.append(NONE)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_signals_match_per_candle_reference(name):
    candles = random_walk(3000, seed=5)
    s = get_strategy(name)
    p = s.validate_params(SMALL_PARAMS[name])
    sig = s.signals(candles, p)
    assert sig.dtype == np.int8
    assert sig.shape == (3000,)
    assert sig.tolist() == reference_signals(name, candles, p)
    assert (sig == ENTER).sum() >= 10 and (sig == EXIT).sum() >= 10


# ---- no look-ahead ----------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_signal_never_uses_future_candles(name):
    candles = random_walk(1500, seed=9)
    s = get_strategy(name)
    p = s.validate_params(SMALL_PARAMS[name])
    full = s.signals(candles, p)
    assert np.count_nonzero(full) >= 10
    for cut in range(1, len(candles) + 1):
        np.testing.assert_array_equal(s.signals(candles.slice(0, cut), p), full[:cut])


@pytest.mark.parametrize("name", NAMES)
def test_changing_the_future_does_not_change_the_past(name):
    base = random_walk(1200, seed=21)
    other = random_walk(1200, seed=22)
    s = get_strategy(name)
    p = s.validate_params(SMALL_PARAMS[name])
    cut = 700
    spliced = Candles(
        *(
            np.concatenate([getattr(base, f)[:cut], getattr(other, f)[cut:] * 3])
            for f in ("ts", "open", "high", "low", "close", "volume")
        )
    )
    a, b = s.signals(base, p), s.signals(spliced, p)
    np.testing.assert_array_equal(a[:cut], b[:cut])
    assert not np.array_equal(a[cut:], b[cut:])


def test_flat_market_noise_never_makes_a_signal():
    # BTC-quoted prices on 1e-8 ticks with long runs of equal closes: exact maths says the
    # indicators tie or decay smoothly there; float noise must not flip a cross back and forth
    rng = np.random.default_rng(0)
    close = np.round(4e-5 * np.exp(np.cumsum(rng.normal(0, 0.002, 5000))), 8)
    close[1000:1400] = close[1000]
    close[3000:3300] = close[3000]
    candles = candles_from_close(close)
    for s in map(get_strategy, NAMES):
        sig = s.signals(candles, s.default_params())
        assert np.count_nonzero(sig) > 50, s.name
        assert not sig[1060:1400].any(), s.name
        assert not sig[3060:3300].any(), s.name


def test_crossing_helpers_tie_band():
    a = np.array([1.0, 1.0 + 1e-12, 1.0 - 1e-12, 1.5, np.nan, 2.0, 0.5])
    # within the 1e-9 band the first three are "equal to 1": no cross until 1.5; NaN blocks
    assert crossed_above(a, 1.0, 1e-9).tolist() == [0, 0, 0, 1, 0, 0, 0]
    assert crossed_below(a, 1.0, 1e-9).tolist() == [0, 0, 0, 0, 0, 0, 1]
    # without a band the noise is a cross
    assert crossed_above(a, 1.0).tolist()[1] == 1


# ---- positions --------------------------------------------------------------------------


def test_position_from_signals():
    sig = np.array([0, -1, 1, 0, 1, 0, -1, -1, 0, 1], dtype=np.int8)
    assert position_from_signals(sig).tolist() == [0, 0, 1, 1, 1, 1, 0, 0, 0, 1]
    assert position_from_signals(np.zeros(0, dtype=np.int8)).tolist() == []


# ---- real data --------------------------------------------------------------------------


def test_real_candles_every_strategy_with_defaults():
    path = recorded_file("BINANCE_ETH-BTC_5m.csv")
    candles = load_csv(path)
    assert len(candles) > 5_000
    for s in map(get_strategy, NAMES):
        p = s.default_params()
        sig = s.signals(candles, p)
        assert sig.shape == (len(candles),)
        assert set(np.unique(sig).tolist()) == {-1, 0, 1}, s.name
        assert not sig[: s.warmup(p)].any()
        tail = candles.slice(0, len(candles) - 1000)
        np.testing.assert_array_equal(s.signals(tail, p), sig[: len(tail)])
        # a live tick with `lookback` candles reaches the same last signal as the full run
        end = len(candles) - 5
        window = candles.slice(end - s.lookback(p), end)
        assert s.signals(window, p)[-1] == sig[end - 1], s.name
