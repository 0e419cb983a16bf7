"""Decimal text: no exponent, no trailing zeros, no negative zero, never rounded."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from app.domain.numbers import decimal_text, optional_decimal_text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (D("1.000000000000000000"), "1"),
        (D("0E-18"), "0"),
        (D("-0"), "0"),
        (D("53847.577910803702688817"), "53847.577910803702688817"),
        (D("3.003E-5"), "0.00003003"),
        (D("1E+3"), "1000"),
        (D("-12.50"), "-12.5"),
        (D("999999999999999.123456789012345678"), "999999999999999.123456789012345678"),
        (7, "7"),
        ("2.50", "2.5"),
    ],
)
def test_decimal_text(value: object, text: str) -> None:
    assert decimal_text(value) == text  # type: ignore[arg-type]


def test_not_finite_is_refused_and_none_passes() -> None:
    with pytest.raises(ValueError):
        decimal_text(D("Infinity"))
    assert optional_decimal_text(None) is None
