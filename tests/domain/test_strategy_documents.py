"""Strategy documents: parsing, checking, compiling; no look-ahead for any document; every
invalid document refused with the JSON path of what is wrong."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import talib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain.candles import Candles
from app.domain.strategies import ENTER, EXIT, get_strategy
from app.domain.strategies.doc_model import DocumentLimits, parse_document, parse_document_text
from app.domain.strategies.doc_strategy import DocumentStrategy
from app.domain.strategies.templates import template_document, template_names
from app.errors import ValidationFailed
from app.market.csv_candles import load_candle_file
from tests.domain.helpers import random_walk
from tests.domain.test_strategies import SMALL_PARAMS
from tests.support.recorded import SHARED, SHIPPED

BUILT_INS = ["bollinger_breakout", "macd_trend", "rsi_mean_reversion", "sma_crossover"]


def _strategy(doc: dict, timeframe: str | None = "5m") -> DocumentStrategy:
    return DocumentStrategy(parse_document(doc), timeframe=timeframe)


def _refused(doc: object, **kwargs) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as err:
        if isinstance(doc, str | bytes):
            DocumentStrategy(parse_document_text(doc), timeframe="5m")
        else:
            DocumentStrategy(parse_document(doc, **kwargs), timeframe="5m")
    exc = err.value
    assert exc.status == 422 and exc.code == "invalid_strategy_document"
    assert exc.details and all(d["path"].startswith("$") for d in exc.details)
    return exc


BASE = {
    "name": "t",
    "parameters": {"period": {"type": "int", "default": 5, "min": 2, "max": 50}},
    "indicators": {"rsi": {"ta": "RSI", "params": {"timeperiod": {"param": "period"}}}},
    "entry": {"op": "crosses_above", "args": [{"ref": "rsi"}, 30]},
    "exit": {"op": "gt", "args": [{"ref": "rsi"}, 70]},
}


# ---- templates ---------------------------------------------------------------------------


def test_templates_include_the_built_ins_and_three_more():
    names = template_names()
    assert set(BUILT_INS) <= set(names)
    assert len(names) >= len(BUILT_INS) + 3
    for name in names:
        strategy = DocumentStrategy(template_document(name), timeframe="5m")
        params = strategy.default_params()
        assert strategy.warmup(params) < strategy.lookback(params)


@pytest.mark.parametrize("name", BUILT_INS)
def test_templates_warm_up_like_the_hand_written_ones(name):
    doc, hand = DocumentStrategy(template_document(name)), get_strategy(name)
    assert doc.warmup(doc.default_params()) == hand.warmup(hand.default_params())
    assert doc.default_params().model_dump() == hand.default_params().model_dump()


@pytest.mark.parametrize("name", BUILT_INS)
def test_template_constraints_refuse_what_the_hand_written_ones_refuse(name):
    bad = {
        "sma_crossover": {"fast": 30, "slow": 10},
        "macd_trend": {"fast": 26, "slow": 12},
        "rsi_mean_reversion": {"oversold": 70.0, "overbought": 30.0},
        "bollinger_breakout": {"k": 0.0},
    }[name]
    for strategy in (DocumentStrategy(template_document(name)), get_strategy(name)):
        with pytest.raises(ValidationFailed):
            strategy.validate_params(bad)


# ---- semantics -----------------------------------------------------------------------------


def test_a_document_gives_the_signals_its_expressions_say():
    candles = random_walk(400, seed=3)
    strategy = _strategy(BASE)
    sig = strategy.signals(candles, strategy.validate_params({"period": 7}))
    rsi = talib.RSI(candles.close, 7)
    enter = np.zeros(400, bool)
    enter[1:] = (rsi[1:] > 30) & ~(rsi[:-1] > 30) & np.isfinite(rsi[:-1])
    exit_ = rsi > 70
    want = np.zeros(400, np.int8)
    want[enter] = ENTER
    want[exit_] = EXIT
    want[:8] = 0
    assert np.array_equal(sig, want)
    assert strategy.warmup(strategy.validate_params({"period": 7})) == 8


def test_informative_candles_are_seen_only_once_closed():
    """A 15m close read by 5m candles: the 15m candle [0, 15) is visible from the 5m candle
    that closes at 15 (the one opening at 10), never earlier."""
    n = 60
    t0 = 1_700_000_100_000 - (1_700_000_100_000 % 900_000)  # aligned to 15m
    close = np.arange(1.0, n + 1.0)
    candles = Candles(t0 + 300_000 * np.arange(n, dtype=np.int64), close, close, close, close,
                      np.ones(n))  # fmt: skip
    doc = {"name": "i", "indicators": {"c15": {"informative": "15m", "expr": {"series": "close"}}},
           "entry": {"op": "gt", "args": [{"ref": "c15"}, 0]}}  # fmt: skip
    strategy = _strategy(doc)
    prog = strategy.program(strategy.default_params())
    values = prog.indicator("c15", candles)
    assert np.isnan(values[:2]).all()
    # candle 2 (opens at 10m) closes the first 15m candle, whose close is candle 2's close
    assert values[2] == 3.0 and values[3] == 3.0 and values[4] == 3.0 and values[5] == 6.0
    # a series starting mid-bucket drops the partial first 15m candle
    shifted = candles.slice(1)
    v2 = prog.indicator("c15", shifted)
    assert np.isnan(v2[:4]).all() and v2[4] == 6.0


def test_yaml_is_accepted_on_input():
    text = """
