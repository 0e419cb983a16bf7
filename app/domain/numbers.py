"""Decimals as text a person can read: no exponent, no trailing zeros, no negative zero.

`decimal_text(Decimal("1.000000000000000000"))` is "1", `Decimal("0E-18")` is "0",
`Decimal("3.003E-5")` is "0.00003003". Every decimal in a response or a message goes through
here, so the API shows one spelling of each number.
"""

from __future__ import annotations

from decimal import Context, Decimal

__all__ = ["decimal_text", "optional_decimal_text"]

_WIDE = Context(prec=100)  # normalising never rounds a ledger value (Numeric(38, 18))


def decimal_text(value: Decimal | int | str) -> str:
    """The plain, normalised text of a finite decimal ("0" for any zero)."""
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    if not number.is_finite():
        raise ValueError(f"not a finite decimal: {number}")
    if not number:
        return "0"
    return format(number.normalize(_WIDE), "f")


def optional_decimal_text(value: Decimal | int | str | None) -> str | None:
    return None if value is None else decimal_text(value)
