"""Tagged entries in a strategy document: the first true condition in list order names the
entry; the signals are those of the conditions joined by `or`; bad lists are refused with the
JSON path of what is wrong."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from app.domain.candles import Candles
from app.domain.strategies.doc_model import parse_document
from app.domain.strategies.doc_strategy import DocumentStrategy
from app.errors import ValidationFailed
from tests.engine.helpers import FIXTURE_CLOSE, FIXTURE_OPEN, rows_from

SMA = {"fast": {"ta": "SMA", "params": {"timeperiod": 2}},
       "slow": {"ta": "SMA", "params": {"timeperiod": 3}}}  # fmt: skip
CROSS = {"op": "crosses_above", "args": [{"ref": "fast"}, {"ref": "slow"}]}
CHEAP = {"op": "and", "args": [CROSS, {"op": "lt", "args": [{"series": "close"}, 13.5]}]}
TAGGED = {
    "name": "tagged sma",
    "indicators": SMA,
    "entry": [{"tag": "cheap_cross", "when": CHEAP}, {"tag": "cross", "when": CROSS}],
    "exit": {"op": "crosses_below", "args": [{"ref": "fast"}, {"ref": "slow"}]},
}


def fixture_candles() -> Candles:
    cols = list(zip(*rows_from(FIXTURE_OPEN, FIXTURE_CLOSE), strict=True))
    return Candles(np.array(cols[0], dtype=np.int64),
                   *(np.array(c, dtype=np.float64) for c in cols[1:]))  # fmt: skip


def strategy(doc: dict[str, Any]) -> DocumentStrategy:
    return DocumentStrategy(parse_document(doc), timeframe="1h")


def test_the_first_true_entry_in_list_order_names_it() -> None:
    s = strategy(TAGGED)
    candles = fixture_candles()
    tags = s.entry_tags(candles, s.default_params())
    # the crosses of the fixture: candle 4 (close 13: both true, the first wins), 10 (close 14)
    assert {i: t for i, t in enumerate(tags or []) if t} == {4: "cheap_cross", 10: "cross"}
    flipped = strategy({**TAGGED, "entry": list(reversed(TAGGED["entry"]))})
    tags = flipped.entry_tags(candles, flipped.default_params())
    assert {i: t for i, t in enumerate(tags or []) if t} == {4: "cross", 10: "cross"}


def test_tagged_signals_are_the_conditions_joined_by_or() -> None:
    candles = fixture_candles()
    tagged = strategy(TAGGED)
    plain = strategy({**TAGGED, "entry": {"op": "or", "args": [CHEAP, CROSS]}})
    assert np.array_equal(tagged.signals(candles, tagged.default_params()),
                          plain.signals(candles, plain.default_params()))  # fmt: skip
    assert plain.entry_tags(candles, plain.default_params()) is None
    assert tagged.warmup(tagged.default_params()) == plain.warmup(plain.default_params())


def _with(entry: Any) -> dict[str, Any]:
    doc = copy.deepcopy(TAGGED)
    doc["entry"] = entry
    return doc


@pytest.mark.parametrize(
    ("entry", "path", "words"),
    [
        ([], "$.entry", "1 to 20"),
        ([{"tag": "a", "when": CROSS}, {"tag": "a", "when": CHEAP}], "$.entry", "repeated: a"),
        ([{"tag": "", "when": CROSS}], "$.entry[0].tag", "pattern"),
        ([{"tag": "x" * 65, "when": CROSS}], "$.entry[0].tag", "pattern"),
        ([{"tag": "ok"}], "$.entry[0].when", "required"),
        ([{"tag": "ok", "when": CROSS, "extra": 1}], "$.entry[0].extra", "not permitted"),
        ([{"tag": "ok", "when": CROSS}, {"tag": "num", "when": {"series": "close"}}],
         "$.entry[1].when", "must be a condition"),
        ([{"tag": "ok", "when": {"ref": "nope"}}], "$.entry[0].when.ref", "unknown indicator"),
        ([{"tag": "ok", "when": CROSS}] * 21, "$.entry", "1 to 20"),
        ("cross", "$.entry", "expected a number or an object"),
    ],
)
def test_bad_tagged_entries_are_refused_with_their_path(entry: Any, path: str, words: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        strategy(_with(entry))
    err = caught.value
    assert err.code == "invalid_strategy_document"
    assert err.details[0]["path"] == path and words in err.details[0]["msg"], err.details
