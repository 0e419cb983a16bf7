"""The frozen records made per order or per trade write their whole __dict__ in one go (a
hand-written __init__, for speed): they must stay exactly the dataclasses they declare."""

from __future__ import annotations

import dataclasses
import pickle
from decimal import Decimal

import pytest

from app.domain.sizing import SizingDecision
from app.engine.backtest import BacktestTrade
from app.engine.fill_model import Book, FillResult, Ticket

RECORDS = [Book, Ticket, FillResult, BacktestTrade, SizingDecision]


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
def test_every_field_is_set_in_order_and_nothing_else(cls: type) -> None:
    fields = dataclasses.fields(cls)
    values = [Decimal(i + 1) for i in range(len(fields))]
    positional = cls(*values)
    by_name = cls(**{f.name: v for f, v in zip(fields, values, strict=True)})
    assert vars(positional) == {f.name: v for f, v in zip(fields, values, strict=True)}
    assert positional == by_name
    assert hash(positional) == hash(by_name)
    assert repr(positional) == repr(by_name)
    assert dataclasses.astuple(positional) == tuple(values)
    assert dataclasses.replace(positional, **{fields[0].name: Decimal(0)}) != positional
    assert pickle.loads(pickle.dumps(positional)) == positional


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
def test_still_frozen(cls: type) -> None:
    fields = dataclasses.fields(cls)
    record = cls(*[Decimal(1)] * len(fields))
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(record, fields[0].name, Decimal(2))


def test_defaults_are_the_declared_ones() -> None:
    assert Book() == Book(*[Decimal(0)] * 9)
    assert all(getattr(Book(), f.name) == f.default for f in dataclasses.fields(Book))
    decision = SizingDecision(Decimal(1), "fixed", False, None, None, None, None, "r", 0)
    assert decision.capped_by_cash is False
    assert decision.to_dict()["capped_by_cash"] is False