name: y
indicators:
  fast: {ta: SMA, params: {timeperiod: 3}}
entry: {op: crosses_above, args: [{series: close}, {ref: fast}]}
"""
    strategy = DocumentStrategy(parse_document_text(text))
    assert strategy.warmup(strategy.default_params()) == 3


def test_constraints_and_parameter_types():
    doc = {**BASE, "parameters": {"period": {"type": "int", "default": 2, "min": 2, "max": 9},
                                  "a": {"type": "int", "default": 2, "min": 1, "max": 9},
                                  "b": {"type": "int", "default": 5, "min": 1, "max": 9}},
           "constraints": [{"rule": {"op": "lt", "args": [{"param": "a"}, {"param": "b"}]},
                            "message": "a must be below b"}]}  # fmt: skip
    strategy = _strategy(doc)
    with pytest.raises(ValidationFailed) as err:
        strategy.validate_params({"a": 6, "b": 5})
    assert "a must be below b" in json.dumps(err.value.details)
    with pytest.raises(ValidationFailed):
        strategy.validate_params({"a": 2.0})  # strict: not an int
    with pytest.raises(ValidationFailed):
        strategy.validate_params({"a": 10})  # out of range
    with pytest.raises(ValidationFailed):
        strategy.validate_params({"c": 1})  # unknown


@pytest.mark.parametrize(
    ("mutate", "path", "words"),
    [
        (lambda d: d["indicators"]["rsi"].update(ta="NOPE"), "$.indicators.rsi.ta", "unknown TA"),
        (lambda d: d["indicators"]["rsi"].update(ta="OBV"), "$.indicators.rsi.ta", "cumulative"),
        (
            lambda d: d["indicators"]["rsi"]["params"].update(bogus=1),
            "$.indicators.rsi.params.bogus",
            "no parameter",
        ),
        (
            lambda d: d["indicators"]["rsi"]["params"].update(timeperiod=2.5),
            "$.indicators.rsi.params.timeperiod",
            "whole number",
        ),
        (lambda d: d.update(entry={"op": "add", "args": [1, 2]}), "$.entry", "condition"),
        (
            lambda d: d.update(entry={"op": "and", "args": [{"ref": "rsi"}, {"ref": "rsi"}]}),
            "$.entry.args[0]",
            "condition",
        ),
        (lambda d: d.update(entry={"ref": "nope"}), "$.entry.ref", "unknown indicator"),
        (
            lambda d: d["entry"]["args"].__setitem__(1, {"param": "nope"}),
            "$.entry.args[1].param",
            "unknown parameter",
        ),
        (
            lambda d: d["indicators"].update(a={"ref": "b"}, b={"ref": "a"}),
            "$.indicators.b.ref",
            "cycle",
        ),
        (
            lambda d: d.update(entry={"op": "shift", "args": [d["exit"]], "n": -1}),
            "$.entry.n",
            "non-negative",
        ),
        (lambda d: d.update(entry={"op": "gt", "args": [1]}), "$.entry", "2 argument"),
        (lambda d: d.update(entry={"bogus": 1}), "$.entry", "expected a number or an object"),
        (lambda d: d.update(entry={"op": "eval", "args": [1, 2]}), "$.entry.op", "Input should"),
        (
            lambda d: d.update(
                entry={"informative": "1h", "expr": {"informative": "4h", "expr": 1}}
            ),
            "$.entry.expr.informative",
            "nested",
        ),
        (
            lambda d: d.update(entry={"informative": "1m", "expr": {"op": "gt", "args": [1, 0]}}),
            "$.entry.informative",
            "multiple",
        ),
        (lambda d: d.update(exits={"stoploss": 0.05}), "$.exits.stoploss", "between -1 and 0"),
        (
            lambda d: d.update(exits={"minimal_roi": {"ten": 0.1}}),
            "$.exits.minimal_roi",
            "whole minutes",
        ),
        (lambda d: d["parameters"]["period"].update(default=99), "$.parameters.period", "within"),
        (lambda d: d["parameters"]["period"].update(max=5000, default=4000), "$", "limit"),
    ],
)
def test_invalid_documents_name_the_path(mutate, path, words):
    doc = copy.deepcopy(BASE)
    mutate(doc)
    exc = _refused(doc)
    paths = [d["path"] for d in exc.details]
    assert path in paths, (paths, exc.message)
    assert words in json.dumps([d["msg"] for d in exc.details]) or words in exc.message


def test_deep_and_large_documents_are_refused_before_parsing():
    deep: dict = {"op": "not", "args": [{"op": "gt", "args": [1, 0]}]}
    for _ in range(5000):
        deep = {"op": "not", "args": [deep]}
    exc = _refused({**BASE, "entry": deep})
    assert "nested deeper" in exc.message
    big = {**BASE, "description": "x" * 2000, "indicators": {
        f"i{k}": {"ta": "SMA", "params": {"timeperiod": 3}} for k in range(60)}}  # fmt: skip
    _refused(big, limits=DocumentLimits(max_bytes=2000))
    _refused({**BASE, "indicators": {f"i{k}": {"ta": "SMA"} for k in range(45)}})
    _refused("{not json: [")
    _refused("[1, 2]")


# ---- property tests ------------------------------------------------------------------------

_NUM_TA = [
    ({"ta": "SMA"}, "timeperiod"), ({"ta": "EMA"}, "timeperiod"), ({"ta": "RSI"}, "timeperiod"),
    ({"ta": "ATR"}, "timeperiod"), ({"ta": "CCI"}, "timeperiod"), ({"ta": "MOM"}, "timeperiod"),
    ({"ta": "WILLR"}, "timeperiod"), ({"ta": "ADX"}, "timeperiod"),
    ({"ta": "BBANDS", "output": "upperband"}, "timeperiod"),
    ({"ta": "MACD", "output": "macdhist"}, "signalperiod"),
    ({"ta": "STOCH", "output": "slowk"}, "fastk_period"),
]  # fmt: skip
_SERIES = st.sampled_from(["open", "high", "low", "close", "volume"]).map(lambda s: {"series": s})


def _numbers(depth: int, informative_ok: bool) -> st.SearchStrategy:
    leaf = st.one_of(
        _SERIES,
        st.floats(-5, 200, allow_nan=False).map(lambda v: round(v, 3)),
        st.just({"param": "p"}),
    )
    if depth <= 0:
        return leaf
    sub = _numbers(depth - 1, informative_ok)

    def ta_call(choice, period, inp):
        (node, key), n = choice, period
        out = {**node, "params": {key: n}}
        if inp is not None and node["ta"] in ("SMA", "EMA", "RSI", "MOM"):
            out["inputs"] = {"price" if node["ta"] != "MOM" else "price": inp}
        return out

    options = [
        leaf,
        st.builds(ta_call, st.sampled_from(_NUM_TA), st.integers(2, 12) | st.just({"param": "p"}),
                  st.none() | sub),
        st.builds(lambda op, a, b: {"op": op, "args": [a, b]},
                  st.sampled_from(["add", "sub", "mul", "div", "max", "min"]), sub, sub),
        st.builds(lambda op, a, n: {"op": op, "args": [a], "n": n},
                  st.sampled_from(["shift", "rolling_max", "rolling_min", "rolling_mean"]), sub,
                  st.integers(1, 6)),
    ]  # fmt: skip
    if informative_ok:
        options.append(
            st.builds(
                lambda tf, e: {"informative": tf, "expr": e},
                st.sampled_from(["15m", "1h"]),
                _numbers(depth - 1, False),
            )
        )
    return st.one_of(*options)


def _conditions(depth: int) -> st.SearchStrategy:
    nums = _numbers(2, True)
    leaf = st.builds(
        lambda op, a, b, tol: {"op": op, "args": [a, b], **({"tol": "price"} if tol else {})},
        st.sampled_from(["gt", "lt", "ge", "le", "crosses_above", "crosses_below"]),
        nums,
        nums,
        st.booleans(),
    )
    if depth <= 0:
        return leaf
    sub = _conditions(depth - 1)
    return st.one_of(
        leaf,
        st.builds(lambda a, b: {"op": "and", "args": [a, b]}, sub, sub),
        st.builds(lambda a, b: {"op": "or", "args": [a, b]}, sub, sub),
        st.builds(lambda a: {"op": "not", "args": [a]}, sub),
        st.builds(lambda a, n: {"op": "shift", "args": [a], "n": n}, sub, st.integers(0, 3)),
    )


DOCS = st.builds(
    lambda entry, exit_: {
        "name": "generated",
        "parameters": {"p": {"type": "int", "default": 4, "min": 2, "max": 9}},
        "entry": entry,
        "exit": exit_,
    },
    _conditions(2),
    _conditions(1),
)
CANDLES = random_walk(420, seed=11)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=DOCS, cut=st.integers(1, 419))
def test_no_look_ahead_for_any_document(doc, cut):
    strategy = _strategy(doc)
    params = strategy.default_params()
    whole = strategy.signals(CANDLES, params)
    prefix = strategy.signals(CANDLES.slice(0, cut), params)
    assert np.array_equal(prefix, whole[:cut])
    assert not whole[: strategy.warmup(params)].any()


_JUNK = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
        st.sampled_from(["op", "args", "ta", "ref", "param", "n", "tol", "series", "const",
                         "informative", "expr", "params", "inputs", "output", "x"]),
        kids, max_size=4),
    max_leaves=12,
)  # fmt: skip


def _paths(doc):
    stack = [((), doc)]
    while stack:
        loc, value = stack.pop()
        yield loc
        if isinstance(value, dict):
            stack.extend(((*loc, k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend(((*loc, i), v) for i, v in enumerate(value))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=DOCS, data=st.data())
def test_every_mutated_document_is_accepted_or_refused_with_a_path(doc, data):
    doc = copy.deepcopy(doc)  # generated values may share objects (st.just)
    paths = [p for p in _paths(doc) if p]
    where = data.draw(st.sampled_from(paths))
    junk = data.draw(_JUNK)
    target = doc
    for part in where[:-1]:
        target = target[part]
    target[where[-1]] = junk
    try:
        strategy = _strategy(doc)
        strategy.signals(CANDLES.slice(0, 80), strategy.default_params())
    except ValidationFailed as exc:
        assert exc.status == 422
        assert exc.details and all(d["path"].startswith("$") for d in exc.details)


# ---- the built-ins as templates --------------------------------------------------------------

CANDLE_FILES = sorted(SHIPPED.glob("*.csv")) + sorted(SHARED.glob("*.csv"))


@pytest.mark.parametrize("path", CANDLE_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_built_in_templates_signal_like_the_hand_written_strategies(path):
    """Same signals on every candle file, so the same trades (tests/engine checks trades)."""
    candles = load_candle_file(path)[1].candles
    for name in BUILT_INS:
        doc, hand = DocumentStrategy(template_document(name), timeframe="5m"), get_strategy(name)
        for values in ({}, SMALL_PARAMS[name]):
            got = doc.signals(candles, doc.validate_params(values))
            want = hand.signals(candles, hand.validate_params(values))
            assert np.array_equal(got, want), (name, values)
