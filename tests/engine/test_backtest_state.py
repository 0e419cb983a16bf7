"""The backtest converts each distinct candle price to a decimal once: the memo must give
exactly what `to_decimal` gives, zeros included."""

from __future__ import annotations

from decimal import Decimal

from app.engine.backtest import _State
from app.engine.fill_model import Book
from app.market.base import to_decimal


def test_memoised_prices_are_to_decimal_exactly() -> None:
    state = _State(book=Book())
    for price in (1.2345e-05, 0.1, 3.0, 1.2345e-05, 0.1, 1e-08, 123456.789, 3.0):
        got = state.decimal(price)
        assert got == to_decimal(price)
        assert repr(got) == repr(to_decimal(price))  # same digits and exponent, not just value
    assert state.decimal(0.1) is state.decimal(0.1)


def test_signed_zeros_keep_their_sign() -> None:
    state = _State(book=Book())
    assert repr(state.decimal(0.0)) == repr(Decimal("0.0"))
    assert repr(state.decimal(-0.0)) == repr(Decimal("-0.0"))
    assert repr(state.decimal(0.0)) == repr(Decimal("0.0"))
