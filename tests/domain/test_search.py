"""Search ranges are checked against the strategy's declared ones; objectives score trials."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from app.domain.metrics import compute_metrics
from app.domain.search import RangeError, objective_value, parse_ranges

SCHEMA = {"properties": {
    "period": {"type": "integer", "minimum": 2, "maximum": 200},
    "k": {"type": "number", "exclusiveMinimum": 0, "maximum": 10},
    "mode": {"enum": ["fast", "slow"]},
}}  # fmt: skip


def test_ranges_within_the_declared_ones() -> None:
    got = parse_ranges({"period": {"low": 2, "high": 200}, "k": {"low": 0.5, "high": 10},
                        "mode": {"choices": ["slow"]}}, SCHEMA)  # fmt: skip
    assert [(r.name, r.kind, r.low, r.high, r.choices) for r in got] == [
        ("period", "int", 2, 200, None), ("k", "float", 0.5, 10, None),
        ("mode", "choice", None, None, ("slow",)),
    ]  # fmt: skip
    assert got[0].to_dict() == {"low": 2, "high": 200}


@pytest.mark.parametrize(
    ("ranges", "field"),
    [
        ({"period": {"low": 1, "high": 5}}, "ranges.period"),
        ({"period": {"low": 2, "high": 201}}, "ranges.period"),
        ({"k": {"low": 0, "high": 1}}, "ranges.k"),  # 0 is excluded
        ({"period": {"low": 2}}, "ranges.period"),
        ({"period": {"low": "2", "high": 5}}, "ranges.period"),
        ({"mode": {"choices": ["medium"]}}, "ranges.mode"),
        ({"mode": {"low": 1, "high": 2}}, "ranges.mode"),
        ({"other": {"low": 1, "high": 2}}, "ranges.other"),
        ({}, "ranges"),
        ([], "ranges"),
    ],
)
def test_ranges_outside_are_refused(ranges, field) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RangeError) as err:
        parse_ranges(ranges, SCHEMA)
    assert err.value.field == field


def test_objectives() -> None:
    day = 86_400_000
    ts = np.arange(30) * day
    eq = np.array([100.0 + i for i in range(20)] + [110.0] * 10)  # peak 119, trough 110
    m = compute_metrics(ts, eq, [])
    assert objective_value("profit", m) == pytest.approx(0.1)
    assert objective_value("profit_dd", m) == pytest.approx(0.1 - 9 / 119)
    assert objective_value("sharpe", m) == m.sharpe and m.sharpe is not None
    assert objective_value("sortino", m) == m.sortino
    cagr = 1.1 ** (365 / 29) - 1
    assert objective_value("calmar", m) == pytest.approx(cagr / (9 / 119))
    short = replace(m, daily_returns=3)
    assert objective_value("calmar", short) is None
    with pytest.raises(ValueError):
        objective_value("luck", m)
